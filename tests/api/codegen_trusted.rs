//! A gateway started with `TRUSTED_DOCUMENTS` set to the manifest that
//! graphql-codegen's client preset wrote runs the example client's
//! operations by `documentId`, as the generated client sends them.

use music_gateway::config::TrustedSettings;
use serde_json::json;

use crate::{
    codegen::{MANIFEST, scenario},
    for_both_backends,
    helpers::{Backend, TestApp},
};

async fn trusted_documents_from_codegen_run_by_id(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.trusted_documents = Some(TrustedSettings {
            path: MANIFEST.into(),
            allow_admin: false,
            require_id: false,
        });
    })
    .await;
    scenario(
        &app,
        |document, variables| json!({"documentId": document.id, "variables": variables}),
    )
    .await;
}

for_both_backends!(trusted_documents_from_codegen_run_by_id);

//! A gateway started with `TRUSTED_DOCUMENTS` set to the manifest that
//! graphql-codegen's client preset wrote runs the example client's
//! operations by `documentId`, as the generated client sends them.

use std::{path::Path, sync::Arc};

use serde_json::json;

use crate::{
    codegen::{MANIFEST, scenario},
    for_both_backends,
    helpers::{Backend, TestApp},
};

async fn trusted_documents_from_codegen_run_by_id(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        let manifest = music_gateway::graphql::TrustedDocuments::load(Path::new(MANIFEST))
            .expect("the generated manifest loads");
        config.trusted_documents = Some(Arc::new(manifest));
    })
    .await;
    scenario(
        &app,
        |document, variables| json!({"documentId": document.id, "variables": variables}),
    )
    .await;
}

for_both_backends!(trusted_documents_from_codegen_run_by_id);

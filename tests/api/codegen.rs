//! The persisted documents graphql-codegen's client preset writes for the
//! example client (`clients/typescript/`, regenerated and type-checked by
//! `scripts/check-ts-client`) belong to this gateway: each id is the sha256 of
//! its document, together they use every query and every mutation, and each
//! runs on both databases.
//!
//! `scenario` is shared with `codegen_trusted.rs`, which runs the same
//! documents by `documentId` against a gateway that trusts the manifest.

use std::collections::{BTreeMap, BTreeSet};

use async_graphql::parser::{
    parse_query,
    types::{ExecutableDocument, OperationType, Selection, SelectionSet},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{helpers::TestApp, on_both_databases};

/// Where the client preset writes the manifest (see clients/typescript/codegen.ts).
pub const MANIFEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/clients/typescript/src/gql/persisted-documents.json"
);

/// One persisted document of the manifest.
#[derive(Debug)]
pub struct Persisted {
    /// The manifest's key, `sha256:<hex>`.
    pub id: String,
    /// The document text, byte for byte as the gateway hashes it.
    pub text: String,
    /// The name of its one operation.
    pub operation: String,
    /// Query or mutation.
    pub kind: OperationType,
    /// The root fields the operation selects, through fragments too.
    pub root_fields: BTreeSet<String>,
}

/// The manifest's documents by operation name; panics on anything a client
/// could not send: a document that does not parse, or that holds other than
/// exactly one named operation.
pub fn manifest() -> BTreeMap<String, Persisted> {
    let text = std::fs::read_to_string(MANIFEST)
        .unwrap_or_else(|e| panic!("{MANIFEST}: {e}; regenerate it with scripts/check-ts-client"));
    let entries: BTreeMap<String, String> =
        serde_json::from_str(&text).expect("the manifest is a JSON object of strings");
    let mut documents = BTreeMap::new();
    for (id, text) in entries {
        let document = parse_query(&text)
            .unwrap_or_else(|e| panic!("persisted document {id} does not parse: {e}"));
        let mut operations = document.operations.iter();
        let (Some((Some(name), operation)), None) = (operations.next(), operations.next()) else {
            panic!("persisted document {id} must hold exactly one named operation");
        };
        let mut root_fields = BTreeSet::new();
        collect_fields(
            &document,
            &operation.node.selection_set.node,
            &mut root_fields,
        );
        let persisted = Persisted {
            id,
            operation: name.to_string(),
            kind: operation.node.ty,
            root_fields,
            text,
        };
        if let Some(other) = documents.insert(persisted.operation.clone(), persisted) {
            panic!("two persisted documents are named {}", other.operation);
        }
    }
    documents
}

/// The field names of a selection set, looking through fragments.
fn collect_fields(document: &ExecutableDocument, set: &SelectionSet, out: &mut BTreeSet<String>) {
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                out.insert(field.node.name.node.to_string());
            }
            Selection::FragmentSpread(spread) => {
                let fragment = &document.fragments[&spread.node.fragment_name.node];
                collect_fields(document, &fragment.node.selection_set.node, out);
            }
            Selection::InlineFragment(inline) => {
                collect_fields(document, &inline.node.selection_set.node, out);
            }
        }
    }
}

#[test]
fn each_persisted_document_id_is_the_sha256_of_its_text() {
    let documents = manifest();
    assert!(!documents.is_empty(), "the manifest is empty");
    for document in documents.values() {
        let digest = format!("{:x}", Sha256::digest(document.text.as_bytes()));
        assert_eq!(
            document.id,
            format!("sha256:{digest}"),
            "the id of {} is not `sha256:` and the hex sha256 of its text",
            document.operation
        );
    }
}

#[tokio::test]
async fn the_persisted_documents_use_every_query_and_every_mutation() {
    let schema = music_gateway::graphql::schema_builder().finish();
    let response = schema
        .execute("{ __schema { queryType { fields { name } } mutationType { fields { name } } } }")
        .await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    let introspection = response.data.into_json().expect("JSON");
    let names = |root: &str| -> BTreeSet<String> {
        introspection["__schema"][root]["fields"]
            .as_array()
            .unwrap_or_else(|| panic!("no {root} in {introspection}"))
            .iter()
            .map(|field| field["name"].as_str().expect("a name").to_owned())
            .collect()
    };
    let used = |kind: OperationType| -> BTreeSet<String> {
        manifest()
            .values()
            .filter(|document| document.kind == kind)
            .flat_map(|document| document.root_fields.iter().cloned())
            .filter(|field| !field.starts_with("__"))
            .collect()
    };
    for (root, kind) in [
        ("queryType", OperationType::Query),
        ("mutationType", OperationType::Mutation),
    ] {
        let unused: Vec<_> = names(root).difference(&used(kind)).cloned().collect();
        assert!(
            unused.is_empty(),
            "no operation in clients/typescript/src/operations.ts uses {unused:?}: add one \
             and run scripts/check-ts-client"
        );
    }
}

/// The user the scenario plays, and the one who only looks at featured playlists.
const ALICE: &str = "auth0|codegen-alice";
const BOB: &str = "auth0|codegen-bob";

/// Runs every persisted document once, in the order an app would, as Alice,
/// Bob and an admin, and checks each answer. `body` makes the JSON request
/// body for a document and its variables: the query text, or its id.
pub async fn scenario(app: &TestApp, body: impl Fn(&Persisted, Value) -> Value) {
    let documents = manifest();
    let alice = app.token(ALICE);
    let bob = app.token(BOB);
    let admin = app.token_with(
        "auth0|codegen-admin",
        json!({"scope": "write:app_metadata"}),
    );
    let mut ran = BTreeSet::new();
    let mut run = async |token: &str, operation: &str, variables: Value| -> Value {
        let document = documents
            .get(operation)
            .unwrap_or_else(|| panic!("no persisted document named {operation}"));
        ran.insert(operation.to_owned());
        let response = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(token)
            .json(&body(document, variables))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let answer: Value = response.json().await.expect("JSON body");
        assert_eq!(status, 200, "{operation}: {answer}");
        assert!(answer.get("errors").is_none(), "{operation}: {answer}");
        answer["data"].clone()
    };

    let song =
        |name: &str| json!({"input": {"name": name, "artist": "Miles Davis", "genre": "jazz"}});
    let first = run(&alice, "AddSong", song("So What")).await["addSong"].clone();
    assert_eq!(first["name"], "So What");
    assert!(first["createdAt"].as_str().is_some_and(|t| t.contains('T')));
    let first = first["id"].as_str().expect("song id").to_owned();
    let second = run(&alice, "AddSong", song("Blue in Green")).await["addSong"]["id"]
        .as_str()
        .expect("song id")
        .to_owned();

    let updated = run(
        &alice,
        "UpdateSong",
        json!({"id": first, "input": {"name": "So What (live)", "artist": null}}),
    )
    .await;
    assert_eq!(updated["updateSong"]["name"], "So What (live)");
    assert_eq!(updated["updateSong"]["artist"], Value::Null);
    let fetched = run(&alice, "Song", json!({"id": first})).await;
    assert_eq!(fetched["song"]["name"], "So What (live)");

    let created = run(
        &alice,
        "CreatePlaylist",
        json!({"input": {"name": "Kind of Blue", "songIds": [first]}}),
    )
    .await;
    assert_eq!(created["createPlaylist"]["plays"], 0);
    let playlist = created["createPlaylist"]["id"]
        .as_str()
        .expect("playlist id")
        .to_owned();
    let filled = run(
        &alice,
        "AddSongsToPlaylist",
        json!({"playlistId": playlist, "songIds": [second]}),
    )
    .await;
    assert_eq!(filled["addSongsToPlaylist"]["songs"]["totalCount"], 2);
    let emptied = run(
        &alice,
        "RemoveSongsFromPlaylist",
        json!({"playlistId": playlist, "songIds": [first]}),
    )
    .await;
    assert_eq!(emptied["removeSongsFromPlaylist"]["songs"]["totalCount"], 1);
    let renamed = run(
        &alice,
        "UpdatePlaylist",
        json!({"id": playlist, "input": {"name": "Kind of Blue (1959)"}}),
    )
    .await;
    assert_eq!(renamed["updatePlaylist"]["name"], "Kind of Blue (1959)");
    let played = run(&alice, "RecordPlay", json!({"playlistId": playlist})).await;
    assert_eq!(played["recordPlay"]["plays"], 1);
    let shown = run(&alice, "Playlist", json!({"id": playlist, "first": 10})).await;
    assert_eq!(
        shown["playlist"]["songs"]["nodes"][0]["name"],
        "Blue in Green"
    );

    let me = run(
        &alice,
        "UpdateMe",
        json!({"input": {"displayName": "Alice", "preferences": {"theme": "dark"}, "favGenre": "jazz"}}),
    )
    .await;
    assert_eq!(me["updateMe"]["preferences"], json!({"theme": "dark"}));
    let me = run(&alice, "Me", json!({"songsFirst": 1, "playlistsFirst": 10})).await["me"].clone();
    assert_eq!(me["displayName"], "Alice");
    assert_eq!(me["favGenre"], "jazz");
    assert_eq!(me["totalPlays"], 1);
    assert_eq!(me["songs"]["totalCount"], 2);
    assert_eq!(me["songs"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(me["playlists"]["edges"][0]["node"]["id"], playlist.as_str());

    let roles = run(
        &admin,
        "SetUserRoles",
        json!({"userId": ALICE, "roles": ["playlist_editor"]}),
    )
    .await;
    assert_eq!(roles["setUserRoles"]["canEditFeaturedPlaylists"], true);
    let plan = run(
        &admin,
        "SetUserPlan",
        json!({"userId": ALICE, "plan": "PREMIUM"}),
    )
    .await;
    assert_eq!(plan["setUserPlan"]["plan"], "PREMIUM");
    let featured = run(
        &alice,
        "SetPlaylistFeatured",
        json!({"id": playlist, "featured": true}),
    )
    .await;
    assert_eq!(featured["setPlaylistFeatured"]["featured"], true);
    let seen = run(&bob, "FeaturedPlaylists", json!({"first": 5})).await;
    assert_eq!(
        seen["featuredPlaylists"]["nodes"][0]["id"],
        playlist.as_str()
    );

    let deleted = run(&alice, "DeleteSong", json!({"id": first})).await;
    assert_eq!(deleted["deleteSong"], first.as_str());
    let deleted = run(&alice, "DeletePlaylist", json!({"id": playlist})).await;
    assert_eq!(deleted["deletePlaylist"], playlist.as_str());

    let gone = run(&admin, "DeleteUser", json!({"userId": BOB})).await;
    assert_eq!(gone["deleteUser"], BOB);
    let gone = run(&alice, "DeleteMe", json!({})).await;
    assert_eq!(gone["deleteMe"], ALICE);

    let skipped: Vec<_> = documents
        .keys()
        .filter(|name| !ran.contains(*name))
        .collect();
    assert!(
        skipped.is_empty(),
        "the scenario does not run {skipped:?}: add them to tests/api/codegen.rs"
    );
}

async fn every_persisted_document_runs_by_its_text(app: TestApp) {
    scenario(
        &app,
        |document, variables| json!({"query": document.text, "variables": variables}),
    )
    .await;
}

on_both_databases!(every_persisted_document_runs_by_its_text);

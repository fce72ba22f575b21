//! Generated `me` documents answer the same bytes on the compiled path and
//! on async-graphql's executor.
//!
//! The documents come from `schema.graphql` itself: random subsets of the
//! fields of every type under `me`, in random order, with aliases (the same
//! field twice with different arguments among them), named, inline and
//! nested fragments, `@skip`/`@include` on literals and variables,
//! `__typename` anywhere (at the root aliased too, and `me` beside the other
//! root fields), pages at 0, 1, the default, the maximum and above
//! it, cursors from the same list, from other lists and broken ones,
//! variables of every type the arguments take (with defaults, nulls, wrong
//! types and missing values), several operations with an `operationName`,
//! and invalid documents (unknown fields, wrong argument types, conflicting
//! response keys). Each runs on both gateways for a user with a full
//! library, one with nothing and one without a row, and again in the auth0
//! identity mode (through the fake Auth0) with a machine token beside them;
//! status and body must be identical.
//!
//! The seed is printed on failure; `MG_GENERATED_SEED` replays one and
//! `MG_GENERATED_DOCS` asks for more documents than CI's bounded batch.

use std::collections::HashMap;

use async_graphql::parser::types::{BaseType, TypeKind, TypeSystemDefinition};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde_json::{Map, Value, json};

use crate::{
    compiled::{compiled, library, pair, raw},
    fake_auth0::FakeAuth0,
    for_both_backends,
    helpers::{Backend, TestApp, UPDATED_AT_CLAIM},
};

const OWNER: &str = "auth0|differential";
const EMPTY: &str = "auth0|generated-empty";

/// Documents a run generates unless `MG_GENERATED_DOCS` says otherwise.
const CI_DOCS: usize = 250;

/// The least share of the valid documents that select only `me` the
/// compiled path must answer: a planner that declined everything would
/// pass the comparison. Measured between 0.40 and 0.55 over seeds (4,000
/// documents: 0.48); with about 140 such documents a run, 0.30 is some
/// three and a half standard deviations below, so a seed's luck does not
/// fail it.
const COMPILED_FLOOR: f64 = 0.30;

/// A field of an object type, from the SDL.
#[derive(Clone, Debug)]
struct FieldDef {
    name: String,
    /// Argument names and their named types.
    args: Vec<(String, String)>,
    ty: String,
}

/// The object types of `schema.graphql`, field by field.
struct SchemaModel {
    types: HashMap<String, Vec<FieldDef>>,
}

impl SchemaModel {
    fn load() -> Self {
        let sdl = include_str!("../../schema.graphql");
        let document = async_graphql::parser::parse_schema(sdl).expect("schema.graphql parses");
        let mut types = HashMap::new();
        for definition in document.definitions {
            let TypeSystemDefinition::Type(ty) = definition else {
                continue;
            };
            let TypeKind::Object(object) = &ty.node.kind else {
                continue;
            };
            let fields = object
                .fields
                .iter()
                .map(|f| FieldDef {
                    name: f.node.name.node.to_string(),
                    args: f
                        .node
                        .arguments
                        .iter()
                        .map(|a| {
                            (
                                a.node.name.node.to_string(),
                                named(&a.node.ty.node.base).to_owned(),
                            )
                        })
                        .collect(),
                    ty: named(&f.node.ty.node.base).to_owned(),
                })
                .collect();
            types.insert(ty.node.name.node.to_string(), fields);
        }
        Self { types }
    }

    fn fields(&self, ty: &str) -> &[FieldDef] {
        self.types.get(ty).map(Vec::as_slice).unwrap_or(&[])
    }

    fn is_object(&self, ty: &str) -> bool {
        self.types.contains_key(ty)
    }
}

fn named(ty: &BaseType) -> &str {
    match ty {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(inner) => named(&inner.base),
    }
}

/// One generated request.
struct Generated {
    query: String,
    variables: Value,
    operation_name: Option<String>,
    /// Whether only `me` is selected at the root of a valid-looking
    /// document (the compiled path's domain).
    me_only: bool,
}

/// Builds one document.
struct Generator<'a> {
    schema: &'a SchemaModel,
    rng: StdRng,
    cursors: &'a [String],
    /// Variable definitions (`$name: Type = default`) of the operation being
    /// written, and the values sent for them.
    definitions: Vec<String>,
    values: Map<String, Value>,
    fragments: Vec<String>,
    invalid: bool,
}

impl Generator<'_> {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    fn variable(&mut self, ty: &str, value: Option<Value>, default: Option<&str>) -> String {
        let name = format!("v{}", self.definitions.len());
        let definition = match default {
            Some(default) => format!("${name}: {ty} = {default}"),
            None => format!("${name}: {ty}"),
        };
        self.definitions.push(definition);
        if let Some(value) = value {
            self.values.insert(name.clone(), value);
        }
        format!("${name}")
    }

    /// `@include`/`@skip`, on a literal or a variable (with or without a
    /// default, sent or not), or nothing.
    fn directive(&mut self) -> String {
        if !self.chance(0.2) {
            return String::new();
        }
        let name = if self.chance(0.5) { "include" } else { "skip" };
        let flag = match self.rng.gen_range(0..4) {
            0 | 1 => self.rng.gen_bool(0.5).to_string(),
            2 => {
                let v = self.rng.gen_bool(0.5);
                self.variable("Boolean!", Some(json!(v)), None)
            }
            _ => {
                let default = self.rng.gen_bool(0.5).to_string();
                let sent = self.chance(0.5).then(|| json!(self.rng.gen_bool(0.5)));
                self.variable("Boolean!", sent, Some(&default))
            }
        };
        format!(" @{name}(if: {flag})")
    }

    fn first(&mut self) -> Option<String> {
        let literal = *[0i64, 1, 2, 3, 20, 100, 101, -1]
            .choose(&mut self.rng)
            .expect("pages");
        match self.rng.gen_range(0..10) {
            0..=2 => None,
            3..=6 => Some(literal.to_string()),
            7 => Some(self.variable("Int", Some(json!(literal)), None)),
            8 => {
                let sent = self.chance(0.5).then_some(json!(literal));
                Some(self.variable("Int", sent, Some("2")))
            }
            _ => {
                // A null, a wrong type, or a string literal: each an error
                // or the default, the same on both paths.
                let wrong = [json!(null), json!("3"), json!(1.5), json!(true)]
                    .choose(&mut self.rng)
                    .cloned()
                    .expect("values");
                if self.chance(0.3) {
                    self.invalid = true;
                    Some("\"3\"".to_owned())
                } else {
                    Some(self.variable("Int", Some(wrong), None))
                }
            }
        }
    }

    fn after(&mut self) -> Option<String> {
        if self.chance(0.7) {
            return None;
        }
        let cursor = if self.chance(0.85) {
            self.cursors
                .choose(&mut self.rng)
                .cloned()
                .expect("cursors")
        } else {
            "not a cursor".to_owned()
        };
        if self.chance(0.5) {
            Some(format!("{cursor:?}"))
        } else {
            Some(self.variable("String", Some(json!(cursor)), None))
        }
    }

    fn arguments(&mut self, field: &FieldDef) -> String {
        let mut args = Vec::new();
        for (name, ty) in &field.args {
            let value = match (name.as_str(), ty.as_str()) {
                ("first", _) => self.first(),
                ("after", _) => self.after(),
                _ => None,
            };
            if let Some(value) = value {
                args.push(format!("{name}: {value}"));
            }
        }
        if args.is_empty() {
            String::new()
        } else {
            format!("({})", args.join(", "))
        }
    }

    /// A selection set on `ty`, `depth` levels at most.
    fn selection_set(&mut self, ty: &str, depth: usize) -> String {
        let fields = self.schema.fields(ty).to_vec();
        let mut items = Vec::new();
        let count = self.rng.gen_range(1..=fields.len().clamp(1, 6));
        let mut chosen: Vec<&FieldDef> = fields.choose_multiple(&mut self.rng, count).collect();
        // The same field twice, often with other arguments and an alias.
        if self.chance(0.25)
            && let Some(again) = fields.choose(&mut self.rng)
        {
            chosen.push(again);
        }
        for field in chosen {
            let is_object = self.schema.is_object(&field.ty);
            if is_object && depth == 0 {
                continue;
            }
            let alias = match self.rng.gen_range(0..10) {
                0..=6 => String::new(),
                7 | 8 => format!(
                    "{}: ",
                    ["a", "b", "c"].choose(&mut self.rng).expect("alias")
                ),
                _ => format!("{}2: ", field.name),
            };
            let args = self.arguments(field);
            let directive = self.directive();
            let inner = if is_object {
                format!(" {{ {} }}", self.selection_set(&field.ty, depth - 1))
            } else {
                String::new()
            };
            items.push(format!("{alias}{}{args}{directive}{inner}", field.name));
        }
        if self.chance(0.15) {
            items.push(format!("__typename{}", self.directive()));
        }
        if depth > 0 && self.chance(0.15) {
            let inner = self.selection_set(ty, depth - 1);
            let condition = if self.chance(0.5) {
                format!("on {ty} ")
            } else {
                String::new()
            };
            items.push(format!(
                "... {condition}{}{{ {inner} }}",
                self.directive().trim_start()
            ));
        }
        if depth > 0 && self.chance(0.12) {
            let name = format!("F{}", self.fragments.len());
            // Reserve the slot first, so nested fragments get other names.
            self.fragments.push(String::new());
            let index = self.fragments.len() - 1;
            let inner = self.selection_set(ty, depth - 1);
            self.fragments[index] = format!("fragment {name} on {ty} {{ {inner} }}");
            items.push(format!("...{name}{}", self.directive()));
        }
        if self.chance(0.02) {
            self.invalid = true;
            items.push("notAField".to_owned());
        }
        if items.is_empty() {
            items.push("__typename".to_owned());
        }
        items.shuffle(&mut self.rng);
        items.join(" ")
    }

    fn operation(&mut self, name: &str) -> (String, bool) {
        self.definitions.clear();
        let me = format!(
            "me{} {{ {} }}",
            self.directive(),
            self.selection_set("Me", 3)
        );
        let mut roots = vec![me];
        let mut me_only = true;
        if self.chance(0.15) {
            roots.push(format!("__typename{}", self.directive()));
        }
        if self.chance(0.08) {
            roots.push(format!("t: __typename{}", self.directive()));
        }
        // The other root fields beside `me`: async-graphql answers them all.
        if self.chance(0.08) {
            me_only = false;
            roots.push("featuredPlaylists(first: 2) { totalCount nodes { name } }".to_owned());
        }
        if self.chance(0.04) {
            me_only = false;
            let id = if self.chance(0.5) { "1" } else { "999999" };
            let field = if self.chance(0.5) { "song" } else { "playlist" };
            roots.push(format!("{field}(id: \"{id}\") {{ __typename id name }}"));
        }
        roots.shuffle(&mut self.rng);
        let definitions = if self.definitions.is_empty() {
            String::new()
        } else {
            format!("({})", self.definitions.join(", "))
        };
        (
            format!("query {name}{definitions} {{ {} }}", roots.join(" ")),
            me_only,
        )
    }

    fn document(mut self) -> Generated {
        let operations = if self.chance(0.15) { 2 } else { 1 };
        let mut texts = Vec::new();
        let mut me_only = true;
        // Variables of every operation in one map: each operation's names
        // start at v0, so the one that runs finds its own.
        let mut chosen = None;
        for i in 0..operations {
            let name = format!("Op{i}");
            let values = std::mem::take(&mut self.values);
            let (text, only) = self.operation(&name);
            let mine = std::mem::replace(&mut self.values, values);
            texts.push(text);
            if i == operations - 1 {
                me_only = only;
                chosen = Some((name, mine));
            }
        }
        let (name, values) = chosen.expect("one operation");
        let operation_name = (operations > 1 || self.chance(0.3)).then_some(name);
        texts.extend(self.fragments.iter().cloned());
        Generated {
            query: texts.join("\n"),
            variables: Value::Object(values),
            operation_name,
            me_only: me_only && !self.invalid,
        }
    }
}

/// `body` with every RFC 3339 time (`"2026-12-06T21:08:19.086+00:00"`)
/// replaced by `"<time>"`.
fn mask_times(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.find("\"20") {
        out.push_str(&rest[..at]);
        let candidate = &rest[at..];
        let end = candidate[1..].find('"').map(|e| e + 2);
        match end {
            Some(end)
                if candidate.as_bytes().get(11) == Some(&b'T')
                    && candidate[..end].ends_with("+00:00\"") =>
            {
                out.push_str("\"<time>\"");
                rest = &candidate[end..];
            }
            _ => {
                out.push_str("\"2");
                rest = &candidate[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn seed() -> u64 {
    std::env::var("MG_GENERATED_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().r#gen())
}

/// Who calls in one comparison: a token for each gateway (the same user, or
/// a newcomer each), and the ids to put back before comparing.
struct Caller {
    fast_token: String,
    slow_token: String,
    fast_id: String,
    slow_id: String,
    /// Its row is made by the first request: `syncedAt` is each gateway's own.
    newcomer: bool,
    /// Its answers count towards the compiled share.
    counted: bool,
}

impl Caller {
    fn same(token: String, id: &str, counted: bool) -> Self {
        Self {
            slow_token: token.clone(),
            fast_token: token,
            fast_id: id.to_owned(),
            slow_id: id.to_owned(),
            newcomer: false,
            counted,
        }
    }
}

/// The cursors of the owner's lists: songs, playlists and a playlist's songs.
async fn cursors(app: &TestApp, token: &str) -> Vec<String> {
    let data = app
        .ok_with(
            token,
            "{ me { songs(first: 3) { edges { cursor } } playlists(first: 2) { edges { cursor } nodes { songs(first: 2) { edges { cursor } } } } } }",
            json!({}),
        )
        .await;
    let mut cursors = Vec::new();
    let mut collect = |v: &Value| {
        if let Some(edges) = v.as_array() {
            cursors.extend(
                edges
                    .iter()
                    .filter_map(|e| e["cursor"].as_str().map(str::to_owned)),
            );
        }
    };
    collect(&data["me"]["songs"]["edges"]);
    collect(&data["me"]["playlists"]["edges"]);
    for playlist in data["me"]["playlists"]["nodes"]
        .as_array()
        .expect("playlists")
    {
        collect(&playlist["songs"]["edges"]);
    }
    cursors
}

/// Sends generated documents to both gateways for each of `callers(n)`,
/// asserting the same status and bytes, and that the compiled path answered
/// at least `floor` of the valid `me`-only documents of the counted callers.
async fn compare(
    fast: &TestApp,
    slow: &TestApp,
    cursors: &[String],
    callers: impl Fn(usize) -> Vec<Caller>,
    docs: usize,
    floor: f64,
) {
    let schema = SchemaModel::load();
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut me_only, mut answered) = (0u64, 0u64);
    for n in 0..docs {
        let generated = Generator {
            schema: &schema,
            rng: StdRng::seed_from_u64(rng.r#gen()),
            cursors,
            definitions: Vec::new(),
            values: Map::new(),
            fragments: Vec::new(),
            invalid: false,
        }
        .document();
        for caller in callers(n) {
            let before = compiled(fast).await;
            let (fast_status, fast_body) = raw(
                fast,
                Some(&caller.fast_token),
                &generated.query,
                &generated.variables,
                generated.operation_name.as_deref(),
            )
            .await;
            let took = compiled(fast).await - before;
            let (slow_status, slow_body) = raw(
                slow,
                Some(&caller.slow_token),
                &generated.query,
                &generated.variables,
                generated.operation_name.as_deref(),
            )
            .await;
            let slow_body = slow_body.replace(&caller.slow_id, &caller.fast_id);
            let (fast_body, slow_body) = if caller.newcomer {
                (mask_times(&fast_body), mask_times(&slow_body))
            } else {
                (fast_body, slow_body)
            };
            assert_eq!(
                (fast_status, &fast_body),
                (slow_status, &slow_body),
                "seed {seed}, document {n}, caller {}: the paths differ for\n{}\nvariables {} operation {:?}",
                caller.fast_id,
                generated.query,
                generated.variables,
                generated.operation_name,
            );
            if caller.counted
                && generated.me_only
                && fast_status == 200
                && !fast_body.contains("\"errors\"")
            {
                me_only += 1;
                answered += took;
            }
        }
    }
    let share = answered as f64 / me_only.max(1) as f64;
    eprintln!(
        "seed {seed}: {docs} documents; the compiled path answered {answered} of the {me_only} valid me-only ones ({share:.2})"
    );
    assert!(
        me_only > 0 && share >= floor,
        "seed {seed}: the compiled path answered {answered} of {me_only} me-only documents ({share:.2}), under the floor of {floor}"
    );
}

fn docs(default: usize) -> usize {
    std::env::var("MG_GENERATED_DOCS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

async fn generated_me_documents_answer_the_same_bytes_on_both_paths(backend: Backend) {
    let (fast, slow) = pair(backend).await;
    library(&fast).await;
    let cursors = cursors(&fast, &fast.token(OWNER)).await;
    // A full library, an empty one, and a user seen for the first time (a
    // new one on each gateway: its id is put back before comparing).
    let callers = |n: usize| {
        let fast_id = format!("auth0|new-fast-{n}");
        let slow_id = format!("auth0|new-slow-{n}");
        vec![
            Caller::same(fast.token(OWNER), OWNER, true),
            Caller::same(fast.token(EMPTY), EMPTY, false),
            Caller {
                fast_token: fast.token(&fast_id),
                slow_token: slow.token(&slow_id),
                fast_id,
                slow_id,
                newcomer: true,
                counted: false,
            },
        ]
    };
    compare(
        &fast,
        &slow,
        &cursors,
        callers,
        docs(CI_DOCS),
        COMPILED_FLOOR,
    )
    .await;
}

/// The same in the auth0 identity mode, through the fake Auth0: the profile
/// policy and its refresh decisions run on both paths, and a machine
/// (client-credentials) token calls too.
async fn generated_me_documents_agree_in_the_auth0_mode(backend: Backend) {
    let fake = FakeAuth0::start().await;
    let owner = "auth0|generated-owner";
    let empty = "auth0|generated-nothing";
    fake.put_user(json!({
        "user_id": owner,
        "email": "owner@example.com",
        "name": "Owner \"O\" ♫",
        "user_metadata": {"displayName": "Zoë", "theme": {"dark": true}},
        "app_metadata": {"roles": ["playlist_editor", "beta"], "plan": "premium"}
    }));
    fake.put_user(json!({"user_id": empty, "email": "empty@example.com"}));
    let fast = TestApp::spawn_auth0(backend, &fake, |c| c.response_cache_max_bytes = 0).await;
    let url = fast.database_url.clone();
    let slow = TestApp::spawn_auth0(backend, &fake, |c| {
        c.response_cache_max_bytes = 0;
        c.compiled_queries = false;
        c.database_url = url;
    })
    .await;
    let owner_token = fake.mint_after_login(owner, UPDATED_AT_CLAIM, json!({}));
    let empty_token = fake.mint_after_login(empty, UPDATED_AT_CLAIM, json!({}));
    let mut songs = Vec::new();
    for (i, name) in ["one", "two \"2\"", "three ♫"].iter().enumerate() {
        let data = fast
            .ok_with(
                &owner_token,
                "mutation($i: AddSongInput!) { addSong(input: $i) { id } }",
                json!({"i": {"name": name, "artist": (i != 1).then_some("artist"), "genre": "jazz"}}),
            )
            .await;
        songs.push(data["addSong"]["id"].as_str().unwrap().to_owned());
    }
    for (name, ids) in [("all", &songs[..]), ("two", &songs[1..]), ("none", &[][..])] {
        fast.ok_with(
            &owner_token,
            "mutation($i: CreatePlaylistInput!) { createPlaylist(input: $i) { id } }",
            json!({"i": {"name": name, "songIds": ids}}),
        )
        .await;
    }
    let cursors = cursors(&fast, &owner_token).await;
    let machine = fake.mint("generated-client@clients", json!({"scope": "read:plays"}));
    let callers = |_: usize| {
        vec![
            Caller::same(owner_token.clone(), owner, true),
            Caller::same(empty_token.clone(), empty, false),
            Caller::same(machine.clone(), "generated-client@clients", false),
        ]
    };
    compare(
        &fast,
        &slow,
        &cursors,
        callers,
        docs(CI_DOCS / 2),
        COMPILED_FLOOR,
    )
    .await;
}

for_both_backends!(
    generated_me_documents_answer_the_same_bytes_on_both_paths,
    generated_me_documents_agree_in_the_auth0_mode,
);

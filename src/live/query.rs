//! A live query: a subscription's document run as the query of the same
//! root fields, at once and again after every change to the scopes it
//! reads, sending only answers that differ from the last one sent.
//!
//! Each run is a request of its own (a fresh context, fresh loaders), so it
//! reads what is committed now. The wakes are `watch` channels: however
//! many changes come while a client is slow, one run follows, and it reads
//! the newest state; nothing queues up.

use std::{future::pending, sync::Arc};

use async_graphql::{
    Response, ServerError, Value, Variables,
    parser::types::{DocumentOperations, ExecutableDocument, OperationType, Selection},
};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::shared::{Run, Runs};

use crate::{AppState, auth::Principal, graphql as gql, http::response_cache::FEATURED_SCOPE};

/// How long a live query waits to run again when the database was
/// unavailable.
const RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// One subscription's state between answers.
pub struct LiveQuery {
    state: AppState,
    principal: Option<Principal>,
    query: String,
    operation_name: Option<String>,
    variables: Variables,
    /// The document with the subscription turned into a query.
    document: ExecutableDocument,
    shape: Option<gql::Shape>,
    own: Option<watch::Receiver<u64>>,
    featured: Option<watch::Receiver<u64>>,
    /// The response key of a `playlist` root field: its `null` ends it.
    playlist_key: Option<String>,
    last: Option<Value>,
    /// What makes two live queries' runs the same: the caller (as far as
    /// it shapes answers), the document, the operation, the variables.
    key: [u8; 32],
    /// For a document of featured playlists only, whose answer is the same
    /// for every signed-in user: the key without the user, shared by every
    /// user's subscription to it once their own run has answered.
    featured_key: Option<[u8; 32]>,
    /// The own scope's wake count when this query's own run last answered:
    /// until it moves, a featured change needs nothing of the caller.
    own_checked: Option<Option<u64>>,
    /// The run this query read last and its key, kept so the shared entry
    /// lives while a query may ask for it again.
    run: Option<([u8; 32], Arc<Run>)>,
    started: bool,
    /// When the change being answered woke this query.
    woke_at: Option<std::time::Instant>,
    /// The last run found the database unavailable: run again shortly
    /// rather than end the subscription over an outage.
    retry: bool,
    done: bool,
}

impl LiveQuery {
    /// A live query over a prepared subscription. Its watches start now,
    /// before its first run, so no change after the first read is missed.
    pub fn new(
        state: &AppState,
        principal: Option<Principal>,
        mut request: async_graphql::Request,
    ) -> Result<Self, ServerError> {
        let operation_name = request.operation_name.clone();
        let mut document = request.parsed_query()?.clone();
        let Some(operation) = operation_mut(&mut document, operation_name.as_deref()) else {
            return Err(ServerError::new("no operation to run", None));
        };
        operation.ty = OperationType::Query;
        let roots: Vec<(String, String)> = operation
            .selection_set
            .node
            .items
            .iter()
            .filter_map(|s| match &s.node {
                Selection::Field(f) => Some((
                    f.node.name.node.to_string(),
                    f.node.response_key().node.to_string(),
                )),
                _ => None,
            })
            .collect();
        let playlist_key = match roots.as_slice() {
            [(name, key)] if name == "playlist" => Some(key.clone()),
            _ => None,
        };
        // Fields only, no fragments: a spread could hide a root of the
        // caller's own.
        let featured_only = !roots.is_empty()
            && roots.len() == operation.selection_set.node.items.len()
            && roots
                .iter()
                .all(|(name, _)| name == "featuredPlaylists" || name == "__typename");
        let reads_featured =
            crate::http::response_cache::featured_read(&document, operation_name.as_deref())
                .unwrap_or(true);
        let feed = &state.live.feed;
        let own = principal
            .as_ref()
            .filter(|p| !p.is_machine())
            .map(|p| feed.watch(&p.user_id));
        let featured = reads_featured.then(|| feed.watch(FEATURED_SCOPE));
        let shape = gql::Shape::of(&document, operation_name.as_deref(), &request.variables);
        let document = gql::for_executor(&document).unwrap_or(document);
        let key = run_key(
            principal.as_ref(),
            true,
            &request.query,
            operation_name.as_deref(),
            &request.variables,
        );
        let featured_key = principal
            .as_ref()
            .filter(|p| featured_only && !p.is_machine())
            .map(|p| {
                run_key(
                    Some(p),
                    false,
                    &request.query,
                    operation_name.as_deref(),
                    &request.variables,
                )
            });
        Ok(Self {
            key,
            featured_key,
            own_checked: None,
            run: None,
            state: state.clone(),
            principal,
            query: request.query.clone(),
            operation_name,
            variables: std::mem::take(&mut request.variables),
            document,
            shape,
            own,
            featured,
            playlist_key,
            last: None,
            started: false,
            woke_at: None,
            retry: false,
            done: false,
        })
    }

    /// The next answer to send; `None` once the subscription has ended
    /// (its answer failed as a whole, or its playlist is gone). An `Err`
    /// is a request error (the document does not validate): nothing ran,
    /// and the subscription ends with it.
    pub async fn next(&mut self) -> Option<Result<Response, Vec<ServerError>>> {
        if self.done {
            return None;
        }
        loop {
            if self.retry {
                self.retry = false;
                tokio::time::sleep(RETRY_DELAY).await;
            } else if self.started {
                if self.own.is_none() && self.featured.is_none() {
                    // Nothing it reads can change: an anonymous caller's
                    // error, say, has been sent.
                    self.done = true;
                    return None;
                }
                tokio::select! {
                    woke = changed(&mut self.own) => if woke.is_err() { self.own = None },
                    woke = changed(&mut self.featured) => if woke.is_err() { self.featured = None },
                }
                self.woke_at.get_or_insert_with(std::time::Instant::now);
            }
            self.started = true;
            let mut response = match self.shared_run().await {
                Ok(response) => response,
                Err(errors) => {
                    self.done = true;
                    return Some(Err(errors));
                }
            };
            if response.data == Value::Null
                && !response.errors.is_empty()
                && response
                    .errors
                    .iter()
                    .all(|e| code(e) == Some(crate::error::ErrorCode::UpstreamUnavailable.as_str()))
            {
                if let Some((key, run)) = &self.run {
                    self.state.live.runs.discard(*key, run);
                }
                self.retry = true;
                continue;
            }
            if response.data == Value::Null && !response.errors.is_empty() {
                if let Some(key) = &self.playlist_key
                    && response
                        .errors
                        .iter()
                        .all(|e| code(e) == Some(crate::error::ErrorCode::NotFound.as_str()))
                {
                    // Gone (deleted, or no longer featured): one `null`.
                    let mut data = async_graphql::indexmap::IndexMap::new();
                    data.insert(async_graphql::Name::new(key), Value::Null);
                    response = Response::new(Value::Object(data));
                }
                self.done = true;
                metrics::counter!("graphql_live_subscriptions_ended_total", "reason" => "final_answer").increment(1);
                return Some(Ok(response));
            }
            if response.errors.is_empty() && self.last.as_ref() == Some(&response.data) {
                metrics::counter!("graphql_live_answers_skipped_total").increment(1);
                continue;
            }
            self.last = Some(response.data.clone());
            if let Some(woke_at) = self.woke_at.take() {
                metrics::histogram!(super::WAKE_TO_ANSWER).record(woke_at.elapsed().as_secs_f64());
            }
            return Some(Ok(response));
        }
    }

    /// The answer for the wakes seen so far, run once for every live query
    /// of the same key that saw the same wakes (one re-read per change,
    /// however many subscriptions of one user ask the same).
    ///
    /// A document of featured playlists only runs on its own (per user)
    /// first and after every change of the caller's own (a deleted
    /// account, say, must get its error); a featured change alone then
    /// gets the run every user's subscription shares: one re-read per
    /// change, however many users ask.
    async fn shared_run(&mut self) -> Result<Response, Vec<ServerError>> {
        let own = self.own.as_mut().map(|r| *r.borrow_and_update());
        let featured = self.featured.as_mut().map(|r| *r.borrow_and_update());
        let (key, wakes, own_run) = match self.featured_key {
            Some(key) if self.own_checked == Some(own) => (key, (None, featured), false),
            _ => (self.key, (own, featured), true),
        };
        let runs: &Runs = &self.state.live.runs;
        let run = runs.get(key, wakes);
        let answer = run.answer(|| self.run()).await;
        if let Some((previous_key, previous)) = self.run.replace((key, run)) {
            runs.release(previous_key, previous);
        }
        if own_run && matches!(&answer, Ok(response) if response.errors.is_empty()) {
            self.own_checked = Some(own);
        }
        answer
    }

    async fn run(&self) -> Result<Response, Vec<ServerError>> {
        let mut request =
            async_graphql::Request::new(self.query.clone()).variables(self.variables.clone());
        request.operation_name = self.operation_name.clone();
        request.set_parsed_query(self.document.clone());
        execute(
            &self.state,
            self.principal.clone(),
            request,
            self.shape.as_ref(),
        )
        .await
    }
}

/// Runs a prepared query or mutation once, as a request of its own (the
/// answer of a query or mutation sent over a live transport); `Err`: a
/// request error, nothing ran.
pub async fn execute_once(
    state: &AppState,
    principal: Option<Principal>,
    mut request: async_graphql::Request,
) -> Result<Response, Vec<ServerError>> {
    let shape = gql::ready_for_executor(&mut request);
    execute(state, principal, request, shape.as_ref()).await
}

async fn execute(
    state: &AppState,
    principal: Option<Principal>,
    request: async_graphql::Request,
    shape: Option<&gql::Shape>,
) -> Result<Response, Vec<ServerError>> {
    let context = gql::RequestContext::new(principal);
    let mut response = state.schema.execute(request.data(context)).await;
    // As over HTTP: no data and no error at a field means async-graphql
    // refused the document (validation, its own limits).
    if response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
    {
        let mut errors = response.errors;
        for error in &mut errors {
            crate::http::set_default_code(error, crate::error::ErrorCode::GraphqlValidationFailed);
        }
        return Err(errors);
    }
    if let Some(shape) = shape {
        shape.apply(&mut response.data);
    }
    gql::sort_errors(&mut response.errors);
    // Errors without a code are async-graphql's, about arguments.
    for error in &mut response.errors {
        crate::http::set_default_code(error, crate::error::ErrorCode::BadUserInput);
    }
    Ok(response)
}

impl Drop for LiveQuery {
    fn drop(&mut self) {
        if let Some((key, run)) = self.run.take() {
            self.state.live.runs.release(key, run);
        }
    }
}

/// The key of a run; `with_user: false` leaves the user id out (what a
/// token grants still counts).
fn run_key(
    principal: Option<&Principal>,
    with_user: bool,
    query: &str,
    operation_name: Option<&str>,
    variables: &Variables,
) -> [u8; 32] {
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    match principal {
        // What of a token shapes answers; not its expiry or its profile
        // claims (those only seed a row never seen before).
        Some(p) => {
            part(if with_user {
                p.user_id.as_bytes()
            } else {
                b"\0any user"
            });
            part(p.scopes.join(" ").as_bytes());
            part(p.permissions.join(" ").as_bytes());
            part(format!("{:?}", p.claimed_roles).as_bytes());
        }
        None => part(b"\0anonymous"),
    }
    part(query.as_bytes());
    part(operation_name.unwrap_or("").as_bytes());
    part(&serde_json::to_vec(variables).unwrap_or_default());
    hash.finalize().into()
}

fn code(error: &ServerError) -> Option<&str> {
    match error.extensions.as_ref()?.get("code")? {
        Value::String(code) => Some(code),
        _ => None,
    }
}

async fn changed(
    receiver: &mut Option<watch::Receiver<u64>>,
) -> Result<(), watch::error::RecvError> {
    match receiver {
        Some(receiver) => receiver.changed().await,
        None => pending().await,
    }
}

fn operation_mut<'a>(
    document: &'a mut ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a mut async_graphql::parser::types::OperationDefinition> {
    match (&mut document.operations, name) {
        (DocumentOperations::Single(op), _) => Some(&mut op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => Some(&mut ops.get_mut(name)?.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            Some(&mut ops.values_mut().next()?.node)
        }
        _ => None,
    }
}

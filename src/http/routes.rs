//! Every route of the gateway, in one place.

use std::time::Duration;

use async_graphql::ParseRequestError;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse, rejection::GraphQLRejection};
use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    trace::TraceLayer,
};

use super::{auth::MaybePrincipal, auth0_hooks, graphiql};
use crate::{AppState, config::CorsOrigins, graphql::RequestContext};

/// Builds the router over `state`.
pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.config.cors);
    let body_limit = state.config.max_body_bytes;
    let mut router = Router::new()
        .route("/graphql", get(graphiql::page).post(graphql))
        .merge(graphiql::routes())
        .merge(auth0_hooks::routes(&state))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/playlists/getPlays", get(get_plays));
    if state.issuer.is_some() {
        router = router.route("/.well-known/jwks.json", get(jwks));
    }
    router
        // The GraphQL extractor streams the body itself, so axum's DefaultBodyLimit
        // would not apply: limit the body at the HTTP layer.
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(cors)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn cors_layer(origins: &CorsOrigins) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600));
    match origins {
        CorsOrigins::None => base.allow_origin(AllowOrigin::list(Vec::<HeaderValue>::new())),
        CorsOrigins::Any => base.allow_origin(AllowOrigin::any()),
        CorsOrigins::List(list) => base.allow_origin(AllowOrigin::list(
            list.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
        )),
    }
}

#[tracing::instrument(skip_all, fields(user_id))]
async fn graphql(
    State(state): State<AppState>,
    MaybePrincipal(principal): MaybePrincipal,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    let mut request = match request {
        Ok(request) => request.into_inner(),
        Err(rejection) => return bad_request(rejection.0),
    };
    state.documents.prepare(&mut request);
    if let Some(p) = &principal {
        tracing::Span::current().record("user_id", p.user_id.as_str());
    }
    let context = RequestContext::new(principal);
    let mut response = state.schema.execute(request.data(context)).await;
    // Parse, validation and argument errors come from async-graphql without a
    // code; they are all the client's to fix.
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "BAD_USER_INPUT");
        }
    }
    GraphQLResponse::from(response).into_response()
}

/// A body that is not a GraphQL request, answered in GraphQL's error shape.
fn bad_request(error: ParseRequestError) -> Response {
    let (status, message) = match error {
        ParseRequestError::PayloadTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is too large".to_owned(),
        ),
        ParseRequestError::InvalidRequest(e) => (
            StatusCode::BAD_REQUEST,
            format!("the body is not a GraphQL request: {e}"),
        ),
        other => (
            StatusCode::BAD_REQUEST,
            format!("the body is not a GraphQL request: {other}"),
        ),
    };
    let body = serde_json::json!({"errors": [{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}]});
    (status, Json(body)).into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready while the database answers within `DB_TIMEOUT_MS`: a load balancer
/// then sends traffic elsewhere while it is away, and back when it returns.
async fn readyz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(state.config.db_timeout, state.db.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
        Err(_) => {
            tracing::warn!("readiness check: the database did not answer in time");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

async fn jwks(State(state): State<AppState>) -> Response {
    match &state.issuer {
        Some(issuer) => (
            [(header::CACHE_CONTROL, "public, max-age=300")],
            Json(issuer.jwks()),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Prometheus text format: counters the load test and operators read.
async fn metrics(State(state): State<AppState>) -> Response {
    let auth0_calls = state
        .services
        .profiles
        .auth0()
        .map_or(0, |mirror| mirror.client().calls());
    let body = format!(
        "# HELP gateway_sql_statements_total SQL statements sent to the database.\n\
         # TYPE gateway_sql_statements_total counter\n\
         gateway_sql_statements_total {}\n\
         # HELP gateway_auth0_management_calls_total Requests sent to Auth0's Management API.\n\
         # TYPE gateway_auth0_management_calls_total counter\n\
         gateway_auth0_management_calls_total {auth0_calls}\n",
        state.statements.get()
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The scope a machine token needs for the plays endpoint.
pub const READ_PLAYS: &str = "read:plays";

#[derive(serde::Deserialize)]
struct PlaysQuery {
    user_id: Option<String>,
}

/// The seed's `GET /playlists/getPlays?user_id=…`, kept for post-login
/// Actions: a user's total plays as a plain number, for a machine token with
/// `read:plays`.
async fn get_plays(
    State(state): State<AppState>,
    MaybePrincipal(principal): MaybePrincipal,
    Query(query): Query<PlaysQuery>,
) -> Response {
    let Some(principal) = principal else {
        return plain_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "this needs a bearer token with read:plays",
        );
    };
    if !principal.grants(READ_PLAYS) {
        return plain_error(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "this needs the read:plays permission",
        );
    }
    let Some(user_id) = query.user_id.filter(|u| !u.trim().is_empty()) else {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "user_id is required",
        );
    };
    match state.services.music.total_plays(&user_id).await {
        Ok(total) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            total.to_string(),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = ?e, "getPlays failed");
            plain_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                "internal server error",
            )
        }
    }
}

fn plain_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut response = (
        status,
        Json(serde_json::json!({"error": code, "message": message})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

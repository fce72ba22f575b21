//! Every route of the gateway, in one place.

use std::time::Duration;

use async_graphql::{ParseRequestError, http::GraphiQLSource};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse, rejection::GraphQLRejection};
use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware,
    response::{Html, IntoResponse, Response},
    routing::get,
};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use super::auth::MaybePrincipal;
use crate::{
    AppState,
    config::CorsOrigins,
    graphql::RequestContext,
    telemetry::{self, GraphqlOperation},
};

/// Builds the router over `state`.
pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.config.cors);
    let body_limit = state.config.max_body_bytes;
    let mut router = Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/playlists/getPlays", get(get_plays));
    if state.issuer.is_some() {
        router = router.route("/.well-known/jwks.json", get(jwks));
    }
    let request_id = HeaderName::from_static(telemetry::REQUEST_ID);
    router
        // After routing, so the route template is known; unmatched paths
        // are not recorded, since a client could invent any number of them.
        .route_layer(middleware::from_fn(telemetry::track_request))
        // The GraphQL extractor streams the body itself, so axum's DefaultBodyLimit
        // would not apply: limit the body at the HTTP layer.
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(cors)
        .layer(TraceLayer::new_for_http().make_span_with(telemetry::request_span))
        // Outermost: the id is there for the span, and echoed on every answer.
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(middleware::from_fn(telemetry::drop_unusable_request_id))
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

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .title("music-gateway")
            .finish(),
    )
}

#[tracing::instrument(skip_all, fields(user_id))]
async fn graphql(
    State(state): State<AppState>,
    MaybePrincipal(principal): MaybePrincipal,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    let mut request = match request {
        Ok(request) => request.into_inner(),
        Err(rejection) => {
            telemetry::record_graphql_error("BAD_USER_INPUT");
            return bad_request(rejection.0);
        }
    };
    state.documents.prepare(&mut request);
    let operation = GraphqlOperation::of(&mut request);
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
        if let Some(async_graphql::Value::String(code)) = extensions.get("code") {
            telemetry::record_graphql_error(code);
        }
    }
    let mut response = GraphQLResponse::from(response).into_response();
    response.extensions_mut().insert(operation);
    response
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

async fn readyz(State(state): State<AppState>) -> Response {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
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

/// Prometheus text format: the process-wide metrics (see
/// [`telemetry`]) and this app's counters and gauges, read now.
async fn metrics(State(state): State<AppState>) -> Response {
    let mirror = state.services.profiles.auth0();
    // The outbox is written in the auth0 mode only.
    let outbox = match mirror {
        Some(_) => match telemetry::outbox_stats(&state.db).await {
            Ok(stats) => Some(stats),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox for /metrics");
                None
            }
        },
        None => None,
    };
    let snapshot = telemetry::Snapshot {
        sql_statements: state.statements.get(),
        auth0_calls: mirror.map_or(0, |mirror| mirror.client().calls()),
        outbox,
        pool: telemetry::pool_stats(&state.db),
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::render(&snapshot),
    )
        .into_response()
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

//! Every route of the gateway, in one place.

use std::time::Duration;

use axum::{
    Json, Router,
    extract::{FromRef, Query, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header},
    middleware,
    response::{IntoResponse, Response},
    routing::get,
};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use super::{
    ExecuteState,
    auth::{InvalidToken, MaybePrincipal},
    auth0_hooks, body_limit, deadline, graphiql, graphql,
};
use crate::error::ErrorCode;
use crate::{AppState, config::CorsOrigins, error::AppError, profile::UserRecord, telemetry};

/// Builds the router over `state`.
pub fn router(state: AppState) -> Router {
    let csrf_headers = state
        .config
        .csrf
        .as_ref()
        .map(|c| c.required_headers().to_vec())
        .unwrap_or_default();
    let cors = cors_layer(&state.config.cors, &csrf_headers);
    let max_body = state.config.max_body_bytes;
    // The deadline inside the body limit: it reads the body before the
    // work starts, and must read it only as far as the limit lets it.
    // Inside the metrics too, so a request stopped by its deadline counts
    // with its 504; unmatched paths answer at once and need none.
    let deadline = |router: Router<AppState>| {
        router.route_layer(middleware::from_fn_with_state(
            state.deadline.clone(),
            deadline::enforce,
        ))
    };
    let graphql_routes = body_limit::limit(
        deadline(Router::new().route("/graphql", get(graphql_get).post(graphql::post))),
        max_body,
        graphql::too_large,
    );
    let mut router = Router::new()
        .merge(graphiql::routes())
        .merge(auth0_hooks::routes(&state))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/playlists/getPlays", get(get_plays))
        .route("/genres/getFav", get(get_fav_genre))
        .route("/secured/getFavGenre", get(get_fav_genre));
    if state.issuer.is_some() {
        router = router.route("/.well-known/jwks.json", get(jwks));
    }
    let request_id = HeaderName::from_static(telemetry::REQUEST_ID);
    body_limit::limit(deadline(router), max_body, body_limit::plain)
        .merge(graphql_routes)
        // After routing, so the route template is known; unmatched paths
        // are not recorded, since a client could invent any number of them.
        .route_layer(middleware::from_fn(telemetry::track_request))
        .layer(cors)
        .layer(TraceLayer::new_for_http().make_span_with(telemetry::request_span))
        // Outermost: the id is there for the span, and echoed on every answer.
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(middleware::from_fn(telemetry::drop_unusable_request_id))
        .with_state(state)
}

fn cors_layer(origins: &CorsOrigins, csrf_headers: &[header::HeaderName]) -> CorsLayer {
    // A page that must send a CSRF prevention header may do so cross-origin.
    let mut allowed = vec![
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::IF_NONE_MATCH,
    ];
    allowed.extend(csrf_headers.iter().cloned());
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(allowed)
        // A web app on another origin revalidates with the tag it read.
        .expose_headers([header::ETAG])
        .max_age(Duration::from_secs(3600));
    match origins {
        CorsOrigins::None => base.allow_origin(AllowOrigin::list(Vec::<HeaderValue>::new())),
        CorsOrigins::Any => base.allow_origin(AllowOrigin::any()),
        CorsOrigins::List(list) => base.allow_origin(AllowOrigin::list(
            list.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
        )),
    }
}

/// A browser opening `/graphql` gets GraphiQL; anything else is a query.
async fn graphql_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    principal: Result<MaybePrincipal, InvalidToken>,
) -> Response {
    if graphql::is_navigation(&headers, &uri) {
        return graphiql::page(State(state)).await;
    }
    let execution = ExecuteState::from_ref(&state);
    graphql::get(&state.pipeline, &execution, headers, uri, principal).await
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
        compiled_answers: state.compiled.as_ref().map_or(0, |c| c.answered()),
        requests_timed_out: state.deadline.timed_out(),
        requests_cancelled: state.deadline.cancelled(),
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
            ErrorCode::Unauthenticated,
            "this needs a bearer token with read:plays",
        );
    };
    if !principal.grants(READ_PLAYS) {
        return plain_error(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "this needs the read:plays permission",
        );
    }
    let Some(user_id) = query.user_id.filter(|u| !u.trim().is_empty()) else {
        return plain_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadUserInput,
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
                ErrorCode::InternalServerError,
                "internal server error",
            )
        }
    }
}

/// The seed's `GET /genres/getFav` (and `/secured/getFavGenre`), kept for
/// the mobile app: the bearer token's user's favourite genre as plain text,
/// empty when none is set.
async fn get_fav_genre(
    State(state): State<AppState>,
    MaybePrincipal(principal): MaybePrincipal,
) -> Response {
    let Some(principal) = principal else {
        return plain_error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "this needs a user's bearer token",
        );
    };
    if principal.is_machine() {
        return plain_error(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "a machine (client-credentials) token has no user profile",
        );
    }
    match state.services.profiles.get_or_create(&principal).await {
        Ok(UserRecord { fav_genre, .. }) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            fav_genre.unwrap_or_default(),
        )
            .into_response(),
        Err(e) => {
            let status = match &e {
                AppError::Unauthenticated | AppError::AccountDeleted => StatusCode::UNAUTHORIZED,
                AppError::Forbidden(_) => StatusCode::FORBIDDEN,
                AppError::NotFound(_) => StatusCode::NOT_FOUND,
                AppError::BadInput(_) => StatusCode::BAD_REQUEST,
                AppError::Upstream(_) => StatusCode::SERVICE_UNAVAILABLE,
                AppError::Conflict { .. } => StatusCode::CONFLICT,
                AppError::Internal(cause) => {
                    tracing::error!(error = format!("{cause:#}"), "getFav failed");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            plain_error(status, e.code(), &e.client_message())
        }
    }
}

pub(super) fn plain_error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
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

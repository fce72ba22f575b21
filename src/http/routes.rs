//! Every route of the gateway, in one place.

use std::time::Duration;

use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::{
    Json, Router,
    extract::State,
    http::{HeaderValue, Method, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    trace::TraceLayer,
};

use super::auth::MaybePrincipal;
use crate::{AppState, config::CorsOrigins, graphql::RequestContext};

/// Builds the router over `state`.
pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.config.cors);
    let body_limit = state.config.max_body_bytes;
    let mut router = Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
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
    request: GraphQLRequest,
) -> GraphQLResponse {
    if let Some(p) = &principal {
        tracing::Span::current().record("user_id", p.user_id.as_str());
    }
    let context = RequestContext::new(principal);
    state
        .schema
        .execute(request.into_inner().data(context))
        .await
        .into()
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

/// Prometheus text format: counters the load test and operators read.
async fn metrics(State(state): State<AppState>) -> Response {
    let body = format!(
        "# HELP gateway_sql_statements_total SQL statements sent to the database.\n\
         # TYPE gateway_sql_statements_total counter\n\
         gateway_sql_statements_total {}\n",
        state.statements.get()
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

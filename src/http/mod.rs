//! The HTTP surface: one router, the bearer-token extractor, health checks,
//! GraphiQL,
//! and GraphQL's protocol around execution (APQ, CSRF prevention, GET).

mod apq;
mod auth;
mod auth0_hooks;
mod body_limit;
mod csrf;
mod deadline;
mod graphiql;
mod graphql;
mod media;
mod refusal;
pub mod response_cache;
mod routes;
mod streaming;
mod ws;

pub use apq::ApqStore;
pub use auth::{InvalidToken, MaybePrincipal};
pub use csrf::{CsrfPrevention, DEFAULT_REQUIRED_HEADERS};
pub use deadline::RequestDeadline;
pub(crate) use refusal::set_default_code;
pub use routes::router;

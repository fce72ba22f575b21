//! The HTTP surface: one router, the bearer-token extractor, health checks,
//! GraphiQL.

mod auth;
mod graphiql;
pub mod response_cache;
mod routes;

pub use auth::{InvalidToken, MaybePrincipal};
pub use routes::router;

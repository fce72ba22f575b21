//! The HTTP surface: one router, the bearer-token extractor, health checks.

mod auth;
mod routes;

pub use auth::{InvalidToken, MaybePrincipal};
pub use routes::router;

//! The HTTP surface: one router, the bearer-token extractor, health checks,
//! GraphiQL.

mod auth;
mod auth0_hooks;
mod graphiql;
mod routes;

pub use auth::{InvalidToken, MaybePrincipal};
pub use routes::router;

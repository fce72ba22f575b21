//! The HTTP surface: one router, the bearer-token extractor, health checks,
//! GraphiQL, and the GraphQL request pipeline (see [`pipeline`]).

mod auth;
mod auth0_hooks;
mod body_limit;
mod deadline;
mod graphiql;
mod graphql;
mod media;
mod pipeline;
mod refusal;
pub mod response_cache;
mod routes;

pub use auth::{InvalidToken, MaybePrincipal};
pub use deadline::RequestDeadline;
pub use pipeline::apq::ApqStore;
pub use pipeline::csrf::CsrfPrevention;
pub use pipeline::{ExecuteState, PipelineState};
pub use routes::router;

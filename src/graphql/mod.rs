//! The GraphQL schema: roots, object types, per-request loaders, and the glue
//! from a request's principal to the services.
//!
//! Resolvers stay thin: they parse arguments, take the services from the
//! context, and wrap what comes back in an object type.

mod context;
mod documents;
mod loaders;
mod mutation;
mod query;
mod scalars;
mod types;

use async_graphql::{EmptySubscription, Schema, SchemaBuilder};

pub use context::{Limits, RequestContext, Services};
pub use documents::DocumentCache;
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use scalars::Timestamp;

/// The gateway's schema type.
pub type AppSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Deepest query accepted. GraphiQL's introspection query is 13 levels deep.
pub const MAX_DEPTH: usize = 16;

/// Largest static complexity accepted (each field counts 1, lists count their
/// page size times their children).
pub const MAX_COMPLEXITY: usize = 5_000;

/// The schema with its limits and no data; `build` adds the services.
pub fn schema_builder() -> SchemaBuilder<QueryRoot, MutationRoot, EmptySubscription> {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_directives(10)
}

/// The schema ready to execute requests.
pub fn build(services: Services) -> AppSchema {
    schema_builder().data(services).finish()
}

/// The SDL, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}

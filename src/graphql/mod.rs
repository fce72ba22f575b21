//! The GraphQL schema: roots, object types, per-request loaders, and the glue
//! from a request's principal to the services.
//!
//! Resolvers stay thin: they parse arguments, take the services from the
//! context, and wrap what comes back in an object type.

mod compiled;
mod context;
mod documents;
pub mod guard;
mod limits;
mod loaders;
mod mutation;
mod operation;
mod order;
mod plan;
mod query;
mod scalars;
mod subscription;
mod trusted;
mod types;

use async_graphql::{Schema, SchemaBuilder};

pub use compiled::{Answer, CompiledQueries};
pub use context::{Limits, RequestContext, Services};
pub use documents::{DocumentCache, fill_variable_defaults};
pub use guard::{GuardLimits, Refused, Syntax};
pub use limits::{
    LimitExceeded, QueryCost, QueryLimiter, QueryLimits, is_introspection_only, select_operation,
    selects_introspection,
};
pub use mutation::MutationRoot;
pub use operation::{check_required_variables, choose_operation};
pub use order::{Shape, for_executor, ready_for_executor, sort_errors};
pub use query::QueryRoot;
pub use scalars::Timestamp;
pub use subscription::SubscriptionRoot;
pub use trusted::{TrustedDocuments, is_sha256_hex, sha256_hex};

/// The gateway's schema type.
pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Deepest query accepted. GraphiQL's introspection query is 13 levels deep.
pub const MAX_DEPTH: usize = 16;

/// Largest complexity async-graphql accepts. No field declares a complexity
/// of its own, so async-graphql counts each field of the document once,
/// fragments where they are spread, whatever the page sizes. The cost that
/// counts each field once per item of the pages above it is the gateway's
/// own (`limits`, `MAX_QUERY_COST`), checked first; this only backs it up.
pub const MAX_COMPLEXITY: usize = 5_000;

/// The schema with its limits and no data; `build` adds the services.
pub fn schema_builder() -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_directives(10)
}

/// The schema ready to execute requests; without `introspection`, queries
/// of `__schema` and `__type` are refused.
pub fn build(services: Services, introspection: bool) -> AppSchema {
    let builder = schema_builder().data(services);
    if introspection {
        builder.finish()
    } else {
        builder.disable_introspection().finish()
    }
}

/// The SDL, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}

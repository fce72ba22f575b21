//! The cost limits stage: aliases, root fields and the estimated cost of
//! the operation that runs (the model is `graphql::limits`'s).

use async_graphql::{Variables, parser::types::ExecutableDocument};

use crate::{
    graphql::{LimitExceeded, QueryLimiter},
    http::refusal::Refusal,
};

impl Refusal {
    /// A request error with the figures a client needs to fix it.
    pub(in crate::http) fn limit(exceeded: LimitExceeded) -> Self {
        let (value, limit) = exceeded.figures();
        let mut refusal = Self::request_error(exceeded.code(), exceeded.message());
        refusal.extensions.insert("limit".into(), limit.into());
        refusal.extensions.insert("value".into(), value.into());
        refusal
    }
}

/// The stage.
pub fn check(
    limiter: &QueryLimiter,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
) -> Result<(), Refusal> {
    limiter
        .check(document, operation_name, variables)
        .map(|_cost| ())
        .map_err(Refusal::limit)
}

//! The guard stage: hostile documents (brackets nested deep enough to
//! overflow a parser's stack, fragment bombs) refused before anything walks
//! them. The measuring is `graphql::guard`'s; this stage applies it at the
//! three points of the pipeline where text or a document first appears.

use async_graphql::parser::types::ExecutableDocument;

use crate::{
    graphql::{self as gql, GuardLimits, Syntax},
    http::refusal::Refusal,
};

impl Refusal {
    /// A document whose shape is refused before anything walks it: a
    /// request error, as the cost limits' and validation's are.
    pub(in crate::http) fn guard(refused: gql::Refused) -> Self {
        let mut refusal = Self::request_error(refused.code(), refused.message());
        if let Some((value, limit)) = refused.figures() {
            refusal.extensions.insert("limit".into(), limit.into());
            refusal.extensions.insert("value".into(), value.into());
        }
        refusal
    }
}

/// JSON text (a body, GET's `variables` or `extensions`), before serde
/// reads it.
pub fn check_json(text: &[u8], limits: &GuardLimits) -> Result<(), Refusal> {
    gql::guard::check_nesting(text, Syntax::Json, limits).map_err(Refusal::guard)
}

/// A document's text, before any parser: a deep enough nest would overflow
/// its stack.
pub fn check_text(text: &str, limits: &GuardLimits) -> Result<(), Refusal> {
    gql::guard::check_nesting(text.as_bytes(), Syntax::Graphql, limits).map_err(Refusal::guard)
}

/// A count of selections over the limit, held back until the cost limits
/// have spoken: theirs are the codes that say more (each fragment is
/// measured once there too).
#[must_use = "the held-back refusal must be answered after the cost limits"]
pub struct Deferred(Result<(), gql::Refused>);

impl Deferred {
    /// The refusal held back, if there is one.
    pub fn check(self) -> Result<(), Refusal> {
        self.0.map_err(Refusal::guard)
    }
}

/// The parsed document's shape, first of the checks that walk it through
/// its fragments; only too many selections waits (see [`Deferred`]).
pub fn check_document(
    document: &ExecutableDocument,
    limits: &GuardLimits,
) -> Result<Deferred, Refusal> {
    match gql::guard::check_document(document, limits) {
        Err(refused) if !matches!(refused, gql::Refused::Selections { .. }) => {
            Err(Refusal::guard(refused))
        }
        shape => Ok(Deferred(shape)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn too_many_selections_waits_for_the_cost_limits() {
        let limits = GuardLimits {
            max_selections: 3,
            ..GuardLimits::default()
        };
        let wide = async_graphql::parser::parse_query("{ me { id name email picture } }").unwrap();
        let deferred = check_document(&wide, &limits).expect("held back, not refused");
        assert_eq!(
            deferred.check().unwrap_err().code(),
            ErrorCode::QueryTooManySelections
        );
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        assert_eq!(
            check_json(deep.as_bytes(), &GuardLimits::default())
                .unwrap_err()
                .code(),
            ErrorCode::QueryNestedTooDeeply
        );
    }
}

//! The operation stage: the checks that need the parsed document and the
//! choice of its operation: trusted documents' introspection exception,
//! which operation runs, introspection when it is off, what the transport
//! allows, and the variables an operation cannot run without.

use async_graphql::{
    Variables,
    parser::types::{ExecutableDocument, OperationType},
};
use axum::http::StatusCode;

use super::{Transport, document::Resolved};
use crate::{
    error::ErrorCode,
    graphql::{
        check_required_variables, choose_operation, is_introspection_only, selects_introspection,
    },
    http::refusal::Refusal,
};

/// The stage: the kind of the operation that runs, or why none can.
pub fn check(
    introspection: bool,
    resolved: &Resolved,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
    transport: Transport,
) -> Result<OperationType, Refusal> {
    if resolved.unlisted && !(introspection && is_introspection_only(document)) {
        return Err(Refusal::not_in_safelist());
    }
    let operation = choose_operation(document, operation_name)
        .map_err(|why| Refusal::request_error(ErrorCode::OperationResolutionFailure, why))?;
    // async-graphql would answer `__schema: null` without a word.
    if !introspection && selects_introspection(document) {
        return Err(Refusal::request_error(
            ErrorCode::IntrospectionDisabled,
            "introspection is turned off on this gateway (INTROSPECTION=false): \
             take the schema from its schema.graphql",
        ));
    }
    transport_allows(transport, operation.ty)?;
    check_required_variables(operation, variables)
        .map_err(|why| Refusal::request_error(ErrorCode::BadUserInput, why))?;
    Ok(operation.ty)
}

/// What each transport may run: GET, only queries (a GET must be safe).
fn transport_allows(transport: Transport, kind: OperationType) -> Result<(), Refusal> {
    match transport {
        Transport::Get if kind != OperationType::Query => {
            let mut refusal = Refusal::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::BadRequest,
                format!(
                    "GET requests only support query operations, not {kind} operations: \
                     send it with POST"
                ),
            );
            refusal.allow_post = true;
            Err(refusal)
        }
        Transport::Get | Transport::Post => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_runs_only_queries() {
        assert!(transport_allows(Transport::Get, OperationType::Query).is_ok());
        assert!(transport_allows(Transport::Post, OperationType::Mutation).is_ok());
        let refused = transport_allows(Transport::Get, OperationType::Mutation).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::BadRequest);
        assert!(refused.allow_post);
    }
}

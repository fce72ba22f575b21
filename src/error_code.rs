//! The stable codes of `extensions.code`: the one list of what the gateway
//! answers with, whatever refuses or fails (a resolver's [`AppError`], a
//! stage of the pipeline, the deadline, the HTTP surface) and whatever
//! counts it (`telemetry::record_graphql_error`).
//!
//! Clients match on the wire strings, so they never change; a new code is a
//! new variant, listed in [`ErrorCode::ALL`] and in the README.
//!
//! [`AppError`]: crate::error::AppError

use std::fmt;

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)*) => {
        /// One of the gateway's stable error codes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order the README lists them.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as clients see it in `extensions.code`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)*
                }
            }

            /// The code whose wire string is `wire`, if it is one of ours
            /// (an error from async-graphql may carry any string).
            pub fn from_wire(wire: &str) -> Option<Self> {
                match wire {
                    $($wire => Some(ErrorCode::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    // A resolver's errors (`AppError`).
    /// No valid access token came with a request that needs one.
    Unauthenticated = "UNAUTHENTICATED",
    /// The caller is known but may not do this.
    Forbidden = "FORBIDDEN",
    /// The thing does not exist, or is another user's.
    NotFound = "NOT_FOUND",
    /// The input is invalid; the message says how.
    BadUserInput = "BAD_USER_INPUT",
    /// The database or the identity provider could not answer.
    UpstreamUnavailable = "UPSTREAM_UNAVAILABLE",
    /// A concurrent write got in the way; nothing was changed.
    Conflict = "CONFLICT",
    /// Anything else: the details are in the log only.
    InternalServerError = "INTERNAL_SERVER_ERROR",
    // Refusals before execution: the protocol's, then Apollo Router's.
    /// The HTTP request is not one the protocol allows (CSRF, method,
    /// media type, size, batching).
    BadRequest = "BAD_REQUEST",
    /// The document does not parse.
    GraphqlParseFailed = "GRAPHQL_PARSE_FAILED",
    /// The document does not validate against the schema.
    GraphqlValidationFailed = "GRAPHQL_VALIDATION_FAILED",
    /// No operation, or not the one named, can be chosen.
    OperationResolutionFailure = "OPERATION_RESOLUTION_FAILURE",
    /// The document selects `__schema` or `__type` with introspection off.
    IntrospectionDisabled = "INTROSPECTION_DISABLED",
    /// Trusted documents that must be sent by id got text.
    PersistedQueryIdRequired = "PERSISTED_QUERY_ID_REQUIRED",
    /// An APQ hash this process does not know: send the text with it.
    PersistedQueryNotFound = "PERSISTED_QUERY_NOT_FOUND",
    /// An id the trusted documents do not list.
    PersistedQueryNotInList = "PERSISTED_QUERY_NOT_IN_LIST",
    /// APQ is turned off.
    PersistedQueryNotSupported = "PERSISTED_QUERY_NOT_SUPPORTED",
    /// Text that is not one of the trusted documents.
    QueryNotInSafelist = "QUERY_NOT_IN_SAFELIST",
    /// Over `MAX_QUERY_COST`.
    QueryTooCostly = "QUERY_TOO_COSTLY",
    /// Over `MAX_ALIASES`.
    QueryTooManyAliases = "QUERY_TOO_MANY_ALIASES",
    /// Over `MAX_ROOT_FIELDS`.
    QueryTooManyRootFields = "QUERY_TOO_MANY_ROOT_FIELDS",
    /// Over `MAX_NESTING`.
    QueryNestedTooDeeply = "QUERY_NESTED_TOO_DEEPLY",
    /// Over `MAX_FRAGMENT_DEPTH`.
    QueryFragmentsTooDeep = "QUERY_FRAGMENTS_TOO_DEEP",
    /// Over `MAX_SELECTIONS`.
    QueryTooManySelections = "QUERY_TOO_MANY_SELECTIONS",
    // The deadline.
    /// Stopped at `REQUEST_TIMEOUT_SECONDS`.
    RequestTimeout = "REQUEST_TIMEOUT",
    // Live updates.
    /// Over `LIVE_MAX_CONNECTIONS`.
    TooManyConnections = "TOO_MANY_CONNECTIONS",
    /// Over `LIVE_MAX_SUBSCRIPTIONS_PER_CONNECTION` or `_PER_USER`.
    TooManySubscriptions = "TOO_MANY_SUBSCRIPTIONS",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Tests and transports compare a code with the string a client would read.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl From<ErrorCode> for async_graphql::Value {
    fn from(code: ErrorCode) -> Self {
        async_graphql::Value::String(code.as_str().to_owned())
    }
}

impl From<ErrorCode> for serde_json::Value {
    fn from(code: ErrorCode) -> Self {
        serde_json::Value::String(code.as_str().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_from_its_wire_string() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_wire(code.as_str()), Some(*code));
        }
        assert_eq!(ErrorCode::from_wire("SOMETHING_ELSE"), None);
    }

    /// The README lists every code a client may meet; one it leaves out is
    /// one a client author cannot know about.
    #[test]
    fn the_readme_names_every_code() {
        let readme = include_str!("../README.md");
        let missing: Vec<_> = ErrorCode::ALL
            .iter()
            .filter(|code| !readme.contains(&format!("`{code}`")))
            .collect();
        assert!(missing.is_empty(), "README.md does not name {missing:?}");
    }
}

//! The wire request stage: a GraphQL request read from GET's query string
//! or POST's JSON body, with the GraphQL-over-HTTP names (`operationName`,
//! `documentId`), before its document is known. JSON is measured by the
//! guard before it is parsed (see [`super::guard`]).

use async_graphql::Variables;
use axum::{
    body::Body,
    extract::Query,
    http::{HeaderMap, StatusCode, Uri, header},
};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::guard;
use crate::{error::ErrorCode, graphql::GuardLimits, http::refusal::Refusal};

/// A GraphQL request as it comes over the wire, before its document is known.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireRequest {
    pub query: Option<String>,
    pub operation_name: Option<String>,
    pub variables: Option<Value>,
    pub extensions: Option<Value>,
    /// The GraphQL-over-HTTP persisted documents draft's id.
    pub document_id: Option<String>,
}

/// GET's parameters: the same fields, `variables` and `extensions` as JSON.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
    document_id: Option<String>,
}

/// Where a request's fields are read from.
pub enum Source<'a> {
    /// `GET /graphql?query=…&variables=…&operationName=…&extensions=…`.
    Get(&'a Uri),
    /// `POST /graphql` with a JSON body of at most `max_bytes`.
    Post { body: Body, max_bytes: usize },
}

/// A request's `variables` and `extensions`, checked to be objects.
pub struct Fields {
    pub variables: Variables,
    pub extensions: Option<Map<String, Value>>,
}

/// The stage: the request as sent, or the reason it is not one.
pub async fn read(source: Source<'_>, guard_limits: &GuardLimits) -> Result<WireRequest, Refusal> {
    match source {
        Source::Get(uri) => from_query(uri, guard_limits),
        Source::Post { body, max_bytes } => {
            // A declared length over the limit was refused before this (see
            // `super::super::graphql::too_large`); a body without one is cut
            // off at the limit as it streams. Any error here is that, or a
            // client gone, which reads no answer.
            let Ok(bytes) = axum::body::to_bytes(body, max_bytes).await else {
                return Err(Refusal::too_large(max_bytes));
            };
            guard::check_json(&bytes, guard_limits)?;
            from_body(&bytes)
        }
    }
}

/// Whether a GET to `/graphql` is a browser opening the page (no operation
/// in the query string, HTML accepted) rather than a client's query.
pub fn is_navigation(headers: &HeaderMap, uri: &Uri) -> bool {
    let accepts_html = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"));
    let params = Query::<GetParams>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default();
    accepts_html
        && params.query.is_none()
        && params.document_id.is_none()
        && params.extensions.is_none()
}

/// `variables` and `extensions` as objects, whatever the transport sent.
pub fn fields(variables: Option<Value>, extensions: Option<Value>) -> Result<Fields, Refusal> {
    let variables = match variables {
        None | Some(Value::Null) => Variables::default(),
        Some(value @ Value::Object(_)) => Variables::from_json(value),
        Some(_) => return Err(Refusal::bad_input("`variables` must be an object")),
    };
    let extensions = match extensions {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map),
        Some(_) => return Err(Refusal::bad_input("`extensions` must be an object")),
    };
    Ok(Fields {
        variables,
        extensions,
    })
}

fn from_query(uri: &Uri, guard_limits: &GuardLimits) -> Result<WireRequest, Refusal> {
    let Ok(Query(params)) = Query::<GetParams>::try_from_uri(uri) else {
        return Err(Refusal::bad_input(
            "the query string is not a GraphQL request: `query`, `operationName`, \
             `variables`, `extensions` and `documentId` may each appear once",
        ));
    };
    if params.query.is_none() && params.document_id.is_none() && params.extensions.is_none() {
        return Err(Refusal::bad_input(
            "a GET request needs a `query` parameter (or a persisted query's id); \
             open /graphql in a browser for GraphiQL",
        ));
    }
    let json_param = |name: &str, value: Option<String>| -> Result<Option<Value>, Refusal> {
        match value.filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(text) => {
                guard::check_json(text.as_bytes(), guard_limits)?;
                serde_json::from_str(&text).map(Some).map_err(|e| {
                    Refusal::bad_input(format!("`{name}` is not JSON ({})", json_position(&e)))
                })
            }
        }
    };
    match (
        json_param("variables", params.variables),
        json_param("extensions", params.extensions),
    ) {
        (Ok(variables), Ok(extensions)) => Ok(WireRequest {
            query: params.query,
            operation_name: params.operation_name,
            variables,
            extensions,
            document_id: params.document_id,
        }),
        (Err(refusal), _) | (_, Err(refusal)) => Err(refusal),
    }
}

/// A POST body as a GraphQL request; a body that is not one is refused in
/// the gateway's words, not the JSON parser's.
fn from_body(bytes: &[u8]) -> Result<WireRequest, Refusal> {
    let error = match serde_json::from_slice::<WireRequest>(bytes) {
        Ok(wire) => return Ok(wire),
        Err(error) => error,
    };
    let not_a_request =
        |why: String| Refusal::bad_input(format!("the body is not a GraphQL request: {why}"));
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(not_a_request(
            "it is empty; send a JSON object such as {\"query\": \"{ me { id } }\"}".into(),
        ));
    }
    Err(match serde_json::from_slice::<Value>(bytes) {
        Err(e) => not_a_request(format!("it is not JSON ({})", json_position(&e))),
        Ok(Value::Array(_)) => Refusal::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "batched requests (a JSON array of operations) are not supported: \
             send each operation in a request of its own",
        ),
        Ok(Value::Object(map)) => {
            let wrong = ["query", "operationName", "documentId"]
                .into_iter()
                .find(|name| {
                    map.get(*name)
                        .is_some_and(|v| !v.is_string() && !v.is_null())
                });
            match wrong {
                Some(name) => not_a_request(format!("`{name}` must be a string")),
                // A field twice, say: serde refuses it, the map keeps one.
                None => {
                    tracing::debug!(error = %error, "a POST body was refused");
                    not_a_request(
                        "each of `query`, `operationName`, `variables`, `extensions` and \
                         `documentId` may appear once"
                            .into(),
                    )
                }
            }
        }
        Ok(_) => {
            not_a_request("it must be a JSON object such as {\"query\": \"{ me { id } }\"}".into())
        }
    })
}

/// Where JSON text stopped making sense, for a message.
fn json_position(error: &serde_json::Error) -> String {
    format!("line {}, column {}", error.line(), error.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_a_request_is_refused_in_the_gateways_words() {
        let refused = |body: &str| from_body(body.as_bytes()).err().map(|r| r.code());
        assert_eq!(refused("  "), Some(ErrorCode::BadUserInput));
        assert_eq!(refused("[{}]"), Some(ErrorCode::BadRequest));
        assert_eq!(refused(r#"{"query": 1}"#), Some(ErrorCode::BadUserInput));
        assert_eq!(refused(r#"{"query": "{ me { id } }"}"#), None);
    }

    #[test]
    fn variables_and_extensions_must_be_objects() {
        assert!(fields(Some(Value::from(1)), None).is_err());
        assert!(fields(None, Some(Value::from("x"))).is_err());
        let ok = fields(Some(serde_json::json!({"a": 1})), Some(Value::Null)).unwrap();
        assert!(ok.extensions.is_none());
        assert_eq!(ok.variables.len(), 1);
    }
}

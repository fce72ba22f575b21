//! CSRF prevention, as Apollo defines it.
//!
//! A browser sends a "simple" request cross-site without asking the server
//! first (no CORS preflight): a GET, or a POST whose `Content-Type` is
//! missing, `text/plain`, `application/x-www-form-urlencoded` or
//! `multipart/form-data`. CORS then only hides the answer from the page; the
//! operation has run all the same. So such a request runs only if it carries
//! a header that a page can only set from script, which forces a preflight:
//! by default `x-apollo-operation-name` (Apollo iOS and Kotlin send it) or
//! `apollo-require-preflight`. A JSON POST, which every GraphQL client
//! sends, is never affected, nor is a GET that declares a JSON
//! `Content-Type` (Apollo Client on the web does).

use axum::http::{HeaderMap, HeaderName, StatusCode, header};

pub use crate::config::CsrfPrevention;

use crate::{error::ErrorCode, http::refusal::Refusal};

/// Content types a page may send without a preflight (the Fetch standard's
/// CORS-safelisted ones).
const SIMPLE_CONTENT_TYPES: [&str; 3] = [
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "text/plain",
];

impl CsrfPrevention {
    /// Whether a browser would have preflighted a request with `headers`,
    /// or the request carries one of the required headers.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        preflighted_content_type(headers)
            || self
                .required_headers()
                .iter()
                .any(|name| headers.get(name).is_some_and(|v| !v.as_bytes().is_empty()))
    }

    /// The message a refused client sees.
    pub fn message(&self) -> String {
        let names: Vec<&str> = self
            .required_headers()
            .iter()
            .map(HeaderName::as_str)
            .collect();
        format!(
            "This operation has been blocked as a potential Cross-Site Request Forgery (CSRF). \
             Please either specify a 'content-type' header (with a type that is not one of {}) \
             or provide a non-empty value for one of the following headers: {}",
            SIMPLE_CONTENT_TYPES.join(", "),
            names.join(", ")
        )
    }
}

/// The stage: refuses, before the body is read, a request a browser may
/// have sent cross-site without a preflight (`None`: CSRF prevention off).
pub fn check(csrf: Option<&CsrfPrevention>, headers: &HeaderMap) -> Result<(), Refusal> {
    match csrf {
        Some(csrf) if !csrf.allows(headers) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            csrf.message(),
        )),
        _ => Ok(()),
    }
}

/// A `Content-Type` that a page cannot send without a preflight. A missing
/// one, or one that does not parse, is treated as simple: a browser's
/// reading of a malformed type may differ from ours.
fn preflighted_content_type(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Some(mime) = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<mime::Mime>().ok())
    else {
        return false;
    };
    let essence = mime.essence_str().to_ascii_lowercase();
    !SIMPLE_CONTENT_TYPES.contains(&essence.as_str())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn check(pairs: &[(&str, &str)]) -> bool {
        let csrf = CsrfPrevention::new(vec![
            HeaderName::from_static("x-apollo-operation-name"),
            HeaderName::from_static("apollo-require-preflight"),
        ]);
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        csrf.allows(&headers)
    }

    #[test]
    fn simple_requests_need_a_required_header() {
        assert!(!check(&[]));
        assert!(!check(&[("content-type", "text/plain")]));
        assert!(!check(&[("content-type", "Text/Plain; charset=utf-8")]));
        assert!(!check(&[(
            "content-type",
            "application/x-www-form-urlencoded"
        )]));
        assert!(!check(&[(
            "content-type",
            "multipart/form-data; boundary=x"
        )]));
        assert!(!check(&[("content-type", "not a type")]));
        assert!(!check(&[("apollo-require-preflight", "")]));
        assert!(check(&[("apollo-require-preflight", "true")]));
        assert!(check(&[
            ("content-type", "text/plain"),
            ("x-apollo-operation-name", "Me")
        ]));
    }

    #[test]
    fn json_requests_pass() {
        assert!(check(&[("content-type", "application/json")]));
        assert!(check(&[(
            "content-type",
            "application/json; charset=utf-8"
        )]));
        assert!(check(&[(
            "content-type",
            "application/graphql-response+json"
        )]));
        // Two Content-Type headers: a browser would combine them; refuse.
        assert!(!check(&[
            ("content-type", "application/json"),
            ("content-type", "text/plain")
        ]));
    }
}

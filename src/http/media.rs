//! The media type of `/graphql`'s answers, negotiated from `Accept`.
//!
//! The GraphQL-over-HTTP spec has two: `application/graphql-response+json`,
//! whose status codes tell a request error (a document that does not parse
//! or validate, variables that do not coerce, no operation to run: HTTP
//! 400, no `data`) from an executed operation (HTTP 200), and
//! `application/json`, for legacy clients, which gets 200 for both, since a
//! 4xx under it may as well come from a proxy as from GraphQL.
//!
//! A request names what it accepts; `*/*`, `application/*`, or no `Accept`
//! at all is a legacy client and gets `application/json`, as the spec and
//! its reference implementation's audit ask. Apollo's clients name
//! `application/graphql-response+json` first (iOS and Kotlin:
//! `multipart/mixed;deferSpec=20220824, application/graphql-response+json,
//! application/json`; Apollo Client: `application/graphql-response+json,
//! application/json;q=0.9`) and get it. An `Accept` that allows neither is
//! answered 406.
//!
//! The handlers write every answer as `application/graphql-response+json`
//! would have it; [`MediaType::finish`] then makes it the negotiated one,
//! so no way through the handlers can forget the negotiation.

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};

/// `application/graphql-response+json`, as the handlers write it.
pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json; charset=utf-8";

/// `application/json`, for legacy clients.
pub const JSON: &str = "application/json; charset=utf-8";

/// The media types `/graphql` answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaType {
    /// `application/graphql-response+json`: request errors are HTTP 400.
    GraphqlResponseJson,
    /// `application/json`: request errors are HTTP 200.
    Json,
}

/// Marks an answer, written with HTTP 400, as a GraphQL request error:
/// under `application/json` it is answered 200.
#[derive(Clone, Copy, Debug)]
pub struct RequestError;

/// The request's `Accept` allows neither media type.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAcceptable;

impl MediaType {
    /// The `Content-Type` of answers in this media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::GraphqlResponseJson => GRAPHQL_RESPONSE_JSON,
            Self::Json => JSON,
        }
    }

    /// A stable byte for hashes (the response cache's `ETag`s): one
    /// answer in two media types is two representations.
    pub fn tag(self) -> u8 {
        match self {
            Self::GraphqlResponseJson => 1,
            Self::Json => 2,
        }
    }

    /// `response`, written for `application/graphql-response+json`, in
    /// this media type: its JSON `Content-Type` replaced, a request error's
    /// 400 turned into 200 under `application/json`, and `Vary: accept`
    /// for caches, since the answer depends on it.
    pub fn finish(self, mut response: Response) -> Response {
        let json_body = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json_type);
        if json_body {
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type()),
            );
        }
        if self == Self::Json
            && response.status() == StatusCode::BAD_REQUEST
            && response.extensions().get::<RequestError>().is_some()
        {
            *response.status_mut() = StatusCode::OK;
        }
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("accept"));
        response
    }
}

/// Whether a `Content-Type` is one of the two JSON types the handlers write.
fn is_json_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case("application/graphql-response+json")
}

/// How well one `Accept` element matched a media type.
#[derive(Clone, Copy)]
struct Match {
    /// 0 for `*/*`, 1 for `application/*`, 2 for the type itself.
    specificity: u8,
    /// The element's weight, in thousandths (`q=0.9` is 900).
    weight: u16,
    /// Where the element is in the header: earlier wins a tie.
    position: usize,
}

/// The media type of the answer to a request with `headers`.
///
/// Each media type takes the weight of the most specific element that
/// matches it (RFC 9110, 12.5.1); the higher weight wins, then the more
/// specific match, then the one listed first, then `application/json`
/// (a bare `*/*` is a legacy client). Elements that do not parse are
/// skipped; an `Accept` with none left, or none at all, is a legacy client.
pub fn negotiate(headers: &HeaderMap) -> Result<MediaType, NotAcceptable> {
    let mut elements = 0;
    let mut graphql: Option<Match> = None;
    let mut json: Option<Match> = None;
    let values = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok());
    for (position, element) in values.flat_map(|v| v.split(',')).enumerate() {
        let Some((range, weight, charset_ok)) = parse_element(element) else {
            continue;
        };
        elements += 1;
        for (subtype, best) in [("graphql-response+json", &mut graphql), ("json", &mut json)] {
            let Some(specificity) = specificity(range, subtype) else {
                continue;
            };
            // Answers are UTF-8 only.
            let weight = if charset_ok { weight } else { 0 };
            if best.is_none_or(|b| specificity > b.specificity) {
                *best = Some(Match {
                    specificity,
                    weight,
                    position,
                });
            }
        }
    }
    if elements == 0 {
        return Ok(MediaType::Json);
    }
    let acceptable = |m: Option<Match>| m.filter(|m| m.weight > 0);
    match (acceptable(graphql), acceptable(json)) {
        (None, None) => Err(NotAcceptable),
        (Some(_), None) => Ok(MediaType::GraphqlResponseJson),
        (None, Some(_)) => Ok(MediaType::Json),
        (Some(g), Some(j)) => {
            let rank = |m: Match| (m.weight, m.specificity, std::cmp::Reverse(m.position));
            if rank(g) > rank(j) {
                Ok(MediaType::GraphqlResponseJson)
            } else {
                Ok(MediaType::Json)
            }
        }
    }
}

/// One `Accept` element: its range, its weight in thousandths, and
/// whether its `charset`, if any, is UTF-8. `None` for an element that
/// does not parse.
fn parse_element(element: &str) -> Option<(&str, u16, bool)> {
    let mut parts = element.split(';');
    let range = parts.next()?.trim();
    let (kind, subtype) = range.split_once('/')?;
    let token = |t: &str| !t.is_empty() && !t.contains(|c: char| c.is_whitespace() || c == '/');
    if !token(kind) || !token(subtype) {
        return None;
    }
    let mut weight = 1000;
    let mut charset_ok = true;
    for parameter in parts {
        let Some((name, value)) = parameter.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        let name = name.trim();
        if name.eq_ignore_ascii_case("q") {
            weight = qvalue(value)?;
        } else if name.eq_ignore_ascii_case("charset") {
            charset_ok = value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8");
        }
    }
    Some((range, weight, charset_ok))
}

/// How specifically `range` names `application/<subtype>`, if it does.
fn specificity(range: &str, subtype: &str) -> Option<u8> {
    let (kind, sub) = range.split_once('/')?;
    let application = kind.eq_ignore_ascii_case("application");
    match (kind, sub) {
        ("*", "*") => Some(0),
        (_, "*") if application => Some(1),
        (_, s) if application && s.eq_ignore_ascii_case(subtype) => Some(2),
        _ => None,
    }
}

/// RFC 9110's `qvalue` ("0", "0.5", "1.000"), in thousandths.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn negotiated(accept: &[&str]) -> Result<MediaType, NotAcceptable> {
        let mut headers = HeaderMap::new();
        for value in accept {
            headers.append(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        }
        negotiate(&headers)
    }

    use MediaType::{GraphqlResponseJson as Gr, Json};

    #[test]
    fn legacy_clients_get_application_json() {
        assert_eq!(negotiated(&[]), Ok(Json));
        assert_eq!(negotiated(&[""]), Ok(Json));
        assert_eq!(negotiated(&["*/*"]), Ok(Json));
        assert_eq!(negotiated(&["application/*"]), Ok(Json));
        assert_eq!(negotiated(&["application/json"]), Ok(Json));
        assert_eq!(negotiated(&["text/html, application/json"]), Ok(Json));
        // A browser following a link with a query in it.
        assert_eq!(
            negotiated(&["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"]),
            Ok(Json)
        );
    }

    #[test]
    fn apollos_clients_get_graphql_response_json() {
        // Apollo iOS (JSONRequest.swift) and Apollo Kotlin (HttpNetworkTransport.kt).
        assert_eq!(
            negotiated(&[
                "multipart/mixed;deferSpec=20220824,application/graphql-response+json,application/json"
            ]),
            Ok(Gr)
        );
        assert_eq!(
            negotiated(&[
                "multipart/mixed;deferSpec=20220824, application/graphql-response+json, application/json"
            ]),
            Ok(Gr)
        );
        // Apollo Client (selectHttpOptionsAndBody.ts), as the spec advises.
        assert_eq!(
            negotiated(&["application/graphql-response+json,application/json;q=0.9"]),
            Ok(Gr)
        );
        assert_eq!(negotiated(&["application/graphql-response+json"]), Ok(Gr));
        assert_eq!(
            negotiated(&["Application/GraphQL-Response+JSON; charset=UTF-8"]),
            Ok(Gr)
        );
    }

    #[test]
    fn weights_then_specificity_then_order_decide() {
        assert_eq!(
            negotiated(&["application/json, application/graphql-response+json"]),
            Ok(Json)
        );
        assert_eq!(
            negotiated(&["application/json;q=0.5, application/graphql-response+json"]),
            Ok(Gr)
        );
        // Named beats a wildcard at the same weight.
        assert_eq!(
            negotiated(&["*/*, application/graphql-response+json"]),
            Ok(Gr)
        );
        // A higher weight beats being named.
        assert_eq!(
            negotiated(&["application/graphql-response+json;q=0.9, */*"]),
            Ok(Json)
        );
        // The most specific element sets the weight, wherever it is.
        assert_eq!(negotiated(&["application/json;q=0, */*"]), Ok(Gr));
        assert_eq!(
            negotiated(&["*/*", "application/graphql-response+json;q=0"]),
            Ok(Json)
        );
        assert_eq!(negotiated(&["*/*;q=0.001"]), Ok(Json));
    }

    #[test]
    fn nothing_acceptable_is_406() {
        assert_eq!(negotiated(&["text/html"]), Err(NotAcceptable));
        assert_eq!(negotiated(&["image/*, text/plain"]), Err(NotAcceptable));
        assert_eq!(negotiated(&["*/*;q=0"]), Err(NotAcceptable));
        assert_eq!(negotiated(&["application/json;q=0"]), Err(NotAcceptable));
        assert_eq!(
            negotiated(&["application/json; charset=latin1"]),
            Err(NotAcceptable)
        );
        assert_eq!(negotiated(&["multipart/mixed"]), Err(NotAcceptable));
    }

    #[test]
    fn elements_that_do_not_parse_are_skipped() {
        assert_eq!(negotiated(&["nonsense"]), Ok(Json));
        assert_eq!(negotiated(&["application/json;q=2"]), Ok(Json));
        assert_eq!(negotiated(&["application/json;q=0.1234"]), Ok(Json));
        assert_eq!(
            negotiated(&["application/graphql-response+json;q=x, application/json"]),
            Ok(Json)
        );
        assert_eq!(negotiated(&["application /json"]), Ok(Json));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_bytes(b"application/graphql-response+json\xff").unwrap(),
        );
        assert_eq!(negotiate(&headers), Ok(Json));
    }

    #[test]
    fn qvalues() {
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("0.9"), Some(900));
        assert_eq!(qvalue("0.05"), Some(50));
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("1.5"), None);
        assert_eq!(qvalue(""), None);
        assert_eq!(qvalue("-0"), None);
        assert_eq!(qvalue("0.+1"), None);
    }

    fn response(status: StatusCode, content_type: Option<&str>, request_error: bool) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = status;
        if let Some(value) = content_type {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        }
        if request_error {
            response.extensions_mut().insert(RequestError);
        }
        response
    }

    #[test]
    fn finishing_sets_the_type_and_a_request_errors_status() {
        let error = || {
            response(
                StatusCode::BAD_REQUEST,
                Some("application/graphql-response+json"),
                true,
            )
        };
        let answer = Gr.finish(error());
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            answer.headers()[header::CONTENT_TYPE],
            GRAPHQL_RESPONSE_JSON
        );
        assert_eq!(answer.headers()[header::VARY], "accept");
        let answer = Json.finish(error());
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()[header::CONTENT_TYPE], JSON);

        // Other refusals keep their status in both.
        let refusal = Json.finish(response(
            StatusCode::BAD_REQUEST,
            Some("application/json"),
            false,
        ));
        assert_eq!(refusal.status(), StatusCode::BAD_REQUEST);
        assert_eq!(refusal.headers()[header::CONTENT_TYPE], JSON);
        let not_found = Json.finish(response(
            StatusCode::NOT_FOUND,
            Some(GRAPHQL_RESPONSE_JSON),
            true,
        ));
        assert_eq!(not_found.status(), StatusCode::NOT_FOUND);

        // A 304 has no body, nor a type to set.
        let not_modified = Gr.finish(response(StatusCode::NOT_MODIFIED, None, false));
        assert!(not_modified.headers().get(header::CONTENT_TYPE).is_none());
        assert_eq!(not_modified.headers()[header::VARY], "accept");
        // Anything but JSON is left alone.
        let page = Json.finish(response(StatusCode::OK, Some("text/html"), false));
        assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html");
    }
}

//! `Authorization: Bearer …` to a [`Principal`].
//!
//! No header means an anonymous request (GraphQL then answers
//! `UNAUTHENTICATED` where a user is needed). A header that is present but
//! not a valid token is refused at the HTTP level with 401 and
//! `WWW-Authenticate: Bearer error="invalid_token"`, as RFC 6750 says.

use axum::{
    Json,
    extract::FromRequestParts,
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::error::ErrorCode;
use crate::{
    AppState,
    auth::{Principal, TokenError},
};

/// The request's principal, or `None` when no token was sent.
pub struct MaybePrincipal(pub Option<Principal>);

/// A token was sent and refused.
#[derive(Debug)]
pub struct InvalidToken(pub TokenError);

impl FromRequestParts<AppState> for MaybePrincipal {
    type Rejection = InvalidToken;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Ok(Self(None));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(InvalidToken(TokenError::NotBearer))?;
        match state.verifier.verify(token).await {
            Ok(principal) => Ok(Self(Some(principal))),
            Err(e) => {
                tracing::info!(reason = %e, "refused an access token");
                Err(InvalidToken(e))
            }
        }
    }
}

impl IntoResponse for InvalidToken {
    fn into_response(self) -> Response {
        let description = self.0.to_string();
        let challenge = format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            description.replace('"', "'")
        );
        let body = json!({
            "errors": [{
                "message": format!("invalid access token: {description}"),
                "extensions": {"code": ErrorCode::Unauthenticated}
            }]
        });
        let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

//! GraphiQL, served whole by the gateway: the page at `GET /graphql` and its
//! script and style sheet under `/graphiql/`, embedded in the binary.
//!
//! Nothing comes from another host, so GraphiQL works offline, behind a
//! strict proxy and when a CDN is down; the page's Content-Security-Policy
//! allows only the gateway itself. The assets are built from pinned npm
//! packages by `scripts/build-graphiql` (see `graphiql/`).

use std::sync::LazyLock;

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use sha2::{Digest, Sha256};

use crate::{AppState, demo};

/// What the page may load and connect to: the gateway alone. Styles may be
/// inline because GraphiQL's dialogs and menus (Radix UI) add `<style>`
/// elements at run time; scripts may not.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Lifetime of the demo user's token on the page: a tab left open for a day
/// needs a reload.
const DEMO_TOKEN_TTL_SECS: u64 = 86_400;

/// The routes of the page's assets.
pub fn routes() -> Router<AppState> {
    Router::new().route("/graphiql/{file}", get(asset))
}

/// One embedded file, under a name that carries a hash of its content, so
/// browsers may keep it for good and a new build is fetched at once.
struct Asset {
    name: String,
    content_type: &'static str,
    identity: &'static [u8],
    gzip: &'static [u8],
    hash: String,
}

impl Asset {
    fn new(
        stem: &str,
        extension: &str,
        content_type: &'static str,
        identity: &'static [u8],
        gzip: &'static [u8],
    ) -> Self {
        let hash: String = Sha256::digest(identity)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            name: format!("{stem}.{hash}.{extension}"),
            content_type,
            identity,
            gzip,
            hash,
        }
    }
}

static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "graphiql",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.js"),
        include_bytes!("../../assets/graphiql/graphiql.js.gz"),
    )
});

static STYLE: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "graphiql",
        "css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.css"),
        include_bytes!("../../assets/graphiql/graphiql.css.gz"),
    )
});

/// `GET /graphql` for a browser: the GraphiQL page. In the local identity
/// mode (unless `GRAPHIQL_DEMO_TOKEN=false`) its headers come filled with a
/// token for the demo user, whose songs and playlists are loaded first, so
/// a newcomer's first `me` query answers something.
pub async fn page(State(state): State<AppState>) -> Response {
    if !state.config.graphiql {
        return not_found();
    }
    let headers = demo_headers(&state).await;
    let query = match (&headers, &state.issuer) {
        (Some(_), _) => WELCOME_DEMO,
        (None, Some(_)) => WELCOME_LOCAL,
        (None, None) => WELCOME_AUTH0,
    };
    let config = serde_json::json!({ "headers": headers, "query": query });
    let html = PAGE
        .replace("{style}", &STYLE.name)
        .replace("{script}", &SCRIPT.name)
        .replace("{config}", &script_safe(&config.to_string()));
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            // The page may carry a token: keep it out of every cache.
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        html,
    )
        .into_response()
}

/// The demo user's `Authorization` header, as GraphiQL's headers editor
/// shows it, when the page should carry one.
async fn demo_headers(state: &AppState) -> Option<String> {
    let issuer = state.issuer.as_ref()?;
    if !state.config.graphiql_demo_token {
        return None;
    }
    // Once the user has songs this is one read; it is only there to make the
    // pre-filled token show something, so a failure leaves the page usable.
    if let Err(e) = demo::load(&state.services).await {
        tracing::warn!(error = ?e, "cannot load the demo data for GraphiQL");
    }
    match issuer.mint(demo::DEMO_USER, DEMO_TOKEN_TTL_SECS, Default::default()) {
        Ok(token) => {
            let headers = serde_json::json!({ "Authorization": format!("Bearer {token}") });
            serde_json::to_string_pretty(&headers).ok()
        }
        Err(e) => {
            tracing::error!(error = ?e, "cannot mint the demo token for GraphiQL");
            None
        }
    }
}

/// JSON made safe inside a `<script>` element: no `<` can close it.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
}

async fn asset(
    State(state): State<AppState>,
    Path(file): Path<String>,
    request_headers: HeaderMap,
) -> Response {
    let asset: &Asset = if file == SCRIPT.name {
        &SCRIPT
    } else if file == STYLE.name {
        &STYLE
    } else {
        return not_found();
    };
    if !state.config.graphiql {
        return not_found();
    }
    let gzip = accepts_gzip(&request_headers);
    // A strong ETag names one representation: the gzipped one gets its own.
    let etag = if gzip {
        format!("\"{}-gz\"", asset.hash)
    } else {
        format!("\"{}\"", asset.hash)
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("a quoted hex string is a header value"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let unchanged = request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        });
    if unchanged {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        (headers, asset.gzip).into_response()
    } else {
        (headers, asset.identity).into_response()
    }
}

/// Whether `Accept-Encoding` allows gzip (`gzip`, `x-gzip` or `*`, without `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            !refused
                && (coding.eq_ignore_ascii_case("gzip")
                    || coding.eq_ignore_ascii_case("x-gzip")
                    || coding == "*")
        })
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>music-gateway · GraphiQL</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="graphiql/{style}">
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script id="graphiql-config" type="application/json">{config}</script>
<script src="graphiql/{script}"></script>
</body>
</html>
"#;

const WELCOME_DEMO: &str = "# Welcome to music-gateway.
#
# The Headers tab below holds a token
# for the demo user, whose songs and
# playlists are loaded. Run the query
# with ▶ (or Ctrl-Enter); the Docs
# (the book icon) show the whole API.

{
  me {
    displayName
    favGenre
    totalPlays
    songs {
      totalCount
      nodes { name artist }
    }
    playlists {
      nodes { name plays }
    }
  }
}
";

const WELCOME_LOCAL: &str = "# Welcome to music-gateway.
#
# Get a token with
#   music-gateway token --sub 'auth0|you'
# put it in the Headers tab below as
#   {\"Authorization\": \"Bearer <token>\"}
# and run the query with ▶ (Ctrl-Enter).

{
  me { id displayName roles }
}
";

const WELCOME_AUTH0: &str = "# Welcome to music-gateway.
#
# Put an access token for this API from
# your Auth0 tenant in the Headers tab
# below as
#   {\"Authorization\": \"Bearer <token>\"}
# and run the query with ▶ (Ctrl-Enter).

{
  me { id displayName roles }
}
";

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: axum::http::HeaderName, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn gzip_is_used_only_when_the_client_accepts_it() {
        let accept = |v| accepts_gzip(&with(header::ACCEPT_ENCODING, v));
        assert!(accept("gzip, deflate, br"));
        assert!(accept("br;q=1.0, GZIP;q=0.5"));
        assert!(accept("*"));
        assert!(!accept("br, deflate"));
        assert!(!accept("gzip;q=0, br"));
        assert!(!accept("identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn a_script_element_cannot_be_closed_from_the_config() {
        let json = serde_json::json!({ "query": "</script><script>alert(1)</script>" }).to_string();
        let safe = script_safe(&json);
        assert!(!safe.contains('<'));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["query"], "</script><script>alert(1)</script>");
    }

    #[test]
    fn asset_names_carry_a_hash_of_their_content() {
        assert_ne!(SCRIPT.hash, STYLE.hash);
        assert!(SCRIPT.name.starts_with("graphiql.") && SCRIPT.name.ends_with(".js"));
        assert!(SCRIPT.name.contains(&SCRIPT.hash));
        assert_eq!(SCRIPT.hash.len(), 16);
    }
}

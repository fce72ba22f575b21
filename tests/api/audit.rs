//! The GraphQL-over-HTTP reference implementation's server audit
//! (`graphql-http`'s `auditServer`, pinned in tests/audit/package-lock.json)
//! against the gateway, anonymous and with a user's token (whose queries go
//! through the response cache): every MUST passes, and every SHOULD and MAY
//! but the declined ones below, whose reasons the README gives too.

use std::{collections::BTreeMap, path::PathBuf, process::Command};

use serde_json::Value;

use crate::{helpers::TestApp, on_both_databases};

/// SHOULD checks the gateway declines, with why. None: CSRF prevention,
/// the only documented reason to decline one, refuses nothing the SHOULD
/// checks send (each a POST declaring `application/json`, or one without a
/// `Content-Type` that must be refused anyway).
const DECLINED_SHOULD: &[(&str, &str)] = &[];

/// MAY checks the gateway declines: each is a GET with no `Content-Type`
/// and none of `CSRF_REQUIRED_HEADERS`, which a browser sends cross-site
/// without a preflight; CSRF prevention refuses it (HTTP 400, `BAD_REQUEST`).
const DECLINED_MAY: &[(&str, &str)] = &[
    (
        "5A70",
        "CSRF prevention: a GET without a preflight header is refused",
    ),
    (
        "D6D5",
        "CSRF prevention: a GET without a preflight header is refused",
    ),
    (
        "6A70",
        "CSRF prevention: a GET without a preflight header is refused",
    ),
];

/// tests/audit and its node_modules; a missing one fails the test, saying
/// how to get it.
fn audit_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/audit");
    assert!(
        dir.join("node_modules/graphql-http").is_dir(),
        "{} has no node_modules/graphql-http: run the suite with scripts/test, which installs \
         tests/audit's npm packages (npm ci) when they are missing",
        dir.display()
    );
    dir
}

/// The audit's results against `url`, by id.
async fn audit(url: String, token: Option<String>) -> BTreeMap<String, Value> {
    let dir = audit_dir();
    let output = tokio::task::spawn_blocking(move || {
        let mut command = Command::new("node");
        command.arg("audit.mjs").arg(url).current_dir(dir);
        if let Some(token) = token {
            command.arg(token);
        }
        command.output()
    })
    .await
    .unwrap()
    .expect("node runs (install Node.js 18 or newer)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the audit script failed ({}):\n{stderr}\n{stdout}",
        output.status
    );
    let results: Vec<Value> = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the audit printed no JSON ({e}):\n{stdout}"));
    results
        .into_iter()
        .map(|r| (r["id"].as_str().expect("an id").to_owned(), r))
        .collect()
}

/// Every result as the gateway promises it; `who` names the run.
fn judge(who: &str, results: &BTreeMap<String, Value>) {
    assert!(
        results.len() >= 50,
        "{who}: only {} audits ran",
        results.len()
    );
    let mut failures = Vec::new();
    for (id, result) in results {
        let name = result["name"].as_str().unwrap_or_default();
        let ok = result["status"] == "ok";
        let declined = if name.starts_with("MUST") {
            None
        } else if name.starts_with("SHOULD") {
            DECLINED_SHOULD.iter().find(|(d, _)| d == id)
        } else {
            DECLINED_MAY.iter().find(|(d, _)| d == id)
        };
        match (ok, declined) {
            (true, None) => {}
            (false, None) => failures.push(format!("{id} {name}: {result}")),
            (true, Some((_, why))) => failures.push(format!(
                "{id} {name} passes now: take it off the declined list (and the README's), \
                 which says \"{why}\""
            )),
            // Declined for CSRF prevention: refused by it, not by accident.
            (false, Some(_)) => {
                let body = result["body"].as_str().unwrap_or_default();
                if result["statusCode"] != 400 || !body.contains("Cross-Site Request Forgery") {
                    failures.push(format!(
                        "{id} {name} fails, but not by CSRF prevention: {result}"
                    ));
                }
            }
        }
    }
    for (id, _) in DECLINED_SHOULD.iter().chain(DECLINED_MAY) {
        if !results.contains_key(*id) {
            failures.push(format!("{id} is declined but the audit has no such check"));
        }
    }
    assert!(
        failures.is_empty(),
        "{who}: the audit found:\n{}",
        failures.join("\n")
    );
}

async fn the_graphql_over_http_audit_passes(app: TestApp) {
    let url = app.url("/graphql");
    let anonymous = audit(url.clone(), None).await;
    judge("anonymous", &anonymous);
    let with_token = audit(url, Some(app.token("auth0|audit"))).await;
    judge("with a token", &with_token);
}

on_both_databases!(the_graphql_over_http_audit_passes);

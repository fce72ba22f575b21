//! The gateway's `/metrics` (Prometheus text format): the counters the report
//! turns into statements and Management API calls per request.

use anyhow::Context;

/// Counter of SQL statements sent by the gateway.
pub const SQL_STATEMENTS: &str = "gateway_sql_statements_total";

/// Counter of Management API requests sent by the gateway.
pub const AUTH0_CALLS: &str = "gateway_auth0_management_calls_total";

/// The value of the sample named `name` (without labels) in Prometheus text.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .find_map(|line| {
            // `name value [timestamp]`; a labelled sample (`name{...}`) is another series.
            let mut parts = line.split_whitespace();
            if parts.next()? != name {
                return None;
            }
            parts.next()?.parse().ok()
        })
}

/// The gateway's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    pub sql_statements: f64,
    pub auth0_calls: f64,
}

impl Counters {
    /// Parses both counters from a `/metrics` answer.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(Self {
            sql_statements: sample(text, SQL_STATEMENTS)
                .with_context(|| format!("/metrics has no {SQL_STATEMENTS}"))?,
            auth0_calls: sample(text, AUTH0_CALLS)
                .with_context(|| format!("/metrics has no {AUTH0_CALLS}"))?,
        })
    }

    /// Reads the gateway's `/metrics` at `base` (`http://127.0.0.1:PORT`).
    pub async fn scrape(http: &reqwest::Client, base: &str) -> anyhow::Result<Self> {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("cannot read the gateway's /metrics")?
            .text()
            .await?;
        Self::parse(&text)
    }

    /// What happened between `self` (before) and `after`, per request.
    pub fn per_request(&self, after: &Self, requests: u64) -> (f64, f64) {
        if requests == 0 {
            return (0.0, 0.0);
        }
        let n = requests as f64;
        (
            (after.sql_statements - self.sql_statements) / n,
            (after.auth0_calls - self.auth0_calls) / n,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP gateway_sql_statements_total SQL statements sent to the database.\n\
        # TYPE gateway_sql_statements_total counter\n\
        gateway_sql_statements_total 1234\n\
        # HELP gateway_auth0_management_calls_total Requests sent to Auth0's Management API.\n\
        # TYPE gateway_auth0_management_calls_total counter\n\
        gateway_auth0_management_calls_total 5\n\
        gateway_sql_statements_total_created 1.7e9\n\
        other{label=\"x\"} 3 1700000000\n";

    #[test]
    fn samples_are_read_by_exact_name() {
        assert_eq!(sample(TEXT, SQL_STATEMENTS), Some(1234.0));
        assert_eq!(sample(TEXT, AUTH0_CALLS), Some(5.0));
        assert_eq!(
            sample(TEXT, "gateway_sql_statements_total_created"),
            Some(1.7e9)
        );
        assert_eq!(
            sample(TEXT, "other"),
            None,
            "labelled series are not the bare name"
        );
        assert_eq!(sample(TEXT, "missing"), None);
        assert_eq!(sample("x notanumber", "x"), None);
    }

    #[test]
    fn counters_give_per_request_deltas() {
        let before = Counters::parse(TEXT).unwrap();
        let after = Counters {
            sql_statements: before.sql_statements + 400.0,
            auth0_calls: before.auth0_calls,
        };
        assert_eq!(before.per_request(&after, 100), (4.0, 0.0));
        assert_eq!(before.per_request(&after, 0), (0.0, 0.0));
        assert!(Counters::parse("# nothing\n").is_err());
    }
}

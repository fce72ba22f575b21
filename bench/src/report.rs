//! What a run measured (`results.json`), the Markdown report, and the two
//! charts.

use std::fmt::Write;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::{
    load::LoadResult,
    svg::{Axis, Chart, Scale, Series},
};

/// The budget of issue 4, checked in the report's last table.
pub mod budget {
    /// Most SQL statements for the full `me` query.
    pub const MAX_SQL_PER_REQUEST: f64 = 4.0;
    /// Lowest throughput, as a fraction of the reference's.
    pub const MIN_RPS_RATIO: f64 = 0.8;
    /// Highest p99 latency, as a multiple of the reference's.
    pub const MAX_P99_RATIO: f64 = 1.5;
    /// Peak memory of the gateway, in MiB (exclusive).
    pub const MAX_PEAK_MIB: f64 = 100.0;
}

/// Which database a session ran on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbKind {
    Sqlite,
    Postgres,
}

impl DbKind {
    /// The name in the report.
    pub fn title(self) -> &'static str {
        match self {
            DbKind::Sqlite => "SQLite",
            DbKind::Postgres => "PostgreSQL",
        }
    }

    /// The name in file and database names.
    pub fn slug(self) -> &'static str {
        match self {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
        }
    }
}

/// The gateway's identity mode in a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Local,
    Auth0,
}

impl Mode {
    /// The value of IDENTITY_MODE, also used in names.
    pub fn slug(self) -> &'static str {
        match self {
            Mode::Local => "local",
            Mode::Auth0 => "auth0",
        }
    }
}

/// The load generator of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadTool {
    /// The harness's own closed loop (`load.rs`): checks every body.
    #[default]
    Harness,
    /// wrk with a Lua script for the tokens (`wrk.rs`): checks statuses only.
    Wrk,
}

/// The settings of a run, after `--quick` and the defaults were applied.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    pub quick: bool,
    pub databases: Vec<DbKind>,
    pub modes: Vec<Mode>,
    /// The main user set: users, and each user's songs and playlists.
    pub users: u32,
    pub songs: u32,
    pub playlists: u32,
    pub songs_per_playlist: u32,
    /// `first` of every list in the main load's query.
    pub first: u32,
    pub concurrency: Vec<usize>,
    pub duration_secs: f64,
    pub warmup_secs: f64,
    /// The rows sweep: users with `rows_size` songs and playlists of
    /// `rows_size` songs, queried at each `rows_first`.
    pub rows_users: u32,
    pub rows_size: u32,
    pub rows_first: Vec<u32>,
    pub rows_concurrency: usize,
    pub rows_duration_secs: f64,
    /// DB_MAX_CONNECTIONS of the gateway, and the reference's pool size.
    pub pool_size: u32,
    /// The issue's shape: users with 50 songs and 20 playlists of 10 songs,
    /// queried with the issue's query at each of `shape_concurrency`.
    #[serde(default)]
    pub shape_users: u32,
    #[serde(default)]
    pub shape_concurrency: Vec<usize>,
    /// What generated the load.
    #[serde(default)]
    pub load_tool: LoadTool,
}

/// Where the run happened.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub commit: Option<String>,
    pub started_at: String,
    /// `/proc/loadavg` when the run started and when it ended: other work
    /// on the machine skews the figures.
    pub load_average_start: String,
    pub load_average_end: String,
}

/// One concurrency level: the gateway and the reference under the same load.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Level {
    pub concurrency: usize,
    pub gateway: LoadResult,
    pub reference: LoadResult,
    /// From the gateway's `/metrics`, over the measured requests.
    pub sql_per_request: f64,
    pub auth0_per_request: f64,
    /// Management API requests the fake Auth0 served, per request (auth0 mode).
    pub fake_auth0_per_request: Option<f64>,
}

impl Level {
    /// Gateway throughput / reference throughput.
    pub fn rps_ratio(&self) -> f64 {
        ratio(self.gateway.rps, self.reference.rps)
    }

    /// Gateway p99 / reference p99.
    pub fn p99_ratio(&self) -> f64 {
        ratio(self.gateway.p99_ms, self.reference.p99_ms)
    }
}

/// One point of the rows sweep.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RowsPoint {
    pub first: u32,
    pub rows_returned: u64,
    pub level: Level,
}

/// Memory of the two servers over a session, in MiB.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MemoryInfo {
    /// The gateway's VmHWM: its peak resident set since it started.
    pub gateway_peak_mib: f64,
    /// The largest VmRSS sampled (every 100 ms) during the loads.
    pub gateway_max_rss_mib: f64,
    pub reference_peak_mib: f64,
}

/// One database and identity mode.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    pub database: DbKind,
    pub mode: Mode,
    pub database_version: String,
    pub seed_secs: f64,
    pub seeded_rows: u64,
    pub levels: Vec<Level>,
    /// The issue's shape, at each of the plan's `shape_concurrency`.
    #[serde(default)]
    pub shape: Vec<Level>,
    pub rows: Vec<RowsPoint>,
    pub memory: MemoryInfo,
    /// What the session noticed, for the report.
    pub notes: Vec<String>,
}

impl Session {
    /// `SQLite, local` and the like.
    pub fn title(&self) -> String {
        format!("{}, {} mode", self.database.title(), self.mode.slug())
    }

    fn all_levels(&self) -> impl Iterator<Item = &Level> {
        self.levels
            .iter()
            .chain(&self.shape)
            .chain(self.rows.iter().map(|r| &r.level))
    }

    /// Requests that failed, over the session.
    pub fn errors(&self) -> u64 {
        self.all_levels()
            .map(|l| l.gateway.errors + l.reference.errors)
            .sum()
    }
}

/// Everything a run measured: `results.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    pub machine: Machine,
    pub plan: Plan,
    pub query: String,
    /// The query of the issue's shape.
    #[serde(default)]
    pub shape_query: String,
    pub sessions: Vec<Session>,
    pub notes: Vec<String>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

fn mark(ok: bool) -> &'static str {
    if ok { "yes" } else { "**NO**" }
}

/// The Markdown report.
pub fn markdown(results: &Results) -> String {
    let mut md = String::new();
    let m = &results.machine;
    let p = &results.plan;
    // Writing to a String cannot fail, hence the ignored results.
    let _ = writeln!(md, "# music-gateway load test\n");
    let _ = writeln!(
        md,
        "{}; {} cores, {:.0} GiB RAM; Linux {}; commit {}; started {}; load average {} at the start, {} at the end.{}\n",
        m.cpu,
        m.cores,
        m.memory_gib,
        m.kernel,
        m.commit.as_deref().unwrap_or("unknown"),
        m.started_at,
        m.load_average_start,
        m.load_average_end,
        if p.quick {
            " **Quick run**: short and small, for trying the harness, not for the figures."
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "Load: the full `me` query with `first: {}` ({} rows returned), {} users each with {} songs and {} playlists of {} songs, \
         a distinct token per user (round-robin), one keep-alive connection per client, {:.1} s per run after {:.1} s of warm-up, \
         gateway and reference alternately; load generated by {}. Pool size {} for both. The reference is a hand-written axum handler answering the \
         same JSON (checked before the loads: the same bytes, unless a note below says otherwise) with one SQL statement.\n",
        p.first,
        rows_returned(p.songs, p.playlists, p.songs_per_playlist, p.first),
        p.users,
        p.songs,
        p.playlists,
        p.songs_per_playlist,
        p.duration_secs,
        p.warmup_secs,
        match p.load_tool {
            LoadTool::Harness => "the harness's own loop (every body checked)",
            LoadTool::Wrk => "wrk (statuses checked; bodies checked once before the loads)",
        },
        p.pool_size
    );
    let _ = writeln!(md, "```graphql\n{}\n```\n", results.query);
    for s in &results.sessions {
        let _ = writeln!(md, "## {} ({})\n", s.title(), s.database_version);
        let _ = writeln!(
            md,
            "| concurrency | gateway req/s | reference req/s | ratio | gateway p50 ms | gateway p99 ms | gateway p99.9 ms | reference p99 ms | p99 ratio | SQL/request | Auth0 calls/request | errors |"
        );
        let _ = writeln!(
            md,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for l in &s.levels {
            let _ = writeln!(
                md,
                "| {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} | {} |",
                l.concurrency,
                l.gateway.rps,
                l.reference.rps,
                l.rps_ratio(),
                l.gateway.p50_ms,
                l.gateway.p99_ms,
                l.gateway.p999_ms,
                l.reference.p99_ms,
                l.p99_ratio(),
                l.sql_per_request,
                l.auth0_per_request,
                l.gateway.errors + l.reference.errors
            );
        }
        let _ = writeln!(
            md,
            "\nPeak memory (VmHWM): gateway {:.1} MiB (largest RSS sampled under load {:.1} MiB); reference {:.1} MiB. \
             Seeded {} rows in {:.1} s.\n",
            s.memory.gateway_peak_mib,
            s.memory.gateway_max_rss_mib,
            s.memory.reference_peak_mib,
            s.seeded_rows,
            s.seed_secs
        );
        if !s.shape.is_empty() {
            let _ = writeln!(
                md,
                "The issue's shape: {} users with 50 songs and 20 playlists of 10 songs each, the query below \
                 ({:.0} bytes a response{}), {:.1} s per run.\n\n```graphql\n{}\n```\n",
                p.shape_users,
                s.shape.first().map_or(0.0, |l| l.gateway.mean_body_bytes),
                match p.load_tool {
                    LoadTool::Harness => "",
                    LoadTool::Wrk => ", headers included",
                },
                p.duration_secs,
                results.shape_query
            );
            let _ = writeln!(
                md,
                "| concurrency | gateway req/s | reference req/s | ratio | gateway p50 ms | gateway p99 ms | reference p50 ms | reference p99 ms | p99 ratio | SQL/request | errors |"
            );
            let _ = writeln!(
                md,
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            for l in &s.shape {
                let _ = writeln!(
                    md,
                    "| {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                    l.concurrency,
                    l.gateway.rps,
                    l.reference.rps,
                    l.rps_ratio(),
                    l.gateway.p50_ms,
                    l.gateway.p99_ms,
                    l.reference.p50_ms,
                    l.reference.p99_ms,
                    l.p99_ratio(),
                    l.sql_per_request,
                    l.gateway.errors + l.reference.errors
                );
            }
            let _ = writeln!(md);
        }
        if !s.rows.is_empty() {
            let _ = writeln!(
                md,
                "Rows returned: {} users with {} songs and {} playlists of {} songs each, concurrency {}, {:.1} s per run.\n",
                p.rows_users,
                p.rows_size,
                p.rows_size,
                p.rows_size,
                p.rows_concurrency,
                p.rows_duration_secs
            );
            let _ = writeln!(
                md,
                "| first | rows returned | gateway req/s | reference req/s | ratio | gateway p50 ms | gateway p99 ms | reference p50 ms | reference p99 ms | SQL/request | errors |"
            );
            let _ = writeln!(
                md,
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            for r in &s.rows {
                let l = &r.level;
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                    r.first,
                    r.rows_returned,
                    l.gateway.rps,
                    l.reference.rps,
                    l.rps_ratio(),
                    l.gateway.p50_ms,
                    l.gateway.p99_ms,
                    l.reference.p50_ms,
                    l.reference.p99_ms,
                    l.sql_per_request,
                    l.gateway.errors + l.reference.errors
                );
            }
            let _ = writeln!(md);
        }
        for note in &s.notes {
            let _ = writeln!(md, "- {note}");
        }
        for l in s.all_levels() {
            for (who, r) in [("gateway", &l.gateway), ("reference", &l.reference)] {
                if let Some(e) = &r.first_error {
                    let _ = writeln!(
                        md,
                        "- First failure of the {who} at concurrency {}: `{}`",
                        l.concurrency,
                        e.replace('`', "'")
                    );
                }
            }
        }
    }
    if !results.sessions.is_empty() {
        md.push_str(&budget_table(results));
    }
    for note in &results.notes {
        let _ = writeln!(md, "- {note}");
    }
    md
}

/// The full `me` query's rows at page size `first`.
fn rows_returned(songs: u32, playlists: u32, per_playlist: u32, first: u32) -> u64 {
    let pl = u64::from(first.min(playlists));
    u64::from(first.min(songs)) + pl + pl * u64::from(first.min(per_playlist))
}

fn budget_table(results: &Results) -> String {
    use budget::*;
    let mut md = String::new();
    let _ = writeln!(md, "## Budget (issue 4)\n");
    let _ = writeln!(
        md,
        "Worst value over the concurrency levels (and, for SQL/request, the rows sweep).\n"
    );
    let _ = writeln!(
        md,
        "| database, mode | SQL/request ≤ {MAX_SQL_PER_REQUEST} | Auth0 calls/request = 0 | req/s ratio ≥ {MIN_RPS_RATIO} | p99 ratio ≤ {MAX_P99_RATIO} | peak memory < {MAX_PEAK_MIB} MiB |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for s in &results.sessions {
        let sql = s
            .all_levels()
            .map(|l| l.sql_per_request)
            .fold(0.0, f64::max);
        let auth0 = s
            .all_levels()
            .map(|l| l.auth0_per_request)
            .fold(0.0, f64::max);
        let rps = s
            .levels
            .iter()
            .map(Level::rps_ratio)
            .fold(f64::INFINITY, f64::min);
        let p99 = s.levels.iter().map(Level::p99_ratio).fold(0.0, f64::max);
        let mem = s.memory.gateway_peak_mib;
        // Background work (the outbox poll) adds a few statements a run,
        // a few thousandths of one a request: not the request's cost.
        let _ = writeln!(
            md,
            "| {} | {:.2} {} | {:.3} {} | {:.2} {} | {:.2} {} | {:.1} {} |",
            s.title(),
            sql,
            mark(sql <= MAX_SQL_PER_REQUEST + 0.01),
            auth0,
            mark(auth0 == 0.0),
            rps,
            mark(rps >= MIN_RPS_RATIO),
            p99,
            mark(p99 <= MAX_P99_RATIO),
            mem,
            mark(mem < MAX_PEAK_MIB)
        );
    }
    md.push('\n');
    md
}

/// Colours of the sessions, in order; the reference of a session is drawn
/// dashed in its session's colour.
const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

fn session_series(
    results: &Results,
    points: impl Fn(&Session, bool) -> Vec<(f64, f64)>,
) -> Vec<Series> {
    let mut series = Vec::new();
    for (i, s) in results.sessions.iter().enumerate() {
        let color = COLORS[i % COLORS.len()].to_owned();
        for (reference, who) in [(false, "gateway"), (true, "reference")] {
            let pts = points(s, reference);
            if !pts.is_empty() {
                series.push(Series {
                    label: format!("{} {}, {who}", s.database.title(), s.mode.slug()),
                    color: color.clone(),
                    dashed: reference,
                    points: pts,
                });
            }
        }
    }
    series
}

/// Requests a second against concurrency (log scale), one line per server
/// and session.
pub fn throughput_chart(results: &Results) -> Chart {
    let series = session_series(results, |s, reference| {
        s.levels
            .iter()
            .map(|l| {
                let r = if reference { &l.reference } else { &l.gateway };
                (l.concurrency as f64, r.rps)
            })
            .collect()
    });
    let max_rps = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let mut levels: Vec<f64> = results.plan.concurrency.iter().map(|&c| c as f64).collect();
    levels.sort_by(f64::total_cmp);
    let (lo, hi) = (
        levels.first().copied().unwrap_or(1.0),
        levels.last().copied().unwrap_or(1.0),
    );
    let x_scale = if hi > lo {
        Scale::Log { min: lo, max: hi }
    } else {
        Scale::Linear {
            min: lo - 1.0,
            max: hi + 1.0,
        }
    };
    let (y_scale, y_ticks) = Scale::linear_from_zero(max_rps * 1.05);
    Chart {
        title: format!(
            "Throughput of the full me query (first: {})",
            results.plan.first
        ),
        x: Axis {
            label: "concurrent clients (log scale)".into(),
            scale: x_scale,
            ticks: levels,
        },
        y: Axis {
            label: "requests a second".into(),
            scale: y_scale,
            ticks: y_ticks,
        },
        series,
    }
}

/// Median latency against the rows a response holds (both log scales).
pub fn latency_rows_chart(results: &Results) -> Chart {
    let series = session_series(results, |s, reference| {
        s.rows
            .iter()
            .map(|r| {
                let l = if reference {
                    &r.level.reference
                } else {
                    &r.level.gateway
                };
                (r.rows_returned as f64, l.p50_ms)
            })
            .collect()
    });
    let xs = || series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (x_scale, x_ticks) =
        Scale::log_covering(xs().fold(f64::INFINITY, f64::min), xs().fold(0.0, f64::max));
    let (y_scale, y_ticks) =
        Scale::log_covering(ys().fold(f64::INFINITY, f64::min), ys().fold(0.0, f64::max));
    Chart {
        title: format!(
            "Median latency against rows returned (concurrency {})",
            results.plan.rows_concurrency
        ),
        x: Axis {
            label: "rows returned a request (songs + playlists + playlist songs; log scale)".into(),
            scale: x_scale,
            ticks: x_ticks,
        },
        y: Axis {
            label: "p50 latency, ms (log scale)".into(),
            scale: y_scale,
            ticks: y_ticks,
        },
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_returned_counts_nested_lists() {
        assert_eq!(rows_returned(20, 5, 10, 20), 75);
        assert_eq!(rows_returned(100, 100, 100, 5), 35);
    }

    #[test]
    fn ratios_of_zero_are_not_numbers() {
        assert!(ratio(1.0, 0.0).is_nan());
        assert_eq!(ratio(1.0, 2.0), 0.5);
    }
}

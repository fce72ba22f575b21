//! `music-gateway-bench run`: one whole benchmark.
//!
//! For each database (SQLite; PostgreSQL when a URL is given) and identity
//! mode (local; auth0 against the fake Auth0, in this process): a fresh
//! database, `music-gateway migrate`, the seed, a token per user, the
//! gateway (release binary) and the reference (this binary, `reference`) as
//! child processes, a byte-for-byte check of their answers, then the loads
//! at each concurrency level and each page size, alternating between the two
//! servers. The gateway's `/metrics` before and after each measured run give
//! statements and Management API calls per request; `/proc/PID/status` gives
//! its memory.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail, ensure};
use chrono::Utc;
use clap::Args;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::json;

use crate::{
    fake_auth0::{FakeAuth0, FakeAuth0Options},
    load::{self, LoadResult, LoadSpec},
    metrics::Counters,
    procs::{
        ChildGuard, Memory, PostgresCpu, PostgresServer, RssSampler, clock_ticks_per_second,
        free_port, read_stat_cpu,
    },
    report::{
        self, CpuPerRequest, DbKind, Level, LoadTool, Machine, MemoryInfo, Mode, Plan, Results,
        RowsPoint, Session,
    },
    seed::{self, SeedSpec},
    tokens::LocalSigner,
    wrk,
};

/// The gateway's page-size limit (MAX_PAGE_SIZE), set explicitly for the run.
const MAX_PAGE_SIZE: u32 = 100;

/// The issue's seed: songs, playlists and songs a playlist of each user.
const SHAPE_SONGS: u32 = 50;
const SHAPE_PLAYLISTS: u32 = 20;
const SHAPE_SONGS_PER_PLAYLIST: u32 = 10;

/// Issuer and audience of the local identity mode (the gateway's defaults).
const LOCAL_ISSUER: &str = "music-gateway-local";
const LOCAL_AUDIENCE: &str = "music-gateway";

/// Arguments of `music-gateway-bench run`. Unset values take the defaults,
/// or the `--quick` values with `--quick`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A short run (about a minute): fewer users, levels and seconds.
    /// Explicit flags still win.
    #[arg(long)]
    pub quick: bool,
    /// The gateway's release binary.
    #[arg(long, default_value = "target/release/music-gateway")]
    pub gateway_bin: PathBuf,
    /// Where results.json, report.md, the plots and the work files go.
    #[arg(long, default_value = "target/bench")]
    pub out_dir: PathBuf,
    /// A PostgreSQL server to run on as well (a superuser: the run creates
    /// and drops databases). Without it, PostgreSQL is skipped.
    #[arg(long, env = "MG_BENCH_POSTGRES_URL", hide_env_values = true)]
    pub postgres_url: Option<String>,
    /// Databases to run on.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sqlite,postgres"
    )]
    pub databases: Vec<DbKind>,
    /// Identity modes to run the gateway in.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "local,auth0")]
    pub modes: Vec<Mode>,
    /// Users of the main load [default: 2000; quick: 200].
    #[arg(long)]
    pub users: Option<u32>,
    /// Songs of each user [default: 20].
    #[arg(long)]
    pub songs: Option<u32>,
    /// Playlists of each user [default: 5].
    #[arg(long)]
    pub playlists: Option<u32>,
    /// Songs in each playlist [default: 10].
    #[arg(long)]
    pub songs_per_playlist: Option<u32>,
    /// `first` of each list in the main load's query [default: 20].
    #[arg(long)]
    pub first: Option<u32>,
    /// Concurrency levels, comma-separated [default: 1,8,32,64; quick: 1,32].
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Option<Vec<usize>>,
    /// Seconds of each measured run [default: 10; quick: 1.5].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds of warm-up before each measured run [default: 2; quick: 0.5].
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Users of the rows sweep [default: 40; quick: 8].
    #[arg(long)]
    pub rows_users: Option<u32>,
    /// Songs, playlists, and songs a playlist of each rows-sweep user [default: 100; quick: 50].
    #[arg(long)]
    pub rows_size: Option<u32>,
    /// Page sizes of the rows sweep [default: 1,5,20,50,100; quick: 1,10,50].
    #[arg(long, value_delimiter = ',')]
    pub rows_first: Option<Vec<u32>>,
    /// Concurrency of the rows sweep [default: 8].
    #[arg(long)]
    pub rows_concurrency: Option<usize>,
    /// Seconds of each measured rows-sweep run [default: 5; quick: 1].
    #[arg(long)]
    pub rows_duration: Option<f64>,
    /// Users of the issue's shape (50 songs, 20 playlists of 10 songs each,
    /// queried with `load::ISSUE_QUERY`); 0 skips it [default: 2000; quick: 200].
    #[arg(long)]
    pub shape_users: Option<u32>,
    /// Concurrency levels of the issue's shape [default: 16,64].
    #[arg(long, value_delimiter = ',')]
    pub shape_concurrency: Option<Vec<usize>>,
    /// The load generator: the harness's own loop (checks every body) or
    /// wrk (`apt-get install wrk`; scripts/bench installs it when asked).
    #[arg(long, value_enum, default_value = "harness")]
    pub load_tool: LoadTool,
    /// DB_MAX_CONNECTIONS of the gateway and the reference's pool size.
    #[arg(long, default_value_t = 8)]
    pub pool_size: u32,
    /// The gateway's RESPONSE_CACHE_MAX_BYTES. Off by default: the load
    /// test measures the hot path, every answer computed, as the reference
    /// computes every answer (the same user's query repeats, so a cache
    /// would serve nearly every request).
    #[arg(long, default_value_t = 0)]
    pub response_cache_max_bytes: u64,
    /// RESPONSE_CACHE_MAX_BYTES of a second gateway that runs the issue's
    /// shape again with its cache on (the issue's budget with the cache
    /// on); 0 skips that run [default: 33554432, the gateway's default].
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    pub shape_cache_bytes: u64,
    /// More environment for every gateway the run starts, as KEY=VALUE
    /// (repeatable), e.g. `--gateway-env SQLITE_CACHE_KIB=512`. Gateways
    /// start with an empty environment, so variables set around
    /// scripts/bench (`MIMALLOC_*`, `MALLOC_*`, settings) never reach them.
    /// The settings the harness sets itself are refused.
    #[arg(long = "gateway-env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub gateway_env: Vec<(String, String)>,
}

/// The gateway settings the harness sets itself: another value would make
/// the report describe a run that did not happen.
const HARNESS_SETTINGS: &[&str] = &[
    "DATABASE_URL",
    "LISTEN_ADDR",
    "DATA_DIR",
    "IDENTITY_MODE",
    "DB_MAX_CONNECTIONS",
    "MAX_PAGE_SIZE",
    "RESPONSE_CACHE_MAX_BYTES",
    "PROFILE_TTL_SECONDS",
];

/// `KEY=VALUE` of `--gateway-env`.
fn parse_env(arg: &str) -> Result<(String, String), String> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("`{arg}` is not KEY=VALUE"))?;
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("`{key}` is not an environment variable's name"));
    }
    if HARNESS_SETTINGS.contains(&key) || key.starts_with("AUTH0_") {
        return Err(format!(
            "{key} is set by the harness (use its own flag, e.g. --pool-size or --response-cache-max-bytes)"
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

impl RunArgs {
    /// The settings of the run.
    fn plan(&self) -> anyhow::Result<Plan> {
        let q = self.quick;
        let pick =
            |v: Option<f64>, full: f64, quick: f64| v.unwrap_or(if q { quick } else { full });
        let plan = Plan {
            quick: q,
            databases: self.databases.clone(),
            modes: self.modes.clone(),
            users: self.users.unwrap_or(if q { 200 } else { 2000 }),
            songs: self.songs.unwrap_or(20),
            playlists: self.playlists.unwrap_or(5),
            songs_per_playlist: self.songs_per_playlist.unwrap_or(10),
            first: self.first.unwrap_or(20),
            concurrency: self
                .concurrency
                .clone()
                .unwrap_or_else(|| if q { vec![1, 32] } else { vec![1, 8, 32, 64] }),
            duration_secs: pick(self.duration, 10.0, 1.5),
            warmup_secs: pick(self.warmup, 2.0, 0.5),
            rows_users: self.rows_users.unwrap_or(if q { 8 } else { 40 }),
            rows_size: self.rows_size.unwrap_or(if q { 50 } else { 100 }),
            rows_first: self.rows_first.clone().unwrap_or_else(|| {
                if q {
                    vec![1, 10, 50]
                } else {
                    vec![1, 5, 20, 50, 100]
                }
            }),
            rows_concurrency: self.rows_concurrency.unwrap_or(8),
            rows_duration_secs: pick(self.rows_duration, 5.0, 1.0),
            shape_users: self.shape_users.unwrap_or(if q { 200 } else { 2000 }),
            shape_concurrency: self
                .shape_concurrency
                .clone()
                .unwrap_or_else(|| vec![16, 64]),
            pool_size: self.pool_size,
            load_tool: self.load_tool,
            shape_cache_bytes: self.shape_cache_bytes,
            response_cache_max_bytes: self.response_cache_max_bytes,
            gateway_env: self.gateway_env.clone(),
        };
        ensure!(
            plan.users > 0 && plan.rows_users > 0,
            "at least one user is needed"
        );
        ensure!(
            !plan.concurrency.is_empty()
                && plan.concurrency.iter().all(|&c| (1..=1024).contains(&c)),
            "concurrency levels must be between 1 and 1024"
        );
        ensure!(
            plan.shape_concurrency
                .iter()
                .all(|&c| (1..=1024).contains(&c)),
            "--shape-concurrency levels must be between 1 and 1024"
        );
        ensure!(
            (1..=1024).contains(&plan.rows_concurrency),
            "--rows-concurrency must be between 1 and 1024"
        );
        ensure!(
            plan.first <= MAX_PAGE_SIZE && plan.rows_first.iter().all(|&n| n <= MAX_PAGE_SIZE),
            "page sizes cannot exceed the gateway's MAX_PAGE_SIZE ({MAX_PAGE_SIZE})"
        );
        ensure!(
            plan.songs_per_playlist <= plan.songs,
            "--songs-per-playlist cannot exceed --songs"
        );
        ensure!(plan.rows_size > 0, "--rows-size must be at least 1");
        for secs in [
            plan.duration_secs,
            plan.warmup_secs,
            plan.rows_duration_secs,
        ] {
            ensure!(
                (0.0..=600.0).contains(&secs),
                "durations must be between 0 and 600 seconds"
            );
        }
        ensure!(plan.pool_size > 0, "--pool-size must be at least 1");
        Ok(plan)
    }
}

/// What every session needs.
struct Ctx {
    plan: Plan,
    /// Clock ticks a second of `/proc`'s CPU times.
    ticks_per_sec: f64,
    response_cache_max_bytes: u64,
    http: reqwest::Client,
    gateway_bin: PathBuf,
    self_exe: PathBuf,
    work: PathBuf,
    postgres_url: Option<String>,
}

/// `music-gateway-bench run`.
pub async fn main(args: RunArgs) -> anyhow::Result<()> {
    let plan = args.plan()?;
    let gateway_bin = std::path::absolute(&args.gateway_bin)?;
    ensure!(
        gateway_bin.is_file(),
        "no gateway binary at {} (build it: cargo build --release -p music-gateway)",
        gateway_bin.display()
    );
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    let out_dir = std::path::absolute(&args.out_dir)?;
    let work = out_dir.join("work");
    let mut notes = Vec::new();
    let postgres_url = args.postgres_url.clone().filter(|u| !u.trim().is_empty());
    if plan.databases.contains(&DbKind::Postgres) && postgres_url.is_none() {
        notes.push(
            "PostgreSQL was skipped: MG_BENCH_POSTGRES_URL is not set (scripts/bench sets it)."
                .into(),
        );
    }
    notes.push(
        "SQL/request and Auth0 calls/request come from the gateway's /metrics over the measured requests; \
         in auth0 mode they include the outbox worker's poll (a statement every 2 s)."
            .into(),
    );
    notes.push(if args.response_cache_max_bytes == 0 {
        "The gateway's response cache is off (RESPONSE_CACHE_MAX_BYTES=0): every answer is computed, as the reference's are."
            .to_owned()
    } else {
        format!(
            "The gateway's response cache is on (RESPONSE_CACHE_MAX_BYTES={}): repeated queries of a user are answered from it; the reference has no cache.",
            args.response_cache_max_bytes
        )
    });
    notes.push(
        "CPU/request is utime + stime from /proc/PID/stat over the measured run, divided by its requests: \
         the server process's own (on SQLite the database's work is in it), and on PostgreSQL the backends' \
         (the postmaster's children serving connections; its background processes are left out)."
            .into(),
    );
    notes.push(
        "The load generator runs on the same two cores as the server under test, for both servers alike."
            .into(),
    );
    let ctx = Ctx {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        gateway_bin,
        self_exe: std::env::current_exe().context("cannot find this binary")?,
        work,
        postgres_url,
        plan: plan.clone(),
        ticks_per_sec: clock_ticks_per_second(),
        response_cache_max_bytes: args.response_cache_max_bytes,
    };
    let mut results = Results {
        machine: machine(),
        plan,
        query: load::me_query(ctx.plan.first),
        shape_query: load::ISSUE_QUERY.to_owned(),
        sessions: Vec::new(),
        notes,
    };
    // Ctrl-C drops the sessions' future, and with it the child guards.
    let outcome = tokio::select! {
        outcome = run_sessions(&ctx, &mut results.sessions) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    results.machine.load_average_end = load_average();
    if !results.sessions.is_empty() {
        write_outputs(&out_dir, &results)?;
    }
    outcome?;
    let errors: u64 = results.sessions.iter().map(Session::errors).sum();
    ensure!(
        errors == 0,
        "{errors} requests failed during the loads; see the report's first failures"
    );
    Ok(())
}

async fn run_sessions(ctx: &Ctx, sessions: &mut Vec<Session>) -> anyhow::Result<()> {
    for &database in &ctx.plan.databases {
        if database == DbKind::Postgres && ctx.postgres_url.is_none() {
            eprintln!("PostgreSQL skipped: MG_BENCH_POSTGRES_URL is not set");
            continue;
        }
        for &mode in &ctx.plan.modes {
            let session = run_session(ctx, database, mode)
                .await
                .with_context(|| format!("{}, {} mode", database.title(), mode.slug()))?;
            sessions.push(session);
        }
    }
    ensure!(!sessions.is_empty(), "nothing to run");
    Ok(())
}

/// `report`: render a finished run's figures again.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The run's directory: reads its results.json, rewrites report.md and
    /// the plots beside it.
    #[arg(long, default_value = "target/bench")]
    out_dir: PathBuf,
}

/// Writes report.md and the plots again from a run's results.json, so a
/// change to the report (a budget line, a table) reads a run already made
/// rather than waiting for a new one of forty minutes.
pub fn report_main(args: &ReportArgs) -> anyhow::Result<()> {
    let path = args.out_dir.join("results.json");
    let text = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let results: Results = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a run's results", path.display()))?;
    write_outputs(&args.out_dir, &results)
}

fn write_outputs(out_dir: &Path, results: &Results) -> anyhow::Result<()> {
    let write = |name: &str, contents: &[u8]| {
        let path = out_dir.join(name);
        std::fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))
    };
    write("results.json", &serde_json::to_vec_pretty(results)?)?;
    let md = report::markdown(results);
    write("report.md", md.as_bytes())?;
    write(
        "throughput.svg",
        report::throughput_chart(results)?.as_bytes(),
    )?;
    write(
        "latency-rows.svg",
        report::latency_rows_chart(results)?.as_bytes(),
    )?;
    if results.sessions.iter().any(|s| !s.shape.is_empty()) {
        write("issue-shape.svg", report::shape_chart(results)?.as_bytes())?;
    }
    println!("{md}");
    Ok(())
}

/// The machine, for the report's first line.
fn machine() -> Machine {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    // Read-only: the commit the binaries were built from, as far as the tree says.
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        memory_gib,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        commit,
        started_at: Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        load_average_start: load_average(),
        load_average_end: String::new(),
    }
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A server under load.
#[derive(Clone)]
struct Server {
    name: &'static str,
    /// Its process, for its CPU time.
    pid: u32,
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// Whether it has the gateway's `/metrics`.
    metrics: bool,
}

impl Server {
    fn graphql(&self) -> String {
        format!("{}/graphql", self.base)
    }
}

/// One measured run and the counters around it.
struct Measured {
    result: LoadResult,
    sql_per_request: f64,
    auth0_per_request: f64,
    fake_per_request: Option<f64>,
    cpu: CpuPerRequest,
}

/// CPU counters of a server and the database at one moment.
struct CpuSnapshot {
    process: Option<u64>,
    postgres: Option<PostgresCpu>,
}

impl CpuSnapshot {
    fn take(pid: u32, postgres: Option<&PostgresServer>) -> Self {
        Self {
            process: read_stat_cpu(pid).ok().map(|s| s.ticks),
            postgres: postgres.and_then(|p| p.cpu().ok()),
        }
    }

    /// Milliseconds of CPU per request between `self` (before) and `after`.
    fn per_request(&self, after: &Self, requests: u64, ticks_per_sec: f64) -> CpuPerRequest {
        if requests == 0 {
            return CpuPerRequest::default();
        }
        let ms = |before: u64, after: u64| {
            after.saturating_sub(before) as f64 * 1000.0 / ticks_per_sec / requests as f64
        };
        let pg = match (&self.postgres, &after.postgres) {
            (Some(before), Some(after)) => Some(after.since(before)),
            _ => None,
        };
        CpuPerRequest {
            process_ms: self.process.zip(after.process).map(|(b, a)| ms(b, a)),
            db_ms: pg.map(|(backends, _)| ms(0, backends)),
            db_other_ms: pg.map(|(_, other)| ms(0, other)),
        }
    }
}

async fn run_session(ctx: &Ctx, database: DbKind, mode: Mode) -> anyhow::Result<Session> {
    let plan = &ctx.plan;
    let tag = format!("{}/{}", database.slug(), mode.slug());
    let dir = ctx
        .work
        .join(format!("{}-{}", database.slug(), mode.slug()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot empty {}", dir.display()))?;
    }
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir)?;

    eprintln!("[{tag}] preparing the database");
    let url = match database {
        DbKind::Sqlite => format!("sqlite://{}?mode=rwc", data_dir.join("music.db").display()),
        DbKind::Postgres => {
            let base = ctx.postgres_url.as_deref().context("no PostgreSQL URL")?;
            create_postgres_database(base, &format!("mg_bench_{}", mode.slug())).await?
        }
    };
    // The gateway shares its signing key through the database, importing a
    // key file it finds in its data directory: put one there first, so the
    // load test can sign its users' tokens with it.
    crate::tokens::write_signing_key(&data_dir.join("signing-key.pem"))?;
    migrate(ctx, &url, &data_dir, &dir.join("migrate.log"))?;

    let main_spec = SeedSpec {
        prefix: "bench".into(),
        users: plan.users,
        songs: plan.songs,
        playlists: plan.playlists,
        songs_per_playlist: plan.songs_per_playlist,
    };
    let rows_spec = SeedSpec {
        prefix: "rows".into(),
        users: plan.rows_users,
        songs: plan.rows_size,
        playlists: plan.rows_size,
        songs_per_playlist: plan.rows_size,
    };
    let shape_spec = SeedSpec {
        prefix: "shape".into(),
        users: plan.shape_users,
        songs: SHAPE_SONGS,
        playlists: SHAPE_PLAYLISTS,
        songs_per_playlist: SHAPE_SONGS_PER_PLAYLIST,
    };
    let synced_at = Utc::now();
    let conn = seed::connect(&url).await?;
    let main_seed = seed::seed(&conn, &main_spec, synced_at).await?;
    let rows_seed = seed::seed(&conn, &rows_spec, synced_at).await?;
    let shape_seed = seed::seed(&conn, &shape_spec, synced_at).await?;
    let database_version = database_version(&conn, database).await?;
    let mut notes = Vec::new();
    let postgres = match database {
        DbKind::Sqlite => None,
        DbKind::Postgres => match find_postgres_server(&conn).await {
            Ok(server) => Some(server),
            Err(e) => {
                let note = format!(
                    "PostgreSQL's CPU per request is not measured: the server's processes are not visible here ({e:#})."
                );
                eprintln!("[{tag}] {note}");
                notes.push(note);
                None
            }
        },
    };
    conn.close().await.ok();
    let seeds = [&main_seed, &rows_seed, &shape_seed];
    let seed_secs: f64 = seeds.iter().map(|s| s.elapsed.as_secs_f64()).sum();
    let seeded_rows: u64 = seeds.iter().map(|s| s.rows).sum();
    eprintln!("[{tag}] seeded {seeded_rows} rows in {seed_secs:.1} s ({database_version})");

    // The fake Auth0 knows every user with the profile the table holds, so
    // a refresh, were one to happen, would change nothing.
    let fake = match mode {
        Mode::Local => None,
        Mode::Auth0 => {
            let fake = FakeAuth0::start_with(FakeAuth0Options {
                audience: "https://music-gateway.bench/api".into(),
                client_id: "bench-client".into(),
                client_secret: "bench-secret".into(),
                rate_per_second: 1000.0,
                burst: 1000,
                token_expires_in: 86_400,
            })
            .await;
            for spec in [&main_spec, &rows_spec, &shape_spec] {
                for n in 0..spec.users {
                    fake.put_user(seed::profile(spec, n));
                }
            }
            Some(fake)
        }
    };

    let gateway_env = GatewayEnv {
        dir: &dir,
        url: &url,
        data_dir: &data_dir,
        mode,
        fake: fake.as_ref(),
    };
    let (mut gateway, gateway_srv) = gateway_env
        .spawn(ctx, ctx.response_cache_max_bytes, "gateway")
        .await?;

    let (jwks_url, issuer, audience) = match &fake {
        None => (
            format!("{}/.well-known/jwks.json", gateway_srv.base),
            LOCAL_ISSUER.to_owned(),
            LOCAL_AUDIENCE.to_owned(),
        ),
        Some(fake) => (fake.jwks_url(), fake.issuer(), fake.audience()),
    };
    eprintln!("[{tag}] minting tokens");
    let minter = Arc::new(match &fake {
        None => {
            let jwks: serde_json::Value = ctx
                .http
                .get(&jwks_url)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await
                .context("cannot read the gateway's JWKS")?;
            let key = data_dir.join("signing-key.pem");
            Minter::Local(LocalSigner::new(&key, &jwks, LOCAL_ISSUER, LOCAL_AUDIENCE)?)
        }
        Some(fake) => Minter::Auth0(fake.clone()),
    });
    // Issued a minute before the rows were synced: not a new login, so the
    // rows are warm.
    let iat = synced_at.timestamp() - 60;
    let main_tokens = mint_all(&minter, main_spec.user_ids(), iat).await?;
    let rows_tokens = mint_all(&minter, rows_spec.user_ids(), iat).await?;
    let shape_tokens = mint_all(&minter, shape_spec.user_ids(), iat).await?;
    std::fs::write(dir.join("tokens.txt"), main_tokens.join("\n"))?;
    std::fs::write(dir.join("rows-tokens.txt"), rows_tokens.join("\n"))?;
    std::fs::write(dir.join("shape-tokens.txt"), shape_tokens.join("\n"))?;

    let spawn_reference =
        |name: &'static str, driver: &str| -> anyhow::Result<(ChildGuard, Server)> {
            let port = free_port()?;
            let mut command = Command::new(&ctx.self_exe);
            command
                .args(["reference", "--database-url", &url])
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args([
                    "--jwks-url",
                    &jwks_url,
                    "--issuer",
                    &issuer,
                    "--audience",
                    &audience,
                ])
                .args(["--pool-size", &plan.pool_size.to_string()])
                .args(["--driver", driver])
                .current_dir(&dir)
                .env_clear();
            let child = ChildGuard::spawn(name, command, &dir.join(format!("{name}.log")))?;
            let server = Server {
                name,
                pid: child.pid(),
                base: format!("http://127.0.0.1:{port}"),
                metrics: false,
            };
            Ok((child, server))
        };
    let (mut reference, reference_srv) = spawn_reference("reference", "sqlx")?;
    // A second reference on the fastest client we know for the database:
    // sqlx's own per-query cost is part of the first one's figures.
    let mut fast = Some(match database {
        DbKind::Postgres => spawn_reference("tokio-pg", "tokio-postgres")?,
        DbKind::Sqlite => spawn_reference("rusqlite", "rusqlite")?,
    });
    for (child, server) in std::iter::once((&mut reference, &reference_srv))
        .chain(fast.as_mut().map(|(c, s)| (c, &*s)))
    {
        child
            .wait_ready(
                &ctx.http,
                &format!("{}/healthz", server.base),
                Duration::from_secs(30),
            )
            .await?;
    }
    let fast_srv = fast.as_ref().map(|(_, s)| s.clone());

    // The reference is only a reference if it answers what the gateway answers.
    let main_query = Query::full(plan.first);
    let shape_query = Query::issue();
    let mut byte_identical = true;
    for reference_srv in std::iter::once(&reference_srv).chain(fast_srv.as_ref()) {
        byte_identical &= same_answers(
            ctx,
            &gateway_srv,
            reference_srv,
            &main_tokens[0],
            &main_query,
        )
        .await?;
        for &first in &plan.rows_first {
            byte_identical &= same_answers(
                ctx,
                &gateway_srv,
                reference_srv,
                &rows_tokens[0],
                &Query::full(first),
            )
            .await?;
        }
        // The issue's shape is checked for its first and last user: the
        // playlists' songs wrap around the library differently for each.
        if let (Some(first), Some(last)) = (shape_tokens.first(), shape_tokens.last()) {
            for token in [first, last] {
                byte_identical &=
                    same_answers(ctx, &gateway_srv, reference_srv, token, &shape_query).await?;
            }
        }
    }
    if byte_identical {
        eprintln!("[{tag}] the gateway and the references answer the same bytes");
    } else {
        let note = "The gateway's answers had the same JSON and size as the reference's, but not always the same bytes: \
                    it wrote `playlists` before `songs` at times (async-graphql writes a query's fields in the order \
                    their resolvers finish, not in the query's order).";
        eprintln!("[{tag}] {note}");
        notes.push(note.to_owned());
    }

    let sampler = RssSampler::start(gateway.pid(), Duration::from_millis(100));
    let runner = Runner {
        ctx,
        fake: fake.as_ref(),
        tag: &tag,
        dir: &dir,
        postgres: postgres.as_ref(),
        fast: fast_srv.as_ref(),
    };
    let main_tokens = Tokens::new(main_tokens, dir.join("tokens.txt"));
    let rows_tokens = Tokens::new(rows_tokens, dir.join("rows-tokens.txt"));
    let shape_tokens = Tokens::new(shape_tokens, dir.join("shape-tokens.txt"));
    if plan.load_tool == LoadTool::Wrk {
        wrk::write_script(&dir)?;
    }
    // Warm them all: connections, prepared statements, the page cache.
    for server in [&gateway_srv, &reference_srv]
        .into_iter()
        .chain(fast_srv.as_ref())
    {
        runner
            .load(
                server,
                &main_tokens,
                8,
                &main_query,
                plan.warmup_secs.max(0.5),
            )
            .await?;
    }
    let mut levels = Vec::new();
    for (i, &concurrency) in plan.concurrency.iter().enumerate() {
        levels.push(
            runner
                .level(
                    [&gateway_srv, &reference_srv],
                    i % 2 == 1,
                    &main_tokens,
                    concurrency,
                    &main_query,
                    plan.duration_secs,
                )
                .await?,
        );
        gateway.check_running()?;
        reference.check_running()?;
        if let Some((fast, _)) = &mut fast {
            fast.check_running()?;
        }
    }
    let mut shape = Vec::new();
    if !shape_tokens.list.is_empty() {
        for (i, &concurrency) in plan.shape_concurrency.iter().enumerate() {
            shape.push(
                runner
                    .level(
                        [&gateway_srv, &reference_srv],
                        i % 2 == 1,
                        &shape_tokens,
                        concurrency,
                        &shape_query,
                        plan.duration_secs,
                    )
                    .await?,
            );
            gateway.check_running()?;
            reference.check_running()?;
            if let Some((fast, _)) = &mut fast {
                fast.check_running()?;
            }
        }
    }
    let mut rows = Vec::new();
    for (i, &first) in plan.rows_first.iter().enumerate() {
        let level = runner
            .level(
                [&gateway_srv, &reference_srv],
                i % 2 == 1,
                &rows_tokens,
                plan.rows_concurrency,
                &Query::full(first),
                plan.rows_duration_secs,
            )
            .await?;
        rows.push(RowsPoint {
            first,
            rows_returned: rows_spec.rows_returned(first),
            level,
        });
        gateway.check_running()?;
        reference.check_running()?;
        if let Some((fast, _)) = &mut fast {
            fast.check_running()?;
        }
    }
    let max_rss = sampler.finish().await;
    let gateway_memory = Memory::read(gateway.pid())?;
    let mib = |kib: u64| kib as f64 / 1024.0;
    // The cache-off gateway stops before the cache-on one starts: one
    // gateway at a time, as before.
    drop(gateway);

    // The issue's shape with the response cache on: a second gateway, so
    // its peak memory is the cache's runs' alone, and the reference
    // measured again alongside it.
    let mut shape_cached = Vec::new();
    let mut cached_memory = None;
    if plan.shape_cache_bytes > 0 && !shape_tokens.list.is_empty() {
        eprintln!(
            "[{tag}] the issue's shape with the gateway's response cache on ({} bytes)",
            plan.shape_cache_bytes
        );
        let (mut cached, cached_srv) = gateway_env
            .spawn(ctx, plan.shape_cache_bytes, "gateway-cached")
            .await?;
        let cached_srv = Server {
            name: "gateway+cache",
            ..cached_srv
        };
        let sampler = RssSampler::start(cached.pid(), Duration::from_millis(100));
        // Every user's answer once, so the measured runs see the steady
        // state the budget is about (repeated queries), whichever tool and
        // warm-up length: the harness's loop, bounded by count.
        let primed = load::run(&LoadSpec {
            url: cached_srv.graphql(),
            tokens: shape_tokens.list.clone(),
            concurrency: 8,
            duration: Duration::from_secs(600),
            body: shape_query.body.clone(),
            max_requests: shape_tokens.list.len() as u64,
        })
        .await?;
        ensure!(
            primed.errors == 0,
            "priming the gateway's cache failed: {}",
            primed.first_error.unwrap_or_default()
        );
        for (i, &concurrency) in plan.shape_concurrency.iter().enumerate() {
            shape_cached.push(
                runner
                    .level(
                        [&cached_srv, &reference_srv],
                        i % 2 == 1,
                        &shape_tokens,
                        concurrency,
                        &shape_query,
                        plan.duration_secs,
                    )
                    .await?,
            );
            cached.check_running()?;
            reference.check_running()?;
            if let Some((fast, _)) = &mut fast {
                fast.check_running()?;
            }
        }
        let max_rss = sampler.finish().await;
        let memory = Memory::read(cached.pid())?;
        cached_memory = Some(MemoryInfo {
            gateway_peak_mib: mib(memory.hwm_kib),
            gateway_max_rss_mib: mib(max_rss.max(memory.rss_kib)),
            reference_peak_mib: 0.0,
        });
        drop(cached);
    }
    let reference_memory = Memory::read(reference.pid())?;
    drop(reference);
    drop(fast);
    Ok(Session {
        database,
        mode,
        database_version,
        seed_secs,
        seeded_rows,
        levels,
        shape,
        shape_cached,
        cached_memory,
        rows,
        notes,
        memory: MemoryInfo {
            gateway_peak_mib: mib(gateway_memory.hwm_kib),
            gateway_max_rss_mib: mib(max_rss.max(gateway_memory.rss_kib)),
            reference_peak_mib: mib(reference_memory.hwm_kib),
        },
    })
}

/// What a gateway of a session is started with.
struct GatewayEnv<'a> {
    dir: &'a Path,
    url: &'a str,
    data_dir: &'a Path,
    mode: Mode,
    fake: Option<&'a FakeAuth0>,
}

impl GatewayEnv<'_> {
    /// Starts a gateway with RESPONSE_CACHE_MAX_BYTES=`cache_bytes`,
    /// logging to `<name>.log`, and waits until it is ready.
    async fn spawn(
        &self,
        ctx: &Ctx,
        cache_bytes: u64,
        name: &str,
    ) -> anyhow::Result<(ChildGuard, Server)> {
        let port = free_port()?;
        let mut command = Command::new(&ctx.gateway_bin);
        command
            .arg("serve")
            .current_dir(self.dir)
            .env_clear()
            .envs(ctx.plan.gateway_env.iter().map(|(k, v)| (k, v)))
            .env("DATABASE_URL", self.url)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("DATA_DIR", self.data_dir)
            .env("IDENTITY_MODE", self.mode.slug())
            .env("DB_MAX_CONNECTIONS", ctx.plan.pool_size.to_string())
            .env("MAX_PAGE_SIZE", MAX_PAGE_SIZE.to_string())
            .env("RESPONSE_CACHE_MAX_BYTES", cache_bytes.to_string())
            // Rows stay warm for the whole run: no refresh, no Management API call.
            .env("PROFILE_TTL_SECONDS", "86400");
        if let Some(fake) = self.fake {
            command
                .env("AUTH0_DOMAIN", fake.base_url())
                .env("AUTH0_AUDIENCE", fake.audience())
                .env("AUTH0_CLIENT_ID", fake.client_id())
                .env("AUTH0_CLIENT_SECRET", fake.client_secret())
                .env("AUTH0_MGMT_RATE", "1000")
                .env("AUTH0_MGMT_BURST", "1000");
        }
        let mut child = ChildGuard::spawn(name, command, &self.dir.join(format!("{name}.log")))?;
        let server = Server {
            name: "gateway",
            pid: child.pid(),
            base: format!("http://127.0.0.1:{port}"),
            metrics: true,
        };
        child
            .wait_ready(
                &ctx.http,
                &format!("{}/readyz", server.base),
                Duration::from_secs(60),
            )
            .await?;
        Ok((child, server))
    }
}

/// Finds the PostgreSQL server behind `conn` among this machine's
/// processes, from the connection's backend pid.
async fn find_postgres_server(conn: &DatabaseConnection) -> anyhow::Result<PostgresServer> {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_string(backend, "SELECT pg_backend_pid()"))
        .await?
        .context("no pid row")?;
    let pid = u32::try_from(row.try_get_by_index::<i32>(0)?)?;
    // Readable by superusers and pg_read_all_settings only; without it the
    // pid is checked by process name alone.
    let data_directory = match conn
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT current_setting('data_directory')",
        ))
        .await
    {
        Ok(Some(row)) => row.try_get_by_index::<String>(0).unwrap_or_default(),
        _ => String::new(),
    };
    PostgresServer::find(pid, &data_directory)
}

/// Runs the loads of a session.
struct Runner<'a> {
    ctx: &'a Ctx,
    /// The session's work directory (wrk's script and body files).
    dir: &'a Path,
    fake: Option<&'a FakeAuth0>,
    tag: &'a str,
    /// The PostgreSQL server, when its processes are visible here.
    postgres: Option<&'a PostgresServer>,
    /// The fastest reference (tokio-postgres or rusqlite), measured beside
    /// the sqlx one at every level.
    fast: Option<&'a Server>,
}

impl Runner<'_> {
    async fn load(
        &self,
        server: &Server,
        tokens: &Tokens,
        concurrency: usize,
        query: &Query,
        secs: f64,
    ) -> anyhow::Result<LoadResult> {
        let duration = Duration::from_secs_f64(secs);
        match self.ctx.plan.load_tool {
            LoadTool::Harness => {
                load::run(&LoadSpec {
                    url: server.graphql(),
                    tokens: tokens.list.clone(),
                    concurrency,
                    duration,
                    body: query.body.clone(),
                    max_requests: 5_000_000,
                })
                .await
            }
            LoadTool::Wrk => {
                let body_file = self.dir.join(format!("body-{}.json", query.label));
                std::fs::write(&body_file, &query.body)?;
                wrk::run(&wrk::WrkRun {
                    url: &server.graphql(),
                    tokens_file: &tokens.file,
                    body_file: &body_file,
                    script_dir: self.dir,
                    concurrency,
                    duration,
                })
                .await
            }
        }
    }

    /// A warm-up, then a measured run with the counters read around it.
    async fn measure(
        &self,
        server: &Server,
        tokens: &Tokens,
        concurrency: usize,
        query: &Query,
        secs: f64,
    ) -> anyhow::Result<Measured> {
        let plan = &self.ctx.plan;
        if plan.warmup_secs > 0.0 {
            self.load(server, tokens, concurrency, query, plan.warmup_secs)
                .await?;
        }
        let before = if server.metrics {
            Some(Counters::scrape(&self.ctx.http, &server.base).await?)
        } else {
            None
        };
        let fake_before = self.fake.map(|f| f.calls().management());
        let cpu_before = CpuSnapshot::take(server.pid, self.postgres);
        let result = self.load(server, tokens, concurrency, query, secs).await?;
        let cpu = cpu_before.per_request(
            &CpuSnapshot::take(server.pid, self.postgres),
            result.requests,
            self.ctx.ticks_per_sec,
        );
        let (sql_per_request, auth0_per_request) = match before {
            Some(before) => {
                let after = Counters::scrape(&self.ctx.http, &server.base).await?;
                before.per_request(&after, result.requests)
            }
            None => (0.0, 0.0),
        };
        let fake_per_request = match (self.fake, fake_before) {
            (Some(fake), Some(before)) if server.metrics && result.requests > 0 => {
                Some((fake.calls().management() - before) as f64 / result.requests as f64)
            }
            _ => None,
        };
        eprintln!(
            "[{}] {:<9} {:<9} {}",
            self.tag,
            server.name,
            query.label,
            result.summary()
        );
        Ok(Measured {
            result,
            sql_per_request,
            auth0_per_request,
            fake_per_request,
            cpu,
        })
    }

    /// Both servers under the same load, the reference first when
    /// `reference_first` (alternating the order evens out drift).
    async fn level(
        &self,
        [gateway, reference]: [&Server; 2],
        reference_first: bool,
        tokens: &Tokens,
        concurrency: usize,
        query: &Query,
        secs: f64,
    ) -> anyhow::Result<Level> {
        // Alternating the order evens out drift: the references first, or
        // the gateway first.
        let (g, r, f) = if reference_first {
            let f = match self.fast {
                Some(fast) => Some(self.measure(fast, tokens, concurrency, query, secs).await?),
                None => None,
            };
            let r = self
                .measure(reference, tokens, concurrency, query, secs)
                .await?;
            let g = self
                .measure(gateway, tokens, concurrency, query, secs)
                .await?;
            (g, r, f)
        } else {
            let g = self
                .measure(gateway, tokens, concurrency, query, secs)
                .await?;
            let r = self
                .measure(reference, tokens, concurrency, query, secs)
                .await?;
            let f = match self.fast {
                Some(fast) => Some(self.measure(fast, tokens, concurrency, query, secs).await?),
                None => None,
            };
            (g, r, f)
        };
        Ok(Level {
            concurrency,
            sql_per_request: g.sql_per_request,
            auth0_per_request: g.auth0_per_request,
            fake_auth0_per_request: g.fake_per_request,
            gateway_cpu: g.cpu,
            reference_cpu: r.cpu,
            fast_cpu: f.as_ref().map(|f| f.cpu),
            fast: f.map(|f| f.result),
            gateway: g.result,
            reference: r.result,
        })
    }
}

/// The tokens of a user set, and the file that holds them (for wrk).
struct Tokens {
    list: Arc<Vec<String>>,
    file: PathBuf,
}

impl Tokens {
    fn new(list: Vec<String>, file: PathBuf) -> Self {
        Self {
            list: Arc::new(list),
            file,
        }
    }
}

/// A query the loads send, and how the console and errors name it.
struct Query {
    label: String,
    body: hyper::body::Bytes,
}

impl Query {
    /// The main load's query, `first` on every list.
    fn full(first: u32) -> Self {
        Self {
            label: format!("first={first}"),
            body: load::request_body(first),
        }
    }

    /// The issue's query ([`load::ISSUE_QUERY`]).
    fn issue() -> Self {
        Self {
            label: "issue".into(),
            body: load::body_of(load::ISSUE_QUERY),
        }
    }
}

/// Who signs the tokens of a session.
enum Minter {
    Local(LocalSigner),
    Auth0(FakeAuth0),
}

/// A token for each user, issued at `iat`. RSA signing takes about a
/// millisecond a token, so it runs off the async threads.
async fn mint_all(
    minter: &Arc<Minter>,
    users: Vec<String>,
    iat: i64,
) -> anyhow::Result<Vec<String>> {
    let minter = minter.clone();
    tokio::task::spawn_blocking(move || {
        let exp = Utc::now().timestamp() + 6 * 3600;
        users
            .iter()
            .map(|sub| match &*minter {
                Minter::Local(signer) => signer.mint(sub, iat, exp),
                Minter::Auth0(fake) => Ok(fake.mint(sub, json!({ "iat": iat }))),
            })
            .collect()
    })
    .await
    .context("token minting failed")?
}

/// Creates (or re-creates) database `name` on the server of `base_url`, and
/// returns its URL.
async fn create_postgres_database(base_url: &str, name: &str) -> anyhow::Result<String> {
    let admin = seed::connect(base_url).await?;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .with_context(|| format!("cannot drop the database {name}"))?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .with_context(|| format!("cannot create the database {name}"))?;
    admin.close().await.ok();
    let mut url = reqwest::Url::parse(base_url).context("MG_BENCH_POSTGRES_URL is not a URL")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// `music-gateway migrate` on `url`.
fn migrate(ctx: &Ctx, url: &str, data_dir: &Path, log: &Path) -> anyhow::Result<()> {
    let output = Command::new(&ctx.gateway_bin)
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", url)
        .env("DATA_DIR", data_dir)
        .output()
        .context("cannot run music-gateway migrate")?;
    std::fs::write(log, [&output.stdout[..], &output.stderr[..]].concat())?;
    if !output.status.success() {
        bail!(
            "music-gateway migrate failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

async fn database_version(conn: &DatabaseConnection, database: DbKind) -> anyhow::Result<String> {
    let sql = match database {
        DbKind::Sqlite => "SELECT 'SQLite ' || sqlite_version()",
        DbKind::Postgres => "SELECT 'PostgreSQL ' || current_setting('server_version')",
    };
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await?
        .context("no version row")?;
    Ok(row.try_get_by_index::<String>(0)?)
}

/// Fails unless both servers answer the full `me` query for `token`'s user
/// with the same JSON, and the answer is a success. Returns whether the
/// bytes are the same too: the gateway may write an object's keys in
/// another order than the query's (async-graphql inserts the fields of a
/// query in the order their resolvers finish), which changes no value and
/// no size.
async fn same_answers(
    ctx: &Ctx,
    gateway: &Server,
    reference: &Server,
    token: &str,
    query: &Query,
) -> anyhow::Result<bool> {
    let body = query.body.clone();
    let first = &query.label;
    let mut answers = Vec::new();
    for server in [gateway, reference] {
        let response = ctx
            .http
            .post(server.graphql())
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .with_context(|| format!("cannot query the {}", server.name))?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if let Some(problem) = load::check_response(status, &bytes) {
            bail!(
                "the {} failed the check query ({first}): {problem}",
                server.name
            );
        }
        answers.push(bytes);
    }
    let (g, r) = (&answers[0], &answers[1]);
    if g == r {
        return Ok(true);
    }
    let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).ok();
    // serde_json's maps compare without regard to key order; arrays in order.
    if let (Some(gv), Some(rv)) = (parse(g), parse(r))
        && gv == rv
        && g.len() == r.len()
    {
        return Ok(false);
    }
    let at = g.iter().zip(r.iter()).take_while(|(a, b)| a == b).count();
    let around = |b: &[u8]| {
        let start = at.saturating_sub(80);
        String::from_utf8_lossy(&b[start..(at + 80).min(b.len())]).into_owned()
    };
    bail!(
        "the gateway and the reference answer different JSON ({first}; {} and {} bytes; first difference at byte {at}):\n  gateway:   …{}…\n  reference: …{}…",
        g.len(),
        r.len(),
        around(g),
        around(r)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_env_takes_key_value_and_refuses_the_harness_settings() {
        assert_eq!(
            parse_env("SQLITE_CACHE_KIB=512"),
            Ok(("SQLITE_CACHE_KIB".to_owned(), "512".to_owned()))
        );
        // Only the first `=` separates.
        assert_eq!(
            parse_env("RUST_LOG=a=debug"),
            Ok(("RUST_LOG".to_owned(), "a=debug".to_owned()))
        );
        assert!(parse_env("SQLITE_CACHE_KIB").is_err());
        assert!(parse_env("=512").is_err());
        assert!(parse_env("A B=1").is_err());
        for key in [
            "DB_MAX_CONNECTIONS",
            "RESPONSE_CACHE_MAX_BYTES",
            "AUTH0_DOMAIN",
        ] {
            let err = parse_env(&format!("{key}=1")).unwrap_err();
            assert!(err.contains("set by the harness"), "{err}");
        }
    }
}

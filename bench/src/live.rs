//! `music-gateway-bench live`: the live-updates benchmark of issue 17.
//!
//! One release gateway on PostgreSQL, many `graphql-transport-ws` sockets
//! (one subscription each: half the users' `me`, half `featuredPlaylists`),
//! then the time from a mutation to the subscriber's next message, for one
//! user's change and for a change of the featured playlist every
//! `featuredPlaylists` subscriber watches, with the gateway's SQL statements
//! per change from its `/metrics`.
//!
//! Kept apart from `run.rs` (the HTTP load test) on purpose: the two share
//! only the seeder, the token signer and the process helpers.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use chrono::Utc;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

use crate::{
    metrics::{self, SQL_STATEMENTS},
    procs::{ChildGuard, Memory, free_port, log_tail},
    seed::{self, SeedSpec},
    tokens::{LocalSigner, write_signing_key},
};

const LOCAL_ISSUER: &str = "music-gateway-local";
const LOCAL_AUDIENCE: &str = "music-gateway";

const ME_DOC: &str = "subscription { me { displayName songs(first: 10) { nodes { id name } } \
    playlists(first: 5) { nodes { id name plays } } } }";
const FEATURED_DOC: &str =
    "subscription { featuredPlaylists(first: 10) { nodes { id name plays featured } } }";

/// Set once the measurements are done, when sockets may close.
static FINISHED: AtomicBool = AtomicBool::new(false);

/// Arguments of `music-gateway-bench live`.
#[derive(Debug, Args)]
pub struct LiveArgs {
    /// The gateway's release binary.
    #[arg(long, default_value = "target/release/music-gateway")]
    pub gateway_bin: PathBuf,
    /// A PostgreSQL superuser URL; the run creates (and re-creates) its database there.
    #[arg(long, env = "MG_BENCH_POSTGRES_URL")]
    pub postgres_url: String,
    /// The database created for the run.
    #[arg(long, default_value = "mg_bench_live")]
    pub database: String,
    /// Where the report and the work files go.
    #[arg(long, default_value = "target/bench")]
    pub out_dir: PathBuf,
    /// Open subscriptions, one a WebSocket: half `me` (one a user), half
    /// `featuredPlaylists`.
    #[arg(long, default_value_t = 10_000)]
    pub subscriptions: u32,
    /// Repetitions of the one-user change.
    #[arg(long, default_value_t = 200)]
    pub user_changes: u32,
    /// Repetitions of the featured change.
    #[arg(long, default_value_t = 10)]
    pub featured_changes: u32,
    /// Sockets being opened at once.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// The gateway's DB_MAX_CONNECTIONS.
    #[arg(long, default_value_t = 10)]
    pub pool_size: u32,
}

/// What a socket's task reports.
struct Event {
    socket: usize,
    at: Instant,
    /// The first answer of the subscription, rather than a later one.
    first: bool,
}

/// `music-gateway-bench live`.
pub async fn main(mut args: LiveArgs) -> anyhow::Result<()> {
    raise_open_file_limit();
    // The gateway runs in the work directory, so relative paths would miss.
    args.gateway_bin = std::fs::canonicalize(&args.gateway_bin)
        .with_context(|| format!("no gateway binary at {}", args.gateway_bin.display()))?;
    std::fs::create_dir_all(&args.out_dir)?;
    args.out_dir = std::fs::canonicalize(&args.out_dir)?;
    let work = args.out_dir.join("work").join("live");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    let data_dir = work.join("data");
    std::fs::create_dir_all(&data_dir)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4)
        .build()?;

    // Users 0..n watch; user n owns the featured playlist, user n+1 is the
    // baseline (its changes wake nobody), so neither's own `me` fires.
    let me_subs = args.subscriptions.div_ceil(2);
    let featured_subs = args.subscriptions - me_subs;
    let watchers = me_subs.max(featured_subs);
    let spec = SeedSpec {
        prefix: "live".into(),
        users: watchers + 2,
        songs: 5,
        playlists: 1,
        songs_per_playlist: 5,
    };
    let owner = watchers;
    let baseline = watchers + 1;

    eprintln!("[live] database {} and seed", args.database);
    let url = create_postgres_database(&args.postgres_url, &args.database).await?;
    write_signing_key(&data_dir.join("signing-key.pem"))?;
    migrate(
        &args.gateway_bin,
        &url,
        &data_dir,
        &work.join("migrate.log"),
    )?;
    let synced_at = Utc::now();
    {
        let db = seed::connect(&url).await?;
        seed::seed(&db, &spec, synced_at).await?;
        db.execute_unprepared(&format!(
            "UPDATE playlists SET featured = true WHERE user_id = '{}'",
            spec.user_id(owner)
        ))
        .await?;
        db.close().await.ok();
    }

    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let mut command = Command::new(&args.gateway_bin);
    command
        .arg("serve")
        .current_dir(&work)
        .env_clear()
        .env("DATABASE_URL", &url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("DATA_DIR", &data_dir)
        .env("IDENTITY_MODE", "local")
        .env("DB_MAX_CONNECTIONS", args.pool_size.to_string())
        .env("PROFILE_TTL_SECONDS", "86400")
        // Room for every socket plus the harness's HTTP requests.
        .env(
            "LIVE_MAX_CONNECTIONS",
            (args.subscriptions + 100).to_string(),
        );
    let log = work.join("gateway.log");
    let mut gateway = ChildGuard::spawn("gateway", command, &log)?;
    gateway
        .wait_ready(&http, &format!("{base}/readyz"), Duration::from_secs(60))
        .await?;
    let pid = gateway.pid();
    let idle = Memory::read(pid)?;

    let jwks: Value = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let signer = LocalSigner::new(
        &data_dir.join("signing-key.pem"),
        &jwks,
        LOCAL_ISSUER,
        LOCAL_AUDIENCE,
    )?;
    eprintln!("[live] minting {} tokens", spec.users);
    let tokens: Arc<Vec<String>> = Arc::new(
        tokio::task::spawn_blocking({
            let ids = spec.user_ids();
            move || {
                let iat = synced_at.timestamp() - 60;
                let exp = Utc::now().timestamp() + 6 * 3600;
                ids.iter()
                    .map(|sub| signer.mint(sub, iat, exp))
                    .collect::<anyhow::Result<Vec<_>>>()
            }
        })
        .await??,
    );

    // Socket i < me_subs watches user i's `me`; the others watch the
    // featured connection as user (i - me_subs).
    let total = args.subscriptions as usize;
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let gate = Arc::new(Semaphore::new(args.connect_concurrency));
    let ws_url = format!("ws://127.0.0.1:{port}/graphql");
    eprintln!("[live] opening {total} subscriptions");
    let opening = Instant::now();
    for socket in 0..total {
        let (user, doc) = if socket < me_subs as usize {
            (socket, ME_DOC)
        } else {
            (socket - me_subs as usize, FEATURED_DOC)
        };
        let token = tokens[user].clone();
        let tx = events_tx.clone();
        let gate = gate.clone();
        let ws_url = ws_url.clone();
        tokio::spawn(async move {
            if let Err(e) = subscriber(socket, &ws_url, &token, doc, gate, tx).await
                && !FINISHED.load(Ordering::Relaxed)
            {
                eprintln!("[live] socket {socket}: {e:#}");
            }
        });
    }
    drop(events_tx);
    let mut ready = 0;
    while ready < total {
        let event = tokio::time::timeout(Duration::from_secs(120), events.recv())
            .await
            .with_context(|| {
                format!(
                    "only {ready} of {total} subscriptions answered; the gateway's log:\n{}",
                    log_tail(&log, 10)
                )
            })?
            .context("every socket ended")?;
        ensure!(
            event.first,
            "socket {} answered twice at start",
            event.socket
        );
        ready += 1;
    }
    let opened_in = opening.elapsed();
    gateway.check_running()?;
    // A moment for the gateway to settle, so VmRSS is the steady state.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let open = Memory::read(pid)?;
    eprintln!(
        "[live] {total} subscriptions answered in {:.1} s; VmHWM {} MiB",
        opened_in.as_secs_f64(),
        open.hwm_kib / 1024
    );

    let gql = Gql {
        http: &http,
        url: format!("{base}/graphql"),
    };
    let statements = || async { statements(&http, &base).await };

    // Baselines: the same mutations for users nobody watches.
    let baseline_token = &tokens[baseline as usize];
    let baseline_song = first_id(&gql, baseline_token, "songs").await?;
    let baseline_playlist = first_id(&gql, baseline_token, "playlists").await?;
    let reps = 20;
    let before = statements().await?;
    for i in 0..reps {
        rename_song(&gql, baseline_token, &baseline_song, &format!("b{i}")).await?;
    }
    let song_alone = (statements().await? - before) / f64::from(reps);
    let before = statements().await?;
    for i in 0..reps {
        rename_playlist(&gql, baseline_token, &baseline_playlist, &format!("b{i}")).await?;
    }
    let playlist_alone = (statements().await? - before) / f64::from(reps);

    // One user's change: user k renames a song of theirs; only socket k
    // should hear of it.
    eprintln!("[live] {} one-user changes", args.user_changes);
    let rotation = me_subs.min(20) as usize;
    let mut songs = Vec::with_capacity(rotation);
    for user in 0..rotation {
        songs.push(first_id(&gql, &tokens[user], "songs").await?);
    }
    let mut user_from_send = Vec::new();
    let mut user_from_answer = Vec::new();
    let mut user_statements = 0.0;
    let mut strays = 0u64;
    for i in 0..args.user_changes {
        let user = i as usize % rotation;
        let before = statements().await?;
        let sent = Instant::now();
        rename_song(&gql, &tokens[user], &songs[user], &format!("r{i}")).await?;
        let answered = Instant::now();
        loop {
            let event = next_event(&mut events, &log).await?;
            if event.socket == user {
                user_from_send.push(event.at - sent);
                user_from_answer.push(event.at.saturating_duration_since(answered));
                break;
            }
            strays += 1;
        }
        // Lets any late stray arrive before the next change's count.
        tokio::time::sleep(Duration::from_millis(20)).await;
        strays += drain(&mut events);
        user_statements += statements().await? - before;
    }
    let user_statements = user_statements / f64::from(args.user_changes);

    // The featured change: its owner renames it; every featuredPlaylists
    // socket should hear of it.
    eprintln!("[live] {} featured changes", args.featured_changes);
    let featured = first_id(&gql, &tokens[owner as usize], "playlists").await?;
    let mut featured_median = Vec::new();
    let mut featured_last = Vec::new();
    let mut featured_last_from_answer = Vec::new();
    let mut featured_statements = 0.0;
    for i in 0..args.featured_changes {
        let before = statements().await?;
        let sent = Instant::now();
        rename_playlist(&gql, &tokens[owner as usize], &featured, &format!("f{i}")).await?;
        let answered = Instant::now();
        let mut arrivals = Vec::with_capacity(featured_subs as usize);
        while arrivals.len() < featured_subs as usize {
            let event = next_event(&mut events, &log).await?;
            if event.socket >= me_subs as usize {
                arrivals.push(event.at - sent);
            } else {
                strays += 1;
            }
        }
        arrivals.sort();
        let last = *arrivals.last().unwrap_or(&Duration::ZERO);
        featured_median.push(percentile(&arrivals, 50.0));
        featured_last.push(last);
        featured_last_from_answer.push((sent + last).saturating_duration_since(answered));
        tokio::time::sleep(Duration::from_millis(200)).await;
        strays += drain(&mut events);
        featured_statements += statements().await? - before;
    }
    let featured_statements = featured_statements / f64::from(args.featured_changes);
    gateway.check_running()?;
    let end = Memory::read(pid)?;
    // Killing the gateway resets every socket: not worth a line each.
    FINISHED.store(true, Ordering::Relaxed);

    user_from_send.sort();
    user_from_answer.sort();
    featured_median.sort();
    featured_last.sort();
    featured_last_from_answer.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let mib = |kib: u64| format!("{:.0} MiB", kib as f64 / 1024.0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let report = format!(
        "# Live updates\n\n\
         One gateway (release, PostgreSQL, `DB_MAX_CONNECTIONS={pool}`), {total} \
         `graphql-transport-ws` sockets with one subscription each: {me_subs} users' `me` \
         (`{ME_DOC}`) and {featured_subs} `featuredPlaylists` (`{FEATURED_DOC}`). \
         {nproc} cores; load average at the end {load}.\n\n\
         | | |\n| --- | --- |\n\
         | subscriptions open, each with its first answer | {total} in {opened:.1} s |\n\
         | gateway RSS idle (before any socket) | {idle_rss} |\n\
         | gateway RSS with all open (VmRSS) | {open_rss} |\n\
         | gateway peak RSS (VmHWM) after opening | {open_hwm} |\n\
         | gateway peak RSS (VmHWM) at the end | {end_hwm} |\n\n\
         Commit-to-delivery, from sending the mutation over HTTP (its answer \
         comes after the commit) to the subscriber's `next` message; in brackets, \
         from the mutation's HTTP answer instead.\n\n\
         | change | repetitions | p50 | p99 | max | SQL statements a change (mutation alone) |\n\
         | --- | --- | --- | --- | --- | --- |\n\
         | one user's song renamed (`updateSong`), 1 subscriber | {uc} | {u50} ({ua50}) | {u99} ({ua99}) | {umax} | {us:.1} ({sa:.1}) |\n\
         | featured playlist renamed (`updatePlaylist`), median of {featured_subs} subscribers | {fc} | {f50} | {f99} | {fmax} | {fs:.1} ({pa:.1}) |\n\
         | the same, last of {featured_subs} subscribers | {fc} | {l50} ({la50}) | {l99} ({la99}) | {lmax} | |\n\n\
         Messages to sockets that should not have heard of a change: {strays}.\n",
        pool = args.pool_size,
        nproc = std::thread::available_parallelism().map_or(0, |n| n.get()),
        load = load.join(" "),
        opened = opened_in.as_secs_f64(),
        idle_rss = mib(idle.rss_kib),
        open_rss = mib(open.rss_kib),
        open_hwm = mib(open.hwm_kib),
        end_hwm = mib(end.hwm_kib),
        uc = args.user_changes,
        u50 = ms(percentile(&user_from_send, 50.0)),
        ua50 = ms(percentile(&user_from_answer, 50.0)),
        u99 = ms(percentile(&user_from_send, 99.0)),
        ua99 = ms(percentile(&user_from_answer, 99.0)),
        umax = ms(*user_from_send.last().unwrap_or(&Duration::ZERO)),
        us = user_statements,
        sa = song_alone,
        fc = args.featured_changes,
        f50 = ms(percentile(&featured_median, 50.0)),
        f99 = ms(percentile(&featured_median, 99.0)),
        fmax = ms(*featured_median.last().unwrap_or(&Duration::ZERO)),
        fs = featured_statements,
        pa = playlist_alone,
        l50 = ms(percentile(&featured_last, 50.0)),
        la50 = ms(percentile(&featured_last_from_answer, 50.0)),
        l99 = ms(percentile(&featured_last, 99.0)),
        la99 = ms(percentile(&featured_last_from_answer, 99.0)),
        lmax = ms(*featured_last.last().unwrap_or(&Duration::ZERO)),
    );
    let path = args.out_dir.join("live.md");
    std::fs::write(&path, &report)?;
    println!("{report}");
    eprintln!("[live] report {}", path.display());
    Ok(())
}

/// One socket: `connection_init`, one `subscribe`, then an [`Event`] per
/// `next` until the socket closes.
async fn subscriber(
    socket: usize,
    url: &str,
    token: &str,
    doc: &str,
    gate: Arc<Semaphore>,
    events: mpsc::UnboundedSender<Event>,
) -> anyhow::Result<()> {
    let mut ws = {
        let _permit = gate.acquire().await?;
        let mut request = url.into_client_request()?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
        let init = json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
        ws.send(Message::Text(init.to_string().into())).await?;
        let subscribe = json!({"type": "subscribe", "id": "1", "payload": {"query": doc}});
        ws.send(Message::Text(subscribe.to_string().into())).await?;
        ws
    };
    let mut first = true;
    while let Some(message) = ws.next().await {
        let at = Instant::now();
        let Message::Text(text) = message? else {
            continue;
        };
        let value: Value = serde_json::from_str(&text)?;
        match value["type"].as_str() {
            Some("next") => {
                if value["payload"]["errors"].is_array() {
                    bail!("an error answer: {}", value["payload"]);
                }
                let _ = events.send(Event { socket, at, first });
                first = false;
            }
            Some("ping") => {
                ws.send(Message::Text(json!({"type": "pong"}).to_string().into()))
                    .await?;
            }
            Some("error" | "complete") => bail!("the subscription ended: {value}"),
            _ => {}
        }
    }
    bail!("the socket closed")
}

async fn next_event(
    events: &mut mpsc::UnboundedReceiver<Event>,
    log: &Path,
) -> anyhow::Result<Event> {
    tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .with_context(|| {
            format!(
                "no delivery within 30 s; the gateway's log:\n{}",
                log_tail(log, 10)
            )
        })?
        .context("every socket ended")
}

fn drain(events: &mut mpsc::UnboundedReceiver<Event>) -> u64 {
    let mut n = 0;
    while events.try_recv().is_ok() {
        n += 1;
    }
    n
}

/// The value at `p` percent of sorted `values` (nearest rank).
fn percentile(values: &[Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

struct Gql<'a> {
    http: &'a reqwest::Client,
    url: String,
}

impl Gql<'_> {
    async fn post(&self, token: &str, query: &str, variables: Value) -> anyhow::Result<Value> {
        let answer: Value = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if answer["errors"].is_array() {
            bail!("GraphQL errors: {}", answer["errors"]);
        }
        Ok(answer["data"].clone())
    }
}

/// The id of the caller's first song or playlist (`field`).
async fn first_id(gql: &Gql<'_>, token: &str, field: &str) -> anyhow::Result<String> {
    let data = gql
        .post(
            token,
            &format!("{{ me {{ {field}(first: 1) {{ nodes {{ id }} }} }} }}"),
            json!({}),
        )
        .await?;
    data["me"][field]["nodes"][0]["id"]
        .as_str()
        .map(String::from)
        .with_context(|| format!("no {field} in {data}"))
}

async fn rename_song(gql: &Gql<'_>, token: &str, id: &str, name: &str) -> anyhow::Result<()> {
    gql.post(
        token,
        "mutation($id: ID!, $name: String!) { updateSong(id: $id, input: {name: $name}) { id } }",
        json!({"id": id, "name": name}),
    )
    .await
    .map(drop)
}

async fn rename_playlist(gql: &Gql<'_>, token: &str, id: &str, name: &str) -> anyhow::Result<()> {
    gql.post(
        token,
        "mutation($id: ID!, $name: String!) { updatePlaylist(id: $id, input: {name: $name}) { id } }",
        json!({"id": id, "name": name}),
    )
    .await
    .map(drop)
}

async fn statements(http: &reqwest::Client, base: &str) -> anyhow::Result<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    metrics::sample(&text, SQL_STATEMENTS)
        .with_context(|| format!("/metrics has no {SQL_STATEMENTS}"))
}

/// Both ends of every socket need a descriptor: the soft limit goes up to the
/// hard one, and the gateway, a child, inherits it.
fn raise_open_file_limit() {
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Creates (or re-creates) database `name` on the server of `base_url`.
async fn create_postgres_database(base_url: &str, name: &str) -> anyhow::Result<String> {
    let admin = seed::connect(base_url).await?;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    admin.close().await.ok();
    let mut url = reqwest::Url::parse(base_url).context("the PostgreSQL URL is not a URL")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

fn migrate(bin: &Path, url: &str, data_dir: &Path, log: &Path) -> anyhow::Result<()> {
    let output = Command::new(bin)
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", url)
        .env("DATA_DIR", data_dir)
        .output()
        .context("cannot run music-gateway migrate")?;
    std::fs::write(log, [&output.stdout[..], &output.stderr[..]].concat())?;
    ensure!(
        output.status.success(),
        "music-gateway migrate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&values, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&values[..1], 99.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}

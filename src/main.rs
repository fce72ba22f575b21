//! The `music-gateway` binary: parse the command line, set up logging, and
//! hand over to the library.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use music_gateway::{
    App,
    config::{Cli, Command, Config, ConfigError, IdentityMode, LogFormat, TokenArgs},
    db, demo, graphql, local_issuer, shutdown, telemetry,
};

// A GraphQL response is many small allocations; glibc's malloc took a fifth
// of the gateway's CPU under load in a profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v3's number for its purge delay option (`mi_option_e` in its
/// `mimalloc.h`); the `allocator_options_are_the_ones_meant` test checks it.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// How long the runtime's tasks get to be dropped once `run` is done. A
/// worker held by a task that never yields would keep a plain drop of the
/// runtime waiting for good; past this, the process exits without it.
const RUNTIME_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// mimalloc keeps freed pages for a second before returning them to the
/// system. Large answers come in bursts on several threads at once, and in
/// the load test's rows sweep that held the gateway's peak RSS near 105 MiB;
/// returning them after 2 ms (with arenas committed on demand, set at build
/// time in `.cargo/config.toml`, since it must hold before the first
/// allocation) brought it near 84 MiB, with the main load's throughput
/// unchanged. An operator's own `MIMALLOC_PURGE_DELAY` still wins.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set only stores a value in mimalloc's option
        // table, which it reads atomically; any option number is accepted.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 2) };
    }
    sqlite_allocates_with_mimalloc();
}

/// SQLite is C and would allocate with the C library's malloc. Each pooled
/// connection runs on a thread of its own, and glibc gives each thread an
/// arena that keeps what it once held (page caches, the JSON answers SQLite
/// builds): about 25 MiB of the gateway's RSS under load on SQLite. SQLite's
/// own hook for its allocator hands its memory to mimalloc, which returns
/// what is freed: the load test's peak RSS without the response cache went
/// from 72 to 64 MiB, and throughput did not fall.
fn sqlite_allocates_with_mimalloc() {
    use std::ffi::{c_int, c_void};

    use libsqlite3_sys as sqlite;

    // SQLite asks for sizes as positive ints, and reads sizes back the same way.
    unsafe extern "C" fn malloc(n: c_int) -> *mut c_void {
        // SAFETY: any size is valid for mi_malloc; a failure returns NULL, as SQLite expects.
        unsafe { libmimalloc_sys::mi_malloc(n.max(0) as usize) }
    }
    unsafe extern "C" fn free(p: *mut c_void) {
        // SAFETY: SQLite frees only what `malloc`/`realloc` above returned.
        unsafe { libmimalloc_sys::mi_free(p) }
    }
    unsafe extern "C" fn realloc(p: *mut c_void, n: c_int) -> *mut c_void {
        // SAFETY: as for `free`.
        unsafe { libmimalloc_sys::mi_realloc(p, n.max(0) as usize) }
    }
    unsafe extern "C" fn size(p: *mut c_void) -> c_int {
        // SAFETY: as for `free`; a block SQLite asked for fits an int.
        let n = unsafe { libmimalloc_sys::mi_usable_size(p) };
        c_int::try_from(n).unwrap_or(c_int::MAX)
    }
    unsafe extern "C" fn roundup(n: c_int) -> c_int {
        // SAFETY: mi_good_size only computes.
        let n = unsafe { libmimalloc_sys::mi_good_size(n.max(0) as usize) };
        c_int::try_from(n).unwrap_or(c_int::MAX)
    }
    unsafe extern "C" fn init(_: *mut c_void) -> c_int {
        sqlite::SQLITE_OK
    }
    unsafe extern "C" fn shutdown(_: *mut c_void) {}

    let methods = sqlite::sqlite3_mem_methods {
        xMalloc: Some(malloc),
        xFree: Some(free),
        xRealloc: Some(realloc),
        xSize: Some(size),
        xRoundup: Some(roundup),
        xInit: Some(init),
        xShutdown: Some(shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: called before any other thread exists and before SQLite is
    // initialized (the first connection does that), which is when
    // sqlite3_config may be called; SQLite copies the methods.
    let rc = unsafe { sqlite::sqlite3_config(sqlite::SQLITE_CONFIG_MALLOC, &methods) };
    if rc != sqlite::SQLITE_OK {
        // Only a misuse can fail it, and SQLite then keeps the C library's malloc.
        eprintln!("music-gateway: SQLite keeps its own allocator (sqlite3_config returned {rc})");
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let config = match cli.settings.validate() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("music-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    // Before the runtime: the trace exporter runs on a thread of its own.
    let logging = match telemetry::init_logging(config.log_format) {
        Ok(logging) => logging,
        Err(e) => {
            eprintln!("music-gateway: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("music-gateway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    logging.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("music-gateway: {e:#}");
            // A setting found wrong at start-up (a stage reading its file)
            // exits as one found wrong while parsing.
            if e.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Schema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Command::Migrate => {
            let (conn, _) = db::connect(
                &config.database_url,
                1,
                config.db_timeout,
                config.sqlite_cache_kib,
                config.sqlite_busy_timeout,
            )
            .await?;
            db::migrate(&conn, &config.database_url).await?;
            eprintln!("migrations applied to {}", db::redact(&config.database_url));
            Ok(())
        }
        Command::Token(args) => {
            println!("{}", mint(&config, &args).await?);
            Ok(())
        }
        Command::Demo => {
            require_local(&config, "demo")?;
            let app = App::build(config.clone()).await?;
            let added = demo::load(&app.state.services)
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            eprintln!(
                "{} for {}; a token for it (valid 24 h):",
                if added {
                    "demo data loaded"
                } else {
                    "demo data already present"
                },
                demo::DEMO_USER
            );
            let args = TokenArgs {
                sub: demo::DEMO_USER.into(),
                ttl: 86_400,
                scope: None,
                email: None,
                name: None,
            };
            println!("{}", mint(&config, &args).await?);
            Ok(())
        }
    }
}

fn require_local(config: &Config, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.identity_mode == IdentityMode::Local,
        "`{what}` works in the local identity mode only (IDENTITY_MODE=local)"
    );
    Ok(())
}

async fn mint(config: &Config, args: &TokenArgs) -> anyhow::Result<String> {
    require_local(config, "token")?;
    anyhow::ensure!(!args.sub.trim().is_empty(), "--sub must not be empty");
    let issuer = local_issuer(config).await?;
    let mut claims = serde_json::Map::new();
    if let Some(scope) = &args.scope {
        claims.insert("scope".into(), scope.clone().into());
    }
    if let Some(email) = &args.email {
        claims.insert("email".into(), email.clone().into());
    }
    if let Some(name) = &args.name {
        claims.insert("name".into(), name.clone().into());
    }
    issuer.mint(&args.sub, args.ttl, claims)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let addr = config.listen_addr;
    let local = config.identity_mode == IdentityMode::Local;
    // The hints are for a person at a terminal; a log collector reading JSON
    // lines gets the address from the "listening" event.
    let hints = config.log_format == LogFormat::Text;
    let database = db::redact(&config.database_url);
    // Before anything slow, so that a signal during start-up is heard too.
    let signals = shutdown::watch_signals(config.shutdown_grace)?;
    let app = App::build(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (LISTEN_ADDR)"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database, "music-gateway listening");
    if hints {
        eprintln!("GraphiQL:  http://{addr}/graphql");
    }
    if local && hints {
        eprintln!(
            "A token:   cargo run --release -- token --sub 'auth0|you'   (or `music-gateway token --sub ...`)"
        );
        eprintln!("Demo data: cargo run --release -- demo   (prints a token for the demo user)");
    }
    app.serve(listener, signals.requested()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI_OPTION_ARENA_EAGER_COMMIT: std::ffi::c_int = 4;

    #[test]
    fn allocator_options_are_the_ones_meant() {
        // Arenas committed on demand (the build's default, from
        // .cargo/config.toml), and the purge delay at mimalloc v3's default
        // of 1000 ms until main sets it; another numbering (another major
        // version) would read other options.
        // SAFETY: reading an option has no precondition.
        unsafe {
            assert_eq!(
                libmimalloc_sys::mi_option_get(MI_OPTION_ARENA_EAGER_COMMIT),
                0
            );
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 1000);
        }
    }

    #[test]
    fn sqlite_allocates_from_mimalloc() {
        // The only test of this binary that touches SQLite, so it is not
        // initialized yet and still takes the allocator.
        sqlite_allocates_with_mimalloc();
        // SAFETY: a plain allocation, freed below with SQLite's own free.
        unsafe {
            let p = libsqlite3_sys::sqlite3_malloc(1000);
            assert!(!p.is_null());
            assert!(libmimalloc_sys::mi_is_in_heap_region(p));
            libsqlite3_sys::sqlite3_free(p);
        }
    }
}

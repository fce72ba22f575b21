//! `music-gateway-bench`: the load test of music-gateway against a
//! hand-written reference handler (see `bench/README.md`).
//!
//! Subcommands:
//! - `seed`: bulk-inserts benchmark users, songs and playlists;
//! - `reference`: serves the hand-written `POST /graphql` handler;
//! - `load`: drives one URL with the full `me` query and prints latencies;
//! - `run`: the whole benchmark, as `scripts/bench` runs it;
//! - `report`: a finished run's report and plots, again from its results;
//! - `live`: the live-updates benchmark (`scripts/bench --live`).

mod live;
mod load;
mod metrics;
mod plot;
mod procs;
mod reference;
mod report;
mod run;
mod seed;
mod tokens;
mod wrk;

// The same fake the API tests use, compiled into the harness rather than
// copied, so the load test talks to exactly the Auth0 the tests trust.
#[allow(dead_code)]
#[path = "../../tests/api/fake_auth0.rs"]
mod fake_auth0;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "music-gateway-bench",
    about = "Load test of music-gateway against a hand-written reference handler"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bulk-insert benchmark users with songs and playlists (after `music-gateway migrate`).
    Seed(seed::SeedArgs),
    /// Serve the hand-written reference handler at `POST /graphql`.
    Reference(reference::ReferenceArgs),
    /// Drive one GraphQL URL with the full `me` query and report latencies.
    Load(load::LoadArgs),
    /// Run the whole benchmark and write the report and plots (what `scripts/bench` calls).
    Run(Box<run::RunArgs>),
    /// Write report.md and the plots again from a finished run's results.json.
    Report(run::ReportArgs),
    /// Open many subscriptions and time changes to their delivery (issue 17).
    Live(live::LiveArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("music-gateway-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Seed(args) => seed::main(args).await,
            Command::Reference(args) => reference::main(args).await,
            Command::Load(args) => load::main(args).await,
            Command::Run(args) => run::main(*args).await,
            Command::Report(args) => run::report_main(&args),
            Command::Live(args) => live::main(args).await,
        }
    });
    // Background tasks (the fake Auth0's server, connection tasks) must not
    // keep the process alive once the work is done.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("music-gateway-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

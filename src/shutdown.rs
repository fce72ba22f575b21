//! A shutdown that ends: after SIGTERM or SIGINT the process exits within
//! the grace period and [`EXIT_MARGIN`], whatever its requests are doing.
//!
//! The graceful path is [`crate::App::serve`]'s: stop accepting, give
//! requests in flight `SHUTDOWN_GRACE_SECONDS`, close what is still open;
//! then `main` shuts the runtime down with a time limit. All of that runs on
//! the async runtime, and so would tokio's own signal handling (its signals
//! and its timers are driven by whichever worker thread is free): a request
//! that holds every worker (work that never yields, a write to a stderr that
//! nobody reads) keeps the signal from being seen and the grace period from
//! ending, and dropping a runtime waits for its workers to come back.
//!
//! So the signals are read by threads of their own, outside the runtime: one
//! reads them and tells the server; another ends the process
//! `grace + EXIT_MARGIN` after the first signal, or at once on a second one,
//! if it is still running by then.

use std::{
    sync::mpsc::{self, RecvTimeoutError},
    time::{Duration, Instant},
};

/// Time past the grace period for the graceful path to finish (the runtime
/// shutting down, the last spans sent) before the process is ended anyway.
pub const EXIT_MARGIN: Duration = Duration::from_secs(3);

/// The exit status of a process ended with work still running.
pub const FORCED_EXIT_STATUS: i32 = 1;

/// Why the process is ended without waiting any longer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forced {
    /// The grace period and the margin after the first signal have passed.
    Deadline,
    /// A second signal came: whoever sent it wants the process gone now.
    SecondSignal,
}

/// The server's side of the signals: completes once one has come.
pub struct ShutdownSignal {
    requested: tokio::sync::watch::Receiver<bool>,
}

impl ShutdownSignal {
    /// Completes when SIGTERM or SIGINT has come.
    pub fn requested(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut requested = self.requested.clone();
        async move {
            if requested.wait_for(|requested| *requested).await.is_err() {
                // The reading thread is gone: no signal is coming this way.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Takes over SIGTERM and SIGINT for the rest of the process's life: the
/// first asks the server to stop (see [`ShutdownSignal::requested`]) and
/// starts the clock of `grace` plus [`EXIT_MARGIN`], past which the process
/// is ended; a second ends it at once. Call it once, before serving.
pub fn watch_signals(grace: Duration) -> anyhow::Result<ShutdownSignal> {
    let limit = grace + EXIT_MARGIN;
    let (requested_tx, requested) = tokio::sync::watch::channel(false);
    let (signals_tx, signals_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("shutdown-clock".into())
        .spawn(move || run_exit_clock(&signals_rx, limit, |forced| force_exit(forced, limit)))?;
    platform::read_signals(signals_tx, requested_tx, grace)?;
    Ok(ShutdownSignal { requested })
}

/// Waits for the first message of `signals`, then calls `exit` once `limit`
/// has passed after it, or at once on a second one. Returns without calling
/// it when no message can come.
fn run_exit_clock(signals: &mpsc::Receiver<()>, limit: Duration, exit: impl FnOnce(Forced)) {
    if signals.recv().is_err() {
        return;
    }
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return exit(Forced::Deadline);
        }
        match signals.recv_timeout(left) {
            Ok(()) => return exit(Forced::SecondSignal),
            Err(RecvTimeoutError::Timeout) => {}
            // The deadline still holds without anyone to send a second signal.
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(left),
        }
    }
}

/// Ends the process, saying why if the log can take it in a moment.
fn force_exit(forced: Forced, limit: Duration) -> ! {
    // Written by a thread of its own: when stderr is blocked (one of the
    // ways the workers get stuck), writing it here would block the exit too.
    let (logged_tx, logged) = mpsc::channel();
    let writer = std::thread::Builder::new()
        .name("shutdown-log".into())
        .spawn(move || {
            match forced {
                Forced::Deadline => tracing::error!(
                    limit_seconds = limit.as_secs_f64(),
                    "still running after the shutdown grace period and its margin: \
                     exiting without the requests in flight"
                ),
                Forced::SecondSignal => tracing::warn!(
                    "a second signal: exiting at once, without the requests in flight"
                ),
            }
            let _ = logged_tx.send(());
        });
    if writer.is_ok() {
        let _ = logged.recv_timeout(Duration::from_millis(500));
    }
    std::process::exit(FORCED_EXIT_STATUS);
}

#[cfg(unix)]
mod platform {
    use std::{
        io::{Read, Write},
        os::unix::net::UnixStream,
        sync::{OnceLock, mpsc},
        time::Duration,
    };

    /// Where the signal handlers write: one byte, the signal's number, per
    /// signal. A socket pair is what a handler may write to (`send` is
    /// async-signal-safe, and it never blocks, being non-blocking); it lives
    /// as long as the process.
    static SIGNALS: OnceLock<UnixStream> = OnceLock::new();

    pub(super) fn read_signals(
        clock: mpsc::Sender<()>,
        requested: tokio::sync::watch::Sender<bool>,
        grace: Duration,
    ) -> anyhow::Result<()> {
        let (mut reader, writer) = UnixStream::pair()?;
        writer.set_nonblocking(true)?;
        SIGNALS
            .set(writer)
            .map_err(|_| anyhow::anyhow!("the shutdown signals are already watched"))?;
        for signal in [libc::SIGTERM, libc::SIGINT] {
            // The handler's byte: both numbers are below 256.
            let byte = [u8::try_from(signal).unwrap_or(u8::MAX)];
            // SAFETY: the action is async-signal-safe: it reads a OnceLock
            // set above (an atomic load) and sends one byte on a
            // non-blocking socket, dropping any error; signal-hook-registry
            // keeps errno for the code the signal interrupted.
            unsafe {
                signal_hook_registry::register(signal, move || {
                    if let Some(mut writer) = SIGNALS.get() {
                        let _ = writer.write(&byte);
                    }
                })
            }?;
        }
        std::thread::Builder::new()
            .name("shutdown-signals".into())
            .spawn(move || {
                let mut byte = [0u8; 1];
                loop {
                    match reader.read(&mut byte) {
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot read the shutdown signals");
                            return;
                        }
                    }
                    // The clock first: nothing below may delay it.
                    let _ = clock.send(());
                    if !requested.send_replace(true) {
                        let signal = if i32::from(byte[0]) == libc::SIGINT {
                            "SIGINT"
                        } else {
                            "SIGTERM"
                        };
                        tracing::info!(
                            signal,
                            grace_seconds = grace.as_secs_f64(),
                            "shutting down: finishing requests in flight"
                        );
                    }
                }
            })?;
        Ok(())
    }
}

#[cfg(not(unix))]
mod platform {
    use std::{sync::mpsc, time::Duration};

    /// Ctrl-C through tokio, which needs a free worker to be seen; once it
    /// is, the clock runs on its own thread as on Unix.
    pub(super) fn read_signals(
        clock: mpsc::Sender<()>,
        requested: tokio::sync::watch::Sender<bool>,
        grace: Duration,
    ) -> anyhow::Result<()> {
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                let _ = clock.send(());
                if !requested.send_replace(true) {
                    tracing::info!(
                        grace_seconds = grace.as_secs_f64(),
                        "shutting down: finishing requests in flight"
                    );
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the clock on a thread; answers its sender and what it decided.
    fn clock(limit: Duration) -> (mpsc::Sender<()>, mpsc::Receiver<(Forced, Instant)>) {
        let (signals_tx, signals_rx) = mpsc::channel();
        let (exits_tx, exits) = mpsc::channel();
        std::thread::spawn(move || {
            run_exit_clock(&signals_rx, limit, |forced| {
                let _ = exits_tx.send((forced, Instant::now()));
            });
        });
        (signals_tx, exits)
    }

    #[test]
    fn the_clock_ends_the_process_once_the_limit_after_the_first_signal_passed() {
        let limit = Duration::from_millis(300);
        let (signals, exits) = clock(limit);
        let signalled = Instant::now();
        signals.send(()).unwrap();
        let (forced, at) = exits.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(forced, Forced::Deadline);
        assert!(at.duration_since(signalled) >= limit);
        assert!(exits.recv().is_err(), "the process is ended once");
    }

    #[test]
    fn a_second_signal_ends_the_process_at_once() {
        let (signals, exits) = clock(Duration::from_secs(3600));
        signals.send(()).unwrap();
        signals.send(()).unwrap();
        let (forced, _) = exits.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(forced, Forced::SecondSignal);
    }

    #[test]
    fn without_a_signal_the_clock_never_ends_the_process() {
        let (signals, exits) = clock(Duration::ZERO);
        drop(signals);
        // The clock returns without a word once no signal can come.
        assert_eq!(
            exits.recv_timeout(Duration::from_secs(30)),
            Err(RecvTimeoutError::Disconnected)
        );
    }

    #[test]
    fn the_deadline_holds_when_the_signal_reader_is_gone() {
        let limit = Duration::from_millis(200);
        let (signals, exits) = clock(limit);
        let signalled = Instant::now();
        signals.send(()).unwrap();
        drop(signals);
        let (forced, at) = exits.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(forced, Forced::Deadline);
        assert!(at.duration_since(signalled) >= limit);
    }
}

//! Child processes (the gateway, the reference) and their memory.
//!
//! Every child lives in a [`ChildGuard`], which kills it when dropped: on
//! success, on an error that unwinds the orchestration with `?`, and on
//! Ctrl-C (the orchestrator turns it into an error).

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// A running child process, killed on drop.
pub struct ChildGuard {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ChildGuard {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start the {name} ({:?})", command.get_program()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails, quoting the end of its log, if the process has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the {} exited ({status}); the end of {}:\n{}",
                self.name,
                self.log.display(),
                log_tail(&self.log, 20)
            );
        }
        Ok(())
    }

    /// Waits until `GET url` answers 200, failing if the process exits or
    /// `timeout` passes.
    pub async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        url: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            self.check_running()?;
            if let Ok(response) = http.get(url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!(
                    "the {} did not answer {url} within {timeout:?}; the end of {}:\n{}",
                    self.name,
                    self.log.display(),
                    log_tail(&self.log, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // SIGKILL: nothing the children hold needs a clean shutdown (the
        // databases are thrown away), and it cannot be ignored.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free local port")?;
    Ok(listener.local_addr()?.port())
}

/// Memory figures of a process, in KiB, from `/proc/PID/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// Peak resident set size since the process started (`VmHWM`).
    pub hwm_kib: u64,
    /// Resident set size now (`VmRSS`).
    pub rss_kib: u64,
}

impl Memory {
    /// Parses the `VmHWM` and `VmRSS` lines of `/proc/PID/status`.
    pub fn parse(status: &str) -> Option<Self> {
        let field = |name: &str| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix(name)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse::<u64>().ok()
            })
        };
        Some(Self {
            hwm_kib: field("VmHWM")?,
            rss_kib: field("VmRSS")?,
        })
    }

    /// Reads a process's memory now.
    pub fn read(pid: u32) -> anyhow::Result<Self> {
        let path = format!("/proc/{pid}/status");
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        Self::parse(&text).with_context(|| format!("{path} has no VmHWM/VmRSS"))
    }
}

/// Samples a process's resident set size in the background and keeps the
/// largest value seen.
pub struct RssSampler {
    max_rss_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    /// Starts sampling `pid` every `every`.
    pub fn start(pid: u32, every: Duration) -> Self {
        let max_rss_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let max_rss_kib = max_rss_kib.clone();
            let stop = stop.clone();
            async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(memory) = Memory::read(pid) {
                        max_rss_kib.fetch_max(memory.rss_kib, Ordering::Relaxed);
                    }
                    tokio::time::sleep(every).await;
                }
            }
        });
        Self {
            max_rss_kib,
            stop,
            task,
        }
    }

    /// Stops sampling and returns the largest RSS seen, in KiB.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.max_rss_kib.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_parsed_from_proc_status() {
        let status = "Name:\tmusic-gateway\nVmPeak:\t  200000 kB\nVmHWM:\t   41234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(
            Memory::parse(status),
            Some(Memory {
                hwm_kib: 41234,
                rss_kib: 40000
            })
        );
        assert_eq!(Memory::parse("Name:\tx\n"), None);
    }

    #[test]
    fn own_memory_is_readable() {
        let memory = Memory::read(std::process::id()).unwrap();
        assert!(memory.hwm_kib > 0 && memory.rss_kib > 0);
    }
}

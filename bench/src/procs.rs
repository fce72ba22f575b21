//! Child processes (the gateway, the reference) and their memory.
//!
//! Every child lives in a [`ChildGuard`], which kills it when dropped: on
//! success, on an error that unwinds the orchestration with `?`, and on
//! Ctrl-C (the orchestrator turns it into an error).

use std::{
    collections::HashMap,
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

/// CPU time a process has used, user and system, in clock ticks: fields 14
/// and 15 of `/proc/PID/stat`, over all its threads.
///
/// The command name (field 2) is in parentheses and may hold spaces and
/// parentheses itself, so the fields are counted from the last `)`.
pub fn parse_stat_cpu(stat: &str) -> Option<StatCpu> {
    let (_, rest) = stat.rsplit_once(')')?;
    // After the name: state (3), ppid (4), …, utime (14), stime (15),
    // cutime (16), cstime (17).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    Some(StatCpu {
        ppid: u32::try_from(num(4)?).ok()?,
        ticks: num(14)? + num(15)?,
    })
}

/// What the report needs of `/proc/PID/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatCpu {
    /// The parent process.
    pub ppid: u32,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
}

/// Reads `/proc/PID/stat`.
pub fn read_stat_cpu(pid: u32) -> anyhow::Result<StatCpu> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_stat_cpu(&text).with_context(|| format!("{path} has an unexpected format"))
}

/// Clock ticks a second of `/proc`'s CPU times (`getconf CLK_TCK`; 100,
/// the value Linux fixes for user space on common architectures, if
/// getconf is missing).
pub fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|&t| t > 0.0)
        .unwrap_or(100.0)
}

/// Whether a PostgreSQL process title (`/proc/PID/cmdline`) is one of the
/// server's own background processes rather than a backend serving a
/// client (or a parallel worker helping one). The title is
/// `postgres: [cluster_name: ]what`, e.g. `postgres: checkpointer` or
/// `postgres: postgres mg_bench_local 127.0.0.1(40312) idle`.
pub fn is_postgres_background(title: &str) -> bool {
    const BACKGROUND: &[&str] = &[
        "checkpointer",
        "background writer",
        "walwriter",
        "autovacuum",
        "logical replication",
        "stats collector",
        "archiver",
        "walsender",
        "walreceiver",
        "walsummarizer",
        "startup",
        "io worker",
    ];
    let title = title.replace('\0', " ");
    let what = title
        .trim()
        .strip_prefix("postgres:")
        .unwrap_or(&title)
        .trim();
    BACKGROUND.iter().any(|name| {
        what.starts_with(name)
            // After a cluster name: `postgres: main: checkpointer`.
            || what
                .split_once(": ")
                .is_some_and(|(_, rest)| rest.starts_with(name))
    })
}

/// A local PostgreSQL server whose processes this machine can see: its
/// postmaster's pid.
#[derive(Clone, Copy, Debug)]
pub struct PostgresServer {
    postmaster: u32,
}

/// The CPU of a PostgreSQL server's processes at one moment, in ticks,
/// by process: a difference between two moments is taken process by
/// process, so a backend that exits in between (an idle connection closed
/// by its pool) takes away only its own last moments, not its whole past.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PostgresCpu {
    /// Backends serving clients (and parallel workers), alive now.
    pub backends: HashMap<u32, u64>,
    /// The postmaster, its background processes, and the children that
    /// have exited (the postmaster's cutime + cstime, under its own pid).
    pub other: HashMap<u32, u64>,
}

impl PostgresCpu {
    /// Ticks used from `before` to `self` by (backends, other processes).
    pub fn since(&self, before: &Self) -> (u64, u64) {
        let used = |now: &HashMap<u32, u64>, then: &HashMap<u32, u64>| {
            now.iter()
                .map(|(pid, &ticks)| ticks.saturating_sub(then.get(pid).copied().unwrap_or(0)))
                .sum()
        };
        (
            used(&self.backends, &before.backends),
            used(&self.other, &before.other),
        )
    }
}

impl PostgresServer {
    /// Finds the server of one of its backends: `backend_pid` is
    /// `pg_backend_pid()` of a connection, `data_directory` the server's
    /// setting. Fails, saying why, when the server is not a process of this
    /// machine (another host, a container's pid namespace).
    pub fn find(backend_pid: u32, data_directory: &str) -> anyhow::Result<Self> {
        let comm = |pid: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim().to_owned())
                .unwrap_or_default()
        };
        let backend = read_stat_cpu(backend_pid)
            .map_err(|_| anyhow::anyhow!("no local process {backend_pid} (the backend's pid)"))?;
        let postmaster = backend.ppid;
        if comm(backend_pid) != "postgres" || comm(postmaster) != "postgres" {
            bail!("process {backend_pid} of this machine is not a PostgreSQL backend");
        }
        // The postmaster runs in its data directory: a check that the pid
        // is the server's and not a namesake's, where /proc lets us look.
        if let Ok(cwd) = std::fs::read_link(format!("/proc/{postmaster}/cwd"))
            && !data_directory.is_empty()
            && Path::new(data_directory) != cwd
        {
            bail!(
                "process {postmaster} runs in {}, not in the server's data directory {data_directory}",
                cwd.display()
            );
        }
        Ok(Self { postmaster })
    }

    /// The server's CPU now: its postmaster's children, found by parent pid.
    pub fn cpu(&self) -> anyhow::Result<PostgresCpu> {
        let path = format!("/proc/{}/stat", self.postmaster);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {path}: has the server stopped?"))?;
        let own = parse_stat_cpu(&text).context("unexpected /proc stat format")?;
        let mut cpu = PostgresCpu::default();
        cpu.other.insert(
            self.postmaster,
            own.ticks + reaped_children_ticks(&text).unwrap_or(0),
        );
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // A process may exit between the listing and the read.
            let Ok(stat) = read_stat_cpu(pid) else {
                continue;
            };
            if stat.ppid != self.postmaster {
                continue;
            }
            let title = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let kind = if is_postgres_background(&title) {
                &mut cpu.other
            } else {
                &mut cpu.backends
            };
            kind.insert(pid, stat.ticks);
        }
        Ok(cpu)
    }
}

/// cutime + cstime (fields 16 and 17) of a `/proc/PID/stat`.
fn reaped_children_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    Some(num(16)? + num(17)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (tokio (rt) x) S 17 4242 4242 0 -1 4194560 1234 0 0 0 250 75 3 4 20 0 9 0 123456 987654321 5000 18446744073709551615";

    #[test]
    fn cpu_time_is_utime_plus_stime_counted_after_the_name() {
        // The name holds spaces and a parenthesis: fields count from the last `)`.
        assert_eq!(
            parse_stat_cpu(STAT),
            Some(StatCpu {
                ppid: 17,
                ticks: 325
            })
        );
        assert_eq!(reaped_children_ticks(STAT), Some(7));
        assert_eq!(parse_stat_cpu("4242 (x) S 1 2 3"), None);
        assert_eq!(parse_stat_cpu("garbage"), None);
    }

    #[test]
    fn own_cpu_time_is_readable_and_grows() {
        let before = read_stat_cpu(std::process::id()).unwrap();
        // Work until the counter moves (a tick is 10 ms of CPU), however
        // busy the machine; bounded, so a counter that never moves fails.
        let start = Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after.ticks == before.ticks && start.elapsed() < Duration::from_secs(20) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            after = read_stat_cpu(std::process::id()).unwrap();
        }
        assert!(after.ticks > before.ticks, "{before:?} then {after:?}");
        assert_eq!(after.ppid, before.ppid);
        assert!(clock_ticks_per_second() > 0.0);
    }

    #[test]
    fn postgres_background_processes_are_told_from_backends() {
        for title in [
            "postgres: checkpointer ",
            "postgres: background writer ",
            "postgres: autovacuum worker mg_bench_local",
            "postgres: main: walwriter ",
            "postgres: logical replication launcher ",
        ] {
            assert!(is_postgres_background(title), "{title}");
        }
        for title in [
            "postgres: postgres mg_bench_local 127.0.0.1(40312) idle",
            "postgres: postgres mg_bench_local [local] SELECT",
            "postgres: parallel worker for PID 1234 ",
            "postgres: main: postgres mg_bench_auth0 127.0.0.1(40312) idle",
        ] {
            assert!(!is_postgres_background(title), "{title}");
        }
    }

    #[test]
    fn postgres_cpu_is_the_difference_process_by_process() {
        let at = |backends: &[(u32, u64)], other: &[(u32, u64)]| PostgresCpu {
            backends: backends.iter().copied().collect(),
            other: other.iter().copied().collect(),
        };
        // Backend 11 worked 30 ticks, 12 exited (its past is not subtracted
        // from the others'), 13 started and worked 5; the postmaster 1.
        let before = at(&[(11, 100), (12, 5000)], &[(1, 40)]);
        let after = at(&[(11, 130), (13, 5)], &[(1, 41), (2, 3)]);
        assert_eq!(after.since(&before), (35, 4));
    }

    #[test]
    fn a_process_that_is_not_postgres_is_not_taken_for_its_server() {
        let err = PostgresServer::find(std::process::id(), "/nowhere").unwrap_err();
        assert!(
            err.to_string().contains("not a PostgreSQL backend"),
            "{err}"
        );
        assert!(PostgresServer::find(u32::MAX, "/nowhere").is_err());
    }

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

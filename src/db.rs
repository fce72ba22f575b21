//! Database connection, migrations and the statement counter.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::error::{AppError, AppResult};

/// Counts every SQL statement the gateway sends. Tests and `/metrics` read it
/// to show that a query's cost does not grow with the number of rows.
#[derive(Clone, Debug, Default)]
pub struct StatementCounter(Arc<AtomicU64>);

impl StatementCounter {
    /// Statements sent since start-up.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// `SQLITE_CACHE_KIB`'s default: the page cache of each SQLite connection.
///
/// SQLite's own default is 2 MiB a connection. The operating system's page
/// cache already holds the file, and each pooled connection would keep a
/// copy of its own of the pages it read last: with ten connections, up to
/// 20 MiB of the gateway's memory. 256 KiB still holds the upper levels of
/// the indexes every read walks; in the load test (2,000 users, 123 MB of
/// database) it took about 18 MiB off the gateway's peak RSS with no change
/// of throughput that the run-to-run noise did not hide.
pub const DEFAULT_SQLITE_CACHE_KIB: u32 = 256;

/// `SQLITE_BUSY_TIMEOUT_MS`'s default: how long a SQLite write waits for
/// another connection's write lock.
///
/// SQLite has one writer at a time; every other writer waits in SQLite's
/// busy handler, on its pooled connection, until the lock is free or this
/// time has passed (then the write answers `CONFLICT`). The gateway's write
/// transactions are a few statements long and never wait on the network
/// while they hold the lock, so a wait this long means the database is
/// overloaded; it is sqlx's default, written down here so that it is a
/// decision rather than an accident.
pub const DEFAULT_SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `url`, creating the SQLite file and its directory if needed.
/// On SQLite each connection gets a page cache of `sqlite_cache_kib` KiB and
/// waits up to `sqlite_busy_timeout` for the write lock.
pub async fn connect(
    url: &str,
    max_connections: u32,
    timeout: Duration,
    sqlite_cache_kib: u32,
    sqlite_busy_timeout: Duration,
) -> anyhow::Result<(DatabaseConnection, StatementCounter)> {
    if let Some(path) = sqlite_path(url)
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(timeout)
        .acquire_timeout(timeout)
        // sqlx pings every connection it hands out (its default), a round
        // trip before each request's one statement. Pinging only idle ones
        // (`test_before_acquire_if_idle_for`) was measured faster, but then
        // a connection PostgreSQL dropped in a restart is handed out again
        // and a live query retrying on it never recovers
        // (live::postgres_restarted_under_open_subscriptions): kept.
        .sqlx_logging(false);
    // A negative cache_size is a size in KiB rather than in pages.
    options.map_sqlx_sqlite_opts(move |o| {
        o.pragma("cache_size", format!("-{sqlite_cache_kib}"))
            .busy_timeout(sqlite_busy_timeout)
    });
    let mut db = Database::connect(options)
        .await
        .with_context(|| format!("cannot connect to the database at {}", redact(url)))?;
    if db.get_database_backend() == DbBackend::Sqlite {
        // WAL lets readers proceed while a writer commits; the setting is kept in the file.
        db.execute_unprepared("PRAGMA journal_mode = WAL")
            .await
            .context("cannot switch SQLite to WAL")?;
    }
    let counter = StatementCounter::default();
    let inner = counter.0.clone();
    db.set_metric_callback(move |_info| {
        inner.fetch_add(1, Ordering::Relaxed);
    });
    Ok((db, counter))
}

/// Begins a transaction that may write; every writing transaction of the
/// gateway begins here.
///
/// On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`), waiting for
/// it up to the busy timeout. A deferred transaction (a plain `BEGIN`) that
/// reads first and writes later cannot wait when it comes to write: SQLite
/// refuses at once with `SQLITE_BUSY` while another connection writes, or
/// `SQLITE_BUSY_SNAPSHOT` when one committed after its first read, since
/// waiting could not make its snapshot current again.
///
/// On PostgreSQL it is a plain `BEGIN` (read committed); writers of one user
/// take turns on the user's row ([`crate::profile::lock_user`]).
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// How many times a write transaction runs at most when the database
/// rolls it back for running into a concurrent one.
const WRITE_ATTEMPTS: u32 = 3;

/// Runs `attempt` (one whole write transaction, from [`begin_write`] to its
/// commit) again when the database rolled it back so that it runs again
/// (a deadlock victim, a serialization failure; see
/// [`crate::error::Race`]), a few times, after a short random pause so that
/// the writers that collided do not collide again. A lock that was not had
/// within the busy timeout is not waited for twice: that answers
/// `CONFLICT` at once, as does the last failed attempt.
pub async fn retry_races<T, F, Fut>(mut attempt: F) -> AppResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = AppResult<T>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(AppError::Conflict { retry_now: true }) if tries < WRITE_ATTEMPTS => {
                let pause = Duration::from_millis(5 * u64::from(tries))
                    + Duration::from_millis(rand::random::<u64>() % 10);
                tracing::debug!(
                    tries,
                    "a write transaction ran into a concurrent one; running it again"
                );
                tokio::time::sleep(pause).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// Key of the PostgreSQL advisory lock that migrations run under (any
/// fixed number; this one spells "musicgw" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x006d_7573_6963_6777;

/// Applies every pending migration on the database at `url`, under a lock
/// that every instance takes, so that any number of instances starting at
/// once take turns: the first applies them, the others find them applied and
/// go on.
///
/// On PostgreSQL the lock is a transaction-scoped advisory lock taken in the
/// transaction the migrations run in, released by its commit or, when an
/// instance crashes, by the server as the connection drops. A SQLite file can
/// only be shared by processes of one machine, and SQLite waits for another
/// writer no longer than the busy timeout, which applying migrations may
/// outlast, so there the lock is an exclusive lock on a file beside the
/// database, which the OS releases when a process dies. The transaction
/// itself also takes SQLite's write lock when it begins, so that a running
/// instance's writes cannot fail it halfway.
pub async fn migrate(db: &DatabaseConnection, url: &str) -> anyhow::Result<()> {
    let _file_lock = match sqlite_path(url) {
        Some(path) => Some(lock_file(format!("{path}.migrate-lock")).await?),
        None => None,
    };
    let txn = begin_write(db)
        .await
        .context("database migration failed: cannot begin a transaction")?;
    if db.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(&format!(
            "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
        ))
        .await
        .context("database migration failed: cannot take the migration lock")?;
    }
    Migrator::up(&txn, None)
        .await
        .context("database migration failed")?;
    txn.commit()
        .await
        .context("database migration failed: cannot commit")
}

/// Opens `path` and waits for an exclusive lock on it, held until the file is dropped.
async fn lock_file(path: String) -> anyhow::Result<std::fs::File> {
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the migration lock file {path}"))?;
        file.lock()
            .with_context(|| format!("cannot lock the migration lock file {path}"))?;
        Ok(file)
    })
    .await
    .context("the migration lock task failed")?
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..scheme_end], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/music"),
            "postgres://app:***@db:5432/music"
        );
        assert_eq!(
            redact("sqlite://./data/music.db?mode=rwc"),
            "sqlite://./data/music.db?mode=rwc"
        );
    }

    #[test]
    fn sqlite_path_is_taken_from_the_url() {
        assert_eq!(
            sqlite_path("sqlite://./data/music.db?mode=rwc"),
            Some("./data/music.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x"), None);
    }

    #[tokio::test]
    async fn every_sqlite_connection_gets_the_page_cache_asked_for() {
        use sea_orm::Statement;

        let dir = tempfile::TempDir::new().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
        let (db, _) = connect(
            &url,
            3,
            Duration::from_secs(5),
            300,
            DEFAULT_SQLITE_BUSY_TIMEOUT,
        )
        .await
        .unwrap();
        // Three transactions held at once take three connections of the pool.
        let mut held = Vec::new();
        for _ in 0..3 {
            let txn = db.begin().await.unwrap();
            let row = txn
                .query_one_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    "PRAGMA cache_size",
                ))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), -300);
            held.push(txn);
        }
    }

    async fn sqlite_with_table(busy_timeout: Duration) -> (DatabaseConnection, tempfile::TempDir) {
        let dir = tempfile::TempDir::new().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
        let (db, _) = connect(&url, 3, Duration::from_secs(5), 300, busy_timeout)
            .await
            .unwrap();
        db.execute_unprepared("CREATE TABLE t (x INTEGER)")
            .await
            .unwrap();
        (db, dir)
    }

    fn conflict(err: DbErr) -> Option<bool> {
        match AppError::from(err) {
            AppError::Conflict { retry_now } => Some(retry_now),
            _ => None,
        }
    }

    /// Why every writing transaction begins with `begin_write`: a deferred
    /// one that read before another connection committed cannot write.
    #[tokio::test]
    async fn a_deferred_transaction_that_read_cannot_write_after_another_commit() {
        let (db, _dir) = sqlite_with_table(DEFAULT_SQLITE_BUSY_TIMEOUT).await;
        let txn = db.begin().await.unwrap();
        txn.execute_unprepared("SELECT COUNT(*) FROM t")
            .await
            .unwrap();
        db.execute_unprepared("INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        let err = txn
            .execute_unprepared("INSERT INTO t VALUES (2)")
            .await
            .unwrap_err();
        assert_eq!(conflict(err), Some(true), "SQLITE_BUSY_SNAPSHOT runs again");
    }

    #[tokio::test]
    async fn a_write_transaction_waits_for_the_one_before_it() {
        let (db, _dir) = sqlite_with_table(DEFAULT_SQLITE_BUSY_TIMEOUT).await;
        let first = begin_write(&db).await.unwrap();
        first
            .execute_unprepared("INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        let mut second = tokio::spawn({
            let db = db.clone();
            async move {
                let txn = begin_write(&db).await?;
                txn.execute_unprepared("SELECT COUNT(*) FROM t").await?;
                txn.execute_unprepared("INSERT INTO t VALUES (2)").await?;
                txn.commit().await
            }
        });
        // However long this looks, the second cannot finish while the first holds the lock.
        let early = tokio::time::timeout(Duration::from_millis(50), &mut second).await;
        assert!(early.is_err(), "the second write did not wait: {early:?}");
        first.commit().await.unwrap();
        second.await.unwrap().unwrap();
        let rows = db
            .query_one_raw(sea_orm::Statement::from_string(
                DbBackend::Sqlite,
                "SELECT COUNT(*) FROM t",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rows.try_get_by_index::<i64>(0).unwrap(), 2);
    }

    #[tokio::test]
    async fn a_write_that_waits_past_the_busy_timeout_answers_conflict() {
        let (db, _dir) = sqlite_with_table(Duration::from_millis(20)).await;
        let _first = begin_write(&db).await.unwrap();
        let err = begin_write(&db).await.unwrap_err();
        assert_eq!(
            conflict(err),
            Some(false),
            "a lock timeout is not waited for twice"
        );
    }

    #[tokio::test]
    async fn lost_races_run_again_a_few_times_and_lock_timeouts_not_at_all() {
        let mut tries = 0;
        let answer: AppResult<()> = retry_races(|| {
            tries += 1;
            async { Err(AppError::Conflict { retry_now: true }) }
        })
        .await;
        assert!(matches!(answer, Err(AppError::Conflict { .. })));
        assert_eq!(tries, WRITE_ATTEMPTS);

        let mut tries = 0;
        let answer = retry_races(|| {
            tries += 1;
            async move {
                if tries < 2 {
                    Err(AppError::Conflict { retry_now: true })
                } else {
                    Ok(tries)
                }
            }
        })
        .await;
        assert!(matches!(answer, Ok(2)));

        let mut tries = 0;
        let answer: AppResult<()> = retry_races(|| {
            tries += 1;
            async { Err(AppError::Conflict { retry_now: false }) }
        })
        .await;
        assert!(matches!(answer, Err(AppError::Conflict { .. })));
        assert_eq!(tries, 1);
    }
}

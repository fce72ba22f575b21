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
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, TransactionTrait,
};

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

/// Connects to `url`, creating the SQLite file and its directory if needed.
/// On SQLite each connection gets a page cache of `sqlite_cache_kib` KiB.
pub async fn connect(
    url: &str,
    max_connections: u32,
    timeout: Duration,
    sqlite_cache_kib: u32,
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
        .sqlx_logging(false);
    // A negative cache_size is a size in KiB rather than in pages.
    options.map_sqlx_sqlite_opts(move |o| o.pragma("cache_size", format!("-{sqlite_cache_kib}")));
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
/// only be shared by processes of one machine, and a SQLite transaction that
/// begins by reading cannot wait for another writer (it fails with
/// `SQLITE_BUSY` instead), so there the lock is an exclusive lock on a file
/// beside the database, which the OS releases when a process dies.
pub async fn migrate(db: &DatabaseConnection, url: &str) -> anyhow::Result<()> {
    let _file_lock = match sqlite_path(url) {
        Some(path) => Some(lock_file(format!("{path}.migrate-lock")).await?),
        None => None,
    };
    let txn = db
        .begin()
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
        let (db, _) = connect(&url, 3, Duration::from_secs(5), 300).await.unwrap();
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
}

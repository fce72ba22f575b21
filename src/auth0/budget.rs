//! The one rate budget all Management API calls share, across instances.
//!
//! Auth0 limits Management API requests per tenant (2 a second on the free
//! tier), whatever the number of gateway instances. The budget is a token
//! bucket kept in one database row (`mgmt_budget`), which every instance
//! spends from with one atomic `UPDATE … RETURNING` before every call, so N
//! instances together stay within the configured rate and burst. A 429 that
//! Auth0 sends anyway (another client of the tenant spent its bucket) empties
//! the shared bucket and pauses it until Auth0's reset, for every instance.
//!
//! The gateway runs at 90% of the configured rate: the requests reach Auth0
//! after network delays that vary, and the margin keeps two requests sent a
//! full interval apart from arriving closer than Auth0's own bucket allows.
//!
//! Time is the database server's clock on PostgreSQL, so instances on hosts
//! whose clocks disagree still share one bucket; a SQLite file is shared by
//! processes of one host only, whose clock it reads.

use std::time::{Duration, Instant};

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult,
    sea_query::{Expr, OnConflict, Query},
};

use crate::sql::{greatest, least, now_seconds};

/// The bucket's table and its one row.
const TABLE: &str = "mgmt_budget";
const ROW: i32 = 1;

/// Share of the configured rate the gateway uses.
const SAFETY_MARGIN: f64 = 0.9;

/// Longest sleep between two looks at the bucket while waiting: another
/// instance's pause may end, or a 429 may start one.
const MAX_POLL: Duration = Duration::from_millis(500);

/// A token bucket in the database.
#[derive(Debug, Clone)]
pub struct RateBudget {
    db: DatabaseConnection,
    rate: f64,
    burst: f64,
}

#[derive(Debug, FromQueryResult)]
struct Bucket {
    tokens: f64,
    updated_at: f64,
    paused_until: f64,
    now: f64,
}

/// Why a token could not be taken.
#[derive(Debug)]
pub enum Refusal {
    /// None is available before this long.
    Wait(Duration),
    /// The database could not be asked; no call may be made.
    Database(DbErr),
}

impl RateBudget {
    /// The shared bucket on `db`, refilling at `rate_per_second` and holding
    /// at most `burst`. Every instance should be configured alike; each
    /// spends at the rate it is configured with.
    pub fn new(db: DatabaseConnection, rate_per_second: f64, burst: u32) -> Self {
        Self {
            db,
            rate: rate_per_second * SAFETY_MARGIN,
            burst: f64::from(burst.max(1)),
        }
    }

    /// Takes a token if one is available now; otherwise how long until one is.
    async fn take(&self) -> Result<(), Refusal> {
        match self.try_take().await? {
            Some(bucket) => Err(Refusal::Wait(self.wait_for(&bucket))),
            None => Ok(()),
        }
    }

    /// Takes a token, or answers the bucket that had none. The first call on
    /// a database creates a full bucket (whichever instance gets there first)
    /// and spends from it as usual.
    async fn try_take(&self) -> Result<Option<Bucket>, Refusal> {
        use sea_orm::sea_query::ExprTrait;

        let backend = self.db.get_database_backend();
        let now = now_seconds(backend);
        // The tokens now: refilled at the rate since the last update, at most
        // the burst.
        let filled = least(
            self.burst,
            Expr::col("tokens")
                .add(greatest(0.0, now.clone().sub(Expr::col("updated_at"))).mul(self.rate)),
        );
        let take = backend.build(
            Query::update()
                .table(TABLE)
                .value("tokens", filled.clone().sub(1.0))
                .value("updated_at", greatest(Expr::col("updated_at"), now.clone()))
                .and_where(Expr::col("id").eq(ROW))
                .and_where(Expr::col("paused_until").lte(now.clone()))
                .and_where(filled.gte(1.0)),
        );
        let look = backend.build(
            Query::select()
                .columns(["tokens", "updated_at", "paused_until"])
                .expr_as(now.clone(), "now")
                .from(TABLE)
                .and_where(Expr::col("id").eq(ROW)),
        );
        let create = backend.build(
            Query::insert()
                .into_table(TABLE)
                .columns(["id", "tokens", "updated_at", "paused_until"])
                .values_panic([ROW.into(), self.burst.into(), now, 0.0.into()])
                .on_conflict(OnConflict::column("id").do_nothing().to_owned()),
        );
        for _ in 0..2 {
            let taken = self
                .db
                .execute_raw(take.clone())
                .await
                .map_err(Refusal::Database)?;
            if taken.rows_affected() == 1 {
                return Ok(None);
            }
            let bucket = Bucket::find_by_statement(look.clone())
                .one(&self.db)
                .await
                .map_err(Refusal::Database)?;
            if let Some(bucket) = bucket {
                return Ok(Some(bucket));
            }
            self.db
                .execute_raw(create.clone())
                .await
                .map_err(Refusal::Database)?;
        }
        Err(Refusal::Database(DbErr::Custom(
            "the Management API budget row cannot be created".into(),
        )))
    }

    fn wait_for(&self, b: &Bucket) -> Duration {
        let paused = (b.paused_until - b.now).max(0.0);
        let filled = (b.tokens + (b.now - b.updated_at).max(0.0) * self.rate).min(self.burst);
        let refill = ((1.0 - filled) / self.rate).max(0.0);
        Duration::from_secs_f64(paused.max(refill).min(3600.0))
    }

    /// Takes a token if one is available now. A database that cannot be
    /// asked answers no: no call goes out unbudgeted.
    pub async fn try_acquire(&self) -> bool {
        match self.take().await {
            Ok(()) => true,
            Err(Refusal::Wait(_)) => false,
            Err(Refusal::Database(e)) => {
                tracing::warn!(error = %e, "cannot read the Management API budget");
                false
            }
        }
    }

    /// Waits for a token and takes it; answers how long it waited. Gives up
    /// (answering `None`) once `deadline` is past without a token.
    pub async fn acquire_until(&self, deadline: Option<Instant>) -> Option<Duration> {
        let start = Instant::now();
        loop {
            let wait = match self.take().await {
                Ok(()) => {
                    let waited = start.elapsed();
                    crate::telemetry::record_budget_wait(waited);
                    return Some(waited);
                }
                Err(Refusal::Wait(wait)) => wait,
                Err(Refusal::Database(e)) => {
                    tracing::warn!(error = %e, "cannot read the Management API budget; retrying");
                    Duration::from_millis(200)
                }
            };
            // Waiters on several instances wake at slightly different times
            // rather than all at the refill instant.
            let jitter = Duration::from_millis(rand::random::<u64>() % 20);
            let sleep = wait.min(MAX_POLL) + jitter;
            if let Some(deadline) = deadline
                && Instant::now() + sleep > deadline
            {
                return None;
            }
            tokio::time::sleep(sleep).await;
        }
    }

    /// Waits for a token and takes it; answers how long it waited.
    pub async fn acquire(&self) -> Duration {
        self.acquire_until(None)
            .await
            .unwrap_or_else(|| Duration::from_secs(0))
    }

    /// Spends nothing for `wait`, and starts again from an empty bucket:
    /// Auth0 said 429, so its bucket is empty whatever ours believed. Every
    /// instance sees the pause.
    pub async fn pause_for(&self, wait: Duration) {
        use sea_orm::sea_query::ExprTrait;

        let backend = self.db.get_database_backend();
        let secs = wait.as_secs_f64();
        let until = now_seconds(backend).add(secs);
        let pause = backend.build(
            Query::update()
                .table(TABLE)
                .value("tokens", 0.0)
                .value(
                    "paused_until",
                    greatest(Expr::col("paused_until"), until.clone()),
                )
                .value("updated_at", greatest(Expr::col("updated_at"), until))
                .and_where(Expr::col("id").eq(ROW)),
        );
        if let Err(e) = self.db.execute_raw(pause).await {
            tracing::warn!(error = %e, "cannot pause the Management API budget");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn budget(rate: f64, burst: u32) -> (RateBudget, tempfile::TempDir) {
        let dir = tempfile::TempDir::new().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("b.db").display());
        let (db, _) = crate::db::connect(
            &url,
            2,
            Duration::from_secs(5),
            crate::db::DEFAULT_SQLITE_CACHE_KIB,
            crate::db::DEFAULT_SQLITE_BUSY_TIMEOUT,
        )
        .await
        .unwrap();
        crate::db::migrate(&db, &url).await.unwrap();
        (RateBudget::new(db, rate, burst), dir)
    }

    #[tokio::test]
    async fn a_full_bucket_gives_its_burst_and_then_nothing() {
        let (budget, _dir) = budget(1.0, 3).await;
        assert!(budget.try_acquire().await);
        assert!(budget.try_acquire().await);
        assert!(budget.try_acquire().await);
        assert!(!budget.try_acquire().await);
    }

    #[tokio::test]
    async fn two_budgets_on_one_database_share_one_bucket() {
        let (a, _dir) = budget(0.5, 2).await;
        let b = RateBudget::new(a.db.clone(), 0.5, 2);
        a.acquire().await;
        assert!(b.try_acquire().await);
        assert!(!a.try_acquire().await);
        assert!(!b.try_acquire().await);
    }

    #[tokio::test]
    async fn acquire_waits_for_the_refill_at_the_reduced_rate() {
        let (budget, _dir) = budget(10.0, 1).await;
        budget.acquire().await;
        let waited = budget.acquire().await;
        // 10 a second with the margin is 9 a second: about 111 ms a token.
        assert!(waited >= Duration::from_millis(90), "{waited:?}");
    }

    #[tokio::test]
    async fn a_pause_empties_the_bucket_and_a_deadline_gives_up() {
        let (budget, _dir) = budget(100.0, 5).await;
        budget.acquire().await;
        budget.pause_for(Duration::from_secs(60)).await;
        assert!(!budget.try_acquire().await);
        let deadline = Instant::now() + Duration::from_millis(300);
        assert_eq!(budget.acquire_until(Some(deadline)).await, None);
    }
}

//! The one rate budget all Management API calls share.
//!
//! Auth0 limits Management API requests per tenant (2 a second on the free
//! tier). The gateway spends from this token bucket before every call, so it
//! never makes Auth0 answer 429. It runs at 90% of the configured rate: the
//! requests reach Auth0 after network delays that vary, and the margin keeps
//! two requests sent a full interval apart from arriving closer than Auth0's
//! own bucket allows.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// Share of the configured rate the gateway uses.
const SAFETY_MARGIN: f64 = 0.9;

/// A token bucket.
#[derive(Debug)]
pub struct RateBudget {
    rate: f64,
    burst: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    updated: Instant,
    paused_until: Option<Instant>,
}

impl RateBudget {
    /// A full bucket refilling at `rate_per_second`, holding at most `burst`.
    pub fn new(rate_per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: rate_per_second * SAFETY_MARGIN,
            burst,
            state: Mutex::new(State {
                tokens: burst,
                updated: Instant::now(),
                paused_until: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a token if one is available now; otherwise how long until one is.
    fn take(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut s = self.state();
        if let Some(until) = s.paused_until {
            if now < until {
                return Err(until - now);
            }
            s.paused_until = None;
        }
        let elapsed = now.saturating_duration_since(s.updated).as_secs_f64();
        s.tokens = (s.tokens + elapsed * self.rate).min(self.burst);
        s.updated = now;
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - s.tokens) / self.rate))
        }
    }

    /// Takes a token if one is available now.
    pub fn try_acquire(&self) -> bool {
        self.take().is_ok()
    }

    /// Waits for a token and takes it.
    pub async fn acquire(&self) {
        let started = Instant::now();
        while let Err(wait) = self.take() {
            tokio::time::sleep(wait).await;
        }
        crate::telemetry::record_budget_wait(started.elapsed());
    }

    /// Spends nothing until `until`, and starts again from an empty bucket:
    /// Auth0 said 429, so its bucket is empty whatever ours believed.
    pub fn pause_until(&self, until: Instant) {
        let mut s = self.state();
        s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until)));
        s.tokens = 0.0;
        s.updated = until;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_gives_its_burst_and_then_nothing() {
        let budget = RateBudget::new(1.0, 3);
        assert!(budget.try_acquire());
        assert!(budget.try_acquire());
        assert!(budget.try_acquire());
        assert!(!budget.try_acquire());
    }

    #[tokio::test]
    async fn acquire_waits_for_the_refill_at_the_reduced_rate() {
        let budget = RateBudget::new(10.0, 1);
        assert!(budget.try_acquire());
        let start = Instant::now();
        budget.acquire().await;
        let waited = start.elapsed();
        // 10 a second with the margin is 9 a second: about 111 ms a token.
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
    }

    #[test]
    fn a_pause_empties_the_bucket() {
        let budget = RateBudget::new(100.0, 5);
        budget.pause_until(Instant::now() + Duration::from_secs(60));
        assert!(!budget.try_acquire());
    }
}

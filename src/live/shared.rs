//! Runs shared by live queries: subscriptions with the same key (caller,
//! document, variables) woken by the same changes read the database once.
//!
//! A run is named by its key and the wake counts its scopes had when it
//! was asked for. Every wake follows a commit, so a run asked for after
//! wake `n` reflects every commit up to it, and any commit it misses
//! brings wake `n + 1`, which asks for a new run: sharing never serves a
//! stale answer for longer than a lone query would.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_graphql::{Response, ServerError};
use tokio::sync::OnceCell;

/// The wake counts of a live query's scopes (own, featured).
pub type Wakes = (Option<u64>, Option<u64>);

type Answer = Result<Response, Vec<ServerError>>;

/// One run, computed by whichever live query asks first.
pub struct Run {
    wakes: Wakes,
    answer: OnceCell<Answer>,
}

impl Run {
    /// The answer, from `compute` if no one has run it yet.
    pub async fn answer<F, Fut>(&self, compute: F) -> Answer
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Answer>,
    {
        match self.answer.get_or_init(compute).await {
            Ok(response) => {
                // async-graphql's Response is not Clone: what a live answer
                // carries, copied.
                let mut copy = Response::new(response.data.clone());
                copy.errors = response.errors.clone();
                copy.extensions = response.extensions.clone();
                Ok(copy)
            }
            Err(errors) => Err(errors.clone()),
        }
    }
}

/// The latest run of each key that a live query holds.
#[derive(Default)]
pub struct Runs {
    runs: Mutex<HashMap<[u8; 32], Arc<Run>>>,
}

impl Runs {
    /// The run of `key` for `wakes`: the one kept if it is for the same
    /// wakes, else a new one that replaces it.
    pub fn get(&self, key: [u8; 32], wakes: Wakes) -> Arc<Run> {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        match runs.get(&key) {
            Some(run) if run.wakes == wakes => run.clone(),
            _ => {
                let run = Arc::new(Run {
                    wakes,
                    answer: OnceCell::new(),
                });
                runs.insert(key, run.clone());
                run
            }
        }
    }

    /// `run` failed for want of the database: it is not handed out again,
    /// so the retry reads anew instead of getting the same failure from
    /// the run kept for the same wakes (no change brings new wakes).
    pub fn discard(&self, key: [u8; 32], run: &Arc<Run>) {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        if runs.get(&key).is_some_and(|kept| Arc::ptr_eq(kept, run)) {
            runs.remove(&key);
        }
    }

    /// A live query is done with `run`: forgets it once nobody holds it.
    pub fn release(&self, key: [u8; 32], run: Arc<Run>) {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        drop(run);
        if runs
            .get(&key)
            .is_some_and(|kept| Arc::strong_count(kept) == 1)
        {
            runs.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_discarded_run_is_computed_again_for_the_same_wakes() {
        let runs = Runs::default();
        let key = [7; 32];
        let wakes = (Some(1), None);
        let failed = runs.get(key, wakes);
        let unavailable = || async { Err(vec![ServerError::new("database unavailable", None)]) };
        assert!(failed.answer(unavailable).await.is_err());
        // Kept for the same wakes: another live query shares the failure.
        assert!(Arc::ptr_eq(&failed, &runs.get(key, wakes)));
        runs.discard(key, &failed);
        let retried = runs.get(key, wakes);
        assert!(!Arc::ptr_eq(&failed, &retried));
        let answered = retried
            .answer(|| async { Ok(Response::new(async_graphql::Value::Null)) })
            .await;
        assert!(answered.is_ok());
        // Discarding a run no longer kept leaves the kept one alone.
        runs.discard(key, &failed);
        assert!(Arc::ptr_eq(&retried, &runs.get(key, wakes)));
    }
}

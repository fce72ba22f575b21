//! Compiled `me` queries: the hot path without async-graphql's executor.
//!
//! Apps send the same `me` query again and again, and executing it through
//! async-graphql costs more than the statement behind it: a resolver call,
//! a future and a [`async_graphql::Value`] for each of the hundreds of
//! fields of a page, then the tree serialised. An operation that is a
//! `query` selecting only `me` is compiled here once per (document,
//! operation name) into a plan; at request time the plan binds the
//! variables, reads the bundle [`MusicService::me_bundle`] reads for the
//! resolver (one statement), puts the row through the same profile policy
//! (`settle`), and writes the answer straight from the rows, in the query's
//! field order, with the bytes async-graphql would send.
//!
//! The compiler is also the validator of what it accepts, since
//! async-graphql's validation does not run here: fields that exist on their
//! type with the right arguments, variables defined, used and typed for
//! their uses, fragments on the right types, no response key twice. It
//! answers only the successful, fully understood case: anything else (a
//! field it does not know, a variable of the wrong type, no token, an
//! invalid page, a database error, a user the policy refuses) is `None`,
//! and the request runs through async-graphql as before, which reports the
//! error with its usual code and message.
//!
//! [`MusicService::me_bundle`]: crate::music::MusicService::me_bundle

mod compile;
mod plan;
mod write;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use async_graphql::Variables;

pub use self::plan::Operation;
use self::{
    compile::compile,
    plan::{RootField, empty},
    write::Render,
};
use super::context::Services;
use crate::{auth::Principal, error::AppError};

/// Longest query text compiled; larger ones always run through async-graphql.
const MAX_QUERY_BYTES: usize = 16 * 1024;

/// Query text → (operation name, plan or `None`: not compilable).
type Plans = HashMap<String, Vec<(Option<String>, Option<Arc<Operation>>)>>;

/// Compiled operations by query text and operation name, bounded, and how
/// many answers they gave.
pub struct CompiledQueries {
    /// Query text → (operation name, plan or `None`: not compilable).
    plans: Mutex<Plans>,
    capacity: usize,
    answered: AtomicU64,
}

impl CompiledQueries {
    /// A cache of at most `capacity` query texts.
    pub fn new(capacity: usize) -> Self {
        Self {
            plans: Mutex::new(HashMap::new()),
            capacity,
            answered: AtomicU64::new(0),
        }
    }

    /// Requests answered by a compiled plan since start-up.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// The plan of `request`'s operation, compiled now or earlier; `None`
    /// when the compiler does not take it.
    pub fn plan(&self, request: &mut async_graphql::Request) -> Option<Arc<Operation>> {
        if request.query.len() > MAX_QUERY_BYTES {
            return None;
        }
        {
            let name = request.operation_name.as_deref();
            if let Some(known) = self.lock().get(request.query.as_str())
                && let Some((_, plan)) = known.iter().find(|(n, _)| n.as_deref() == name)
            {
                return plan.clone();
            }
        }
        let name = request.operation_name.clone();
        let plan = compile(request.parsed_query().ok()?, name.as_deref()).map(Arc::new);
        let mut plans = self.lock();
        // As the document cache: many distinct queries start it over, which
        // keeps memory bounded and the hot ones return within a request.
        if plans.len() >= self.capacity {
            plans.clear();
        }
        plans
            .entry(request.query.clone())
            .or_default()
            .push((name, plan.clone()));
        plan
    }

    /// The answer to `operation` for `principal`: its body, or what
    /// async-graphql is to answer instead (any doubt, any error; an error
    /// met reading `me` is handed over, not met again).
    pub async fn answer(
        &self,
        operation: &Operation,
        variables: &Variables,
        principal: Option<&Principal>,
        services: &Services,
    ) -> Answer {
        let Some(values) = operation.bind(variables) else {
            return Answer::Fallback;
        };
        let me = operation
            .root
            .iter()
            .find(|s| matches!(s.kind, RootField::Me(_)) && s.included(&values))
            .map(|_| ());
        let read = match me {
            None => None,
            Some(()) => {
                let Some(principal) = principal.filter(|p| !p.is_machine()) else {
                    return Answer::Fallback;
                };
                let Some(plan) = operation.me_plan(&values, services.limits) else {
                    return Answer::Fallback;
                };
                let (row, music) = match services.music.me_bundle(&principal.user_id, &plan).await {
                    Ok(read) => read,
                    Err(e) => return Answer::Failed(e),
                };
                // No row: a user seen for the first time (or again after
                // deleting the account), whose music is empty, since every
                // row of music references the user's row.
                let music = if row.is_none() { empty(&plan) } else { music };
                let user = match services.profiles.settle(principal, row).await {
                    Ok(user) => user,
                    Err(e) => return Answer::Failed(e),
                };
                Some((user, music))
            }
        };
        let mut out = Vec::with_capacity(16 * 1024);
        let cx = Render {
            values: &values,
            read: read.as_ref().map(|(user, music)| (user, music)),
        };
        if cx.root(&mut out, &operation.root).is_none() {
            return Answer::Fallback;
        }
        self.answered.fetch_add(1, Ordering::Relaxed);
        Answer::Body(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plans> {
        // A poisoned lock only means a panic elsewhere; the map is still sound.
        self.plans.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a compiled plan made of a request.
pub enum Answer {
    /// The whole answer, without errors.
    Body(Vec<u8>),
    /// Not for the plan: async-graphql answers as if it had not been tried.
    Fallback,
    /// Reading `me` failed: async-graphql answers, with this as `me`'s error.
    Failed(AppError),
}

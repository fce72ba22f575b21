//! Auth0's Management API: a client that stays within the tenant's rate
//! limit, retries what is worth retrying, and turns Auth0's error bodies into
//! typed errors.

mod budget;
mod client;

pub use budget::RateBudget;
pub use client::{Auth0Error, Auth0User, ManagementClient, Wait, parse_time};

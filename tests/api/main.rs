//! Integration tests: the real gateway over HTTP, on SQLite and PostgreSQL.

mod helpers;

mod auth0_mode;
mod authz;
mod cli;
mod fake_auth0;
mod fake_auth0_tests;
mod http;
mod inputs;
mod me;
mod migrations;
mod mutations;
mod observability;
mod schema;
mod statements;
mod tokens;

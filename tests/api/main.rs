//! Integration tests: the real gateway over HTTP, on SQLite and PostgreSQL.

mod helpers;

mod authz;
mod cli;
mod http;
mod inputs;
mod me;
mod migrations;
mod mutations;
mod schema;
mod statements;
mod tokens;

//! Integration tests: the real gateway over HTTP, on SQLite and PostgreSQL.

mod helpers;

mod audit;
mod auth0_changes;
mod auth0_hooks;
mod auth0_mode;
mod authz;
mod cli;
mod codegen;
mod codegen_trusted;
mod compiled;
mod concurrency;
mod deadline;
mod fake_auth0;
mod fake_auth0_tests;
mod fuzz;
mod generated;
mod graphiql;
mod hostile;
mod http;
mod inputs;
mod instances;
mod live;
mod me;
mod migrations;
mod mutations;
mod observability;
mod outage;
mod protocol;
mod response_cache;
mod schema;
mod shutdown;
mod statements;
mod tokens;

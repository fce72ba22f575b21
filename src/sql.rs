//! Hand-written SQL that runs on both backends.
//!
//! A few queries (the user row with its music data, per-parent pages with a
//! window function) are clearer as SQL than as builder calls. They are written
//! once with `?` placeholders and numbered for PostgreSQL here.

use sea_orm::{DbBackend, Statement, Value};

/// Builds a statement from SQL with `?` placeholders for `backend`.
pub fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => number_placeholders(sql),
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// `?, ?` becomes `$1, $2`. Our SQL has no `?` inside string literals.
fn number_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// `?, ?, ?` with `count` placeholders, for `IN (…)` lists.
pub fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        let sql = "SELECT a FROM t WHERE x = ? AND y IN (?, ?)";
        assert_eq!(
            stmt(DbBackend::Postgres, sql, vec![]).sql,
            "SELECT a FROM t WHERE x = $1 AND y IN ($2, $3)"
        );
        assert_eq!(stmt(DbBackend::Sqlite, sql, vec![]).sql, sql);
        assert_eq!(placeholders(3), "?, ?, ?");
    }
}

//! Hand-written SQL that runs on both backends.
//!
//! A few queries (the user row with its music data, per-parent pages with a
//! window function) are clearer as SQL than as builder calls. They are written
//! once with `?` placeholders and numbered for PostgreSQL here.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};
use serde::{Deserialize, Deserializer, de::DeserializeOwned};

/// Builds a statement from SQL with `?` placeholders for `backend`.
pub fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => number_placeholders(sql),
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// The few spellings that differ between the backends, for SQL that runs on both.
pub struct Dialect {
    /// The current time as UNIX seconds (a double): the database server's
    /// clock on PostgreSQL, so instances on several hosts agree.
    pub now: &'static str,
    /// The smaller of two values.
    pub least: &'static str,
    /// The larger of two values.
    pub greatest: &'static str,
}

/// The dialect of `backend`.
pub fn dialect(backend: DbBackend) -> Dialect {
    match backend {
        DbBackend::Postgres => Dialect {
            now: "extract(epoch from clock_timestamp())::float8",
            least: "LEAST",
            greatest: "GREATEST",
        },
        _ => Dialect {
            now: "unixepoch('subsec')",
            least: "MIN",
            greatest: "MAX",
        },
    }
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

#[derive(FromQueryResult)]
struct JsonArray {
    rows: String,
}

/// Runs `inner` and reads its rows, ordered by `order`.
///
/// On SQLite the rows come back as one JSON array built by the database: its
/// driver runs SQLite on a worker thread and hands each row over through a
/// channel, a thread wake-up per row that dominated the cost of a page of
/// songs, while one row holding the whole page costs one hand-over.
/// PostgreSQL's rows arrive on the socket and decode in place, and building
/// JSON there measured slower than plain rows, so it reads rows. `columns`
/// are the columns of `inner` to keep (on SQLite).
pub async fn all_rows<T, C>(
    conn: &C,
    inner: Statement,
    columns: &[&str],
    order: &str,
) -> Result<Vec<T>, DbErr>
where
    T: FromQueryResult + DeserializeOwned,
    C: ConnectionTrait,
{
    let backend = conn.get_database_backend();
    if backend != DbBackend::Sqlite {
        let stmt = Statement {
            sql: format!("SELECT * FROM ({}) t ORDER BY {order}", inner.sql),
            values: inner.values,
            db_backend: backend,
        };
        return T::find_by_statement(stmt).all(conn).await;
    }
    let fields: Vec<String> = columns.iter().map(|c| format!("'{c}', t.{c}")).collect();
    let sql = format!(
        "SELECT COALESCE(json_group_array(json_object({}) ORDER BY {order}), '[]') AS rows FROM ({}) t",
        fields.join(", "),
        inner.sql
    );
    let stmt = Statement {
        sql,
        values: inner.values,
        db_backend: backend,
    };
    let text = JsonArray::find_by_statement(stmt)
        .one(conn)
        .await?
        .map_or_else(|| "[]".to_owned(), |r| r.rows);
    serde_json::from_str(&text)
        .map_err(|e| DbErr::Custom(format!("unexpected JSON from the database: {e}")))
}

/// A boolean as SQLite writes it into JSON (`1`/`0`), or as JSON has it.
pub fn json_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flexible {
        Bool(bool),
        Int(i64),
    }
    Ok(match Flexible::deserialize(deserializer)? {
        Flexible::Bool(b) => b,
        Flexible::Int(i) => i != 0,
    })
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

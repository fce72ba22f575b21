//! What SQL shares across the modules of each table: the database's clock,
//! and reading a page of rows.
//!
//! Statements are built with sea-query (SeaORM's builder), which spells
//! `LEAST`/`GREATEST`, upserts, row locks and placeholders for each backend.

use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement,
    sea_query::{Expr, Func},
};
use serde::{Deserialize, Deserializer, de::DeserializeOwned};

/// The current time as UNIX seconds (a double) on the database's clock: the
/// server's on PostgreSQL, so instances on several hosts agree. Written out
/// because sea-query has no function for the clock as epoch seconds.
pub fn now_seconds(backend: DbBackend) -> Expr {
    match backend {
        DbBackend::Postgres => Expr::cust("extract(epoch from clock_timestamp())::float8"),
        _ => Expr::cust("unixepoch('subsec')"),
    }
}

/// The larger of two values (`GREATEST`, or SQLite's two-argument `MAX`).
pub fn greatest(a: impl Into<Expr>, b: impl Into<Expr>) -> Expr {
    Func::greatest([a.into(), b.into()]).into()
}

/// The smaller of two values (`LEAST`, or SQLite's two-argument `MIN`).
pub fn least(a: impl Into<Expr>, b: impl Into<Expr>) -> Expr {
    Func::least([a.into(), b.into()]).into()
}

#[derive(FromQueryResult)]
struct JsonArray {
    rows: String,
}

/// Runs `inner` and reads its rows, ordered by `order`. The wrapping is
/// written out: sea-query has no `json_group_array`, and wraps only its own
/// statements, not a built one.
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

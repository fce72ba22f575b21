use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The scope whose version changes with anything every user can see: a
/// featured playlist, its songs, or a playlist becoming or ceasing to be
/// featured. Every other scope is a user id.
pub const FEATURED_SCOPE: &str = "*featured*";

/// What each table's triggers bump. `owner` is the column holding the row's
/// user; `featured` says when a change of the row is seen by every user,
/// as SQL over `{row}` (`OLD` or `NEW`), or `None` when it never is.
struct Watched {
    table: &'static str,
    owner: &'static str,
    featured: Option<&'static str>,
}

/// Every table a query reads. A songs row is seen by every user while it
/// is in a featured playlist; a songs row that is deleted leaves its
/// playlists through the cascade, whose playlist_songs triggers bump the
/// featured scope, so only an update needs the membership test.
const WATCHED: [Watched; 5] = [
    Watched {
        table: "users",
        owner: "id",
        featured: None,
    },
    Watched {
        table: "user_data",
        owner: "user_id",
        featured: None,
    },
    Watched {
        table: "songs",
        owner: "user_id",
        featured: Some(
            "EXISTS (SELECT 1 FROM playlist_songs ps JOIN playlists p ON p.id = ps.playlist_id \
             WHERE ps.song_id = {row}.id AND p.featured)",
        ),
    },
    Watched {
        table: "playlists",
        owner: "user_id",
        featured: Some("{row}.featured"),
    },
    Watched {
        table: "playlist_songs",
        owner: "user_id",
        featured: Some(
            "EXISTS (SELECT 1 FROM playlists p WHERE p.id = {row}.playlist_id AND p.featured)",
        ),
    },
];

/// The users columns a query can read: an update that changes none of them
/// (`lock_user` touching `updated_at` to serialize writers) bumps nothing.
const USERS_READ_COLUMNS: [&str; 7] = [
    "id",
    "email",
    "name",
    "picture",
    "user_metadata",
    "app_metadata",
    "synced_at",
];

fn users_changed(distinct: &str) -> String {
    USERS_READ_COLUMNS
        .iter()
        .map(|c| format!("OLD.{c} {distinct} NEW.{c}"))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The upsert that bumps one scope, given as SQL (`'…'` or a column).
fn sqlite_bump(scope: &str, condition: Option<String>) -> String {
    // SQLite parses `INSERT … SELECT … ON CONFLICT` only with a WHERE clause.
    let condition = condition.unwrap_or_else(|| "true".into());
    format!(
        "INSERT INTO data_versions (scope, version) SELECT {scope}, 1 WHERE {condition} \
         ON CONFLICT (scope) DO UPDATE SET version = data_versions.version + 1;"
    )
}

/// SQLite's triggers: one per table and event, bumping the owner's scope
/// and, when the row is seen by every user, the featured scope.
fn sqlite_triggers() -> Vec<String> {
    let mut statements = Vec::new();
    for w in WATCHED {
        for (event, rows) in [
            ("INSERT", &["NEW"][..]),
            ("UPDATE", &["OLD", "NEW"][..]),
            ("DELETE", &["OLD"][..]),
        ] {
            let mut body = String::new();
            for row in rows {
                // An update that keeps the owner bumps it once.
                let owner_condition = (*row == "OLD" && event == "UPDATE")
                    .then(|| format!("OLD.{0} IS NOT NEW.{0}", w.owner));
                body.push_str(&sqlite_bump(&format!("{row}.{}", w.owner), owner_condition));
            }
            if let Some(featured) = w.featured
                && !(w.table == "songs" && event != "UPDATE")
            {
                let condition = rows
                    .iter()
                    .map(|row| format!("({})", featured.replace("{row}", row)))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                body.push_str(&sqlite_bump(
                    &format!("'{FEATURED_SCOPE}'"),
                    Some(condition),
                ));
            }
            let when = if w.table == "users" && event == "UPDATE" {
                format!(" WHEN {}", users_changed("IS NOT"))
            } else {
                String::new()
            };
            statements.push(format!(
                "CREATE TRIGGER data_version_{table}_{event} AFTER {event} ON {table}{when} \
                 BEGIN {body} END",
                table = w.table,
                event = event.to_lowercase(),
            ));
        }
    }
    statements
}

/// PostgreSQL's triggers: a function per table, run by constraint
/// triggers deferred to the commit, so the version rows (the featured one
/// is shared by every writer of a featured playlist) are locked for the
/// commit only, and always after the rows the transaction changed.
fn postgres_triggers() -> Vec<String> {
    let mut statements = vec![format!(
        "CREATE FUNCTION data_version_bump(s text) RETURNS void LANGUAGE sql AS $$ \
         INSERT INTO data_versions (scope, version) VALUES (s, 1) \
         ON CONFLICT (scope) DO UPDATE SET version = data_versions.version + 1 $$"
    )];
    for w in WATCHED {
        let featured = |row: &str| match w.featured {
            Some(_) if w.table == "songs" && row == "OLD" => None,
            Some(f) => Some(format!(
                "IF {} THEN PERFORM data_version_bump('{FEATURED_SCOPE}'); END IF;",
                f.replace("{row}", row)
            )),
            None => None,
        };
        let owner = w.owner;
        let body = format!(
            "BEGIN \
               IF TG_OP = 'DELETE' THEN \
                 PERFORM data_version_bump(OLD.{owner}); {old_featured} \
               ELSE \
                 PERFORM data_version_bump(NEW.{owner}); \
                 IF TG_OP = 'UPDATE' AND OLD.{owner} <> NEW.{owner} THEN \
                   PERFORM data_version_bump(OLD.{owner}); \
                 END IF; \
                 IF TG_OP = 'UPDATE' THEN {old_featured} END IF; \
                 {new_featured} \
               END IF; \
               RETURN NULL; \
             END",
            old_featured = featured("OLD").unwrap_or_default(),
            new_featured = featured("NEW").unwrap_or_default(),
        );
        let table = w.table;
        statements.push(format!(
            "CREATE FUNCTION data_version_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ {body} $$"
        ));
        let events = if table == "users" {
            statements.push(format!(
                "CREATE CONSTRAINT TRIGGER data_version_{table}_update AFTER UPDATE ON {table} \
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ({}) \
                 EXECUTE FUNCTION data_version_{table}()",
                users_changed("IS DISTINCT FROM")
            ));
            "INSERT OR DELETE"
        } else {
            "INSERT OR UPDATE OR DELETE"
        };
        statements.push(format!(
            "CREATE CONSTRAINT TRIGGER data_version_{table} AFTER {events} ON {table} \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION data_version_{table}()"
        ));
    }
    statements
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        db.execute_unprepared(
            "CREATE TABLE data_versions (scope TEXT NOT NULL PRIMARY KEY, version BIGINT NOT NULL)",
        )
        .await?;
        let triggers = match backend {
            DbBackend::Postgres => postgres_triggers(),
            DbBackend::Sqlite => sqlite_triggers(),
            other => {
                return Err(DbErr::Migration(format!(
                    "data versions are not written for {other:?}"
                )));
            }
        };
        for statement in triggers {
            db.execute_unprepared(&statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                for w in WATCHED {
                    let table = w.table;
                    db.execute_unprepared(&format!(
                        "DROP FUNCTION IF EXISTS data_version_{table}() CASCADE"
                    ))
                    .await?;
                }
                db.execute_unprepared("DROP FUNCTION IF EXISTS data_version_bump(text)")
                    .await?;
            }
            _ => {
                for w in WATCHED {
                    for event in ["insert", "update", "delete"] {
                        db.execute_unprepared(&format!(
                            "DROP TRIGGER IF EXISTS data_version_{}_{event}",
                            w.table
                        ))
                        .await?;
                    }
                }
            }
        }
        db.execute_unprepared("DROP TABLE data_versions").await?;
        Ok(())
    }
}

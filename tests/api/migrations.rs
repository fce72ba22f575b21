//! Migrations run up, down and up again on both databases.

use migration::{Migrator, MigratorTrait};
use sea_orm::Database;
use serde_json::json;

use crate::{helpers::TestApp, on_both_databases};

async fn migrations_go_down_and_up_again(app: TestApp) {
    let db = Database::connect(&app.database_url).await.unwrap();
    let applied = Migrator::get_applied_migrations(&db).await.unwrap().len();
    assert_eq!(applied, Migrator::migrations().len());
    Migrator::down(&db, None).await.unwrap();
    assert!(
        Migrator::get_applied_migrations(&db)
            .await
            .unwrap()
            .is_empty()
    );
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(
        Migrator::get_applied_migrations(&db).await.unwrap().len(),
        applied
    );
    // The schema works after the round trip.
    let song = app.add_song("auth0|again", "Again").await;
    let playlist = app.create_playlist("auth0|again", "P", &[song]).await;
    let data = app
        .ok(
            "auth0|again",
            "query($p: ID!) { playlist(id: $p) { songs { totalCount } } }",
            json!({"p": playlist}),
        )
        .await;
    assert_eq!(data["playlist"]["songs"]["totalCount"], 1);
}

on_both_databases!(migrations_go_down_and_up_again);

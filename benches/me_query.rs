//! In-process cost of the full `me` query, on SQLite and PostgreSQL, for users
//! with 10, 100 and 1,000 songs and as many playlists.
//!
//! `cargo bench` runs the SQLite cases; set `MG_BENCH_POSTGRES_URL` to a
//! server where databases may be created (scripts/bench does) for the
//! PostgreSQL ones. Each case also prints the SQL statements one execution
//! costs, which must not grow with the data.

use std::time::Duration;

use async_graphql::Request;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use music_gateway::{
    App, auth::Principal, config::Config, graphql::RequestContext, music::NewSong,
};
use sea_orm::{ConnectionTrait, Database};
use tokio::runtime::Runtime;

/// The full query: profile fields, a page of songs, a page of playlists with
/// their plays and a page of each one's songs.
const FULL_ME: &str = "{ me { displayName roles favGenre
    songs(first: 100) { nodes { id name artist } }
    playlists(first: 100) { nodes { id name plays songs(first: 10) { nodes { id name } } } } } }";

const SIZES: [usize; 3] = [10, 100, 1000];

fn principal() -> Principal {
    Principal::for_user("auth0|bench")
}

async fn database_url(postgres: Option<&str>, dir: &std::path::Path, size: usize) -> String {
    match postgres {
        None => format!(
            "sqlite://{}?mode=rwc",
            dir.join(format!("bench-{size}.db")).display()
        ),
        Some(admin) => {
            let name = format!("mg_bench_{}", uuid::Uuid::new_v4().simple());
            let conn = Database::connect(admin)
                .await
                .expect("connect to MG_BENCH_POSTGRES_URL");
            conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create database");
            let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
            format!("{base}/{name}")
        }
    }
}

/// An app whose bench user has `size` songs and `size` playlists of up to 10 songs.
async fn seeded_app(postgres: Option<&str>, dir: &std::path::Path, size: usize) -> App {
    let mut config = Config::embedded(dir);
    config.database_url = database_url(postgres, dir, size).await;
    let app = App::build(config).await.expect("build the app");
    let services = &app.state.services;
    let user = principal();
    services.profiles.get_or_create(&user).await.expect("user");
    let mut ids = Vec::with_capacity(size);
    for i in 0..size {
        let song = services
            .music
            .add_song(
                &user.user_id,
                NewSong {
                    name: format!("Song {i}"),
                    artist: Some("Artist".into()),
                    genre: None,
                },
            )
            .await
            .expect("song");
        ids.push(song.id);
    }
    for i in 0..size {
        let members: Vec<i64> = ids
            .iter()
            .cycle()
            .skip(i)
            .take(10.min(size))
            .copied()
            .collect();
        services
            .music
            .create_playlist(&user.user_id, &format!("Playlist {i}"), members)
            .await
            .expect("playlist");
    }
    if postgres.is_some() {
        // Autovacuum would gather statistics on the new rows soon; without
        // them the planner guesses, and the guess (not the gateway) then
        // decides how the cost grows with the data.
        app.state
            .db
            .execute_unprepared("ANALYZE")
            .await
            .expect("ANALYZE");
    }
    app
}

fn bench_me(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let dir = tempfile::TempDir::new().expect("temp dir");
    let postgres = std::env::var("MG_BENCH_POSTGRES_URL").ok();
    let mut backends = vec![("sqlite", None)];
    match &postgres {
        Some(url) => backends.push(("postgres", Some(url.as_str()))),
        None => eprintln!(
            "MG_BENCH_POSTGRES_URL is not set: PostgreSQL cases skipped (scripts/bench sets it)"
        ),
    }
    let mut group = c.benchmark_group("full_me_query");
    group
        .measurement_time(Duration::from_secs(5))
        .sample_size(30);
    for (backend, url) in backends {
        for size in SIZES {
            let app = runtime.block_on(seeded_app(url, dir.path(), size));
            let schema = app.state.schema.clone();
            let statements = app.state.statements.clone();
            let before = statements.get();
            let response = runtime.block_on(
                schema.execute(Request::new(FULL_ME).data(RequestContext::new(Some(principal())))),
            );
            assert!(response.errors.is_empty(), "{:?}", response.errors);
            eprintln!(
                "{backend}, {size} songs and playlists: {} SQL statements per query",
                statements.get() - before
            );
            group.bench_with_input(BenchmarkId::new(backend, size), &size, |b, _| {
                b.to_async(&runtime).iter(|| async {
                    let request =
                        Request::new(FULL_ME).data(RequestContext::new(Some(principal())));
                    let response = schema.execute(request).await;
                    assert!(response.errors.is_empty());
                    response
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_me);
criterion_main!(benches);

//! Demo data for people exploring the API in GraphiQL.

use crate::{
    auth::Principal,
    error::AppError,
    graphql::Services,
    music::{MusicService, NewSong},
};

/// The demo user's id.
pub const DEMO_USER: &str = "demo|listener";

/// Gives the demo user a profile and, unless they have songs already, a
/// library (see [`seed`]). Returns whether songs were added.
pub async fn load(services: &Services) -> Result<bool, AppError> {
    let principal = Principal {
        email: Some("listener@demo.invalid".into()),
        name: Some("Demo Listener".into()),
        ..Principal::for_user(DEMO_USER)
    };
    services.profiles.get_or_create(&principal).await?;
    seed(&services.music, DEMO_USER).await
}

const SONGS: [(&str, &str, &str); 8] = [
    ("So What", "Miles Davis", "jazz"),
    ("Blue in Green", "Miles Davis", "jazz"),
    ("Take Five", "The Dave Brubeck Quartet", "jazz"),
    ("Teardrop", "Massive Attack", "trip-hop"),
    ("Roads", "Portishead", "trip-hop"),
    ("Windowlicker", "Aphex Twin", "electronic"),
    ("Hyperballad", "Björk", "electronic"),
    ("Clair de lune", "Claude Debussy", "classical"),
];

/// Gives `user_id` a library of songs and two playlists with some plays,
/// unless they already have songs. Returns whether anything was added.
pub async fn seed(music: &MusicService, user_id: &str) -> Result<bool, AppError> {
    if music.count_songs(user_id).await? > 0 {
        return Ok(false);
    }
    let mut ids = Vec::new();
    for (name, artist, genre) in SONGS {
        let song = music
            .add_song(
                user_id,
                NewSong {
                    name: name.into(),
                    artist: Some(artist.into()),
                    genre: Some(genre.into()),
                },
            )
            .await?;
        ids.push(song.id);
    }
    let late_night = music
        .create_playlist(user_id, "Late night", ids[..5].to_vec())
        .await?;
    music
        .create_playlist(user_id, "Focus", ids[5..].to_vec())
        .await?;
    for _ in 0..12 {
        music.record_play(user_id, late_night.id).await?;
    }
    Ok(true)
}

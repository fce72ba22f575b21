//! The mutation root. Each mutation answers the object it changed.
//!
//! No input type here has a field for roles or plan: those are written only
//! by the plays rule and by the admin mutations.

use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object, Result};
use serde_json::Value;

use super::{
    context::{current_user, current_user_id, require_admin, services},
    types::{Me, Playlist, Song, UserProfile, parse_id},
};
use crate::{
    error::{AppError, AppResult},
    music::{NewSong, SongChanges, validate},
    profile::{MeUpdate, Plan, metadata},
};

/// Most roles one user may hold.
const MAX_ROLES: usize = 50;

/// Changes to the signed-in user. Omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateMeInput {
    /// The name shown in the app (1 to 100 characters); `null` resets it to `"user"`.
    display_name: MaybeUndefined<String>,
    /// A JSON object merged into the user's preferences: top-level keys
    /// replace (nested objects whole), a `null` value deletes the key. Keys
    /// may not contain `.` or `$`, and the profile holds about 10 KB in all.
    preferences: Option<Json<Value>>,
    /// The favourite genre (up to 50 characters); `null` clears it.
    fav_genre: MaybeUndefined<String>,
}

/// A new song.
#[derive(InputObject)]
pub struct AddSongInput {
    /// The title (1 to 200 characters).
    name: String,
    /// The performing artist.
    artist: Option<String>,
    /// The genre.
    genre: Option<String>,
}

/// Changes to a song. Omitted fields stay as they are; `null` clears artist or genre.
#[derive(InputObject)]
pub struct UpdateSongInput {
    /// A new title (1 to 200 characters).
    name: Option<String>,
    /// A new artist; `null` clears it.
    artist: MaybeUndefined<String>,
    /// A new genre; `null` clears it.
    genre: MaybeUndefined<String>,
}

/// A new playlist.
#[derive(InputObject)]
pub struct CreatePlaylistInput {
    /// The name (1 to 200 characters).
    name: String,
    /// Songs of the caller's library to put in it, in order (at most 100).
    song_ids: Option<Vec<ID>>,
}

/// Changes to a playlist. Omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdatePlaylistInput {
    /// A new name (1 to 200 characters).
    name: Option<String>,
}

fn maybe(value: MaybeUndefined<String>) -> Option<Option<String>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

fn song_ids(ids: &[ID]) -> AppResult<Vec<i64>> {
    ids.iter().map(|id| parse_id("song", id)).collect()
}

fn parse_update_me(input: UpdateMeInput) -> AppResult<MeUpdate> {
    let display_name = match maybe(input.display_name) {
        Some(Some(name)) => Some(Some(validate::required_text(
            "displayName",
            &name,
            validate::MAX_DISPLAY_NAME_CHARS,
        )?)),
        other => other,
    };
    let fav_genre = match maybe(input.fav_genre) {
        Some(Some(genre)) => Some(validate::optional_text(
            "favGenre",
            Some(&genre),
            validate::MAX_GENRE_CHARS,
        )?),
        other => other,
    };
    let preferences = input
        .preferences
        .map(|Json(value)| metadata::preferences_patch(&value))
        .transpose()?;
    Ok(MeUpdate {
        display_name,
        preferences,
        fav_genre,
    })
}

fn parse_roles(roles: Vec<String>) -> AppResult<Vec<String>> {
    if roles.len() > MAX_ROLES {
        return Err(AppError::bad_input(format!(
            "roles: at most {MAX_ROLES} roles"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(roles.len());
    for role in roles {
        let valid = !role.is_empty()
            && role.len() <= 64
            && role
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':'));
        if !valid {
            return Err(AppError::bad_input(format!(
                "roles: `{role}` is not a role name (1 to 64 of a-z, A-Z, 0-9, `_`, `-`, `:`)"
            )));
        }
        if !out.contains(&role) {
            out.push(role);
        }
    }
    Ok(out)
}

/// Writes.
pub struct MutationRoot;

/// Writes. Each mutation answers the object it changed.
#[Object(name = "Mutation")]
impl MutationRoot {
    /// Changes the signed-in user's display name, preferences and favourite
    /// genre, all or nothing.
    async fn update_me(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields to change.")] input: UpdateMeInput,
    ) -> Result<Me> {
        let update = parse_update_me(input)?;
        let user = current_user(ctx).await?;
        Ok(Me::new(
            services(ctx).profiles.update_me(&user.id, update).await?,
        ))
    }

    /// Deletes the signed-in user's account: their songs, playlists, plays,
    /// preferences and profile, here and at the identity provider (Auth0
    /// receives the deletion even if it is unreachable right now). Tokens
    /// issued before the deletion stop working (`UNAUTHENTICATED`); signing
    /// up again starts a new, empty account. Answers the deleted user's id.
    async fn delete_me(&self, ctx: &Context<'_>) -> Result<ID> {
        let user = current_user_id(ctx).await?;
        services(ctx).profiles.delete_user(user).await?;
        Ok(ID::from(user))
    }

    /// Admin: deletes a user's account as `deleteMe` does. Needs a token
    /// whose `permissions` or `scope` grant `write:app_metadata`;
    /// `FORBIDDEN` otherwise, `NOT_FOUND` for a user who never signed in.
    /// Answers the deleted user's id.
    async fn delete_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user's id at the identity provider.")] user_id: ID,
    ) -> Result<ID> {
        require_admin(ctx)?;
        services(ctx).profiles.delete_user(&user_id).await?;
        Ok(user_id)
    }

    /// Adds a song to the caller's library.
    async fn add_song(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new song.")] input: AddSongInput,
    ) -> Result<Song> {
        let user = current_user_id(ctx).await?;
        let new = NewSong {
            name: input.name,
            artist: input.artist,
            genre: input.genre,
        };
        Ok(Song(services(ctx).music.add_song(user, new).await?))
    }

    /// Changes one of the caller's songs.
    async fn update_song(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The song's id.")] id: ID,
        #[graphql(desc = "The fields to change.")] input: UpdateSongInput,
    ) -> Result<Song> {
        let user = current_user_id(ctx).await?;
        let id = parse_id("song", &id)?;
        let changes = SongChanges {
            name: input.name,
            artist: maybe(input.artist),
            genre: maybe(input.genre),
        };
        Ok(Song(
            services(ctx).music.update_song(user, id, changes).await?,
        ))
    }

    /// Deletes one of the caller's songs, also from their playlists. Answers its id.
    async fn delete_song(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The song's id.")] id: ID,
    ) -> Result<ID> {
        let user = current_user_id(ctx).await?;
        let song = parse_id("song", &id)?;
        services(ctx).music.delete_song(user, song).await?;
        Ok(id)
    }

    /// Creates a playlist, optionally with songs of the caller's library.
    async fn create_playlist(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new playlist.")] input: CreatePlaylistInput,
    ) -> Result<Playlist> {
        let user = current_user_id(ctx).await?;
        let ids = song_ids(input.song_ids.as_deref().unwrap_or_default())?;
        Ok(Playlist::from(
            services(ctx)
                .music
                .create_playlist(user, &input.name, ids)
                .await?,
        ))
    }

    /// Changes one of the caller's playlists.
    async fn update_playlist(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The playlist's id.")] id: ID,
        #[graphql(desc = "The fields to change.")] input: UpdatePlaylistInput,
    ) -> Result<Playlist> {
        let user = current_user_id(ctx).await?;
        let id = parse_id("playlist", &id)?;
        let music = &services(ctx).music;
        Ok(Playlist::from(match input.name {
            Some(name) => music.rename_playlist(user, id, &name).await?,
            None => music.own_playlist(user, id).await?,
        }))
    }

    /// Deletes one of the caller's playlists. Its plays stop counting towards
    /// the `playlist_editor` role. Answers its id.
    async fn delete_playlist(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The playlist's id.")] id: ID,
    ) -> Result<ID> {
        let user = current_user_id(ctx).await?;
        let playlist = parse_id("playlist", &id)?;
        services(ctx).music.delete_playlist(user, playlist).await?;
        Ok(id)
    }

    /// Appends songs of the caller's library to one of their playlists.
    async fn add_songs_to_playlist(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The playlist's id.")] playlist_id: ID,
        #[graphql(desc = "Ids of songs in the caller's library (at most 100).")] song_ids: Vec<ID>,
    ) -> Result<Playlist> {
        let user = current_user_id(ctx).await?;
        let id = parse_id("playlist", &playlist_id)?;
        let ids = self::song_ids(&song_ids)?;
        Ok(Playlist::from(
            services(ctx).music.add_songs(user, id, ids).await?,
        ))
    }

    /// Removes songs from one of the caller's playlists.
    async fn remove_songs_from_playlist(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The playlist's id.")] playlist_id: ID,
        #[graphql(desc = "Ids of songs in the caller's library (at most 100).")] song_ids: Vec<ID>,
    ) -> Result<Playlist> {
        let user = current_user_id(ctx).await?;
        let id = parse_id("playlist", &playlist_id)?;
        let ids = self::song_ids(&song_ids)?;
        Ok(Playlist::from(
            services(ctx).music.remove_songs(user, id, ids).await?,
        ))
    }

    /// Counts one play of one of the caller's playlists. Reaching the plays
    /// threshold grants the `playlist_editor` role.
    async fn record_play(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The playlist's id.")] playlist_id: ID,
    ) -> Result<Playlist> {
        let user = current_user_id(ctx).await?;
        let id = parse_id("playlist", &playlist_id)?;
        Ok(Playlist::from(
            services(ctx).music.record_play(user, id).await?,
        ))
    }

    /// Features or unfeatures one of the caller's playlists. Needs the
    /// `playlist_editor` role; `FORBIDDEN` otherwise.
    async fn set_playlist_featured(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The playlist's id.")] id: ID,
        #[graphql(desc = "`true` to feature it, `false` to stop.")] featured: bool,
    ) -> Result<Playlist> {
        let user = current_user_id(ctx).await?;
        let id = parse_id("playlist", &id)?;
        Ok(Playlist::from(
            services(ctx).music.set_featured(user, id, featured).await?,
        ))
    }

    /// Admin: sets a user's subscription plan. Needs a token whose
    /// `permissions` or `scope` grant `write:app_metadata`; `FORBIDDEN`
    /// otherwise.
    async fn set_user_plan(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user's id at the identity provider.")] user_id: ID,
        #[graphql(desc = "The new plan.")] plan: Plan,
    ) -> Result<UserProfile> {
        require_admin(ctx)?;
        Ok(services(ctx)
            .profiles
            .set_plan(&user_id, plan)
            .await?
            .into())
    }

    /// Admin: replaces a user's roles. Needs a token whose `permissions` or
    /// `scope` grant `write:app_metadata`; `FORBIDDEN` otherwise.
    async fn set_user_roles(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user's id at the identity provider.")] user_id: ID,
        #[graphql(desc = "The complete new list of roles.")] roles: Vec<String>,
    ) -> Result<UserProfile> {
        require_admin(ctx)?;
        let roles = parse_roles(roles)?;
        Ok(services(ctx)
            .profiles
            .set_roles(&user_id, roles)
            .await?
            .into())
    }
}

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    Picture,
    UserMetadata,
    AppMetadata,
    SyncedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UserData {
    Table,
    UserId,
    FavGenre,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Songs {
    Table,
    Id,
    UserId,
    Name,
    Artist,
    Genre,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Playlists {
    Table,
    Id,
    UserId,
    Name,
    Plays,
    Featured,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PlaylistSongs {
    Table,
    PlaylistId,
    SongId,
    UserId,
    Position,
}

fn user_fk(from: (impl IntoIden, impl IntoIden)) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from.0, from.1)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(string(Users::Id).primary_key())
                    .col(string_null(Users::Email))
                    .col(string_null(Users::Name))
                    .col(string_null(Users::Picture))
                    .col(json_binary(Users::UserMetadata))
                    .col(json_binary(Users::AppMetadata))
                    .col(timestamp_with_time_zone_null(Users::SyncedAt))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(UserData::Table)
                    .col(string(UserData::UserId).primary_key())
                    .col(string_null(UserData::FavGenre))
                    .col(timestamp_with_time_zone(UserData::UpdatedAt))
                    .foreign_key(&mut user_fk((UserData::Table, UserData::UserId)))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Songs::Table)
                    .col(big_pk_auto(Songs::Id))
                    .col(string(Songs::UserId))
                    .col(string(Songs::Name))
                    .col(string_null(Songs::Artist))
                    .col(string_null(Songs::Genre))
                    .col(timestamp_with_time_zone(Songs::CreatedAt))
                    .foreign_key(&mut user_fk((Songs::Table, Songs::UserId)))
                    .to_owned(),
            )
            .await?;
        // Keyset pagination walks a user's songs by id.
        manager
            .create_index(
                Index::create()
                    .name("idx_songs_user_id")
                    .table(Songs::Table)
                    .col(Songs::UserId)
                    .col(Songs::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Playlists::Table)
                    .col(big_pk_auto(Playlists::Id))
                    .col(string(Playlists::UserId))
                    .col(string(Playlists::Name))
                    .col(big_integer(Playlists::Plays).default(0))
                    .col(boolean(Playlists::Featured).default(false))
                    .col(timestamp_with_time_zone(Playlists::CreatedAt))
                    .foreign_key(&mut user_fk((Playlists::Table, Playlists::UserId)))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_playlists_user_id")
                    .table(Playlists::Table)
                    .col(Playlists::UserId)
                    .col(Playlists::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_playlists_featured")
                    .table(Playlists::Table)
                    .col(Playlists::Featured)
                    .col(Playlists::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PlaylistSongs::Table)
                    .col(big_integer(PlaylistSongs::PlaylistId))
                    .col(big_integer(PlaylistSongs::SongId))
                    .col(string(PlaylistSongs::UserId))
                    .col(big_integer(PlaylistSongs::Position))
                    .primary_key(
                        Index::create()
                            .col(PlaylistSongs::PlaylistId)
                            .col(PlaylistSongs::SongId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(PlaylistSongs::Table, PlaylistSongs::PlaylistId)
                            .to(Playlists::Table, Playlists::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(PlaylistSongs::Table, PlaylistSongs::SongId)
                            .to(Songs::Table, Songs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(&mut user_fk((PlaylistSongs::Table, PlaylistSongs::UserId)))
                    .to_owned(),
            )
            .await?;
        // A playlist's songs are read in order; the position index serves both
        // the ordering and the per-playlist window.
        manager
            .create_index(
                Index::create()
                    .name("idx_playlist_songs_position")
                    .table(PlaylistSongs::Table)
                    .col(PlaylistSongs::PlaylistId)
                    .col(PlaylistSongs::Position)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_playlist_songs_song_id")
                    .table(PlaylistSongs::Table)
                    .col(PlaylistSongs::SongId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_playlist_songs_user_id")
                    .table(PlaylistSongs::Table)
                    .col(PlaylistSongs::UserId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            PlaylistSongs::Table.into_iden(),
            Playlists::Table.into_iden(),
            Songs::Table.into_iden(),
            UserData::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

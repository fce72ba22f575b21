//! SeaORM entities: one module a table, rows only. Rules live in the services
//! (`profile`, `music`), GraphQL shapes in `graphql`.

pub mod deleted_users;
pub mod outbox;
pub mod playlist_songs;
pub mod playlists;
pub mod songs;
pub mod user_data;
pub mod users;

//! Songs, playlists and plays: the rules over the music database.
//!
//! Every function takes the caller's `user_id` and filters by it, so a user
//! can never read or change another user's rows; the one exception is
//! reading featured playlists, which every signed-in user may see.

mod me;
mod playlists;
mod songs;
pub use songs::{NewSong, SongChanges};
pub mod validate;

use sea_orm::{DatabaseConnection, DatabaseTransaction};

pub use me::{Columns, ListPlan, MeMusic, MePlan};
pub use playlists::{PlaylistSong, PlaylistSongsPage};

use crate::{
    error::{AppError, AppResult},
    profile::{ProfileService, lock_user},
};

/// The first statement of every write transaction here: the caller's turn
/// among the writers of their rows ([`lock_user`]), so that what a write
/// reads of them (a song it checks, the positions it appends after, the
/// plays the role follows) still holds when it writes. The caller's row was
/// there when the request began; gone now, a concurrent request deleted the
/// account.
async fn lock_caller(txn: &DatabaseTransaction, user_id: &str) -> AppResult<()> {
    if lock_user(txn, user_id).await? {
        Ok(())
    } else {
        Err(AppError::AccountDeleted)
    }
}

/// A request for one page of a list, keyset-paginated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Page {
    /// How many items at most.
    pub first: u64,
    /// Only items strictly after this key (an id, or a position in a playlist).
    pub after: Option<i64>,
}

/// One page of items, and whether more follow.
#[derive(Clone, Debug)]
pub struct PageOf<T> {
    pub items: Vec<T>,
    pub has_next: bool,
}

impl<T> PageOf<T> {
    /// Builds a page from `first + 1` fetched rows: the extra row only tells
    /// that there is a next page.
    fn from_overfetch(mut items: Vec<T>, first: u64) -> Self {
        let has_next = items.len() as u64 > first;
        items.truncate(first as usize);
        Self { items, has_next }
    }

    /// A page with nothing on it and nothing after it.
    pub fn empty() -> Self {
        Self {
            items: Vec::new(),
            has_next: false,
        }
    }
}

/// The music service, cheap to clone.
#[derive(Clone)]
pub struct MusicService {
    db: DatabaseConnection,
    profiles: ProfileService,
}

impl MusicService {
    /// A service over `db`; `profiles` applies the plays rule to roles.
    pub fn new(db: DatabaseConnection, profiles: ProfileService) -> Self {
        Self { db, profiles }
    }
}

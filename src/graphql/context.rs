//! What resolvers take from the context: the services (per schema) and the
//! caller (per request).

use async_graphql::Context;
use tokio::sync::OnceCell;

use crate::{
    auth::{ADMIN_PERMISSION, Principal},
    error::{AppError, AppResult},
    music::{MusicService, Page},
    profile::{ProfileService, UserRecord},
};

/// Page-size limits of list fields.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub default_page_size: u32,
    pub max_page_size: u32,
}

/// The services, shared by every request.
#[derive(Clone)]
pub struct Services {
    pub profiles: ProfileService,
    pub music: MusicService,
    pub limits: Limits,
}

/// One request's caller. It lives per request, like every batch and cache of
/// the schema, so one user's rows can never answer another user's request.
pub struct RequestContext {
    principal: Option<Principal>,
    user: OnceCell<UserRecord>,
    /// What reading `me` already failed with, on the compiled path.
    me_failure: std::sync::Mutex<Option<AppError>>,
}

impl RequestContext {
    /// The context of a request made by `principal` (`None`: anonymous).
    pub fn new(principal: Option<Principal>) -> Self {
        Self {
            principal,
            user: OnceCell::new(),
            me_failure: std::sync::Mutex::new(None),
        }
    }

    /// The context of a request whose compiled plan failed to read `me`
    /// with `error`: the `me` resolver answers it as its own error, with
    /// the path and locations async-graphql gives errors, rather than
    /// reading the database (or calling Auth0) a second time.
    pub fn with_me_failure(principal: Option<Principal>, error: AppError) -> Self {
        Self {
            me_failure: std::sync::Mutex::new(Some(error)),
            ..Self::new(principal)
        }
    }
}

/// The failure the compiled plan met reading `me`, taken once.
pub(super) fn take_me_failure(ctx: &Context<'_>) -> Option<AppError> {
    request(ctx)
        .me_failure
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
}

pub(super) fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    ctx.data_unchecked::<Services>()
}

pub(super) fn request<'a>(ctx: &Context<'a>) -> &'a RequestContext {
    ctx.data_unchecked::<RequestContext>()
}

/// The token's principal, or `UNAUTHENTICATED`.
pub(super) fn principal<'a>(ctx: &Context<'a>) -> AppResult<&'a Principal> {
    request(ctx)
        .principal
        .as_ref()
        .ok_or(AppError::Unauthenticated)
}

/// The signed-in user's record, created on their first request and read once
/// per request however many resolvers ask.
pub(super) async fn current_user<'a>(ctx: &Context<'a>) -> AppResult<&'a UserRecord> {
    let principal = user_principal(ctx)?;
    request(ctx)
        .user
        .get_or_try_init(|| services(ctx).profiles.get_or_create(principal))
        .await
}

/// The token's principal if it stands for a user (not a machine).
pub(super) fn user_principal<'a>(ctx: &Context<'a>) -> AppResult<&'a Principal> {
    let principal = principal(ctx)?;
    if principal.is_machine() {
        return Err(AppError::forbidden(
            "a machine (client-credentials) token has no user profile",
        ));
    }
    Ok(principal)
}

/// The caller's record if this request has read it already.
pub(super) fn known_user<'a>(ctx: &Context<'a>) -> Option<&'a UserRecord> {
    request(ctx).user.get()
}

/// Keeps `user` as the caller's record for the rest of the request (unless
/// another resolver read it first), and answers the kept one.
pub(super) async fn remember_user<'a>(ctx: &Context<'a>, user: UserRecord) -> &'a UserRecord {
    request(ctx).user.get_or_init(|| async { user }).await
}

/// The caller's user id, creating their row if needed (rows they create
/// reference it).
pub(super) async fn current_user_id<'a>(ctx: &Context<'a>) -> AppResult<&'a str> {
    Ok(current_user(ctx).await?.id.as_str())
}

/// Fails with `FORBIDDEN` unless the token may write app_metadata.
pub(super) fn require_admin(ctx: &Context<'_>) -> AppResult<()> {
    if principal(ctx)?.grants(ADMIN_PERMISSION) {
        Ok(())
    } else {
        Err(AppError::forbidden(format!(
            "this needs a token with the {ADMIN_PERMISSION} permission"
        )))
    }
}

/// Parses `first`/`after` against the page-size limits.
pub(super) fn page(
    ctx: &Context<'_>,
    first: Option<i32>,
    after: Option<String>,
) -> AppResult<Page> {
    super::plan::page(first, after.as_deref(), services(ctx).limits)
}

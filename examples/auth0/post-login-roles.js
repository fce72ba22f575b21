/**
 * music-gateway: post-login Action "Roles and plan into the token".
 *
 * Trigger: Login / post-login. Runtime: Node 18 or newer. No secrets, no npm modules.
 *
 * What it does, on every login and refresh-token exchange:
 *   1. copies app_metadata.roles (default []) into the access token and the ID
 *      token, under the namespaced claim `${NAMESPACE}roles`;
 *   2. copies app_metadata.plan (default "free") into `${NAMESPACE}plan`;
 *   3. copies the profile's updated_at (an ISO 8601 string, as Auth0 gives
 *      it) into `${NAMESPACE}updated_at`: the gateway refreshes its copy of
 *      the profile only when this time is newer than the one it stored, so
 *      silent authentication and refresh-token exchanges cost no Management
 *      API call (Auth0 issues a new token on each of them);
 *   4. sets user_metadata.displayName to "user" when the profile has none
 *      (the seed's rule; an existing name is never overwritten).
 *
 * Why: the gateway keeps roles and plan in app_metadata (the user cannot edit
 * them) and mirrors the profile in its own table. A user it has never seen,
 * or one it cannot sync yet because the Management API budget is spent, is
 * served from these claims until the sync happens, so no request has to wait
 * for Auth0. Other services can read the same claims from the token.
 *
 * This replaces the seed's Rule (Rules reached end of life on 2026-11-18). The
 * roles here are the gateway's roles (app_metadata.roles, e.g.
 * "playlist_editor"), not Auth0 RBAC roles (event.authorization.roles): RBAC
 * is only used to hand out the admin permission `write:app_metadata`, which
 * Auth0 itself puts in the `permissions` claim.
 */

// Must match the gateway's AUTH0_ROLES_CLAIM (default
// "https://music-gateway.example/roles") and AUTH0_UPDATED_AT_CLAIM (default
// "https://music-gateway.example/updated_at"). Auth0 drops custom claims that are
// not namespaced with an http(s) URL of your own (not an Auth0 domain), and
// bare "roles" and "permissions" are reserved. Keep the trailing slash.
const NAMESPACE = 'https://music-gateway.example/';

const DEFAULT_DISPLAY_NAME = 'user';
const DEFAULT_PLAN = 'free';

/**
 * @param {Event} event - the user and the context of the login.
 * @param {PostLoginAPI} api - methods to change the login.
 */
exports.onExecutePostLogin = async (event, api) => {
  const appMetadata = event.user.app_metadata || {};
  const userMetadata = event.user.user_metadata || {};

  // The gateway ignores anything in roles that is not a string; do the same
  // here so the claim and the gateway agree.
  const roles = Array.isArray(appMetadata.roles)
    ? appMetadata.roles.filter((role) => typeof role === 'string')
    : [];
  api.accessToken.setCustomClaim(`${NAMESPACE}roles`, roles);
  api.idToken.setCustomClaim(`${NAMESPACE}roles`, roles);

  // Stored lower-case ("free", "premium", "family"); the gateway reads a
  // missing plan as "free", so the claim says the same.
  const plan = typeof appMetadata.plan === 'string' ? appMetadata.plan : DEFAULT_PLAN;
  api.accessToken.setCustomClaim(`${NAMESPACE}plan`, plan);
  api.idToken.setCustomClaim(`${NAMESPACE}plan`, plan);

  // When the profile last changed at Auth0. A token without it makes the
  // gateway fall back to refreshing on every token newer than its last sync.
  if (event.user.updated_at) {
    const updatedAt = new Date(event.user.updated_at).toISOString();
    api.accessToken.setCustomClaim(`${NAMESPACE}updated_at`, updatedAt);
  }

  // Only when missing (absent or null): a name the user chose, even one the
  // gateway would not accept any more, is theirs to change, not ours.
  // Auth0 applies the write once, at the end of the login flow.
  if (userMetadata.displayName === undefined || userMetadata.displayName === null) {
    api.user.setUserMetadata('displayName', DEFAULT_DISPLAY_NAME);
  }
};

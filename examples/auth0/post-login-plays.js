/**
 * music-gateway: post-login Action "playlist_editor from plays" (optional).
 *
 * Trigger: Login / post-login. Runtime: Node 18 or newer (global fetch). No npm modules.
 *
 * YOU PROBABLY DO NOT NEED THIS ACTION. The gateway applies the rule itself:
 * whenever a user's playlists reach PLAYLIST_EDITOR_THRESHOLD plays in total
 * it grants `playlist_editor` in app_metadata.roles, and withdraws it below,
 * and writes the change to Auth0. Deploy this Action only if other systems
 * read the role from the token and need it to be exact at the moment the user
 * logs in (the seed's flow, which ran this check in a Rule).
 *
 * What it does, on every login and refresh-token exchange:
 *   1. gets a client-credentials token for the gateway's API (cached in
 *      api.cache until shortly before it expires, so most logins skip this);
 *   2. asks the gateway `GET {GATEWAY_URL}/playlists/getPlays?user_id=...`
 *      for the user's total plays (a plain number; 0 for a user the gateway
 *      has never seen);
 *   3. at or above the threshold adds `playlist_editor` to app_metadata.roles,
 *      below it removes that one role, and leaves every other role as it is
 *      (the seed's Rule wiped all roles on demotion: a bug not carried over);
 *   4. puts the resulting roles in the `${NAMESPACE}roles` claim of the access
 *      and ID tokens of this same login.
 *
 * On any failure (missing secret, timeout, error status, an answer that is not
 * a number) it logs one line and returns: the login goes on, the roles and
 * the claim stay as they were (the roles Action still sets the claim).
 *
 * Secrets (Actions editor, key icon):
 *   GATEWAY_URL                 base URL of the gateway, e.g. https://gateway.music.example
 *   AUTH0_DOMAIN                tenant host, e.g. example.eu.auth0.com
 *   AUTH0_AUDIENCE              the gateway API's identifier, e.g. https://api.music.example
 *   PLAYS_CLIENT_ID             a machine-to-machine application authorized for the
 *   PLAYS_CLIENT_SECRET           gateway API with the `read:plays` permission
 *   PLAYLIST_EDITOR_THRESHOLD   optional, default 100; keep it equal to the gateway's
 *
 * PLAYS_CLIENT_* must not be the gateway's Management API application
 * (AUTH0_CLIENT_ID): this one needs `read:plays` on the gateway API only.
 */

// Must match the gateway's AUTH0_ROLES_CLAIM and the roles Action.
const NAMESPACE = 'https://music-gateway.example/';

const ROLE = 'playlist_editor';
const DEFAULT_THRESHOLD = 100;

// A login waits for this Action: keep it short. Each HTTP call gets at most
// CALL_TIMEOUT_MS, and all of them together at most TOTAL_BUDGET_MS (a flow
// must finish within 20 s, other Actions included).
const CALL_TIMEOUT_MS = 2500;
const TOTAL_BUDGET_MS = 6000;

// Cache keys may be 64 bytes at most, values 4 kB, lifetimes 24 h.
const TOKEN_CACHE_KEY = 'music-gateway:plays-token';
const TOKEN_EXPIRY_MARGIN_MS = 60 * 1000;
const CACHE_MAX_LIFETIME_MS = 24 * 60 * 60 * 1000;
const CACHE_MAX_VALUE_BYTES = 4000;

/**
 * @param {Event} event - the user and the context of the login.
 * @param {PostLoginAPI} api - methods to change the login.
 */
exports.onExecutePostLogin = async (event, api) => {
  const appMetadata = event.user.app_metadata || {};
  const current = appMetadata.roles;
  if (current !== undefined && current !== null && !Array.isArray(current)) {
    console.log(`playlist_editor check skipped: app_metadata.roles of ${event.user.user_id} is not a list`);
    return;
  }

  let plays;
  let threshold;
  try {
    const settings = readSecrets(event.secrets || {});
    threshold = settings.threshold;
    const deadline = Date.now() + TOTAL_BUDGET_MS;
    plays = await fetchPlays(api, settings, event.user.user_id, deadline);
  } catch (err) {
    console.log(`playlist_editor check skipped for ${event.user.user_id}: ${describe(err)}`);
    return;
  }

  const roles = Array.isArray(current) ? current.slice() : [];
  const holds = roles.includes(ROLE);
  let next = roles;
  if (plays >= threshold && !holds) {
    next = [...roles, ROLE];
  } else if (plays < threshold && holds) {
    next = roles.filter((role) => role !== ROLE);
  }
  if (next !== roles) {
    // Replaces app_metadata.roles as a whole (Auth0 merges app_metadata at the
    // top level only), with every other entry kept as it was.
    api.user.setAppMetadata('roles', next);
  }

  const claim = next.filter((role) => typeof role === 'string');
  api.accessToken.setCustomClaim(`${NAMESPACE}roles`, claim);
  api.idToken.setCustomClaim(`${NAMESPACE}roles`, claim);
};

/** Reads and checks the secrets; throws naming the first one missing. */
function readSecrets(secrets) {
  const required = ['GATEWAY_URL', 'AUTH0_DOMAIN', 'AUTH0_AUDIENCE', 'PLAYS_CLIENT_ID', 'PLAYS_CLIENT_SECRET'];
  for (const name of required) {
    if (typeof secrets[name] !== 'string' || secrets[name].trim() === '') {
      throw new Error(`secret ${name} is not set`);
    }
  }
  let threshold = DEFAULT_THRESHOLD;
  const raw = secrets.PLAYLIST_EDITOR_THRESHOLD;
  if (typeof raw === 'string' && raw.trim() !== '') {
    const parsed = Number(raw.trim());
    if (/^\d+$/.test(raw.trim()) && Number.isSafeInteger(parsed) && parsed >= 1) {
      threshold = parsed;
    } else {
      console.log(`PLAYLIST_EDITOR_THRESHOLD is not a positive whole number; using ${DEFAULT_THRESHOLD}`);
    }
  }
  return {
    gatewayUrl: secrets.GATEWAY_URL.trim().replace(/\/+$/, ''),
    domain: secrets.AUTH0_DOMAIN.trim().replace(/^https?:\/\//, '').replace(/\/+$/, ''),
    audience: secrets.AUTH0_AUDIENCE.trim(),
    clientId: secrets.PLAYS_CLIENT_ID.trim(),
    clientSecret: secrets.PLAYS_CLIENT_SECRET,
    threshold,
  };
}

/**
 * Asks the gateway for the user's total plays. A cached token that the
 * gateway refuses (401) is dropped and replaced once by a fresh one.
 */
async function fetchPlays(api, settings, userId, deadline) {
  const url = `${settings.gatewayUrl}/playlists/getPlays?user_id=${encodeURIComponent(userId)}`;
  const first = await getToken(api, settings, deadline, false);
  let res = await callWithin(deadline, url, { headers: { authorization: `Bearer ${first.token}` } });
  if (res.status === 401 && first.fromCache) {
    forgetToken(api);
    const fresh = await getToken(api, settings, deadline, true);
    res = await callWithin(deadline, url, { headers: { authorization: `Bearer ${fresh.token}` } });
  }
  if (res.status !== 200) {
    if (res.status === 401) forgetToken(api);
    throw new Error(`gateway answered HTTP ${res.status}`);
  }
  const text = (await res.text()).trim();
  const plays = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(plays)) {
    throw new Error('gateway answer is not a number');
  }
  return plays;
}

/**
 * A client-credentials token for the gateway API, from api.cache when it
 * holds one (the cache may forget entries early, so a miss is normal).
 */
async function getToken(api, settings, deadline, skipCache) {
  const cache = cacheOf(api);
  if (cache && !skipCache) {
    let record;
    try {
      record = cache.get(TOKEN_CACHE_KEY);
    } catch (err) {
      record = undefined; // a cache fault only costs a token request
    }
    if (record && typeof record.value === 'string' && record.value !== '') {
      return { token: record.value, fromCache: true };
    }
  }

  const res = await callWithin(deadline, `https://${settings.domain}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      grant_type: 'client_credentials',
      client_id: settings.clientId,
      client_secret: settings.clientSecret,
      audience: settings.audience,
    }),
  });
  if (!res.ok) {
    // The body may echo request details: report the status only.
    throw new Error(`token endpoint answered HTTP ${res.status}`);
  }
  const body = await res.json();
  if (!body || typeof body.access_token !== 'string' || body.access_token === '') {
    throw new Error('token endpoint answered without an access_token');
  }
  const token = body.access_token;

  // Keep it until shortly before it expires, never beyond what the cache allows.
  const expiresInMs = Number(body.expires_in) * 1000;
  const keepMs = Math.min(expiresInMs - TOKEN_EXPIRY_MARGIN_MS, CACHE_MAX_LIFETIME_MS);
  if (cache && Number.isFinite(keepMs) && keepMs > 0 && token.length <= CACHE_MAX_VALUE_BYTES) {
    let result;
    try {
      result = cache.set(TOKEN_CACHE_KEY, token, { expires_at: Date.now() + keepMs });
    } catch (err) {
      result = { type: 'error', code: err && err.name };
    }
    if (result && result.type === 'error') {
      console.log(`token not cached (${result.code || 'error'}); the next login fetches a new one`);
    }
  }
  return { token, fromCache: false };
}

function forgetToken(api) {
  const cache = cacheOf(api);
  if (cache && typeof cache.delete === 'function') {
    try {
      cache.delete(TOKEN_CACHE_KEY);
    } catch (err) {
      // the entry expires on its own
    }
  }
}

function cacheOf(api) {
  const cache = api.cache;
  return cache && typeof cache.get === 'function' && typeof cache.set === 'function' ? cache : null;
}

/** fetch, aborted after CALL_TIMEOUT_MS or at the deadline, whichever is first. */
async function callWithin(deadline, url, options) {
  const remaining = Math.min(CALL_TIMEOUT_MS, deadline - Date.now());
  if (remaining <= 0) {
    throw new Error('time budget spent');
  }
  return fetch(url, { ...options, signal: AbortSignal.timeout(remaining) });
}

/** One short line for the log; never a token or a secret. */
function describe(err) {
  if (err && (err.name === 'TimeoutError' || err.name === 'AbortError')) return 'timed out';
  const cause = err && err.cause && (err.cause.code || err.cause.message);
  const message = (err && err.message) || String(err);
  return cause ? `${message} (${cause})` : message;
}

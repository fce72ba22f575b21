/**
 * A small client of music-gateway over `fetch`, typed by the generated code.
 *
 * Requests carry a persisted document id, never the query text: the gateway
 * runs only the documents in `gql/persisted-documents.json` when it is
 * started with `TRUSTED_DOCUMENTS` pointing at that file. Variables and
 * results are checked by the compiler against `schema.graphql`.
 */
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";

import { getFragmentData } from "./gql";
import type {
  PlaylistFieldsFragment,
  PlaylistQuery,
  Plan,
  SongFieldsFragment,
  UserProfileFieldsFragment,
} from "./gql/graphql";
import {
  addSongMutation,
  addSongsToPlaylistMutation,
  createPlaylistMutation,
  deletePlaylistMutation,
  deleteSongMutation,
  featuredPlaylistsQuery,
  meQuery,
  playlistFields,
  playlistQuery,
  recordPlayMutation,
  removeSongsFromPlaylistMutation,
  setPlaylistFeaturedMutation,
  setUserPlanMutation,
  setUserRolesMutation,
  songFields,
  songQuery,
  updateMeMutation,
  updatePlaylistMutation,
  updateSongMutation,
  userProfileFields,
} from "./operations";

/** The `extensions.code` values the gateway answers. */
export type ErrorCode =
  | "UNAUTHENTICATED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "BAD_USER_INPUT"
  | "UPSTREAM_UNAVAILABLE"
  | "CONFLICT"
  | "INTERNAL_SERVER_ERROR"
  | (string & {});

/** One entry of a GraphQL response's `errors`. */
export interface GraphQLErrorEntry {
  message: string;
  path?: ReadonlyArray<string | number>;
  extensions?: { code?: ErrorCode; [key: string]: unknown };
}

/** The gateway answered errors, or an HTTP status other than 200. */
export class GatewayError extends Error {
  constructor(
    readonly status: number,
    readonly errors: readonly GraphQLErrorEntry[],
  ) {
    super(errors[0]?.message ?? `HTTP ${status}`);
    this.name = "GatewayError";
  }

  /** The first error's `extensions.code`, if any. */
  get code(): ErrorCode | undefined {
    return this.errors[0]?.extensions?.code;
  }
}

/** Where the gateway is and how to sign requests. */
export interface GatewayClient {
  /** The gateway's GraphQL endpoint, e.g. `https://api.example.com/graphql`. */
  endpoint: string;
  /** The user's access token (from Auth0), or `undefined` when signed out. */
  accessToken: () => Promise<string | undefined>;
  /** `fetch`, replaceable in tests. */
  fetch?: typeof fetch;
}

/**
 * The persisted document id of a generated document: the preset writes it
 * into the document's `__meta__.hash` (see codegen.ts).
 */
export function documentId(document: TypedDocumentNode<unknown, never>): string {
  const id = (document as { __meta__?: { hash?: unknown } }).__meta__?.hash;
  if (typeof id !== "string") {
    throw new Error("not a persisted document: run the code generator");
  }
  return id;
}

/**
 * Runs a generated operation by its persisted document id and answers its
 * `data`; any error becomes a `GatewayError`.
 */
export async function execute<TResult, TVariables>(
  client: GatewayClient,
  document: TypedDocumentNode<TResult, TVariables>,
  variables: TVariables,
): Promise<TResult> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/graphql-response+json, application/json",
  };
  const token = await client.accessToken();
  if (token !== undefined) {
    headers.authorization = `Bearer ${token}`;
  }
  const response = await (client.fetch ?? fetch)(client.endpoint, {
    method: "POST",
    headers,
    body: JSON.stringify({
      documentId: documentId(document as TypedDocumentNode<unknown, never>),
      variables,
    }),
  });
  const body = (await response.json().catch(() => ({}))) as {
    data?: TResult | null;
    errors?: GraphQLErrorEntry[];
  };
  if (body.errors?.length || body.data == null) {
    throw new GatewayError(response.status, body.errors ?? []);
  }
  return body.data;
}

/** The home screen: who is signed in, their first songs and playlists. */
export interface Home {
  displayName: string;
  plan: Plan;
  canEditFeaturedPlaylists: boolean;
  totalPlays: number;
  songs: SongFieldsFragment[];
  playlists: PlaylistFieldsFragment[];
  /** Pass as `after` to load more songs; `null` when there are no more. */
  moreSongsAfter: string | null;
  featured: PlaylistFieldsFragment[];
}

/** Loads the home screen in two requests. */
export async function loadHome(client: GatewayClient, pageSize = 20): Promise<Home> {
  const [{ me }, { featuredPlaylists }] = await Promise.all([
    execute(client, meQuery, { songsFirst: pageSize, playlistsFirst: pageSize }),
    execute(client, featuredPlaylistsQuery, { first: 10 }),
  ]);
  return {
    displayName: me.displayName,
    plan: me.plan,
    canEditFeaturedPlaylists: me.canEditFeaturedPlaylists,
    totalPlays: me.totalPlays,
    songs: getFragmentData(songFields, me.songs.nodes).slice(),
    playlists: me.playlists.edges.map((edge) => getFragmentData(playlistFields, edge.node)),
    moreSongsAfter: me.songs.pageInfo.hasNextPage ? me.songs.pageInfo.endCursor : null,
    featured: getFragmentData(playlistFields, featuredPlaylists.nodes).slice(),
  };
}

/** A playlist with all its songs, page by page. */
export async function loadPlaylist(
  client: GatewayClient,
  id: string,
): Promise<{ playlist: PlaylistFieldsFragment; songs: SongFieldsFragment[] }> {
  const songs: SongFieldsFragment[] = [];
  let after: string | null = null;
  for (;;) {
    const { playlist }: PlaylistQuery = await execute(client, playlistQuery, { id, first: 100, after });
    songs.push(...getFragmentData(songFields, playlist.songs.nodes));
    if (!playlist.songs.pageInfo.hasNextPage) {
      return { playlist: getFragmentData(playlistFields, playlist), songs };
    }
    after = playlist.songs.pageInfo.endCursor;
  }
}

/** One song, or `null` when it is not the caller's. */
export async function findSong(client: GatewayClient, id: string): Promise<SongFieldsFragment | null> {
  try {
    const { song } = await execute(client, songQuery, { id });
    return getFragmentData(songFields, song);
  } catch (error) {
    if (error instanceof GatewayError && error.code === "NOT_FOUND") {
      return null;
    }
    throw error;
  }
}

/** Settings screen: saves the display name, a preference and the favourite genre at once. */
export async function saveSettings(
  client: GatewayClient,
  settings: { displayName: string | null; theme: "light" | "dark"; favGenre: string | null },
): Promise<string> {
  const { updateMe } = await execute(client, updateMeMutation, {
    input: {
      displayName: settings.displayName,
      preferences: { theme: settings.theme },
      favGenre: settings.favGenre,
    },
  });
  return updateMe.displayName;
}

/** Adds songs to the library and puts them in a new playlist. */
export async function createMixtape(
  client: GatewayClient,
  name: string,
  tracks: ReadonlyArray<{ name: string; artist?: string; genre?: string }>,
): Promise<PlaylistFieldsFragment> {
  const songIds: string[] = [];
  for (const track of tracks) {
    const { addSong } = await execute(client, addSongMutation, { input: track });
    songIds.push(getFragmentData(songFields, addSong).id);
  }
  const { createPlaylist } = await execute(client, createPlaylistMutation, {
    input: { name, songIds },
  });
  return getFragmentData(playlistFields, createPlaylist);
}

/** Library and playlist edits, each answering the changed object. */
export const library = {
  async renameSong(client: GatewayClient, id: string, name: string, artist: string | null) {
    const { updateSong } = await execute(client, updateSongMutation, { id, input: { name, artist } });
    return getFragmentData(songFields, updateSong);
  },
  async deleteSong(client: GatewayClient, id: string): Promise<string> {
    return (await execute(client, deleteSongMutation, { id })).deleteSong;
  },
  async renamePlaylist(client: GatewayClient, id: string, name: string) {
    const { updatePlaylist } = await execute(client, updatePlaylistMutation, { id, input: { name } });
    return getFragmentData(playlistFields, updatePlaylist);
  },
  async deletePlaylist(client: GatewayClient, id: string): Promise<string> {
    return (await execute(client, deletePlaylistMutation, { id })).deletePlaylist;
  },
  async addToPlaylist(client: GatewayClient, playlistId: string, songIds: string[]): Promise<number> {
    const { addSongsToPlaylist } = await execute(client, addSongsToPlaylistMutation, { playlistId, songIds });
    return addSongsToPlaylist.songs.totalCount;
  },
  async removeFromPlaylist(client: GatewayClient, playlistId: string, songIds: string[]): Promise<number> {
    const { removeSongsFromPlaylist } = await execute(client, removeSongsFromPlaylistMutation, {
      playlistId,
      songIds,
    });
    return removeSongsFromPlaylist.songs.totalCount;
  },
  async play(client: GatewayClient, playlistId: string): Promise<number> {
    return (await execute(client, recordPlayMutation, { playlistId })).recordPlay.plays;
  },
  /** Needs the `playlist_editor` role; `FORBIDDEN` otherwise. */
  async feature(client: GatewayClient, id: string, featured: boolean): Promise<boolean> {
    return (await execute(client, setPlaylistFeaturedMutation, { id, featured })).setPlaylistFeatured.featured;
  },
};

/** Admin tools: need a token with the `write:app_metadata` permission. */
export const admin = {
  async setPlan(client: GatewayClient, userId: string, plan: Plan): Promise<UserProfileFieldsFragment> {
    const { setUserPlan } = await execute(client, setUserPlanMutation, { userId, plan });
    return getFragmentData(userProfileFields, setUserPlan);
  },
  async setRoles(client: GatewayClient, userId: string, roles: string[]): Promise<UserProfileFieldsFragment> {
    const { setUserRoles } = await execute(client, setUserRolesMutation, { userId, roles });
    return getFragmentData(userProfileFields, setUserRoles);
  },
};

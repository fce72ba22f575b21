/* eslint-disable */
import * as types from './graphql';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  fragment SongFields on Song {\n    id\n    name\n    artist\n    genre\n    createdAt\n  }\n": typeof types.SongFieldsFragmentDoc,
    "\n  fragment PlaylistFields on Playlist {\n    id\n    name\n    plays\n    featured\n    createdAt\n  }\n": typeof types.PlaylistFieldsFragmentDoc,
    "\n  fragment UserProfileFields on UserProfile {\n    id\n    email\n    name\n    displayName\n    roles\n    plan\n    canEditFeaturedPlaylists\n  }\n": typeof types.UserProfileFieldsFragmentDoc,
    "\n  query Me($songsFirst: Int, $songsAfter: String, $playlistsFirst: Int, $playlistsAfter: String) {\n    me {\n      id\n      email\n      name\n      picture\n      displayName\n      preferences\n      roles\n      plan\n      canEditFeaturedPlaylists\n      favGenre\n      syncedAt\n      totalPlays\n      songs(first: $songsFirst, after: $songsAfter) {\n        totalCount\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n        nodes {\n          ...SongFields\n        }\n      }\n      playlists(first: $playlistsFirst, after: $playlistsAfter) {\n        totalCount\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n        edges {\n          cursor\n          node {\n            ...PlaylistFields\n          }\n        }\n      }\n    }\n  }\n": typeof types.MeDocument,
    "\n  query FeaturedPlaylists($first: Int, $after: String) {\n    featuredPlaylists(first: $first, after: $after) {\n      totalCount\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n      nodes {\n        ...PlaylistFields\n      }\n    }\n  }\n": typeof types.FeaturedPlaylistsDocument,
    "\n  query Playlist($id: ID!, $first: Int, $after: String) {\n    playlist(id: $id) {\n      ...PlaylistFields\n      songs(first: $first, after: $after) {\n        totalCount\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n        nodes {\n          ...SongFields\n        }\n      }\n    }\n  }\n": typeof types.PlaylistDocument,
    "\n  query Song($id: ID!) {\n    song(id: $id) {\n      ...SongFields\n    }\n  }\n": typeof types.SongDocument,
    "\n  mutation UpdateMe($input: UpdateMeInput!) {\n    updateMe(input: $input) {\n      id\n      displayName\n      preferences\n      favGenre\n    }\n  }\n": typeof types.UpdateMeDocument,
    "\n  mutation AddSong($input: AddSongInput!) {\n    addSong(input: $input) {\n      ...SongFields\n    }\n  }\n": typeof types.AddSongDocument,
    "\n  mutation UpdateSong($id: ID!, $input: UpdateSongInput!) {\n    updateSong(id: $id, input: $input) {\n      ...SongFields\n    }\n  }\n": typeof types.UpdateSongDocument,
    "\n  mutation DeleteSong($id: ID!) {\n    deleteSong(id: $id)\n  }\n": typeof types.DeleteSongDocument,
    "\n  mutation CreatePlaylist($input: CreatePlaylistInput!) {\n    createPlaylist(input: $input) {\n      ...PlaylistFields\n    }\n  }\n": typeof types.CreatePlaylistDocument,
    "\n  mutation UpdatePlaylist($id: ID!, $input: UpdatePlaylistInput!) {\n    updatePlaylist(id: $id, input: $input) {\n      ...PlaylistFields\n    }\n  }\n": typeof types.UpdatePlaylistDocument,
    "\n  mutation DeletePlaylist($id: ID!) {\n    deletePlaylist(id: $id)\n  }\n": typeof types.DeletePlaylistDocument,
    "\n  mutation AddSongsToPlaylist($playlistId: ID!, $songIds: [ID!]!) {\n    addSongsToPlaylist(playlistId: $playlistId, songIds: $songIds) {\n      ...PlaylistFields\n      songs {\n        totalCount\n      }\n    }\n  }\n": typeof types.AddSongsToPlaylistDocument,
    "\n  mutation RemoveSongsFromPlaylist($playlistId: ID!, $songIds: [ID!]!) {\n    removeSongsFromPlaylist(playlistId: $playlistId, songIds: $songIds) {\n      ...PlaylistFields\n      songs {\n        totalCount\n      }\n    }\n  }\n": typeof types.RemoveSongsFromPlaylistDocument,
    "\n  mutation RecordPlay($playlistId: ID!) {\n    recordPlay(playlistId: $playlistId) {\n      id\n      plays\n    }\n  }\n": typeof types.RecordPlayDocument,
    "\n  mutation SetPlaylistFeatured($id: ID!, $featured: Boolean!) {\n    setPlaylistFeatured(id: $id, featured: $featured) {\n      id\n      featured\n    }\n  }\n": typeof types.SetPlaylistFeaturedDocument,
    "\n  mutation SetUserPlan($userId: ID!, $plan: Plan!) {\n    setUserPlan(userId: $userId, plan: $plan) {\n      ...UserProfileFields\n    }\n  }\n": typeof types.SetUserPlanDocument,
    "\n  mutation SetUserRoles($userId: ID!, $roles: [String!]!) {\n    setUserRoles(userId: $userId, roles: $roles) {\n      ...UserProfileFields\n    }\n  }\n": typeof types.SetUserRolesDocument,
    "\n  mutation DeleteUser($userId: ID!) {\n    deleteUser(userId: $userId)\n  }\n": typeof types.DeleteUserDocument,
    "\n  mutation DeleteMe {\n    deleteMe\n  }\n": typeof types.DeleteMeDocument,
};
const documents: Documents = {
    "\n  fragment SongFields on Song {\n    id\n    name\n    artist\n    genre\n    createdAt\n  }\n": types.SongFieldsFragmentDoc,
    "\n  fragment PlaylistFields on Playlist {\n    id\n    name\n    plays\n    featured\n    createdAt\n  }\n": types.PlaylistFieldsFragmentDoc,
    "\n  fragment UserProfileFields on UserProfile {\n    id\n    email\n    name\n    displayName\n    roles\n    plan\n    canEditFeaturedPlaylists\n  }\n": types.UserProfileFieldsFragmentDoc,
    "\n  query Me($songsFirst: Int, $songsAfter: String, $playlistsFirst: Int, $playlistsAfter: String) {\n    me {\n      id\n      email\n      name\n      picture\n      displayName\n      preferences\n      roles\n      plan\n      canEditFeaturedPlaylists\n      favGenre\n      syncedAt\n      totalPlays\n      songs(first: $songsFirst, after: $songsAfter) {\n        totalCount\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n        nodes {\n          ...SongFields\n        }\n      }\n      playlists(first: $playlistsFirst, after: $playlistsAfter) {\n        totalCount\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n        edges {\n          cursor\n          node {\n            ...PlaylistFields\n          }\n        }\n      }\n    }\n  }\n": types.MeDocument,
    "\n  query FeaturedPlaylists($first: Int, $after: String) {\n    featuredPlaylists(first: $first, after: $after) {\n      totalCount\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n      nodes {\n        ...PlaylistFields\n      }\n    }\n  }\n": types.FeaturedPlaylistsDocument,
    "\n  query Playlist($id: ID!, $first: Int, $after: String) {\n    playlist(id: $id) {\n      ...PlaylistFields\n      songs(first: $first, after: $after) {\n        totalCount\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n        nodes {\n          ...SongFields\n        }\n      }\n    }\n  }\n": types.PlaylistDocument,
    "\n  query Song($id: ID!) {\n    song(id: $id) {\n      ...SongFields\n    }\n  }\n": types.SongDocument,
    "\n  mutation UpdateMe($input: UpdateMeInput!) {\n    updateMe(input: $input) {\n      id\n      displayName\n      preferences\n      favGenre\n    }\n  }\n": types.UpdateMeDocument,
    "\n  mutation AddSong($input: AddSongInput!) {\n    addSong(input: $input) {\n      ...SongFields\n    }\n  }\n": types.AddSongDocument,
    "\n  mutation UpdateSong($id: ID!, $input: UpdateSongInput!) {\n    updateSong(id: $id, input: $input) {\n      ...SongFields\n    }\n  }\n": types.UpdateSongDocument,
    "\n  mutation DeleteSong($id: ID!) {\n    deleteSong(id: $id)\n  }\n": types.DeleteSongDocument,
    "\n  mutation CreatePlaylist($input: CreatePlaylistInput!) {\n    createPlaylist(input: $input) {\n      ...PlaylistFields\n    }\n  }\n": types.CreatePlaylistDocument,
    "\n  mutation UpdatePlaylist($id: ID!, $input: UpdatePlaylistInput!) {\n    updatePlaylist(id: $id, input: $input) {\n      ...PlaylistFields\n    }\n  }\n": types.UpdatePlaylistDocument,
    "\n  mutation DeletePlaylist($id: ID!) {\n    deletePlaylist(id: $id)\n  }\n": types.DeletePlaylistDocument,
    "\n  mutation AddSongsToPlaylist($playlistId: ID!, $songIds: [ID!]!) {\n    addSongsToPlaylist(playlistId: $playlistId, songIds: $songIds) {\n      ...PlaylistFields\n      songs {\n        totalCount\n      }\n    }\n  }\n": types.AddSongsToPlaylistDocument,
    "\n  mutation RemoveSongsFromPlaylist($playlistId: ID!, $songIds: [ID!]!) {\n    removeSongsFromPlaylist(playlistId: $playlistId, songIds: $songIds) {\n      ...PlaylistFields\n      songs {\n        totalCount\n      }\n    }\n  }\n": types.RemoveSongsFromPlaylistDocument,
    "\n  mutation RecordPlay($playlistId: ID!) {\n    recordPlay(playlistId: $playlistId) {\n      id\n      plays\n    }\n  }\n": types.RecordPlayDocument,
    "\n  mutation SetPlaylistFeatured($id: ID!, $featured: Boolean!) {\n    setPlaylistFeatured(id: $id, featured: $featured) {\n      id\n      featured\n    }\n  }\n": types.SetPlaylistFeaturedDocument,
    "\n  mutation SetUserPlan($userId: ID!, $plan: Plan!) {\n    setUserPlan(userId: $userId, plan: $plan) {\n      ...UserProfileFields\n    }\n  }\n": types.SetUserPlanDocument,
    "\n  mutation SetUserRoles($userId: ID!, $roles: [String!]!) {\n    setUserRoles(userId: $userId, roles: $roles) {\n      ...UserProfileFields\n    }\n  }\n": types.SetUserRolesDocument,
    "\n  mutation DeleteUser($userId: ID!) {\n    deleteUser(userId: $userId)\n  }\n": types.DeleteUserDocument,
    "\n  mutation DeleteMe {\n    deleteMe\n  }\n": types.DeleteMeDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment SongFields on Song {\n    id\n    name\n    artist\n    genre\n    createdAt\n  }\n"): (typeof documents)["\n  fragment SongFields on Song {\n    id\n    name\n    artist\n    genre\n    createdAt\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment PlaylistFields on Playlist {\n    id\n    name\n    plays\n    featured\n    createdAt\n  }\n"): (typeof documents)["\n  fragment PlaylistFields on Playlist {\n    id\n    name\n    plays\n    featured\n    createdAt\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment UserProfileFields on UserProfile {\n    id\n    email\n    name\n    displayName\n    roles\n    plan\n    canEditFeaturedPlaylists\n  }\n"): (typeof documents)["\n  fragment UserProfileFields on UserProfile {\n    id\n    email\n    name\n    displayName\n    roles\n    plan\n    canEditFeaturedPlaylists\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Me($songsFirst: Int, $songsAfter: String, $playlistsFirst: Int, $playlistsAfter: String) {\n    me {\n      id\n      email\n      name\n      picture\n      displayName\n      preferences\n      roles\n      plan\n      canEditFeaturedPlaylists\n      favGenre\n      syncedAt\n      totalPlays\n      songs(first: $songsFirst, after: $songsAfter) {\n        totalCount\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n        nodes {\n          ...SongFields\n        }\n      }\n      playlists(first: $playlistsFirst, after: $playlistsAfter) {\n        totalCount\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n        edges {\n          cursor\n          node {\n            ...PlaylistFields\n          }\n        }\n      }\n    }\n  }\n"): (typeof documents)["\n  query Me($songsFirst: Int, $songsAfter: String, $playlistsFirst: Int, $playlistsAfter: String) {\n    me {\n      id\n      email\n      name\n      picture\n      displayName\n      preferences\n      roles\n      plan\n      canEditFeaturedPlaylists\n      favGenre\n      syncedAt\n      totalPlays\n      songs(first: $songsFirst, after: $songsAfter) {\n        totalCount\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n        nodes {\n          ...SongFields\n        }\n      }\n      playlists(first: $playlistsFirst, after: $playlistsAfter) {\n        totalCount\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n        edges {\n          cursor\n          node {\n            ...PlaylistFields\n          }\n        }\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query FeaturedPlaylists($first: Int, $after: String) {\n    featuredPlaylists(first: $first, after: $after) {\n      totalCount\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n      nodes {\n        ...PlaylistFields\n      }\n    }\n  }\n"): (typeof documents)["\n  query FeaturedPlaylists($first: Int, $after: String) {\n    featuredPlaylists(first: $first, after: $after) {\n      totalCount\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n      nodes {\n        ...PlaylistFields\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Playlist($id: ID!, $first: Int, $after: String) {\n    playlist(id: $id) {\n      ...PlaylistFields\n      songs(first: $first, after: $after) {\n        totalCount\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n        nodes {\n          ...SongFields\n        }\n      }\n    }\n  }\n"): (typeof documents)["\n  query Playlist($id: ID!, $first: Int, $after: String) {\n    playlist(id: $id) {\n      ...PlaylistFields\n      songs(first: $first, after: $after) {\n        totalCount\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n        nodes {\n          ...SongFields\n        }\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Song($id: ID!) {\n    song(id: $id) {\n      ...SongFields\n    }\n  }\n"): (typeof documents)["\n  query Song($id: ID!) {\n    song(id: $id) {\n      ...SongFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation UpdateMe($input: UpdateMeInput!) {\n    updateMe(input: $input) {\n      id\n      displayName\n      preferences\n      favGenre\n    }\n  }\n"): (typeof documents)["\n  mutation UpdateMe($input: UpdateMeInput!) {\n    updateMe(input: $input) {\n      id\n      displayName\n      preferences\n      favGenre\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation AddSong($input: AddSongInput!) {\n    addSong(input: $input) {\n      ...SongFields\n    }\n  }\n"): (typeof documents)["\n  mutation AddSong($input: AddSongInput!) {\n    addSong(input: $input) {\n      ...SongFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation UpdateSong($id: ID!, $input: UpdateSongInput!) {\n    updateSong(id: $id, input: $input) {\n      ...SongFields\n    }\n  }\n"): (typeof documents)["\n  mutation UpdateSong($id: ID!, $input: UpdateSongInput!) {\n    updateSong(id: $id, input: $input) {\n      ...SongFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation DeleteSong($id: ID!) {\n    deleteSong(id: $id)\n  }\n"): (typeof documents)["\n  mutation DeleteSong($id: ID!) {\n    deleteSong(id: $id)\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreatePlaylist($input: CreatePlaylistInput!) {\n    createPlaylist(input: $input) {\n      ...PlaylistFields\n    }\n  }\n"): (typeof documents)["\n  mutation CreatePlaylist($input: CreatePlaylistInput!) {\n    createPlaylist(input: $input) {\n      ...PlaylistFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation UpdatePlaylist($id: ID!, $input: UpdatePlaylistInput!) {\n    updatePlaylist(id: $id, input: $input) {\n      ...PlaylistFields\n    }\n  }\n"): (typeof documents)["\n  mutation UpdatePlaylist($id: ID!, $input: UpdatePlaylistInput!) {\n    updatePlaylist(id: $id, input: $input) {\n      ...PlaylistFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation DeletePlaylist($id: ID!) {\n    deletePlaylist(id: $id)\n  }\n"): (typeof documents)["\n  mutation DeletePlaylist($id: ID!) {\n    deletePlaylist(id: $id)\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation AddSongsToPlaylist($playlistId: ID!, $songIds: [ID!]!) {\n    addSongsToPlaylist(playlistId: $playlistId, songIds: $songIds) {\n      ...PlaylistFields\n      songs {\n        totalCount\n      }\n    }\n  }\n"): (typeof documents)["\n  mutation AddSongsToPlaylist($playlistId: ID!, $songIds: [ID!]!) {\n    addSongsToPlaylist(playlistId: $playlistId, songIds: $songIds) {\n      ...PlaylistFields\n      songs {\n        totalCount\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RemoveSongsFromPlaylist($playlistId: ID!, $songIds: [ID!]!) {\n    removeSongsFromPlaylist(playlistId: $playlistId, songIds: $songIds) {\n      ...PlaylistFields\n      songs {\n        totalCount\n      }\n    }\n  }\n"): (typeof documents)["\n  mutation RemoveSongsFromPlaylist($playlistId: ID!, $songIds: [ID!]!) {\n    removeSongsFromPlaylist(playlistId: $playlistId, songIds: $songIds) {\n      ...PlaylistFields\n      songs {\n        totalCount\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RecordPlay($playlistId: ID!) {\n    recordPlay(playlistId: $playlistId) {\n      id\n      plays\n    }\n  }\n"): (typeof documents)["\n  mutation RecordPlay($playlistId: ID!) {\n    recordPlay(playlistId: $playlistId) {\n      id\n      plays\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SetPlaylistFeatured($id: ID!, $featured: Boolean!) {\n    setPlaylistFeatured(id: $id, featured: $featured) {\n      id\n      featured\n    }\n  }\n"): (typeof documents)["\n  mutation SetPlaylistFeatured($id: ID!, $featured: Boolean!) {\n    setPlaylistFeatured(id: $id, featured: $featured) {\n      id\n      featured\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SetUserPlan($userId: ID!, $plan: Plan!) {\n    setUserPlan(userId: $userId, plan: $plan) {\n      ...UserProfileFields\n    }\n  }\n"): (typeof documents)["\n  mutation SetUserPlan($userId: ID!, $plan: Plan!) {\n    setUserPlan(userId: $userId, plan: $plan) {\n      ...UserProfileFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SetUserRoles($userId: ID!, $roles: [String!]!) {\n    setUserRoles(userId: $userId, roles: $roles) {\n      ...UserProfileFields\n    }\n  }\n"): (typeof documents)["\n  mutation SetUserRoles($userId: ID!, $roles: [String!]!) {\n    setUserRoles(userId: $userId, roles: $roles) {\n      ...UserProfileFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation DeleteUser($userId: ID!) {\n    deleteUser(userId: $userId)\n  }\n"): (typeof documents)["\n  mutation DeleteUser($userId: ID!) {\n    deleteUser(userId: $userId)\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation DeleteMe {\n    deleteMe\n  }\n"): (typeof documents)["\n  mutation DeleteMe {\n    deleteMe\n  }\n"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;
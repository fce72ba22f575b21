/**
 * The operations this client sends: together they use every query and every
 * mutation of `schema.graphql` (a test in the gateway checks that), so a
 * schema change that breaks a generated client breaks the build here first.
 *
 * `graphql()` comes from the generated `gql/` folder; each call answers a
 * typed document whose `__meta__.hash` is its persisted document id.
 */
import { graphql } from "./gql";

export const songFields = graphql(`
  fragment SongFields on Song {
    id
    name
    artist
    genre
    createdAt
  }
`);

export const playlistFields = graphql(`
  fragment PlaylistFields on Playlist {
    id
    name
    plays
    featured
    createdAt
  }
`);

export const userProfileFields = graphql(`
  fragment UserProfileFields on UserProfile {
    id
    email
    name
    displayName
    roles
    plan
    canEditFeaturedPlaylists
  }
`);

export const meQuery = graphql(`
  query Me($songsFirst: Int, $songsAfter: String, $playlistsFirst: Int, $playlistsAfter: String) {
    me {
      id
      email
      name
      picture
      displayName
      preferences
      roles
      plan
      canEditFeaturedPlaylists
      favGenre
      syncedAt
      totalPlays
      songs(first: $songsFirst, after: $songsAfter) {
        totalCount
        pageInfo {
          hasNextPage
          endCursor
        }
        nodes {
          ...SongFields
        }
      }
      playlists(first: $playlistsFirst, after: $playlistsAfter) {
        totalCount
        pageInfo {
          hasNextPage
          endCursor
        }
        edges {
          cursor
          node {
            ...PlaylistFields
          }
        }
      }
    }
  }
`);

export const featuredPlaylistsQuery = graphql(`
  query FeaturedPlaylists($first: Int, $after: String) {
    featuredPlaylists(first: $first, after: $after) {
      totalCount
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        ...PlaylistFields
      }
    }
  }
`);

export const playlistQuery = graphql(`
  query Playlist($id: ID!, $first: Int, $after: String) {
    playlist(id: $id) {
      ...PlaylistFields
      songs(first: $first, after: $after) {
        totalCount
        pageInfo {
          hasNextPage
          endCursor
        }
        nodes {
          ...SongFields
        }
      }
    }
  }
`);

export const songQuery = graphql(`
  query Song($id: ID!) {
    song(id: $id) {
      ...SongFields
    }
  }
`);

export const updateMeMutation = graphql(`
  mutation UpdateMe($input: UpdateMeInput!) {
    updateMe(input: $input) {
      id
      displayName
      preferences
      favGenre
    }
  }
`);

export const addSongMutation = graphql(`
  mutation AddSong($input: AddSongInput!) {
    addSong(input: $input) {
      ...SongFields
    }
  }
`);

export const updateSongMutation = graphql(`
  mutation UpdateSong($id: ID!, $input: UpdateSongInput!) {
    updateSong(id: $id, input: $input) {
      ...SongFields
    }
  }
`);

export const deleteSongMutation = graphql(`
  mutation DeleteSong($id: ID!) {
    deleteSong(id: $id)
  }
`);

export const createPlaylistMutation = graphql(`
  mutation CreatePlaylist($input: CreatePlaylistInput!) {
    createPlaylist(input: $input) {
      ...PlaylistFields
    }
  }
`);

export const updatePlaylistMutation = graphql(`
  mutation UpdatePlaylist($id: ID!, $input: UpdatePlaylistInput!) {
    updatePlaylist(id: $id, input: $input) {
      ...PlaylistFields
    }
  }
`);

export const deletePlaylistMutation = graphql(`
  mutation DeletePlaylist($id: ID!) {
    deletePlaylist(id: $id)
  }
`);

export const addSongsToPlaylistMutation = graphql(`
  mutation AddSongsToPlaylist($playlistId: ID!, $songIds: [ID!]!) {
    addSongsToPlaylist(playlistId: $playlistId, songIds: $songIds) {
      ...PlaylistFields
      songs {
        totalCount
      }
    }
  }
`);

export const removeSongsFromPlaylistMutation = graphql(`
  mutation RemoveSongsFromPlaylist($playlistId: ID!, $songIds: [ID!]!) {
    removeSongsFromPlaylist(playlistId: $playlistId, songIds: $songIds) {
      ...PlaylistFields
      songs {
        totalCount
      }
    }
  }
`);

export const recordPlayMutation = graphql(`
  mutation RecordPlay($playlistId: ID!) {
    recordPlay(playlistId: $playlistId) {
      id
      plays
    }
  }
`);

export const setPlaylistFeaturedMutation = graphql(`
  mutation SetPlaylistFeatured($id: ID!, $featured: Boolean!) {
    setPlaylistFeatured(id: $id, featured: $featured) {
      id
      featured
    }
  }
`);

export const setUserPlanMutation = graphql(`
  mutation SetUserPlan($userId: ID!, $plan: Plan!) {
    setUserPlan(userId: $userId, plan: $plan) {
      ...UserProfileFields
    }
  }
`);

export const setUserRolesMutation = graphql(`
  mutation SetUserRoles($userId: ID!, $roles: [String!]!) {
    setUserRoles(userId: $userId, roles: $roles) {
      ...UserProfileFields
    }
  }
`);

export const deleteUserMutation = graphql(`
  mutation DeleteUser($userId: ID!) {
    deleteUser(userId: $userId)
  }
`);

export const deleteMeMutation = graphql(`
  mutation DeleteMe {
    deleteMe
  }
`);

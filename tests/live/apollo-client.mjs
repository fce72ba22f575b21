// One subscription over Apollo Client's HttpLink (Apollo's multipart HTTP
// subscriptions), as a web or Node app would run it:
// `node apollo-client.mjs URL TOKEN QUERY [VARIABLES_JSON]`. Prints one
// JSON line per event (next, error, complete) and exits when it ends.
// Driven by tests/api/live.rs.
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';

const [url, token, query, variables] = process.argv.slice(2);
const print = (event) => process.stdout.write(JSON.stringify(event) + '\n');

const client = new ApolloClient({
  link: new HttpLink({
    uri: url,
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  }),
  cache: new InMemoryCache(),
});

client
  .subscribe({ query: gql(query), variables: variables ? JSON.parse(variables) : undefined })
  .subscribe({
    next: (result) => {
      if (result.error) {
        print({ event: 'error', errors: [{ message: String(result.error.message) }] });
        process.exit(0);
      }
      print({ event: 'next', payload: { data: result.data } });
    },
    error: (error) => {
      print({ event: 'error', errors: [{ message: String(error && error.message) }] });
      process.exit(0);
    },
    complete: () => {
      print({ event: 'complete' });
      process.exit(0);
    },
  });

// One operation over graphql-sse's client ("distinct connections" mode):
// `node sse-client.mjs URL TOKEN QUERY [VARIABLES_JSON]`. Prints one JSON
// line per event (next, error, complete) and exits when the operation ends.
// Driven by tests/api/live.rs.
import { createClient } from 'graphql-sse';

const [url, token, query, variables] = process.argv.slice(2);
const print = (event) => process.stdout.write(JSON.stringify(event) + '\n');

const client = createClient({
  url,
  headers: token ? { Authorization: `Bearer ${token}` } : {},
  retryAttempts: 0,
});

client.subscribe(
  { query, variables: variables ? JSON.parse(variables) : undefined },
  {
    next: (payload) => print({ event: 'next', payload }),
    error: (error) => {
      print({ event: 'error', errors: Array.isArray(error) ? error : [{ message: String(error) }] });
      process.exit(0);
    },
    complete: () => {
      print({ event: 'complete' });
      client.dispose();
      process.exit(0);
    },
  },
);

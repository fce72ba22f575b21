// One operation over graphql-ws's client (graphql-transport-ws), as an app
// would run it: `node ws-client.mjs URL TOKEN QUERY [VARIABLES_JSON]`.
// Prints one JSON line per event (next, error, complete, closed) and exits
// when the operation ends or the socket closes. URL may list several
// instances, comma-separated, as a load balancer would spread them: the
// client then reconnects to the next one when its socket is lost.
// Driven by tests/api/live.rs.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, token, query, variables] = process.argv.slice(2);
const print = (event) => process.stdout.write(JSON.stringify(event) + '\n');

const urls = url.split(',');
let connections = 0;
const reconnects = urls.length > 1;

const client = createClient({
  url: () => urls[connections++ % urls.length],
  webSocketImpl: WebSocket,
  connectionParams: token ? { Authorization: `Bearer ${token}` } : {},
  retryAttempts: reconnects ? 5 : 0,
  retryWait: () => new Promise((resolve) => setTimeout(resolve, 200)),
  shouldRetry: () => reconnects,
  on: {
    connected: () => {
      if (connections > 1) print({ event: 'reconnected', to: urls[(connections - 1) % urls.length] });
    },
    closed: (event) => {
      print({ event: 'closed', code: event.code, reason: String(event.reason) });
      if (!reconnects) process.exit(0);
    },
  },
});

client.subscribe(
  { query, variables: variables ? JSON.parse(variables) : undefined },
  {
    next: (payload) => print({ event: 'next', payload }),
    error: (error) => {
      if (Array.isArray(error)) {
        print({ event: 'error', errors: error });
      } else if (error && typeof error.code === 'number') {
        print({ event: 'closed', code: error.code, reason: String(error.reason) });
      } else {
        print({ event: 'error', errors: [{ message: String(error) }] });
      }
      process.exit(0);
    },
    complete: () => {
      print({ event: 'complete' });
      client.dispose();
      process.exit(0);
    },
  },
);

// GraphiQL for music-gateway, bundled by scripts/build-graphiql into plain
// files that the gateway embeds and serves itself: nothing is fetched from
// another host, so it works offline and under a strict Content-Security-Policy.
import { createElement } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import 'graphiql/graphiql.css';
import './page.css';

// The gateway passes its settings in a JSON data block rather than an inline
// script, which the page's Content-Security-Policy forbids.
const config = JSON.parse(document.getElementById('graphiql-config').textContent);

// GraphiQL keeps its tabs in localStorage but, unless the user asks it to,
// not their headers: a reload would bring the tabs back without the demo
// token. Put the current token into every tab that has no headers of its own.
function prefillStoredTabs(headers) {
  const key = 'graphiql:tabState';
  try {
    const state = JSON.parse(window.localStorage.getItem(key));
    if (!state || !Array.isArray(state.tabs)) return;
    for (const tab of state.tabs) {
      if (!tab.headers || !tab.headers.trim()) tab.headers = headers;
    }
    window.localStorage.setItem(key, JSON.stringify(state));
  } catch {
    // No storage (private mode) or nothing usable in it: GraphiQL starts afresh.
  }
}

if (config.headers) prefillStoredTabs(config.headers);

// The page is served at the GraphQL endpoint itself, so its own path is the
// endpoint, also behind a proxy that adds a path prefix.
const fetcher = createGraphiQLFetcher({ url: window.location.pathname });

createRoot(document.getElementById('graphiql')).render(
  createElement(GraphiQL, {
    fetcher,
    defaultQuery: config.query,
    defaultHeaders: config.headers || undefined,
    // Open on the headers, where a token goes.
    defaultEditorToolsVisibility: 'headers',
    shouldPersistHeaders: false,
  }),
);

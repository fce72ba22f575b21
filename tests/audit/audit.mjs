// Runs graphql-http's server audit (the GraphQL-over-HTTP reference
// implementation's) against a running gateway and prints every result as
// JSON, one array on stdout: [{id, name, status, reason?, status_code?}].
//
//   node audit.mjs http://127.0.0.1:8080/graphql [TOKEN]
//
// With a TOKEN every request carries `Authorization: Bearer TOKEN`: the
// audit sends its own headers, so fetch is wrapped to add it. Run by
// tests/api/audit.rs, which judges the results.
import { auditServer } from 'graphql-http';

const [url, token] = process.argv.slice(2);
if (!url) {
  console.error('usage: node audit.mjs URL [TOKEN]');
  process.exit(2);
}

const fetchFn = (input, init = {}) => {
  if (!token) return fetch(input, init);
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};

const results = await auditServer({ url, fetchFn });
const report = [];
for (const result of results) {
  const entry = { id: result.id, name: result.name, status: result.status };
  if (result.status !== 'ok') {
    entry.reason = result.reason;
    entry.statusCode = result.response.status;
    entry.contentType = result.response.headers.get('content-type');
    // The body is read once; the audit may have read it already.
    try {
      entry.body = await result.response.text();
    } catch {
      entry.body = null;
    }
  }
  report.push(entry);
}
console.log(JSON.stringify(report));

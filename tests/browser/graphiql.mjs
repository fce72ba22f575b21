// Drives the gateway's GraphiQL in headless Chromium with every request to
// another host blocked, and prints what it saw as one JSON line for
// tests/api/graphiql.rs to judge.
//
//   node graphiql.mjs http://127.0.0.1:PORT [screenshot.png]
//
// CHROMIUM names the browser (default /usr/bin/chromium). Exits non-zero,
// saying why on stderr, when a step cannot be done at all.
import { chromium } from 'playwright-core';

const [base, screenshot] = process.argv.slice(2);
if (!base) {
  console.error('usage: node graphiql.mjs GATEWAY_URL [SCREENSHOT]');
  process.exit(2);
}
const gatewayHost = new URL(base).host;
const QUERY = '{ me { displayName songs { nodes { name } } } }';

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // --no-sandbox: Chromium's sandbox refuses to run as root (as in CI).
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ],
});

const seen = { requests: 0, blocked: [], failed: [], consoleErrors: [], pageErrors: [] };
try {
  // A new context is a fresh profile: no storage from an earlier run.
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.route('**/*', (route) => {
    const url = new URL(route.request().url());
    seen.requests += 1;
    if (url.host === gatewayHost) return route.continue();
    seen.blocked.push(url.href);
    return route.abort('blockedbyclient');
  });
  page.on('console', (msg) => {
    if (msg.type() === 'error') seen.consoleErrors.push(msg.text());
  });
  page.on('pageerror', (error) => seen.pageErrors.push(String(error)));
  page.on('response', (response) => {
    if (response.status() >= 400) seen.failed.push(`${response.status()} ${response.url()}`);
  });
  // Reported whatever the console says: a policy violation is the proof that
  // the page wanted something the Content-Security-Policy forbids.
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`),
    );
  });

  const response = await page.goto(`${base}/graphql`, { waitUntil: 'load' });
  const csp = response.headers()['content-security-policy'] ?? null;
  await page.waitForSelector('.graphiql-container .graphiql-query-editor .CodeMirror', {
    timeout: 30_000,
  });

  // The value of the CodeMirror editor inside `selector`.
  const editorValue = (selector) =>
    page.$eval(`${selector} .CodeMirror`, (el) => el.CodeMirror.getValue());
  // The headers editor is the one shown under the Headers tab.
  const toolTab = await page.locator('.graphiql-editor-tools button.active').textContent();
  const headers = await editorValue('.graphiql-editor-tool .graphiql-editor:not(.hidden)');

  await page.getByRole('button', { name: 'Show Documentation Explorer' }).click();
  await page.locator('.graphiql-doc-explorer a.graphiql-doc-explorer-type-name', { hasText: 'Query' }).first().click();
  await page.locator('.graphiql-doc-explorer-field-name', { hasText: /^me$/ }).first().waitFor({
    timeout: 10_000,
  });
  const docFields = await page.$$eval('.graphiql-doc-explorer-field-name', (els) =>
    els.map((el) => el.textContent),
  );

  // Replace the welcome query with ours, as a user typing it would; insertText
  // sends the text as one input, so CodeMirror adds no closing brackets.
  await page.locator('.graphiql-query-editor .CodeMirror').click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(QUERY);
  const typed = await editorValue('.graphiql-query-editor');
  await page.locator('.graphiql-execute-button').click();
  await page.waitForFunction(
    () => {
      const el = document.querySelector('.graphiql-response .CodeMirror');
      return el && el.CodeMirror.getValue().trim().startsWith('{');
    },
    null,
    { timeout: 30_000 },
  );
  const result = await editorValue('.graphiql-response');
  const cspViolations = await page.evaluate(() => window.__cspViolations);
  if (screenshot) await page.screenshot({ path: screenshot });

  // GraphiQL restores its tabs from localStorage, without their headers.
  await page.reload({ waitUntil: 'load' });
  await page.waitForSelector('.graphiql-query-editor .CodeMirror');
  const queryAfterReload = await editorValue('.graphiql-query-editor');
  const headersAfterReload = await editorValue('.graphiql-editor-tool .graphiql-editor:not(.hidden)');

  console.log(
    JSON.stringify({
      ...seen,
      csp,
      cspViolations,
      toolTab,
      headers,
      docFields,
      typed,
      result: JSON.parse(result),
      queryAfterReload,
      headersAfterReload,
    }),
  );
} catch (error) {
  console.error(`graphiql.mjs: ${error.stack || error}`);
  console.error(`graphiql.mjs: so far: ${JSON.stringify(seen)}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

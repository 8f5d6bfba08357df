// A web app on its own origin uses the client the server serves: its page imports
// /switchboard.js across origins (a CORS request) and completes a call. The client files follow
// SWITCHBOARD_CORS_ORIGINS: a page on an origin not in the list cannot load them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { roomName } from '../integration/harness.mjs';
import { withInstances, loadClient, callConnected, poll } from './support.mjs';

/**
 * An app's web server on its own origin (127.0.0.1 and a port of its own): one empty page.
 * @returns {Promise<{origin: string, close: () => Promise<void>}>}
 */
async function appServer() {
  const srv = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>app</title><body></body>');
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(null)));
  const { port } = /** @type {import('node:net').AddressInfo} */ (srv.address());
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => { srv.closeAllConnections(); srv.close(() => resolve()); }),
  };
}

test('a page on another origin imports the ES module and completes a call; unlisted origins are refused', async (t) => {
  const app = await appServer();
  const stranger = await appServer();
  t.after(() => Promise.all([app.close(), stranger.close()]));
  await withInstances(t, async ({ a, b, page }) => {
    const room = roomName('e2e-cors');
    const pageA = await page();
    const pageB = await page();
    await loadClient(pageA, a.url, 'esm', { pageUrl: `${app.origin}/` });
    await loadClient(pageB, b.url, 'esm', { pageUrl: `${app.origin}/` });
    assert.equal(await pageA.evaluate(() => location.origin), app.origin);
    // The declarations are readable across origins too.
    const dts = await pageA.evaluate((u) => fetch(u).then((r) => r.text()), `${a.url}/switchboard.d.ts`);
    assert.match(dts, /export function connect\(/);

    const start = (/** @type {import('playwright-core').Page} */ p, /** @type {string} */ url) => p.evaluate(
      ([u, r]) => (/** @type {any} */ (window)).T.start({ urls: [u], room: r }), [url, room]);
    assert.equal((await start(pageA, a.url)).role, 'caller');
    assert.equal((await start(pageB, b.url)).role, 'answerer');
    await callConnected(pageA, 'A');
    await callConnected(pageB, 'B');
    const state = (/** @type {import('playwright-core').Page} */ p) => p.evaluate(() => (/** @type {any} */ (window)).T.state());
    await poll(async () => (await state(pageA)).dc === 'open' && (await state(pageB)).dc === 'open', 10000, 'DataChannels open');
    await pageA.evaluate(() => (/** @type {any} */ (window)).T.send('hello across origins'));
    await poll(() => pageB.evaluate(() => (/** @type {any} */ (window)).T.messages.includes('hello across origins')), 5000, 'A → B message');
    assert.deepEqual([(await state(pageA)).errors, (await state(pageB)).errors], [[], []]);

    // A page on an origin the server does not list gets no module (the browser refuses it).
    const pageC = await page();
    await pageC.goto(`${stranger.origin}/`);
    const loaded = await pageC.evaluate((u) => import(u).then(() => 'loaded', (e) => `refused: ${e.message}`), `${a.url}/switchboard.js`);
    assert.match(loaded, /^refused/);
  }, { SWITCHBOARD_CORS_ORIGINS: app.origin });
});

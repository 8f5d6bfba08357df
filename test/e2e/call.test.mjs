// The bundled client in real Chromium with real (fake-device) media: two instances sharing
// Redis, page A on instance A, page B on instance B, each in its own browser context.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { roomName } from '../integration/harness.mjs';
import {
  withInstances, loadClient, callConnected, videoFlows, poll, sleep,
} from './support.mjs';

/** @param {import('playwright-core').Page} page */
const T = (page) => ({
  /** @param {string[]} urls @param {string} room @param {string[]} [transports] */
  start: (urls, room, transports = ['websocket']) => page.evaluate(([u, r, tr]) => (/** @type {any} */ (window)).T.start({ urls: u, room: r, transports: tr }), /** @type {const} */ ([urls, room, transports])),
  state: () => page.evaluate(() => (/** @type {any} */ (window)).T.state()),
  /** @param {string} text */
  send: (text) => page.evaluate((x) => (/** @type {any} */ (window)).T.send(x), text),
  messages: () => page.evaluate(() => /** @type {string[]} */ ((/** @type {any} */ (window)).T.messages)),
  replies: () => page.evaluate(() => /** @type {any[]} */ ((/** @type {any} */ (window)).T.replies)),
  timing: () => page.evaluate(() => {
    const t = (/** @type {any} */ (window)).T;
    return { joinAt: t.joinAt, connectedAt: t.connectedAt };
  }),
});

/** @param {{joinAt: number, connectedAt: number}} x */
const ms = (x) => x.connectedAt - x.joinAt;

test('plain call: connected both ways, DataChannel both ways, video decoded on both sides', async (t) => {
  await withInstances(t, async ({ a, b, page }) => {
    const room = roomName('e2e-plain');
    const pageA = await page();
    const pageB = await page();
    await loadClient(pageA, a.url, 'esm');
    await loadClient(pageB, b.url, 'iife');
    const ta = T(pageA);
    const tb = T(pageB);
    const joinedA = await ta.start([a.url], room);
    assert.equal(joinedA.role, 'caller');
    const joinedB = await tb.start([b.url], room);
    assert.equal(joinedB.role, 'answerer');
    await callConnected(pageA, 'A');
    await callConnected(pageB, 'B');

    await poll(async () => (await ta.state()).dc === 'open' && (await tb.state()).dc === 'open', 10000, 'DataChannels open');
    await ta.send('hello from A');
    await tb.send('hello from B');
    await poll(async () => (await tb.messages()).includes('hello from A'), 5000, 'A → B message');
    await poll(async () => (await ta.messages()).includes('hello from B'), 5000, 'B → A message');

    const va = await videoFlows(pageA, 'A');
    const vb = await videoFlows(pageB, 'B');
    const [sa, sb] = [await ta.state(), await tb.state()];
    assert.deepEqual([sa.errors, sb.errors], [[], []]);
    const [tA, tB] = [await ta.timing(), await tb.timing()];
    t.diagnostic(`callee join → connected ${ms(tB)} ms; caller join → connected ${ms(tA)} ms`);
    t.diagnostic(`video A ${JSON.stringify(va)} B ${JSON.stringify(vb)}`);
  });
});

test('held offer: the caller waits alone for 3 s, then the callee joins (over polling) and the call connects', async (t) => {
  await withInstances(t, async ({ a, b, page }) => {
    const room = roomName('e2e-held');
    const pageA = await page();
    await loadClient(pageA, a.url, 'iife');
    const ta = T(pageA);
    await ta.start([a.url], room);
    // The offer and the early candidates are held by the server.
    const held = await poll(async () => {
      const r = await ta.replies();
      return r.some(([e, h]) => e === 'offer' && h === true) && r.some(([e, h]) => e === 'candidate' && h === true) ? r : null;
    }, 10000, 'offer and candidates held');
    const heldAt = Date.now();
    assert.ok(held.every(([, h]) => h === true), `everything held while alone: ${JSON.stringify(held)}`);
    assert.equal((await ta.state()).status, 'waiting');
    await sleep(3000);
    const stillAlone = await ta.state();
    assert.equal(stillAlone.status, 'waiting');
    assert.equal(stillAlone.pc, 'new', 'nobody to connect to yet');
    const heldCandidates = (await ta.replies()).filter(([e, h]) => e === 'candidate' && h === true).length;
    const heldMs = Date.now() - heldAt;

    const pageB = await page();
    await loadClient(pageB, b.url, 'esm');
    const tb = T(pageB);
    // The callee uses HTTP long-polling (the option for networks that block websockets).
    const joinedB = await tb.start([b.url], room, ['polling']);
    assert.equal(joinedB.role, 'answerer');
    await callConnected(pageB, 'B');
    await callConnected(pageA, 'A');
    assert.equal((await tb.state()).transport, 'polling');
    assert.equal((await ta.state()).transport, 'websocket');
    await videoFlows(pageB, 'B');
    await videoFlows(pageA, 'A');
    const tB = await tb.timing();
    t.diagnostic(`offer and ${heldCandidates} candidate(s) held ≥ ${heldMs} ms before the callee came; callee join → connected ${ms(tB)} ms`);
    assert.deepEqual([(await ta.state()).errors, (await tb.state()).errors], [[], []]);
  });
});

test('reconnect: the caller\'s instance dies mid-call; it resumes on the other one and renegotiates', async (t) => {
  await withInstances(t, async ({ a, b, page }) => {
    const room = roomName('e2e-reconnect');
    const pageA = await page();
    const pageB = await page();
    await loadClient(pageA, a.url, 'esm');
    await loadClient(pageB, b.url, 'esm');
    const ta = T(pageA);
    const tb = T(pageB);
    // Each page knows both instances of the deployment: its own first.
    await ta.start([a.url, b.url], room);
    await tb.start([b.url, a.url], room);
    await callConnected(pageA, 'A');
    await callConnected(pageB, 'B');
    await videoFlows(pageB, 'B');

    const killedAt = Date.now();
    await a.kill('SIGKILL');
    const resumed = await poll(async () => {
      const s = await ta.state();
      return s.sb === 'connected' && s.url === b.url ? s : null;
    }, 15000, 'A connected to instance B');
    const resumeMs = Date.now() - killedAt;
    assert.equal(resumed.pc, 'connected', 'media went on while signaling was down');

    // Renegotiation from the caller (impolite): a second video track.
    const extra = await pageA.evaluate(() => (/** @type {any} */ (window)).T.addCanvasTrack());
    assert.ok(extra);
    const videos = await videoFlows(pageB, 'B', { tracks: 2 });
    assert.equal(videos.length, 2);

    // Renegotiation from the callee (polite): an ICE restart.
    const ufragBefore = await pageA.evaluate(() => (/** @type {any} */ (window)).T.remoteUfrag());
    await pageB.evaluate(() => (/** @type {any} */ (window)).T.call.restartIce());
    await poll(async () => {
      const u = await pageA.evaluate(() => (/** @type {any} */ (window)).T.remoteUfrag());
      return u && u !== ufragBefore;
    }, 10000, 'new ICE credentials at A');
    await callConnected(pageA, 'A');
    await callConnected(pageB, 'B');
    await ta.send('after the restart');
    await poll(async () => (await tb.messages()).includes('after the restart'), 5000, 'message after the restart');
    assert.deepEqual([(await ta.state()).errors, (await tb.state()).errors], [[], []]);
    t.diagnostic(`instance A killed → caller resumed on B in ${resumeMs} ms`);
  });
});

// The demo page served at `/`, driven through its UI in real Chromium: caller on instance A
// (desktop window), callee on instance B (phone-sized), both seeing each other's video.
//
// Screenshots go to $TMPDIR/switchboard-e2e/; with UPDATE_SCREENSHOTS=1 (npm run screenshots)
// to docs/screenshots/, where the committed ones live.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../integration/harness.mjs';
import { withInstances, poll } from './support.mjs';

const SHOTS = process.env.UPDATE_SCREENSHOTS === '1'
  ? path.join(ROOT, 'docs', 'screenshots')
  : path.join(os.tmpdir(), 'switchboard-e2e');

const DESKTOP = { viewport: { width: 960, height: 720 } };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };

/** @param {import('playwright-core').Page} page */
const statusOf = (page) => page.locator('#status').getAttribute('data-status');

/**
 * Waits until the demo's status line shows `status`.
 * @param {import('playwright-core').Page} page @param {string} status @param {string} name
 * @param {number} [timeoutMs]
 */
async function demoStatus(page, status, name, timeoutMs = 20000) {
  let last = '';
  await poll(async () => (last = String(await statusOf(page))) === status, timeoutMs,
    () => `${name}: status ${status} (is ${last}, text ${JSON.stringify(last)})`);
}

/**
 * Waits until the page's remote <video> shows decoded frames.
 * @param {import('playwright-core').Page} page @param {string} name
 */
async function remoteVideo(page, name) {
  /** @type {any} */
  let last = null;
  await poll(async () => {
    last = await page.evaluate(async () => {
      const call = (/** @type {any} */ (window)).switchboardDemo.call;
      const remote = /** @type {HTMLVideoElement} */ (document.getElementById('remote'));
      const local = /** @type {HTMLVideoElement} */ (document.getElementById('local'));
      let frames = 0;
      if (call && call.pc) {
        (await call.pc.getStats()).forEach((/** @type {any} */ s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'video') frames = Math.max(frames, s.framesDecoded || 0);
        });
      }
      return { frames, remoteWidth: remote.videoWidth, localWidth: local.videoWidth, paused: remote.paused };
    });
    return last.frames > 10 && last.remoteWidth > 0 && last.localWidth > 0 && !last.paused;
  }, 20000, () => `${name}: remote video (${JSON.stringify(last)})`);
  return last;
}

/** @param {import('playwright-core').Page} page @param {string} file */
async function screenshot(page, file) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const to = path.join(SHOTS, file);
  await page.screenshot({ path: to });
  const png = fs.readFileSync(to);
  assert.equal(png.subarray(1, 4).toString(), 'PNG');
  assert.ok(png.length > 10000, `${file} is ${png.length} bytes`);
  return to;
}

test('demo page: start a call, open the link on another instance, both see each other', async (t) => {
  await withInstances(t, async ({ a, b, page }) => {
    const caller = await page(DESKTOP);
    await caller.goto(`${a.url}/`);
    assert.equal(await caller.title(), 'Switchboard call');
    await caller.getByRole('button', { name: 'Start a call' }).click();
    const started = Date.now();
    await demoStatus(caller, 'waiting', 'caller');
    const link = await caller.locator('#link').inputValue();
    const room = decodeURIComponent(new URL(link).hash.slice(1));
    assert.match(room, /^[a-z0-9]{6,}$/);
    assert.equal(new URL(caller.url()).hash, `#${room}`);

    // The callee gets the link and opens it on the other instance, on a phone.
    const callee = await page(PHONE);
    const calleeLink = link.replace(a.url, b.url);
    await callee.goto(calleeLink);
    await callee.getByRole('button', { name: 'Join call' }).click();
    const joined = Date.now();
    await demoStatus(callee, 'connected', 'callee');
    await demoStatus(caller, 'connected', 'caller');
    const connectedMs = Date.now() - joined;
    const vCaller = await remoteVideo(caller, 'caller');
    const vCallee = await remoteVideo(callee, 'callee');
    assert.equal(await caller.locator('#status').textContent(), 'Connected');
    assert.equal(await caller.locator('#conn').textContent(), 'online');
    assert.ok(await caller.locator('#notice').isHidden(), 'nothing covers the video');
    assert.ok(await callee.locator('#notice').isHidden(), 'nothing covers the video');
    for (const p of [caller, callee]) {
      for (const id of ['#mute', '#camera', '#hangup']) assert.ok(await p.locator(id).isEnabled(), id);
    }
    // Nothing wider than the phone's screen.
    const overflow = await callee.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the phone page scrolls sideways by ${overflow} px`);

    const shotCaller = await screenshot(caller, 'demo-caller.png');
    const shotCallee = await screenshot(callee, 'demo-callee.png');
    t.diagnostic(`callee Join click → connected ${connectedMs} ms (caller waited ${joined - started} ms); screenshots ${shotCaller}, ${shotCallee}`);
    t.diagnostic(`video caller ${JSON.stringify(vCaller)} callee ${JSON.stringify(vCallee)}`);

    // Mute and camera off show on the other side (sent over the DataChannel).
    await callee.getByRole('button', { name: 'Mute' }).click();
    await callee.getByRole('button', { name: 'Camera off' }).click();
    await poll(async () => (await caller.locator('#remote-badges').textContent())?.includes('camera off'), 5000, 'badges at the caller');
    assert.match(String(await caller.locator('#remote-badges').textContent()), /muted/);
    assert.equal(await callee.locator('#mute').getAttribute('aria-pressed'), 'true');
    await callee.getByRole('button', { name: 'Unmute' }).click();
    await callee.getByRole('button', { name: 'Camera on' }).click();
    await poll(async () => (await caller.locator('#remote-badges').textContent()) === '', 5000, 'badges gone');

    // A third person opening the link is told the room is full.
    const third = await page(PHONE);
    await third.goto(link);
    await third.getByRole('button', { name: 'Join call' }).click();
    await demoStatus(third, 'full', 'third');
    assert.match(String(await third.locator('#notice-text').textContent()), /room is full/i);
    assert.ok(await third.getByRole('button', { name: 'Start a new call' }).isVisible());
    await screenshot(third, 'demo-full.png');

    // The callee hangs up: the caller waits for the next person, the link still works.
    await callee.getByRole('button', { name: 'Hang up' }).click();
    await demoStatus(callee, 'ended', 'callee');
    await demoStatus(caller, 'waiting', 'caller');
    assert.match(String(await caller.locator('#notice-text').textContent()), /left/);
  });
});

test('demo page: an offer nobody answers expires, and the next person still gets the call', async (t) => {
  await withInstances(t, async ({ a, b, page }) => {
    const caller = await page(DESKTOP);
    await caller.goto(`${a.url}/`);
    await caller.getByRole('button', { name: 'Start a call' }).click();
    await demoStatus(caller, 'waiting', 'caller');
    await demoStatus(caller, 'expired', 'caller', 10000);
    assert.match(String(await caller.locator('#notice-text').textContent()), /expired/);
    const link = await caller.locator('#link').inputValue();

    const callee = await page(PHONE);
    await callee.goto(link.replace(a.url, b.url));
    await callee.getByRole('button', { name: 'Join call' }).click();
    await demoStatus(callee, 'connected', 'callee');
    await demoStatus(caller, 'connected', 'caller');
    await remoteVideo(callee, 'callee');
  }, { SWITCHBOARD_HELD_OFFER_TTL: '2s' });
});

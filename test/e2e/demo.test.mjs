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
import { ROOT, roomName } from '../integration/harness.mjs';
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

test('demo page: a four-person group call in a grid, names, mute shown to all, one leaves without disturbing the others', async (t) => {
  await withInstances(t, async ({ a, b, page }) => {
    // Small camera pictures keep four members in one browser light.
    const first = await page(DESKTOP);
    await first.goto(`${a.url}/?video=160x120#${roomName('demo-group')}`);
    await first.locator('#name').fill('Ada');
    await first.getByRole('button', { name: 'Join call' }).click();
    await demoStatus(first, 'waiting', 'Ada');
    const link = await first.locator('#link').inputValue();
    const SMALL = { viewport: { width: 420, height: 640 } };
    const t0 = Date.now();
    /** @type {import('playwright-core').Page[]} */
    const members = [first];
    for (const [i, name] of ['Ben', 'Cy', 'Dee'].entries()) {
      const p = await page(SMALL);
      await p.goto((i % 2 === 0 ? link.replace(a.url, b.url) : link));
      await p.locator('#name').fill(name);
      await p.getByRole('button', { name: 'Join call' }).click();
      await demoStatus(p, 'connected', name, 45000);
      t.diagnostic(`${name} connected at ${Date.now() - t0} ms`);
      members.push(p);
    }
    const names = ['Ada', 'Ben', 'Cy', 'Dee'];
    // Every page: a grid with a tile per other member, each named and showing video.
    /** @param {import('playwright-core').Page} p */
    const tilesOf = (p) => p.evaluate(() => [...document.querySelectorAll('#stage .tile[data-peer]')].map((el) => {
      const v = /** @type {HTMLVideoElement} */ (el.querySelector('video'));
      return { name: el.querySelector('.name')?.textContent || '', width: v.videoWidth, playing: !v.paused };
    }));
    for (const [i, p] of members.entries()) {
      /** @type {any[]} */
      let last = [];
      /** @type {any} */
      let conns = null;
      await poll(async () => {
        last = await tilesOf(p);
        const want = names.filter((_, j) => j !== i);
        return last.length === 3 && want.every((n) => last.some((x) => x.name.endsWith(n) && x.width > 0 && x.playing));
      }, 30000, () => `${names[i]}: three named tiles with video (have ${JSON.stringify(last)}, connections ${JSON.stringify(conns)})`).catch(async (err) => {
        conns = await p.evaluate(() => [...(/** @type {any} */ (window)).switchboardDemo.call.peers.values()]
          .map((l) => [l.peer, l.state, l.pc && l.pc.connectionState, l.pc && l.pc.signalingState]));
        throw new Error(`${err.message}; connections ${JSON.stringify(conns)}`);
      });
      assert.equal(await p.locator('#stage').getAttribute('data-count'), '3');
      assert.ok(await p.locator('#stage').evaluate((el) => el.classList.contains('grid')), 'grid layout');
    }
    assert.match(String(await first.locator('#roster').textContent()), /4 of 4 in the call/);

    // Ben mutes: every other member sees it, named.
    await members[1].getByRole('button', { name: 'Mute' }).click();
    for (const i of [0, 2, 3]) {
      await poll(async () => /Muted: Ben/.test(String(await members[i].locator('#roster').textContent())), 5000, `${names[i]} sees Ben muted`);
      const badge = members[i].locator('#stage .tile', { hasText: 'Ben' }).locator('.badges');
      assert.match(String(await badge.textContent()), /muted/);
    }
    // Someone is named as speaking (the fake microphone beeps).
    await poll(async () => /Speaking: /.test(String(await first.locator('#roster').textContent())), 10000, 'a speaker named at Ada');
    await screenshot(first, 'demo-group.png');
    await screenshot(members[3], 'demo-group-member.png');

    // Cy leaves: the other three stay connected, the grid shrinks, a line says who left.
    await members[2].getByRole('button', { name: 'Hang up' }).click();
    for (const i of [0, 1, 3]) {
      await poll(async () => (await tilesOf(members[i])).length === 2, 10000, `${names[i]}: Cy's tile gone`);
      assert.equal(await statusOf(members[i]), 'connected', `${names[i]} still connected`);
    }
    assert.match(String(await first.locator('#roster').textContent()), /Cy left/);
    assert.ok(await first.locator('#notice').isHidden(), 'nothing covers the others');
    const still = await tilesOf(first);
    assert.ok(still.every((x) => x.width > 0 && x.playing), `the others' video goes on: ${JSON.stringify(still)}`);
  }, { SWITCHBOARD_ROOM_CAPACITY: '4' });
});

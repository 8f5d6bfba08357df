// Group calls (a full mesh) with the bundled client in real Chromium: members spread over two
// instances sharing Redis, all pages in the one browser, small fake-camera video.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { roomName } from '../integration/harness.mjs';
import { withInstances, poll, sleep } from './support.mjs';

const ENV = { SWITCHBOARD_ROOM_CAPACITY: '4' };

/**
 * The in-page group driver (runs in the browser; serialised by page.evaluate, so no closures
 * over Node values): joins with the fake camera at a small size and records per member.
 */
function installGroupDriver() {
  const w = /** @type {any} */ (window);
  const G = {
    /** @type {any} */ sb: null,
    /** @type {any} */ call: null,
    /** @type {Array<[string, string]>} [from, text] */ messages: /** @type {Array<[string, string]>} */ ([]),
    errors: /** @type {string[]} */ ([]),
    /** @type {Map<string, {track: MediaStreamTrack, el: HTMLVideoElement}>} remote video per member */
    videos: new Map(),
    /** @param {{urls: string[], room: string}} o */
    async start({ urls, room }) {
      const stream = await navigator.mediaDevices.getUserMedia({
        video: { width: 160, height: 120, frameRate: 10 }, audio: true,
      });
      G.sb = w.Switchboard.connect(urls, { reconnectionDelay: 100, reconnectionDelayMax: 400 });
      const call = await G.sb.join(room, { stream, dataChannel: true });
      G.call = call;
      call.on('error', (/** @type {Error} */ e) => G.errors.push(String(e && e.message)));
      call.on('track', (/** @type {any} */ ev) => {
        if (ev.track.kind !== 'video') return;
        const el = document.createElement('video');
        el.autoplay = true;
        el.muted = true;
        el.playsInline = true;
        el.srcObject = new MediaStream([ev.track]);
        document.body.append(el);
        el.play().catch(() => {});
        G.videos.set(ev.peer, { track: ev.track, el });
      });
      call.on('datachannel', (/** @type {RTCDataChannel} */ dc, /** @type {string} */ peer) => {
        dc.addEventListener('message', (ev) => G.messages.push([peer, String(ev.data)]));
      });
      return { peer: call.peer, role: call.role, capacity: call.capacity };
    },
    state() {
      const call = G.call;
      return {
        status: call && call.status,
        sb: G.sb && G.sb.status,
        url: G.sb && G.sb.url,
        peers: call ? [...call.peers.values()].map((/** @type {any} */ l) => ({
          peer: l.peer, state: l.state, pc: l.pc && l.pc.connectionState, dc: l.dataChannel && l.dataChannel.readyState,
          sig: l.pc && l.pc.signalingState, ice: l.pc && l.pc.iceConnectionState, polite: l.polite,
        })) : [],
        errors: G.errors,
      };
    },
    /** The ICE username fragment of each connection's remote description. */
    ufrags() {
      /** @type {Record<string, string | null>} */
      const out = {};
      for (const [peer, link] of G.call.peers) {
        const sdp = link.pc && link.pc.remoteDescription && link.pc.remoteDescription.sdp;
        const u = sdp && /a=ice-ufrag:(\S+)/.exec(sdp);
        out[peer] = u ? u[1] : null;
      }
      return out;
    },
    /** Frames decoded from each member (inbound-rtp of the connection to it) and the picture size. */
    async frames() {
      /** @type {Record<string, {frames: number, width: number}>} */
      const out = {};
      for (const [peer, v] of G.videos) {
        const link = G.call.peers.get(peer);
        if (!link || !link.pc || v.track.readyState !== 'live') continue;
        const receiver = link.pc.getReceivers().find((/** @type {RTCRtpReceiver} */ r) => r.track === v.track);
        let frames = 0;
        if (receiver) {
          const stats = await receiver.getStats();
          stats.forEach((/** @type {any} */ s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames = s.framesDecoded || 0; });
        }
        out[peer] = { frames, width: v.el.videoWidth };
      }
      return out;
    },
  };
  w.G = G;
}

/**
 * One member: a page in the shared browser on `urls[0]`.
 * @param {(o?: object) => Promise<import('playwright-core').Page>} newPage
 * @param {string[]} urls
 */
async function member(newPage, urls) {
  const page = await newPage();
  await page.goto(`${urls[0]}/healthz`);
  await page.addScriptTag({ url: '/switchboard.iife.js' });
  await page.evaluate(installGroupDriver);
  const m = {
    page,
    urls,
    /** @type {string} */ peer: '',
    /** @param {string} room */
    async join(room) {
      const r = await page.evaluate(([u, rm]) => (/** @type {any} */ (window)).G.start({ urls: u, room: rm }), /** @type {const} */ ([urls, room]));
      m.peer = r.peer;
      return r;
    },
    /** @returns {Promise<any>} */
    state: () => page.evaluate(() => (/** @type {any} */ (window)).G.state()),
    /** @returns {Promise<Record<string, {frames: number, width: number}>>} */
    frames: () => page.evaluate(() => (/** @type {any} */ (window)).G.frames()),
    /** @returns {Promise<Array<[string, string]>>} */
    messages: () => page.evaluate(() => (/** @type {any} */ (window)).G.messages),
    /** @param {string} text @returns {Promise<number>} */
    broadcast: (text) => page.evaluate((x) => (/** @type {any} */ (window)).G.call.broadcast(x), text),
    hangup: () => page.evaluate(() => (/** @type {any} */ (window)).G.call.hangup()),
    restartIce: () => page.evaluate(() => (/** @type {any} */ (window)).G.call.restartIce()),
    /** @returns {Promise<Record<string, string | null>>} */
    ufrags: () => page.evaluate(() => (/** @type {any} */ (window)).G.ufrags()),
  };
  return m;
}

/** @typedef {Awaited<ReturnType<typeof member>>} Member */

/**
 * Waits until every member's connection to every other one is connected.
 * @param {Member[]} members
 * @param {string} what
 */
async function meshConnected(members, what, timeoutMs = 30000) {
  /** @type {any[]} */
  let last = [];
  await poll(async () => {
    last = await Promise.all(members.map((m) => m.state()));
    return last.every((s, i) => members.every((o, j) => i === j
      || s.peers.some((/** @type {any} */ p) => p.peer === o.peer && p.pc === 'connected' && p.state === 'connected')));
  }, timeoutMs, () => `${what}: every pair connected (have ${JSON.stringify(last.map((s) => s.peers))})`);
}

/**
 * Waits until every member decodes video frames from every other one.
 * @param {Member[]} members
 * @param {string} what
 */
async function videoFromAll(members, what, frames = 5) {
  /** @type {any[]} */
  let last = [];
  await poll(async () => {
    last = await Promise.all(members.map((m) => m.frames()));
    return last.every((f, i) => members.every((o, j) => i === j || (f[o.peer]?.frames > frames && f[o.peer]?.width > 0)));
  }, 30000, () => `${what}: video from every other member (have ${JSON.stringify(last)})`);
}

/**
 * A DataChannel broadcast from `from` reaches every other member.
 * @param {Member} from @param {Member[]} others @param {string} text
 */
async function broadcastReaches(from, others, text) {
  assert.equal(await from.broadcast(text), others.length, 'sent on one DataChannel per member');
  await poll(async () => {
    const got = await Promise.all(others.map((m) => m.messages()));
    return got.every((list) => list.some(([p, x]) => p === from.peer && x === text));
  }, 10000, `"${text}" at every member`);
}

/** @param {Member[]} members */
async function noErrors(members) {
  const states = await Promise.all(members.map((m) => m.state()));
  assert.deepEqual(states.map((s) => s.errors), members.map(() => []));
}

test('four members join one by one (one 5 s late): video from all three others, DataChannel to all; one leaves, a fifth joins', async (t) => {
  await withInstances(t, async ({ a, b, page }) => {
    const room = roomName('e2e-group');
    // Members alternate between the two instances.
    const m = [
      await member(page, [a.url]), await member(page, [b.url]),
      await member(page, [a.url]), await member(page, [b.url]),
    ];
    const first = await m[0].join(room);
    assert.equal(first.capacity, 4, 'the join reply announces the capacity');
    await m[1].join(room);
    await m[2].join(room);
    await meshConnected(m.slice(0, 3), 'three members');
    await sleep(5000);
    const lateAt = Date.now();
    await m[3].join(room);
    await meshConnected(m, 'four members');
    const lateMs = Date.now() - lateAt;
    await videoFromAll(m, 'four members');
    await broadcastReaches(m[2], [m[0], m[1], m[3]], 'hello from the third');

    // The second member leaves: the three others stay connected, and a fifth takes its place.
    const stay = [m[0], m[2], m[3]];
    await m[1].hangup();
    await poll(async () => (await Promise.all(stay.map((x) => x.state()))).every((s) => s.peers.length === 2), 10000, 'the leaver is gone everywhere');
    await meshConnected(stay, 'the three that stayed', 5000);
    const states = await Promise.all(stay.map((x) => x.state()));
    assert.ok(states.every((s) => s.status === 'connected'), `still connected: ${JSON.stringify(states.map((s) => s.status))}`);
    const fifth = await member(page, [b.url]);
    await fifth.join(room);
    const now = [...stay, fifth];
    await meshConnected(now, 'with the fifth member');
    await videoFromAll(now, 'with the fifth member');
    await broadcastReaches(fifth, stay, 'hello from the fifth');
    await noErrors([...now, m[1]]);
    t.diagnostic(`late joiner connected to all three in ${lateMs} ms`);
  }, ENV);
});

test('two members join at the same moment; the instance serving two members is killed and every pair reconnects', async (t) => {
  await withInstances(t, async ({ a, b, page }) => {
    const room = roomName('e2e-group-kill');
    // m0 and m1 on instance A, m2 and m3 on instance B; each knows both instances.
    const m = [
      await member(page, [a.url, b.url]), await member(page, [a.url, b.url]),
      await member(page, [b.url, a.url]), await member(page, [b.url, a.url]),
    ];
    await m[0].join(room);
    await m[1].join(room);
    await meshConnected(m.slice(0, 2), 'two members');
    // Two join at the same moment (on different instances): no glare deadlock.
    await Promise.all([m[2].join(room), m[3].join(room)]);
    await meshConnected(m, 'after the simultaneous join');
    await videoFromAll(m, 'four members');

    const killedAt = Date.now();
    await a.kill('SIGKILL');
    await poll(async () => {
      const s = await Promise.all([m[0].state(), m[1].state()]);
      return s.every((x) => x.sb === 'connected' && x.url === b.url);
    }, 20000, 'the two members of instance A on instance B');
    const resumeMs = Date.now() - killedAt;
    // Signaling works again for every pair: each member restarts ICE on all its connections
    // (new credentials reach the other side only through signaling).
    const before = await Promise.all(m.map((x) => x.ufrags()));
    for (const x of m) await x.restartIce();
    await poll(async () => {
      const after = await Promise.all(m.map((x) => x.ufrags()));
      return after.every((u, i) => Object.keys(before[i]).length === 3
        && Object.entries(before[i]).every(([p, old]) => u[p] && u[p] !== old));
    }, 20000, 'new ICE credentials on every connection');
    await meshConnected(m, 'after the ICE restarts');
    await broadcastReaches(m[0], [m[1], m[2], m[3]], 'after the instance died');
    await videoFromAll(m, 'after the instance died', 20);
    await noErrors(m);
    t.diagnostic(`instance A killed → its members resumed on B in ${resumeMs} ms`);
  }, ENV);
});

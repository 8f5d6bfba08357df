// End-to-end support: one headless Debian Chromium per test file (driven by playwright-core, no
// browser download), server instances from the integration harness (two per cluster, sharing
// one Redis prefix), and an in-page test driver for the bundled client.
// (This file has no tests of its own.)

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after } from 'node:test';
import { chromium } from 'playwright-core';
import { startInstance, newPrefix, redisDeletePrefix, sleep } from '../integration/harness.mjs';

export { sleep };

export const CHROMIUM = process.env.SWITCHBOARD_CHROMIUM || '/usr/lib/chromium/chromium';

/** Flags known to work on these machines (see docs: fake devices, loopback ICE, no background traffic). */
export const CHROMIUM_FLAGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

/** @type {import('playwright-core').Browser | null} */
let browser = null;

/** @returns {Promise<import('playwright-core').Browser>} the file's one browser */
export async function getBrowser() {
  if (browser) return browser;
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it (apt-get install chromium) or set SWITCHBOARD_CHROMIUM`);
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS, timeout: 30000 });
  return browser;
}

after(async () => {
  if (browser) await browser.close();
  browser = null;
});

/**
 * @typedef {object} Env
 * @property {any} a instance A (from the integration harness)
 * @property {any} b instance B
 * @property {(options?: import('playwright-core').BrowserContextOptions) => Promise<import('playwright-core').Page>} page
 *   a page in a fresh browser context (its uncaught errors fail the test)
 */

/**
 * Runs `fn` with two instances sharing one Redis prefix and a page factory. Afterwards the
 * browser contexts are closed first, then the instances stopped and their keys deleted. When
 * `fn` fails, the pages' console errors and the instances' logs are printed.
 * @param {import('node:test').TestContext} t
 * @param {(env: Env) => Promise<void>} fn
 * @param {Record<string, string>} [env]
 */
export async function withInstances(t, fn, env = {}) {
  const prefix = newPrefix();
  const [a, b] = await Promise.all([
    startInstance({ id: 'a', prefix, env }),
    startInstance({ id: 'b', prefix, env }),
  ]);
  /** @type {import('playwright-core').BrowserContext[]} */
  const contexts = [];
  /** @type {string[]} */
  const consoleLines = [];
  /** @type {string[]} */
  const uncaught = [];
  const page = async (/** @type {import('playwright-core').BrowserContextOptions} */ options = {}) => {
    const context = await (await getBrowser()).newContext(options);
    contexts.push(context);
    const p = await context.newPage();
    const name = `page ${contexts.length}`;
    p.on('pageerror', (err) => uncaught.push(`${name}: ${err.message}`));
    p.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') consoleLines.push(`${name} console.${msg.type()}: ${msg.text()}`);
    });
    return p;
  };
  try {
    await fn({ a, b, page });
    assert.deepEqual(uncaught, [], 'uncaught errors in the pages');
  } catch (err) {
    for (const line of [...uncaught, ...consoleLines].slice(-60)) t.diagnostic(line);
    for (const inst of [a, b]) {
      t.diagnostic(`--- instance ${inst.id} log (last lines) ---`);
      for (const line of inst.logs().trim().split('\n').slice(-40)) t.diagnostic(line);
    }
    throw err;
  } finally {
    await Promise.all(contexts.map((c) => c.close().catch(() => {})));
    await Promise.all([a.stop(), b.stop()]);
    await redisDeletePrefix(prefix).catch(() => {});
  }
}

/**
 * Opens a page (by default a same-origin one on the instance; a secure context: 127.0.0.1),
 * loads the client from the instance at `origin` (the ES module or the classic script) and
 * installs the test driver `T`.
 * @param {import('playwright-core').Page} page
 * @param {string} origin
 * @param {'esm' | 'iife'} build
 * @param {{pageUrl?: string}} [o] `pageUrl`: a page of another origin to load the client into
 */
export async function loadClient(page, origin, build, { pageUrl = `${origin}/healthz` } = {}) {
  await page.goto(pageUrl);
  if (build === 'esm') {
    await page.addScriptTag({ type: 'module', content: `import * as S from '${origin}/switchboard.js'; window.Switchboard = S;` });
    await page.waitForFunction(() => typeof (/** @type {any} */ (window)).Switchboard?.connect === 'function');
  } else {
    await page.addScriptTag({ url: `${origin}/switchboard.iife.js` });
  }
  await page.evaluate(installDriver);
}

/**
 * The in-page driver (runs in the browser): starts a call and records what it emits.
 * Kept free of closures over Node values: it is serialised by page.evaluate.
 */
function installDriver() {
  const w = /** @type {any} */ (window);
  const now = () => Math.round(performance.now());
  const T = {
    /** @type {any} */ sb: null,
    /** @type {any} */ call: null,
    /** @type {MediaStream | null} */ stream: null,
    events: /** @type {any[]} */ ([]),
    errors: /** @type {string[]} */ ([]),
    messages: /** @type {string[]} */ ([]),
    replies: /** @type {any[]} */ ([]),
    /** remote video tracks and the <video> showing each */
    videos: /** @type {Array<{track: MediaStreamTrack, el: HTMLVideoElement}>} */ ([]),
    /** @type {number | null} */ joinAt: null,
    /** @type {number | null} */ connectedAt: null,
    /**
     * @param {{urls: string[], room: string, transports?: string[]}} o
     */
    async start({ urls, room, transports = ['websocket'] }) {
      T.stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      T.sb = w.Switchboard.connect(urls, { transports, reconnectionDelay: 100, reconnectionDelayMax: 400 });
      T.sb.on('status', (/** @type {string} */ s) => T.events.push(['sb', s, T.sb.url, now()]));
      T.joinAt = now();
      const call = await T.sb.join(room, { stream: T.stream, dataChannel: true });
      T.call = call;
      // Record the replies to what the call sends (held or relayed).
      const send = call.channel.send.bind(call.channel);
      call.channel.send = (/** @type {string} */ e, /** @type {any} */ p) => send(e, p).then((/** @type {any} */ r) => {
        T.replies.push([e, r && r.held, now()]);
        return r;
      });
      call.on('status', (/** @type {string} */ s) => {
        T.events.push(['status', s, now()]);
        if (s === 'connected' && T.connectedAt === null) T.connectedAt = now();
      });
      call.on('connectionstatechange', (/** @type {string} */ s) => T.events.push(['pc', s, now()]));
      call.on('error', (/** @type {Error} */ e) => T.errors.push(String(e && e.message)));
      call.on('peer-joined', (/** @type {any} */ p) => T.events.push(['peer-joined', p.peer, now()]));
      call.on('track', (/** @type {any} */ ev) => {
        if (ev.track.kind !== 'video') return;
        const el = document.createElement('video');
        el.autoplay = true;
        el.muted = true;
        el.playsInline = true;
        el.srcObject = new MediaStream([ev.track]);
        document.body.append(el);
        el.play().catch(() => {});
        T.videos.push({ track: ev.track, el });
      });
      call.on('datachannel', (/** @type {RTCDataChannel} */ dc) => {
        dc.addEventListener('message', (ev) => T.messages.push(String(ev.data)));
      });
      return { role: call.role, peer: call.peer };
    },
    /** @param {string} text */
    send(text) {
      T.call.dataChannel.send(text);
    },
    state() {
      const pc = T.call && T.call.pc;
      return {
        status: T.call && T.call.status,
        pc: pc && pc.connectionState,
        signaling: pc && pc.signalingState,
        dc: T.call && T.call.dataChannel && T.call.dataChannel.readyState,
        sb: T.sb && T.sb.status,
        url: T.sb && T.sb.url,
        transport: T.sb && T.sb.socket.io.engine && T.sb.socket.io.engine.transport.name,
        errors: T.errors,
      };
    },
    /** Per remote video track: frames decoded (inbound-rtp) and the element's size. */
    async video() {
      const pc = T.call && T.call.pc;
      if (!pc) return [];
      const out = [];
      for (const v of T.videos) {
        if (v.track.readyState !== 'live') continue;
        const receiver = pc.getReceivers().find((/** @type {RTCRtpReceiver} */ r) => r.track === v.track);
        let frames = 0;
        if (receiver) {
          const stats = await receiver.getStats();
          stats.forEach((/** @type {any} */ s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames = s.framesDecoded || 0; });
        }
        out.push({ id: v.track.id, frames, width: v.el.videoWidth, height: v.el.videoHeight });
      }
      return out;
    },
    /** Sends a second video track, drawn on a canvas. */
    addCanvasTrack() {
      const canvas = document.createElement('canvas');
      canvas.width = 320;
      canvas.height = 240;
      const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
      let n = 0;
      setInterval(() => {
        n++;
        ctx.fillStyle = `hsl(${(n * 7) % 360} 70% 45%)`;
        ctx.fillRect(0, 0, 320, 240);
        ctx.fillStyle = '#fff';
        ctx.font = '48px sans-serif';
        ctx.fillText(String(n), 120, 140);
      }, 50);
      const stream = canvas.captureStream(20);
      const track = stream.getVideoTracks()[0];
      T.call.addTrack(track, stream);
      return track.id;
    },
    /** The ICE username fragment of the current remote description. */
    remoteUfrag() {
      const sdp = T.call && T.call.pc && T.call.pc.remoteDescription && T.call.pc.remoteDescription.sdp;
      const m = sdp && /a=ice-ufrag:(\S+)/.exec(sdp);
      return m ? m[1] : null;
    },
  };
  w.T = T;
}

/**
 * Polls `fn` (which may be async) until it returns something truthy.
 * @template T
 * @param {() => Promise<T> | T} fn
 * @param {number} timeoutMs
 * @param {string | (() => string)} what
 * @returns {Promise<NonNullable<T>>}
 */
export async function poll(fn, timeoutMs, what) {
  const start = Date.now();
  let last;
  for (;;) {
    last = await fn();
    if (last) return /** @type {NonNullable<T>} */ (last);
    if (Date.now() - start > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
    }
    await sleep(100);
  }
}

/**
 * Waits until every remote video track of the page decodes frames and shows a picture.
 * @param {import('playwright-core').Page} page
 * @param {string} name
 * @param {{tracks?: number, frames?: number, timeoutMs?: number}} [o]
 */
export async function videoFlows(page, name, { tracks = 1, frames = 10, timeoutMs = 20000 } = {}) {
  /** @type {any[]} */
  let last = [];
  await poll(async () => {
    last = await page.evaluate(() => (/** @type {any} */ (window)).T.video());
    return last.length >= tracks && last.every((v) => v.frames > frames && v.width > 0);
  }, timeoutMs, () => `${name}: video on ${tracks} track(s) (have ${JSON.stringify(last)})`);
  return last;
}

/**
 * @param {import('playwright-core').Page} page
 * @param {string} name
 * @param {number} [timeoutMs]
 */
export async function callConnected(page, name, timeoutMs = 20000) {
  /** @type {any} */
  let last = null;
  await poll(async () => {
    last = await page.evaluate(() => (/** @type {any} */ (window)).T.state());
    return last.status === 'connected' && last.pc === 'connected';
  }, timeoutMs, () => `${name} connected (state ${JSON.stringify(last)})`);
  return last;
}

// Integration test harness: builds the server once, starts instances that share one Redis
// prefix, connects official socket.io-client sockets, and cleans everything up.
// (This file has no tests of its own.)

import { spawn, execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { SignalingChannel } from '../../client/src/channel.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// One build directory per checkout: test runs of several checkouts on one machine must not
// swap each other's binaries.
export const BUILD_DIR = path.join(os.tmpdir(), `switchboard-it-${createHash('sha256').update(ROOT).digest('hex').slice(0, 12)}`);
export const BINARY = path.join(BUILD_DIR, 'switchboard');
export const REDIS_URL = process.env.SWITCHBOARD_TEST_REDIS_URL || 'redis://127.0.0.1:6379';
export const TRANSPORTS = /** @type {const} */ (['websocket', 'polling']);

/** @type {Set<import('node:child_process').ChildProcess>} every spawned instance */
const children = new Set();
/** @type {Set<import('socket.io-client').Socket>} every socket made by connect() */
const sockets = new Set();
/** @type {Set<{close: () => void}>} channels made by makePeer() */
const channels = new Set();
/** @type {Set<string>} Redis prefixes used by this file */
const prefixes = new Set();

// Last line of defence: no instance outlives the test process.
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

after(async () => {
  if (stalledConnects.count > 0) {
    console.log(`${stalledConnects.count} connection(s) got no CONNECT reply and were retried (server defect, see connect.test.mjs)`);
  }
  for (const ch of channels) ch.close();
  for (const s of sockets) s.disconnect();
  const alive = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  for (const c of alive) c.kill('SIGKILL');
  await Promise.all(alive.map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)))));
  for (const prefix of prefixes) await redisDeletePrefix(prefix).catch(() => {});
  const left = [...children].filter((c) => c.pid && processAlive(c.pid));
  assert.deepEqual(left.map((c) => c.pid), [], 'server processes left running');
});

/** @param {number} pid */
function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

let built = /** @type {Promise<string> | null} */ (null);

/**
 * Builds the server binary with the race detector (once per test process; Go's build cache
 * makes later builds quick). The binary is written under a temporary name and renamed, so
 * concurrent builds from several test files never see a half-written file.
 * @returns {Promise<string>} the binary's path
 */
export function buildServer() {
  if (!built) {
    built = (async () => {
      fs.mkdirSync(BUILD_DIR, { recursive: true });
      const tmp = `${BINARY}.${process.pid}.tmp`;
      await new Promise((resolve, reject) => {
        execFile('go', ['build', '-race', '-o', tmp, '.'], { cwd: ROOT, maxBuffer: 16 << 20 },
          (err, _stdout, stderr) => (err ? reject(new Error(`go build failed:\n${stderr}`)) : resolve(null)));
      });
      fs.renameSync(tmp, BINARY);
      return BINARY;
    })();
  }
  return built;
}

/** @returns {Promise<number>} a free TCP port on 127.0.0.1 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (srv.address());
      srv.close(() => resolve(port));
    });
  });
}

/** @returns {string} a fresh Redis key prefix */
export function newPrefix() {
  const prefix = `it:${randomBytes(6).toString('hex')}:`;
  prefixes.add(prefix);
  return prefix;
}

/**
 * @typedef {object} Instance
 * @property {string} id
 * @property {string} url
 * @property {number} port
 * @property {import('node:child_process').ChildProcess} proc
 * @property {() => string} logs everything the instance wrote to stderr and stdout
 * @property {(signal?: NodeJS.Signals) => Promise<void>} kill sends a signal, waits for the exit
 * @property {() => Promise<void>} stop SIGTERM, then SIGKILL after 5 s
 * @property {() => boolean} running
 */

/**
 * Starts one instance and waits until `GET /healthz` answers 200.
 * @param {{id?: string, prefix?: string, env?: Record<string, string>}} [o]
 * @returns {Promise<Instance>}
 */
export async function startInstance({ id = 'a', prefix = newPrefix(), env = {} } = {}) {
  const binary = await buildServer();
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    try {
      return await spawnInstance(binary, port, id, prefix, env);
    } catch (err) {
      // The port may have been taken between freePort() and the listen: try another one.
      if (attempt < 2 && /address already in use/i.test(String(err))) continue;
      throw err;
    }
  }
}

/**
 * @param {string} binary @param {number} port @param {string} id @param {string} prefix
 * @param {Record<string, string>} env
 * @returns {Promise<Instance>}
 */
async function spawnInstance(binary, port, id, prefix, env) {
  const proc = spawn(binary, [], {
    cwd: ROOT,
    env: {
      ...process.env,
      SWITCHBOARD_ADDR: `127.0.0.1:${port}`,
      REDIS_URL,
      SWITCHBOARD_REDIS_PREFIX: prefix,
      SWITCHBOARD_INSTANCE_ID: id,
      SWITCHBOARD_LOG_LEVEL: process.env.SWITCHBOARD_IT_LOG_LEVEL || 'warn',
      // The guarantee tests push hundreds of messages a second through one connection; the
      // rate limit has a test of its own (limits.test.mjs).
      SWITCHBOARD_EVENT_RATE: '100000',
      SWITCHBOARD_EVENT_BURST: '100000',
      // Every test connection comes from 127.0.0.1: lift the per-address connection rate too.
      SWITCHBOARD_CONN_RATE: '100000',
      SWITCHBOARD_CONN_BURST: '100000',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  let out = '';
  proc.stdout?.on('data', (d) => { out += d; });
  proc.stderr?.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
  /** @type {Instance} */
  const inst = {
    id,
    url,
    port,
    proc,
    logs: () => out,
    running: () => proc.exitCode === null && proc.signalCode === null,
    kill: async (signal = 'SIGKILL') => {
      if (inst.running()) proc.kill(signal);
      await exited;
    },
    stop: async () => {
      if (!inst.running()) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
  const deadline = Date.now() + 20000;
  for (;;) {
    if (!inst.running()) {
      const { code, signal } = /** @type {any} */ (await exited);
      throw new Error(`instance ${id} exited (code ${code}, signal ${signal}) before it was healthy:\n${out}`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return inst;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      await inst.kill();
      throw new Error(`instance ${id} not healthy after 20 s:\n${out}`);
    }
    await sleep(50);
  }
}

/**
 * @typedef {object} Cluster
 * @property {Instance} a
 * @property {Instance} b
 * @property {string} prefix
 * @property {Instance[]} instances
 */

/**
 * Runs `fn` with instances `a` and `b` sharing one Redis prefix. When `fn` fails the instances'
 * logs are printed; the instances are stopped either way.
 * @param {import('node:test').TestContext} t
 * @param {Record<string, string>} env
 * @param {(c: Cluster) => Promise<void>} fn
 * @param {{ids?: string[]}} [o]
 */
export async function withCluster(t, env, fn, { ids = ['a', 'b'] } = {}) {
  const prefix = newPrefix();
  const instances = await Promise.all(ids.map((id) => startInstance({ id, prefix, env })));
  const cluster = /** @type {Cluster} */ ({ prefix, instances, a: instances[0], b: instances[1] });
  const mine = new Set();
  const before = new Set(sockets);
  try {
    await fn(cluster);
  } catch (err) {
    dumpTraces(t, [...sockets].filter((sk) => !before.has(sk)).slice(-10));
    for (const inst of instances) {
      const logs = inst.logs().trim();
      t.diagnostic(`--- instance ${inst.id} (${inst.url}) log ---`);
      for (const line of (logs || '(empty)').split('\n').slice(-200)) t.diagnostic(line);
    }
    throw err;
  } finally {
    for (const ch of channels) { ch.close(); mine.add(ch); }
    for (const ch of mine) channels.delete(/** @type {any} */ (ch));
    for (const s of sockets) {
      if (!before.has(s)) {
        s.disconnect();
        sockets.delete(s);
        traces.delete(s);
      }
    }
    await Promise.all(instances.map((i) => i.stop()));
    await redisDeletePrefix(prefix).catch(() => {});
  }
}

/**
 * An official socket.io-client socket.
 * @param {string} url
 * @param {{transport?: 'websocket' | 'polling', opts?: object, watchdog?: boolean}} [o]
 * @returns {import('socket.io-client').Socket}
 */
export function connect(url, { transport = 'websocket', opts = {}, watchdog = true } = {}) {
  const socket = io(url, {
    transports: [transport],
    forceNew: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    ...opts,
  });
  sockets.add(socket);
  traceSocket(socket, `${transport}→${url.replace('http://127.0.0.1:', ':')}`);
  if (watchdog) connectWatchdog(socket);
  return socket;
}

/**
 * How many times a connection had its Engine.IO session open but got no reply to the
 * Socket.IO CONNECT packet (see connect.test.mjs), and was cut so that the client reconnects.
 */
export const stalledConnects = { count: 0 };
export const STALL_MS = 3000;

/**
 * Works around a server defect that connect.test.mjs reports on its own: now and then the
 * server opens the Engine.IO session but never answers the Socket.IO CONNECT, and
 * socket.io-client waits forever. When that lasts STALL_MS, the Engine.IO session is closed so
 * that the client reconnects, and the event is counted, so the other tests check their own
 * guarantees.
 * @param {import('socket.io-client').Socket} socket
 */
function connectWatchdog(socket) {
  /** @type {any} */
  let timer = null;
  const clear = () => { if (timer) clearTimeout(timer); timer = null; };
  socket.io.on('open', () => {
    clear();
    const engine = socket.io.engine;
    timer = setTimeout(() => {
      timer = null;
      if (socket.connected || !socket.active || socket.io.engine !== engine) return;
      stalledConnects.count++;
      const tr = traces.get(socket);
      if (tr) tr.lines.push(`  (watchdog) no CONNECT reply ${STALL_MS} ms after the Engine.IO open: reconnecting`);
      engine.close();
    }, STALL_MS);
    timer.unref();
  });
  socket.on('connect', clear);
  socket.io.on('close', clear);
}

/** @type {Map<import('socket.io-client').Socket, {name: string, lines: string[]}>} */
const traces = new Map();
const TRACE_LINES = 40;
const traceStart = Date.now();

/**
 * Keeps the last requests, replies and connection events of a socket, printed when a test fails.
 * @param {import('socket.io-client').Socket} socket
 * @param {string} name
 */
function traceSocket(socket, name) {
  const tr = { name, lines: /** @type {string[]} */ ([]) };
  traces.set(socket, tr);
  const add = (/** @type {string} */ line) => {
    tr.lines.push(`${String(Date.now() - traceStart).padStart(6)} ms ${line}`);
    if (tr.lines.length > TRACE_LINES) tr.lines.shift();
  };
  const short = (/** @type {any} */ v) => {
    const text = JSON.stringify(v) ?? String(v);
    return text.length > 160 ? `${text.slice(0, 160)}…` : text;
  };
  socket.on('connect', () => add(`connect id=${socket.id}`));
  socket.on('disconnect', (reason) => add(`disconnect (${reason})`));
  socket.on('connect_error', (err) => add(`connect_error ${err.message}`));
  socket.onAny((event, payload) => add(`<= ${event} ${short(payload)}`));
  const emitWithAck = socket.emitWithAck.bind(socket);
  socket.emitWithAck = /** @type {any} */ (async (/** @type {string} */ event, /** @type {any[]} */ ...args) => {
    add(`-> ${event} ${short(args[0])}`);
    try {
      const reply = await emitWithAck(event, ...args);
      add(`<- ${event} reply ${short(reply)}`);
      return reply;
    } catch (err) {
      add(`<- ${event} ${/** @type {Error} */ (err).message}`);
      throw err;
    }
  });
}

/**
 * Prints the traces of the given sockets (all when omitted).
 * @param {import('node:test').TestContext} t
 * @param {Iterable<import('socket.io-client').Socket>} [which]
 */
export function dumpTraces(t, which = traces.keys()) {
  for (const socket of which) {
    const tr = traces.get(socket);
    if (!tr) continue;
    t.diagnostic(`--- socket ${tr.name} (last ${tr.lines.length} events) ---`);
    for (const line of tr.lines) t.diagnostic(line);
  }
}

/**
 * @param {import('socket.io-client').Socket} socket
 * @param {number} [timeoutMs]
 */
export function connected(socket, timeoutMs = 10000) {
  if (socket.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    let lastError = '';
    const t = setTimeout(() => {
      cleanup();
      reject(new Error(`socket did not connect in ${timeoutMs} ms${lastError ? ` (last error: ${lastError})` : ''}`));
    }, timeoutMs);
    const ok = () => { cleanup(); resolve(null); };
    const failed = (/** @type {any} */ err) => { lastError = String(err?.message || err); };
    const cleanup = () => { clearTimeout(t); socket.off('connect', ok); socket.off('connect_error', failed); };
    socket.on('connect', ok);
    socket.on('connect_error', failed);
  });
}

export const SERVER_EVENTS = ['offer', 'answer', 'candidate', 'peer-joined', 'peer-left', 'hangup', 'expired'];

/**
 * @typedef {object} Peer
 * @property {string} name
 * @property {import('socket.io-client').Socket} socket
 * @property {SignalingChannel} channel
 * @property {Array<{event: string, payload: any}>} log every server event, as the channel emitted it
 * @property {(event: string) => any[]} events payloads of one event
 * @property {(event: string, n: number, timeoutMs?: number) => Promise<any[]>} waitFor
 * @property {string[]} resumeFailures
 */

/**
 * A socket plus a SignalingChannel that records what it receives.
 * @param {string} name
 * @param {string} url
 * @param {{transport?: 'websocket' | 'polling', retryMs?: number, maxRetryMs?: number,
 *   ackTimeoutMs?: number}} [o]
 * @returns {Promise<Peer>}
 */
export async function makePeer(name, url, {
  transport = 'websocket', retryMs = 1000, maxRetryMs = 8000, ackTimeoutMs = 1000,
} = {}) {
  const socket = connect(url, { transport });
  const channel = new SignalingChannel(socket, { retryMs, maxRetryMs, ackTimeoutMs });
  channels.add(channel);
  /** @type {Peer} */
  const peer = {
    name,
    socket,
    channel,
    log: [],
    resumeFailures: [],
    events: (event) => peer.log.filter((l) => l.event === event).map((l) => l.payload),
    waitFor: (event, n, timeoutMs = 10000) => until(() => {
      const got = peer.events(event);
      return got.length >= n ? got : null;
    }, timeoutMs, `${name}: ${n} × ${event} (have ${peer.events(event).length})`),
  };
  for (const e of SERVER_EVENTS) channel.on(e, (/** @type {any} */ p) => peer.log.push({ event: e, payload: p }));
  channel.on('resume-failed', (/** @type {any} */ e) => peer.resumeFailures.push(e.code));
  await connected(socket);
  return peer;
}

/**
 * Checks that a peer's server messages carried seq 1, 2, 3, … (the channel emits them in order;
 * this verifies the server numbered them without gaps).
 * @param {Peer} p
 */
export function assertGaplessSeq(p) {
  const seqs = p.log.map((l) => l.payload.seq);
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), `${p.name}: server seqs`);
}

/** A syntactically plausible SDP. @param {string} tag */
export function sdp(tag) {
  return `v=0\r\no=- ${tag.length}46117 2 IN IP4 127.0.0.1\r\ns=${tag}\r\nt=0 0\r\na=group:BUNDLE 0\r\n`
    + 'm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n';
}

/**
 * An RTCIceCandidateInit whose text identifies the sender and the index.
 * @param {string} who @param {number} i
 */
export function cand(who, i) {
  return {
    candidate: `candidate:${i} 1 udp 2122260223 127.0.0.1 ${10000 + i} typ host generation 0 ufrag ${who}`,
    sdpMid: '0',
    sdpMLineIndex: 0,
    usernameFragment: who,
  };
}

/** @param {any} payload @returns {number} the index encoded by cand() */
export function candIndex(payload) {
  const m = /^candidate:(\d+) /.exec(payload.candidate.candidate);
  return m ? Number(m[1]) : -1;
}

/**
 * Polls `fn` until it returns (or resolves to) something truthy.
 * @template T
 * @param {() => T | Promise<T>} fn
 * @param {number} [timeoutMs]
 * @param {string} [what]
 * @returns {Promise<NonNullable<T>>}
 */
export async function until(fn, timeoutMs = 10000, what = 'condition') {
  const start = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return /** @type {NonNullable<T>} */ (v);
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** @param {number} ms */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** @param {string} prefix @returns {string} a room name unique to this run */
export function roomName(prefix = 'room') {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

/**
 * Emits with an ack and a timeout on a raw socket.
 * @param {import('socket.io-client').Socket} socket
 * @param {string} event
 * @param {...any} args
 */
export function request(socket, event, ...args) {
  return socket.timeout(5000).emitWithAck(event, ...args);
}

/**
 * Deletes every Redis key under `prefix` (best effort), with a minimal RESP client.
 * @param {string} prefix
 */
export async function redisDeletePrefix(prefix) {
  const u = new URL(REDIS_URL.replace(/^redis\+\w+:/, 'redis:'));
  if (u.protocol !== 'redis:') return;
  const conn = net.createConnection({ host: u.hostname || '127.0.0.1', port: Number(u.port || 6379) });
  conn.setTimeout(3000, () => conn.destroy(new Error('redis timeout')));
  const client = respClient(conn);
  try {
    await new Promise((resolve, reject) => { conn.once('connect', resolve); conn.once('error', reject); });
    if (u.password) {
      await client(u.username ? ['AUTH', decodeURIComponent(u.username), decodeURIComponent(u.password)]
        : ['AUTH', decodeURIComponent(u.password)]);
    }
    const db = u.pathname.replace('/', '');
    if (db) await client(['SELECT', db]);
    let cursor = '0';
    do {
      const [next, keys] = /** @type {[string, string[]]} */ (await client(['SCAN', cursor, 'MATCH', `${prefix}*`, 'COUNT', '1000']));
      cursor = next;
      if (keys.length) await client(['DEL', ...keys]);
    } while (cursor !== '0');
  } finally {
    conn.destroy();
  }
}

/**
 * @param {net.Socket} conn
 * @returns {(args: string[]) => Promise<any>}
 */
function respClient(conn) {
  let buf = Buffer.alloc(0);
  /** @type {Array<{resolve: Function, reject: Function}>} */
  const waiting = [];
  conn.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const r = parseResp(buf, 0);
      if (!r) break;
      buf = buf.subarray(r.end);
      const w = waiting.shift();
      if (!w) continue;
      if (r.value instanceof Error) w.reject(r.value);
      else w.resolve(r.value);
    }
  });
  conn.on('error', (e) => { for (const w of waiting.splice(0)) w.reject(e); });
  return (args) => new Promise((resolve, reject) => {
    waiting.push({ resolve, reject });
    let s = `*${args.length}\r\n`;
    for (const a of args) s += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
    conn.write(s);
  });
}

/**
 * @param {Buffer} buf @param {number} pos
 * @returns {{value: any, end: number} | null}
 */
function parseResp(buf, pos) {
  const nl = buf.indexOf('\r\n', pos);
  if (nl < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, nl);
  const after = nl + 2;
  switch (type) {
    case '+': return { value: line, end: after };
    case '-': return { value: new Error(line), end: after };
    case ':': return { value: Number(line), end: after };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, end: after };
      if (buf.length < after + n + 2) return null;
      return { value: buf.toString('utf8', after, after + n), end: after + n + 2 };
    }
    case '*': {
      const n = Number(line);
      const items = [];
      let p = after;
      for (let i = 0; i < n; i++) {
        const r = parseResp(buf, p);
        if (!r) return null;
        items.push(r.value);
        p = r.end;
      }
      return { value: items, end: p };
    }
    default: throw new Error(`unexpected RESP type ${type}`);
  }
}

/**
 * Asserts that `got` equals 0..n-1 (or `expected`), with a message that says what is missing,
 * duplicated or out of order.
 * @param {number[]} got
 * @param {number[] | number} expected an array, or n for 0..n-1
 * @param {string} label
 */
export function assertSequence(got, expected, label) {
  const want = typeof expected === 'number' ? Array.from({ length: expected }, (_, i) => i) : expected;
  const wantSet = new Set(want);
  const counts = new Map();
  for (const g of got) counts.set(g, (counts.get(g) || 0) + 1);
  const missing = want.filter((w) => !counts.has(w));
  const dups = [...counts].filter(([, c]) => c > 1).map(([v, c]) => `${v}×${c}`);
  const unexpected = got.filter((g) => !wantSet.has(g));
  let firstDisorder = -1;
  for (let i = 0; i < Math.min(got.length, want.length); i++) {
    if (got[i] !== want[i]) { firstDisorder = i; break; }
  }
  const problems = [];
  if (missing.length) problems.push(`missing ${missing.length}: [${missing.slice(0, 30).join(',')}]`);
  if (dups.length) problems.push(`duplicated: [${dups.slice(0, 30).join(',')}]`);
  if (unexpected.length) problems.push(`unexpected: [${unexpected.slice(0, 30).join(',')}]`);
  if (!problems.length && firstDisorder >= 0) {
    problems.push(`out of order from index ${firstDisorder}: got [${got.slice(firstDisorder, firstDisorder + 10).join(',')}]`);
  }
  if (problems.length || got.length !== want.length) {
    assert.fail(`${label}: got ${got.length}, want ${want.length}; ${problems.join('; ')}`);
  }
}

/**
 * Summarises send replies: how many held, live, duplicate (the first reply was lost and a retry
 * was answered as a duplicate) or settled by a resume.
 * @param {any[]} replies
 */
export function replyStats(replies) {
  const s = { held: 0, live: 0, duplicate: 0, applied: 0, other: 0 };
  for (const r of replies) {
    if (r.duplicate) s.duplicate++;
    else if (r.applied) s.applied++;
    else if (r.held === true) s.held++;
    else if (r.held === false) s.live++;
    else s.other++;
  }
  return s;
}

// Chaos run: many concurrent calls on three instances sharing one Redis (append-only file on),
// with one instance killed (SIGKILL) and Redis restarted mid-run. Every message a peer sends is
// accounted for: once the server acknowledged it, it must reach the other peer exactly once,
// in order. Used by chaos.test.mjs (short) and chaos-run.mjs (`npm run chaos`, long).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  startInstance, freePort, makePeer, connect, connected, roomName, sdp, cand, candIndex, sleep, until,
  stalledConnects,
} from './harness.mjs';

/** @type {Set<import('node:child_process').ChildProcess>} */
const redises = new Set();
// No Redis of ours outlives the process, whatever ends it.
process.on('exit', () => {
  for (const r of redises) if (r.exitCode === null && r.signalCode === null) r.kill('SIGKILL');
});

/**
 * Like the harness's until(), for an async condition (until() takes a synchronous one).
 * @param {() => Promise<boolean>} fn @param {number} timeoutMs @param {string} what
 */
async function poll(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * Sends one inline command to Redis on `port` and resolves with the first reply line, or null
 * when nothing answers (refused, closed, or no reply within 1 s).
 * @param {number} port @param {string} command
 * @returns {Promise<string | null>}
 */
function redisInline(port, command) {
  return new Promise((resolve) => {
    const conn = net.createConnection({ host: '127.0.0.1', port });
    let buf = '';
    const done = (/** @type {string | null} */ v) => { conn.destroy(); resolve(v); };
    conn.setTimeout(1000, () => done(null));
    conn.on('error', () => done(null));
    conn.on('close', () => done(buf.includes('\r\n') ? buf.split('\r\n')[0] : null));
    conn.on('data', (d) => {
      buf += d;
      if (buf.includes('\r\n')) done(buf.split('\r\n')[0]);
    });
    conn.on('connect', () => conn.write(`${command}\r\n`));
  });
}

/**
 * A redis-server on `port` with its append-only file (fsync on every write) in `dir`.
 * @param {number} port @param {string} dir
 */
export async function startRedis(port, dir) {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir], { stdio: 'ignore' });
  redises.add(proc);
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  await poll(async () => {
    if (proc.exitCode !== null) throw new Error(`redis-server on port ${port} exited with ${proc.exitCode}`);
    return (await redisInline(port, 'PING')) === '+PONG';
  }, 15000, `redis-server on port ${port}`);
  return {
    port,
    proc,
    /** SHUTDOWN (the append-only file is flushed), then wait for the exit. */
    shutdown: async () => {
      await redisInline(port, 'SHUTDOWN');
      await exited;
    },
    kill: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * @typedef {object} ChaosOptions
 * @property {number} [calls] concurrent calls
 * @property {number} [seconds] how long the candidates stream, once every call is set up
 * @property {number} [intervalMs] mean time between two candidates of one peer
 * @property {number} [early] early candidates the caller sends with its held offer
 * @property {'websocket' | 'polling' | 'mixed'} [transport] mixed: every combination of the two
 * @property {number} [killAt] when the instance is killed, as a fraction of the streaming time
 * @property {number} [redisAt] when Redis is shut down, as a fraction of the streaming time
 * @property {number} [redisDownMs] how long Redis stays down
 * @property {number} [setupConcurrency] calls being set up at once
 * @property {number} [drainMs] how long the end waits for outstanding sends and deliveries
 * @property {number} [settleMs] how long the end waits afterwards for redeliveries
 * @property {number} [tailMs] least streaming time after the last fault is over
 * @property {Record<string, string>} [env] extra instance settings
 * @property {(line: string) => void} [log] progress lines
 * @property {boolean} [debug] return the raw ledger too
 */

/**
 * @typedef {object} Party
 * @property {number} call
 * @property {'caller' | 'answerer'} role
 * @property {import('./harness.mjs').Peer} peer
 * @property {import('./harness.mjs').Instance} inst the instance it is connected to now
 * @property {'websocket' | 'polling'} transport
 * @property {number} nextCand
 * @property {Party} [other]
 * @property {number} lastCand last candidate index received from the other
 * @property {boolean} gotSdp the other's offer or answer was received
 * @property {boolean} gotHangup
 * @property {boolean} moved
 */

/**
 * Runs one chaos run and returns its accounting. Starts and stops its own Redis and instances.
 * @param {ChaosOptions} [o]
 */
export async function runChaos({
  calls = 20, seconds = 12, intervalMs = 1000, early = 5, transport = 'mixed',
  killAt = 1 / 3, redisAt = 2 / 3, redisDownMs = 1000, setupConcurrency = 16,
  drainMs = 30000, settleMs = 3000, tailMs = 2000, env = {}, log = () => {}, debug = false,
} = {}) {
  const t0 = Date.now();
  const at = (/** @type {number} */ t) => `${((t - t0) / 1000).toFixed(1)} s`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-chaos-'));
  const port = await freePort();
  let redis = await startRedis(port, dir);
  /** @type {import('./harness.mjs').Instance[]} */
  let instances = [];
  /** @type {Party[]} */
  const parties = [];

  // The ledger. A key names one message: call/sender role/kind/index.
  /** @type {Map<string, {kind: string, issuedAt: number, ackedAt: number, party: Party}>} */
  const sent = new Map();
  /** @type {Set<string>} */
  const pending = new Set();
  /** @type {Array<{key: string, code: string}>} */
  const refused = [];
  /** @type {Map<string, number>} */
  const received = new Map();
  /** @type {string[]} */
  const disorder = [];
  /** @type {string[]} */
  const errors = [];

  /**
   * @param {Party} p @param {string} kind @param {number} index @param {object} payload
   */
  const send = (p, kind, index, payload) => {
    const key = `${p.call}/${p.role}/${kind}/${index}`;
    const issuedAt = Date.now();
    pending.add(key);
    return p.peer.channel.send(kind, payload).then((reply) => {
      pending.delete(key);
      sent.set(key, { kind, issuedAt, ackedAt: Date.now(), party: p });
      return reply;
    }, (/** @type {any} */ err) => {
      pending.delete(key);
      // A send the run itself cut off at the end (closed) is left unsettled, not refused.
      if (err?.code !== 'closed') refused.push({ key, code: String(err?.code || err) });
      return null;
    });
  };

  /** Records what `p` receives from the other party of its call. @param {Party} p */
  const record = (p) => {
    const from = p.role === 'caller' ? 'answerer' : 'caller';
    const note = (/** @type {string} */ kind, /** @type {number} */ index, /** @type {any} */ payload) => {
      const key = `${p.call}/${from}/${kind}/${index}`;
      received.set(key, (received.get(key) || 0) + 1);
      if (p.other && payload.from !== p.other.peer.channel.peer) errors.push(`${key}: from ${payload.from}`);
    };
    p.peer.channel.on(from === 'caller' ? 'offer' : 'answer', (/** @type {any} */ m) => {
      note(from === 'caller' ? 'offer' : 'answer', 0, m);
      p.gotSdp = true;
    });
    p.peer.channel.on('candidate', (/** @type {any} */ m) => {
      const i = candIndex(m);
      note('candidate', i, m);
      // Order: the sdp first, candidates in send order, nothing after the hangup.
      if (!p.gotSdp || p.gotHangup || i < p.lastCand) disorder.push(`${p.call}/${from}/candidate/${i} after ${p.lastCand}`);
      p.lastCand = Math.max(p.lastCand, i);
    });
    p.peer.channel.on('hangup', (/** @type {any} */ m) => {
      note('hangup', 0, m);
      p.gotHangup = true;
    });
    p.peer.channel.on('resume-failed', (/** @type {any} */ e) => errors.push(`${p.call}/${p.role}: resume failed: ${e.code}`));
  };

  /** @param {number} i @param {number} k */
  const transportOf = (i, k) => /** @type {'websocket' | 'polling'} */ (transport === 'mixed'
    ? (k ? ['websocket', 'polling'][(i >> 1) % 2] : ['websocket', 'polling'][i % 2]) : transport);

  /** @param {number} i */
  const setUpCall = async (i) => {
    const room = roomName(`chaos${i}`);
    const mk = async (/** @type {'caller' | 'answerer'} */ role, /** @type {number} */ k) => {
      const inst = instances[(i + k) % instances.length];
      const tr = transportOf(i, k);
      /** @type {Party} */
      const p = {
        call: i, role, inst, transport: tr, nextCand: 0, lastCand: -1, gotSdp: false, gotHangup: false, moved: false,
        peer: await makePeer(`${role}${i}`, inst.url, { transport: tr }),
      };
      parties.push(p);
      record(p);
      return p;
    };
    const caller = await mk('caller', 0);
    await caller.peer.channel.join(room);
    const offer = await send(caller, 'offer', 0, { sdp: sdp(`offer${i}`) });
    if (offer?.held !== true) errors.push(`call ${i}: offer not held: ${JSON.stringify(offer)}`);
    await Promise.all(Array.from({ length: early }, (_, j) => send(caller, 'candidate', j, { candidate: cand('caller', j) })));
    caller.nextCand = early;
    const answerer = await mk('answerer', 1);
    caller.other = answerer;
    answerer.other = caller;
    await answerer.peer.channel.join(room);
    await until(() => answerer.gotSdp && answerer.lastCand === early - 1, 20000, `call ${i}: offer and early candidates`);
    await send(answerer, 'answer', 0, { sdp: sdp(`answer${i}`) });
    await until(() => caller.gotSdp, 20000, `call ${i}: answer`);
  };

  // Streams go on past their planned end until both faults are over and traffic followed them,
  // so that a slow machine still has messages sent after each fault.
  let faultsOver = false;
  let stopping = false;
  /** Streams candidates from `p` until `end`, at a jittered pace. @param {Party} p @param {number} end */
  const stream = async (p, end) => {
    await sleep(Math.random() * intervalMs);
    while (!stopping && (Date.now() < end || !faultsOver)) {
      const i = p.nextCand++;
      send(p, 'candidate', i, { candidate: cand(p.role, i) });
      await sleep(intervalMs * (0.5 + Math.random()));
    }
  };

  /** Moves `p` off a dead instance to `to`; resolves once resumed. @param {Party} p @param {import('./harness.mjs').Instance} to */
  const move = async (p, to) => {
    await until(() => !p.peer.socket.connected, 20000, `${p.peer.name} notices the loss`);
    const noticed = Date.now();
    const resumed = new Promise((resolve, reject) => {
      p.peer.channel.once('resumed', resolve);
      p.peer.channel.once('resume-failed', reject);
    });
    p.peer.socket.disconnect(); // stop reconnecting to the dead instance
    const socket = connect(to.url, { transport: p.transport });
    p.peer.channel.attach(socket);
    p.peer.socket = socket;
    p.inst = to;
    p.moved = true;
    await connected(socket, 60000);
    const connectedAt = Date.now();
    await resumed;
    moves.push({ noticed, connected: connectedAt, resumed: Date.now() });
  };
  /** @type {Array<{noticed: number, connected: number, resumed: number}>} */
  const moves = [];
  const stalledBefore = stalledConnects.count;

  const faults = {
    kill: { instance: '', peersMoved: 0, at: 0, resumedAt: 0 },
    redis: { at: 0, downAt: 0, upAt: 0, readyAt: 0 },
  };
  let streamStart = 0;
  let streamEnd = 0;
  let setupMs = 0;
  try {
    const renv = { REDIS_URL: `redis://127.0.0.1:${port}`, ...env };
    const prefix = `chaos:${process.pid}:`;
    instances = await Promise.all(['a', 'b', 'c'].map((id) => startInstance({ id, prefix, env: renv })));
    log(`${at(Date.now())}: Redis on :${port} (AOF in ${dir}), instances ${instances.map((x) => `${x.id} :${x.port}`).join(', ')}`);

    // Set up every call, a few at a time.
    let nextCall = 0;
    await Promise.all(Array.from({ length: Math.min(setupConcurrency, calls) }, async () => {
      while (nextCall < calls) await setUpCall(nextCall++);
    }));
    setupMs = Date.now() - t0;
    log(`${at(Date.now())}: ${calls} calls set up (${parties.length} peers)`);

    streamStart = Date.now();
    streamEnd = streamStart + seconds * 1000;
    const streams = parties.map((p) => stream(p, streamEnd));

    const chaos = (async () => {
      await sleep(streamStart + seconds * 1000 * killAt - Date.now());
      const [victim, ...survivors] = instances;
      const victims = parties.filter((p) => p.inst === victim);
      faults.kill.instance = victim.id;
      faults.kill.peersMoved = victims.length;
      faults.kill.at = Date.now();
      await victim.kill('SIGKILL');
      log(`${at(faults.kill.at)}: instance ${victim.id} killed (SIGKILL); moving its ${victims.length} peers`);
      await Promise.all(victims.map((p, k) => move(p, survivors[k % survivors.length])));
      faults.kill.resumedAt = Date.now();
      log(`${at(faults.kill.resumedAt)}: all ${victims.length} peers resumed on ${survivors.map((s) => s.id).join(', ')}`);

      await sleep(streamStart + seconds * 1000 * redisAt - Date.now());
      faults.redis.at = Date.now();
      await redis.shutdown();
      faults.redis.downAt = Date.now();
      log(`${at(faults.redis.downAt)}: Redis shut down`);
      await sleep(redisDownMs);
      redis = await startRedis(port, dir);
      faults.redis.upAt = Date.now();
      log(`${at(faults.redis.upAt)}: Redis up again (same port, same AOF)`);
      await poll(async () => {
        const codes = await Promise.all(survivors.map((s) => fetch(`${s.url}/readyz`, { signal: AbortSignal.timeout(2000) })
          .then((r) => r.status, () => 0)));
        return codes.every((c) => c === 200);
      }, 30000, 'instances ready again');
      faults.redis.readyAt = Date.now();
      log(`${at(faults.redis.readyAt)}: instances ready again`);
      await sleep(tailMs);
      faultsOver = true;
    })().finally(() => { faultsOver = true; });

    await Promise.all([...streams, chaos]);
    streamEnd = Date.now();
    log(`${at(Date.now())}: streams ended; hanging up`);
    for (const p of parties) if (p.role === 'caller') send(p, 'hangup', 0, {});

    // Everything sent must settle, then arrive; then wait for redeliveries of what arrived.
    const allArrived = () => [...sent.keys()].every((k) => received.has(k));
    await until(() => pending.size === 0, drainMs, 'outstanding sends').catch(() => {});
    await until(allArrived, drainMs, 'deliveries').catch(() => {});
    log(`${at(Date.now())}: ${pending.size} sends outstanding, ${allArrived() ? 'everything arrived' : 'some messages missing'}; waiting ${settleMs} ms for redeliveries`);
    await sleep(settleMs);
  } finally {
    stopping = true;
    for (const p of parties) {
      p.peer.channel.close();
      p.peer.socket.disconnect();
    }
    await Promise.all(instances.map((i) => i.stop()));
    await redis.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }

  // The accounting.
  const lostKeys = [...sent.keys()].filter((k) => !received.has(k));
  const dupKeys = [...received].filter(([, n]) => n > 1).map(([k]) => k);
  const unexpected = [...received.keys()].filter((k) => !sent.has(k));
  const entries = [...sent.values()];
  const cands = entries.filter((e) => e.kind === 'candidate');
  /**
   * Longest a message in flight during an outage (sent before `end`, acknowledged after `start`)
   * waited for its acknowledgement, counted from `start`, and whose it was.
   * @param {number} start @param {number} end
   */
  const longestWait = (start, end) => {
    let worst = { ms: 0, who: '' };
    for (const e of entries) {
      if (e.ackedAt < start || e.issuedAt > end) continue;
      const ms = e.ackedAt - Math.max(e.issuedAt, start);
      if (ms > worst.ms) {
        const p = e.party;
        worst = { ms, who: `${p.peer.name} on ${p.inst.id}, ${p.transport}${p.moved ? ', moved' : ''}` };
      }
    }
    return worst;
  };
  const ackMs = entries.map((e) => e.ackedAt - e.issuedAt).sort((x, y) => x - y);
  const pct = (/** @type {number} */ q) => (ackMs.length ? ackMs[Math.min(ackMs.length - 1, Math.floor(q * ackMs.length))] : 0);
  const killStall = longestWait(faults.kill.at, faults.kill.resumedAt);
  const redisStall = longestWait(faults.redis.at, faults.redis.readyAt);
  const k = faults.kill;
  const r = faults.redis;
  return {
    calls,
    peers: parties.length,
    sent: sent.size,
    delivered: sent.size - lostKeys.length,
    lost: lostKeys.length,
    duplicated: dupKeys.length,
    outOfOrder: disorder.length,
    refused: refused.length,
    unsettled: pending.size,
    unexpected: unexpected.length,
    errors,
    samples: {
      lost: lostKeys.slice(0, 20).map((key) => {
        const e = /** @type {any} */ (sent.get(key));
        return `${key} (sender ${e.party.peer.name} on ${e.party.inst.id}${e.party.moved ? ', moved' : ''}; issued ${at(e.issuedAt)}, acked ${at(e.ackedAt)})`;
      }),
      duplicated: dupKeys.slice(0, 20).map((key) => `${key} ×${received.get(key)}`),
      outOfOrder: disorder.slice(0, 20),
      refused: refused.slice(0, 20).map((x) => `${x.key}: ${x.code}`),
      unsettled: [...pending].slice(0, 20),
      unexpected: unexpected.slice(0, 20),
    },
    // From a send to its acknowledgement (retries included): high values mean overload.
    ackLatencyMs: { p50: pct(0.5), p99: pct(0.99), max: ackMs.length ? ackMs[ackMs.length - 1] : 0 },
    // Candidates acknowledged before a fault, or sent after it was over (or while Redis was down).
    phases: {
      sentBeforeKill: cands.filter((e) => e.ackedAt < k.at).length,
      sentAfterKill: cands.filter((e) => e.issuedAt > k.resumedAt).length,
      sentByMovedPeersAfterKill: cands.filter((e) => e.party.moved && e.issuedAt > k.resumedAt).length,
      sentBeforeRedis: cands.filter((e) => e.ackedAt < r.at).length,
      sentWhileRedisDown: cands.filter((e) => e.issuedAt >= r.downAt && e.issuedAt < r.upAt).length,
      sentAfterRedis: cands.filter((e) => e.issuedAt > r.readyAt).length,
    },
    timeline: {
      setupMs,
      streamStartMs: streamStart - t0,
      streamEndMs: streamEnd - t0,
      killAtMs: k.at - t0,
      redisAtMs: r.at - t0,
    },
    kill: {
      instance: k.instance,
      peersMoved: k.peersMoved,
      resumedMs: k.resumedAt - k.at,
      // Per moved peer, the slowest: noticing the loss, connecting to a survivor, resuming there.
      noticeMs: Math.max(0, ...moves.map((m) => m.noticed - k.at)),
      connectMs: Math.max(0, ...moves.map((m) => m.connected - m.noticed)),
      resumeMs: Math.max(0, ...moves.map((m) => m.resumed - m.connected)),
      longestStallMs: killStall.ms,
      longestStallPeer: killStall.who,
    },
    redis: {
      downMs: r.upAt - r.at,
      readyMs: r.readyAt - r.at,
      longestStallMs: redisStall.ms,
      longestStallPeer: redisStall.who,
    },
    stalledConnects: stalledConnects.count - stalledBefore,
    /** @type {Record<string, string>} what each instance logged (level warn by default) */
    logs: Object.fromEntries(instances.map((i) => [i.id, i.logs()])),
    totalMs: Date.now() - t0,
    // The raw ledger, for digging into a result.
    ...(debug ? { debug: { t0, sent, received, parties, faults } } : {}),
  };
}

/**
 * The result as a small table plus the outages, for people.
 * @param {Awaited<ReturnType<typeof runChaos>>} r
 */
export function formatResult(r) {
  const s = (/** @type {number} */ ms) => `${(ms / 1000).toFixed(1)} s`;
  const cols = [
    ['calls', r.calls], ['seconds', Math.round((r.timeline.streamEndMs - r.timeline.streamStartMs) / 1000)], ['sent', r.sent], ['delivered', r.delivered], ['lost', r.lost],
    ['duplicated', r.duplicated], ['out of order', r.outOfOrder], ['refused', r.refused], ['unsettled', r.unsettled],
  ];
  const w = cols.map(([h, v]) => Math.max(String(h).length, String(v).length));
  const lines = [
    cols.map(([h], i) => String(h).padStart(w[i])).join('  '),
    cols.map(([, v], i) => String(v).padStart(w[i])).join('  '),
    `acknowledgement latency p50 ${r.ackLatencyMs.p50} ms, p99 ${r.ackLatencyMs.p99} ms, max ${r.ackLatencyMs.max} ms`,
    `instance ${r.kill.instance} killed at ${s(r.timeline.killAtMs)}: ${r.kill.peersMoved} peers moved, all resumed after ${s(r.kill.resumedMs)}; `
      + `longest a message waited for its acknowledgement ${s(r.kill.longestStallMs)} (${r.kill.longestStallPeer}); slowest move: noticed after ${s(r.kill.noticeMs)}, `
      + `connected ${s(r.kill.connectMs)} later, resumed ${s(r.kill.resumeMs)} after that`,
    `Redis shut down at ${s(r.timeline.redisAtMs)}: answering again after ${s(r.redis.downMs)}, instances ready after ${s(r.redis.readyMs)}; `
      + `longest a message waited for its acknowledgement ${s(r.redis.longestStallMs)} (${r.redis.longestStallPeer})`,
    `sent before/after the kill ${r.phases.sentBeforeKill}/${r.phases.sentAfterKill} (moved peers after: ${r.phases.sentByMovedPeersAfterKill}); `
      + `before/while down/after the Redis restart ${r.phases.sentBeforeRedis}/${r.phases.sentWhileRedisDown}/${r.phases.sentAfterRedis}`,
  ];
  for (const [name, list] of Object.entries(r.samples)) {
    if (list.length) lines.push(`${name}: ${list.join('; ')}`);
  }
  if (r.stalledConnects) lines.push(`connections retried after no CONNECT reply (server defect, see connect.test.mjs): ${r.stalledConnects}`);
  if (r.errors.length) lines.push(`errors: ${r.errors.slice(0, 20).join('; ')}`);
  return lines.join('\n');
}

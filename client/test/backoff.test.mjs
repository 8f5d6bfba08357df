// Resend backoff of the signaling channel, on mocked time: waits double from retryMs up to
// maxRetryMs with equal jitter, start again on a new connection, and never cost exactly-once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SignalingChannel } from '../src/channel.js';
import { FakeServer, FakeSocket, Network, err, until, sleep } from './fake.mjs';

/** Just below 1: Math.random() never returns 1. */
const TOP = 1 - 2 ** -40;

/**
 * A server, a network and a joined channel with the default options; then time is mocked.
 * `net.filter` may be set afterwards.
 * @param {import('node:test').TestContext} t
 * @param {object} [channelOptions]
 */
async function world(t, channelOptions = {}) {
  const server = new FakeServer();
  const net = new Network();
  const socket = new FakeSocket(server, net);
  socket.connect();
  const channel = new SignalingChannel(socket, channelOptions);
  t.after(() => {
    channel.close();
    for (const sock of server.connections.values()) sock.disconnect();
    net.close();
    server.close();
  });
  await channel.join('r1');
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const member = [...server.room('r1').values()][0];
  return { server, net, socket, channel, member };
}

/**
 * Moves mocked time on by `ms`, one millisecond at a time, running what each step set off.
 * @param {import('node:test').TestContext} t
 * @param {number} ms
 */
async function advance(t, ms) {
  for (let i = 0; i < ms; i++) {
    t.mock.timers.tick(1);
    await new Promise((r) => setImmediate(r));
  }
}

/**
 * Records the (mocked) time of every emission of `event` by the client; `verdict` decides its
 * fate and that of its reply. With `seq`, only that message's emissions are recorded.
 * @param {Network} net
 * @param {string} event
 * @param {(p: any) => ('drop' | 'pass')} verdict
 * @param {Map<number, number[]>} [bySeq] filled with the times of each seq too
 */
function clock(net, event, verdict, bySeq) {
  /** @type {number[]} */
  const times = [];
  net.filter = (p) => {
    if (p.event !== event) return 'pass';
    if (p.dir === 'up' && p.kind === 'event') {
      times.push(Date.now());
      if (bySeq) bySeq.set(p.payload.seq, [...(bySeq.get(p.payload.seq) || []), Date.now()]);
    }
    return verdict(p);
  };
  return times;
}

/** @param {number[]} times @returns {number[]} */
const gaps = (times) => times.slice(1).map((x, i) => x - times[i]);

/**
 * @param {number[]} got
 * @param {number[]} want
 * @param {string} what
 */
function near(got, want, what) {
  assert.equal(got.length, want.length, `${what}: ${got} vs ${want}`);
  got.forEach((g, i) => assert.ok(Math.abs(g - want[i]) <= 1, `${what}: ${got} vs ${want}`));
}

test('resends wait 1, 2, 4, 8, 8 s, each drawn from 50–100% of that', async (t) => {
  for (const [r, want] of /** @type {Array<[number, number[]]>} */ ([
    [TOP, [1000, 2000, 4000, 8000, 8000]],
    [0.5, [750, 1500, 3000, 6000, 6000]],
    [0, [500, 1000, 2000, 4000, 4000]],
  ])) {
    await t.test(`random ${r.toFixed(2)}`, async (t) => {
      const w = await world(t);
      t.mock.method(Math, 'random', () => r);
      const times = clock(w.net, 'offer', () => 'drop');
      w.channel.send('offer', { sdp: 'x' }).catch(() => {});
      await advance(t, want.reduce((a, b) => a + b, 0) + 10);
      near(gaps(times), want, 'gaps between emissions');
    });
  }
});

test('with real jitter every wait stays within its bounds', async (t) => {
  const w = await world(t, { retryMs: 100, maxRetryMs: 400 });
  /** @type {Map<number, number[]>} */
  const bySeq = new Map();
  clock(w.net, 'candidate', () => 'drop', bySeq);
  for (let i = 0; i < 8; i++) w.channel.send('candidate', { candidate: null }).catch(() => {});
  await advance(t, 100 + 200 + 400 * 6);
  assert.equal(bySeq.size, 8);
  /** @type {number[]} */
  const all = [];
  for (const own of bySeq.values()) {
    const g = gaps(own);
    assert.ok(g.length >= 4, `at least four resends: ${g}`);
    g.forEach((gap, i) => {
      const base = Math.min(400, 100 * 2 ** i);
      assert.ok(gap >= base / 2 - 1 && gap <= base + 1, `resend ${i + 1}: ${gap} ms not in [${base / 2}, ${base}]`);
    });
    all.push(...g);
  }
  assert.ok(new Set(all).size > 4, 'the waits vary');
});

test('after a reconnect the backoff starts again at retryMs; the message is applied once', async (t) => {
  const w = await world(t);
  t.mock.method(Math, 'random', () => TOP);
  let pass = false;
  const times = clock(w.net, 'offer', () => (pass ? 'pass' : 'drop'));
  const sent = w.channel.send('offer', { sdp: 'x' });
  await advance(t, 1000 + 2000 + 4000 + 8000 + 100);
  near(gaps(times), [1000, 2000, 4000, 8000], 'before the reconnect');
  w.socket.disconnect();
  await advance(t, 500);
  const reconnected = times.length;
  w.socket.connect();
  await advance(t, 50); // resume, then the outbox is sent at once
  assert.equal(times.length, reconnected + 1, 'sent again right after the resume');
  await advance(t, 1000 + 2000 + 10);
  near(gaps(times.slice(reconnected)), [1000, 2000], 'after the reconnect');
  pass = true;
  await advance(t, 4000 + 10);
  const reply = await sent;
  assert.equal(reply.seq, 1);
  assert.equal(w.member.applied.length, 1);
  assert.equal(w.channel.pending, 0);
});

test('join and resume back off as sends do', async (t) => {
  const server = new FakeServer();
  const net = new Network();
  const socket = new FakeSocket(server, net);
  socket.connect();
  const channel = new SignalingChannel(socket);
  t.after(() => {
    channel.close();
    socket.disconnect();
    net.close();
    server.close();
  });
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  t.mock.method(Math, 'random', () => TOP);
  let refusals = 5;
  server.intercept = (_c, event) => {
    if (event === 'join' && refusals > 0) { refusals--; return err('unavailable'); }
    return undefined;
  };
  const joins = clock(net, 'join', () => 'pass');
  const joined = channel.join('r1');
  await advance(t, 1000 + 2000 + 4000 + 8000 + 8000 + 10);
  await joined;
  near(gaps(joins), [1000, 2000, 4000, 8000, 8000], 'join');

  // Resume: lost requests (timeouts) and a transient error.
  let lost = 3;
  const resumes = clock(net, 'resume', (p) => (p.dir === 'up' && lost-- > 0 ? 'drop' : 'pass'));
  server.intercept = (_c, event) => (event === 'resume' && lost === -1 ? (lost--, err('internal')) : undefined);
  socket.disconnect();
  const resumed = new Promise((r) => channel.once('resumed', r));
  socket.connect();
  await advance(t, 1000 + 2000 + 4000 + 8000 + 10);
  await resumed;
  near(gaps(resumes), [1000, 2000, 4000, 8000], 'resume');
});

test('a failing ack backs off too, and goes at once after a resume', async (t) => {
  const w = await world(t);
  t.mock.method(Math, 'random', () => TOP);
  let refuse = true;
  w.server.intercept = (_c, event) => (event === 'ack' && refuse ? err('unavailable') : undefined);
  const acks = clock(w.net, 'ack', () => 'pass');
  w.server.push(w.member, 'candidate', { from: 'x', candidate: null });
  await advance(t, 20 + 1000 + 2000 + 4000 + 10);
  near(gaps(acks), [1000, 2000, 4000], 'acks refused with unavailable');
  refuse = false;
  w.socket.disconnect();
  w.socket.connect();
  const before = acks.length;
  await advance(t, 50);
  assert.equal(acks.length, before + 1, 'acknowledged right after the resume');
  assert.equal(w.member.acked, 1);
});

test('exactly once: lost requests and replies, backoff and a reconnect', async (t) => {
  // Real time, scaled down; two members: what a sends reaches b once, in order.
  const opts = { retryMs: 20, maxRetryMs: 160, ackTimeoutMs: 20 };
  const server = new FakeServer();
  let upLost = 0;
  let downLost = 0;
  const net = new Network({
    filter: (p) => {
      if (p.event !== 'candidate' || p.dir === 'down' && p.kind === 'event') return 'pass';
      if (p.dir === 'up' && upLost < 6 && p.payload.seq % 2 === 1) { upLost++; return 'drop'; }
      if (p.dir === 'down' && downLost < 6) { downLost++; return 'drop'; }
      return 'pass';
    },
  });
  const sa = new FakeSocket(server, net);
  const sb = new FakeSocket(server, net);
  sa.connect();
  sb.connect();
  const a = new SignalingChannel(sa, opts);
  const b = new SignalingChannel(sb, opts);
  t.after(() => {
    a.close();
    b.close();
    for (const sock of server.connections.values()) sock.disconnect();
    net.close();
    server.close();
  });
  /** @type {string[]} */
  const got = [];
  b.on('candidate', (/** @type {any} */ p) => got.push(p.candidate.candidate));
  await a.join('r1');
  await b.join('r1');
  const sends = Array.from({ length: 6 }, (_, i) => a.send('candidate', { candidate: { candidate: `c${i}` } }));
  await sleep(60);
  sa.disconnect();
  await sleep(30);
  sa.connect();
  const replies = await Promise.all(sends);
  assert.deepEqual(replies.map((r) => r.seq), [1, 2, 3, 4, 5, 6]);
  await until(() => got.length === 6, 2000, 'six candidates at b');
  await sleep(100);
  assert.deepEqual(got, ['c0', 'c1', 'c2', 'c3', 'c4', 'c5']);
  const m = server.member('r1', a.peer || '');
  assert.deepEqual(m?.applied.map((x) => x.payload.seq), [1, 2, 3, 4, 5, 6]);
  assert.ok(sa.sent.filter((s) => s.event === 'candidate').length > 6, 'resent');
});

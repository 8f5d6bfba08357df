import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SignalingChannel, SignalingError, Emitter } from '../src/channel.js';
import { FakeServer, FakeSocket, Network, err, until, sleep } from './fake.mjs';

// The defaults scaled down: resends back off from 30 ms to 8 × that.
const FAST = { retryMs: 30, maxRetryMs: 240, ackTimeoutMs: 30 };

/**
 * Builds a server, a network and a connected socket + channel; registers cleanup that also
 * checks that close() left no timer behind.
 * @param {import('node:test').TestContext} t
 * @param {{net?: object, server?: object, channel?: object, connect?: boolean}} [o]
 */
function setup(t, o = {}) {
  const server = new FakeServer(o.server);
  const net = new Network(o.net);
  const socket = new FakeSocket(server, net);
  if (o.connect !== false) socket.connect();
  const channel = new SignalingChannel(socket, { ...FAST, ...o.channel });
  /** @type {Array<{close: () => void}>} */
  const closables = [];
  t.after(async () => {
    for (const c of closables) c.close();
    channel.close();
    for (const sock of server.connections.values()) sock.disconnect();
    net.close();
    server.close();
    await sleep(0);
    const timers = process.getActiveResourcesInfo().filter((r) => r === 'Timeout');
    assert.equal(timers.length, 0, `timers left after close(): ${timers.length}`);
  });
  return { server, net, socket, channel, closables };
}

/**
 * A second client in the same fake world.
 * @param {{server: FakeServer, net: Network, closables: any[]}} world
 * @param {object} [opts]
 */
function peer(world, opts = {}) {
  const socket = new FakeSocket(world.server, world.net);
  socket.connect();
  const channel = new SignalingChannel(socket, { ...FAST, ...opts });
  world.closables.push(channel);
  return { socket, channel };
}

/**
 * Records every server event a channel emits.
 * @param {SignalingChannel} channel
 */
function record(channel) {
  /** @type {Array<{event: string, payload: any}>} */
  const log = [];
  for (const e of ['offer', 'answer', 'candidate', 'peer-joined', 'peer-left', 'hangup', 'expired']) {
    channel.on(e, (/** @type {any} */ p) => log.push({ event: e, payload: p }));
  }
  return log;
}

test('Emitter: on, once, off, listener errors', () => {
  const e = new Emitter();
  /** @type {any[]} */
  const got = [];
  const fn = (/** @type {any} */ x) => got.push(['on', x]);
  e.on('a', fn);
  e.once('a', (/** @type {any} */ x) => got.push(['once', x]));
  e.on('listener-error', (/** @type {any} */ er, /** @type {any} */ ev) => got.push(['err', er.message, ev]));
  e.on('a', () => { throw new Error('boom'); });
  assert.equal(e.emit('a', 1), true);
  e.emit('a', 2);
  e.off('a', fn);
  e.emit('a', 3);
  assert.deepEqual(got, [
    ['on', 1], ['once', 1], ['err', 'boom', 'a'],
    ['on', 2], ['err', 'boom', 'a'],
    ['err', 'boom', 'a'],
  ]);
  assert.equal(e.emit('nothing'), false);
});

test('join stores the membership and resolves the reply', async (t) => {
  const { channel, server } = setup(t);
  const reply = await channel.join('r1');
  assert.equal(reply.ok, true);
  assert.equal(channel.room, 'r1');
  assert.equal(channel.peer, reply.peer);
  assert.equal(channel.token, reply.token);
  assert.equal(channel.role, 'caller');
  assert.deepEqual(channel.peers, []);
  const joins = server.requests.filter((r) => r.event === 'join');
  assert.ok(joins.length >= 1);
  assert.equal(server.room('r1').size, 1);
  assert.match(joins[0].payload.nonce, /^[A-Za-z0-9_-]{8,64}$/);
});

test('join is retried with the same nonce until a reply arrives; one membership', async (t) => {
  let lostReplies = 0;
  let lostRequests = 0;
  const { channel, server } = setup(t, {
    net: {
      filter: (/** @type {any} */ p) => {
        if (p.event !== 'join') return 'pass';
        if (p.dir === 'up' && lostRequests < 2) { lostRequests++; return 'drop'; }
        if (p.dir === 'down' && lostReplies < 2) { lostReplies++; return 'drop'; }
        return 'pass';
      },
    },
  });
  const reply = await channel.join('r1');
  const joins = server.requests.filter((r) => r.event === 'join');
  assert.ok(joins.length >= 3, 'two lost replies → at least three joins reach the server');
  assert.equal(new Set(joins.map((j) => j.payload.nonce)).size, 1, 'same nonce on every attempt');
  assert.equal(server.room('r1').size, 1, 'one membership');
  assert.equal(reply.peer, [...server.room('r1').keys()][0]);
});

test('join across a reconnect keeps the nonce', async (t) => {
  const { channel, server, socket } = setup(t, {
    net: { filter: (/** @type {any} */ p) => (p.event === 'join' && p.dir === 'down' ? 'drop' : 'pass') },
  });
  const joining = channel.join('r1');
  await until(() => server.requests.some((r) => r.event === 'join'));
  socket.disconnect();
  // @ts-ignore
  socket.net.filter = undefined;
  await sleep(20);
  socket.connect();
  await joining;
  const nonces = new Set(server.requests.filter((r) => r.event === 'join').map((r) => r.payload.nonce));
  assert.equal(nonces.size, 1);
  assert.equal(server.room('r1').size, 1);
  assert.equal(server.requests.filter((r) => r.event === 'resume').length, 0, 'no resume before join');
});

test('join error rejects with code; unavailable is retried', async (t) => {
  const world = setup(t);
  let unavailable = 2;
  world.server.intercept = (_c, event) => {
    if (event === 'join' && unavailable > 0) { unavailable--; return err('unavailable'); }
    return undefined;
  };
  await world.channel.join('r1');
  assert.ok(world.server.requests.filter((r) => r.event === 'join').length >= 3);
  const b = peer(world);
  await b.channel.join('r1');
  const c = peer(world);
  await assert.rejects(c.channel.join('r1'), (e) => e instanceof SignalingError && e.code === 'room_full');
  assert.equal(c.channel.joined, false);
});

test('send numbers messages, keeps several in flight, resolves each once', async (t) => {
  const { channel, server, socket } = setup(t, { net: { dup: 0.5, seed: 7, maxDelay: 5 } });
  await channel.join('r1');
  const replies = await Promise.all(
    Array.from({ length: 20 }, (_, i) => channel.send('candidate', { candidate: { candidate: `c${i}` } })),
  );
  assert.deepEqual(replies.map((r) => r.seq), Array.from({ length: 20 }, (_, i) => i + 1));
  const m = [...server.room('r1').values()][0];
  assert.deepEqual(m.applied.map((a) => a.payload.seq), Array.from({ length: 20 }, (_, i) => i + 1));
  assert.deepEqual(m.applied.map((a) => a.payload.candidate.candidate), Array.from({ length: 20 }, (_, i) => `c${i}`));
  // All 20 were emitted before the first reply could arrive (delays are ≥ 0 ms, async).
  const firstTwenty = socket.sent.filter((s) => s.event === 'candidate').slice(0, 20).map((s) => s.payload.seq);
  assert.deepEqual(firstTwenty, Array.from({ length: 20 }, (_, i) => i + 1));
  assert.equal(channel.pending, 0);
});

test('at most maxInFlight messages await their reply; the rest follow in order', async (t) => {
  const { channel, server } = setup(t, { net: { maxDelay: 5, seed: 9 }, channel: { maxInFlight: 4 } });
  await channel.join('r1');
  const m = [...server.room('r1').values()][0];
  /** @type {string[]} */
  const violations = [];
  const seen = new Set();
  const origHandle = server.handle.bind(server);
  server.handle = (conn, event, payload, reply) => {
    if (event === 'candidate' && !seen.has(payload.seq)) {
      seen.add(payload.seq);
      if (payload.seq >= m.expected + 4) violations.push(`seq ${payload.seq} arrived while ${m.expected} was next`);
    }
    return origHandle(conn, event, payload, reply);
  };
  const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => channel.send('candidate', { candidate: { candidate: `c${i}` } })));
  assert.deepEqual(replies.map((r) => r.seq), Array.from({ length: 40 }, (_, i) => i + 1));
  assert.deepEqual(violations, []);
  assert.equal(m.applied.length, 40);
});

test('send retries with the same seq until a reply arrives', async (t) => {
  let dropped = 0;
  const { channel, server, socket } = setup(t, {
    net: {
      filter: (/** @type {any} */ p) => {
        if (p.event === 'offer' && dropped < 3) { dropped++; return 'drop'; } // 2 requests, 1 reply
        return 'pass';
      },
    },
  });
  await channel.join('r1');
  const started = Date.now();
  const reply = await channel.send('offer', { sdp: 'v=0' });
  assert.equal(reply.ok, true);
  assert.equal(reply.seq, 1);
  const attempts = socket.sent.filter((s) => s.event === 'offer');
  assert.ok(attempts.length >= 4);
  assert.ok(attempts.every((a) => a.payload.seq === 1 && a.payload.room === 'r1' && a.payload.sdp === 'v=0'));
  // Three resends wait at least 50% of 30, 60 and 120 ms.
  assert.ok(Date.now() - started >= 3.5 * FAST.retryMs - 5, 'retries are spaced out');
  const m = [...server.room('r1').values()][0];
  assert.equal(m.applied.length, 1, 'applied once');
});

test('error replies are final (seq consumed); out_of_order and unavailable are retried', async (t) => {
  const { channel, server } = setup(t);
  await channel.join('r1');
  let transient = 0;
  server.onApply = (_m, event, p) => (event === 'offer' && p.seq === 1 ? err('no_peer') : undefined);
  server.intercept = (_c, event, p) => {
    if (event === 'candidate' && p.seq === 2 && transient < 2) {
      transient++;
      return err(transient === 1 ? 'out_of_order' : 'unavailable');
    }
    return undefined;
  };
  const first = channel.send('offer', { sdp: 'x' });
  await assert.rejects(first, (e) => e instanceof SignalingError && e.code === 'no_peer' && e.reply.ok === false);
  const second = await channel.send('candidate', { candidate: null });
  assert.equal(second.seq, 2);
  assert.equal(transient, 2);
  assert.ok(server.requests.filter((r) => r.event === 'candidate').length >= 3);
});

test('not_joined is final on a settled connection, after a few tries', async (t) => {
  const { channel, server } = setup(t);
  await channel.join('r1');
  server.intercept = (_c, event) => (event === 'offer' ? err('not_joined') : undefined);
  await assert.rejects(channel.send('offer', { sdp: 'x' }), (e) => e instanceof SignalingError && e.code === 'not_joined');
  assert.ok(server.requests.filter((r) => r.event === 'offer').length >= 3);
});

test('a retried leave answered not_joined (its first reply was lost) resolves', async (t) => {
  let lost = 0;
  const { channel, server } = setup(t, {
    net: { filter: (/** @type {any} */ p) => (p.kind === 'ack' && p.event === 'leave' && lost++ === 0 ? 'drop' : 'pass') },
  });
  await channel.join('r1');
  const r = await channel.leave();
  assert.equal(r.ok, true);
  assert.equal(r.applied, true);
  assert.equal(channel.joined, false);
  assert.equal(server.room('r1').size, 0);
});

test('send before join and unknown events are refused locally', async (t) => {
  const { channel } = setup(t);
  await assert.rejects(channel.send('offer', { sdp: 'x' }), { code: 'not_joined' });
  await assert.rejects(channel.send('join', {}), { code: 'bad_request' });
});

test('a message over the limits of the join reply is refused before it is sent; no seq used', async (t) => {
  const { channel, server, socket } = setup(t);
  const limits = { maxSdpBytes: 100, maxCandidateBytes: 50, maxMessageBytes: 400 };
  server.intercept = (conn, event, payload) => (event === 'join' ? { ...server.join(conn, payload), limits } : undefined);
  await channel.join('r1');
  assert.deepEqual(channel.limits, limits);
  // 60 characters, 120 bytes in UTF-8: the server counts bytes.
  await assert.rejects(channel.send('offer', { sdp: 'é'.repeat(60) }), (/** @type {any} */ e) => {
    assert.ok(e instanceof SignalingError);
    assert.equal(e.code, 'too_large');
    assert.match(e.message, /120 bytes, the limit is 100/);
    return true;
  });
  await assert.rejects(channel.send('candidate', { candidate: { candidate: 'c'.repeat(51), sdpMid: '0' } }), { code: 'too_large' });
  // Each field within its limit, the whole message over the message limit.
  await assert.rejects(channel.send('answer', { sdp: 'v=0', note: 'x'.repeat(400) }), { code: 'too_large' });
  assert.deepEqual(socket.sent.filter((m) => m.event !== 'join'), [], 'nothing oversized went on the wire');
  // At the limits exactly it goes, with the first seq.
  assert.equal((await channel.send('offer', { sdp: 'é'.repeat(50) })).seq, 1);
  assert.equal((await channel.send('candidate', { candidate: { candidate: 'c'.repeat(50) } })).seq, 2);
  assert.deepEqual(server.requests.filter((r) => r.event !== 'join' && r.event !== 'ack').map((r) => r.payload.seq), [1, 2]);
});

test('incoming events: dedup and in-order emission despite reordering', async (t) => {
  const { channel, server } = setup(t);
  const log = record(channel);
  await channel.join('r1');
  const m = [...server.room('r1').values()][0];
  const sock = /** @type {FakeSocket} */ (server.connections.get(/** @type {string} */ (m.conn)));
  const msgs = [1, 2, 3, 4, 5].map((seq) => ({ event: 'candidate', payload: { room: 'r1', seq, from: 'x', candidate: { candidate: `c${seq}` } } }));
  m.serverSeq = 5;
  m.queue = msgs.slice();
  // Deliver 3, 1, 5, 2, 2, 1, 4, 3 (plus a message for another room and garbage).
  for (const i of [3, 1, 5, 2, 2, 1, 4, 3]) sock._local('candidate', structuredClone(msgs[i - 1].payload));
  sock._local('candidate', { room: 'other', seq: 6 });
  sock._local('candidate', 'garbage');
  sock._local('candidate', { room: 'r1', seq: 'x' });
  assert.deepEqual(log.map((l) => l.payload.seq), [1, 2, 3, 4, 5]);
  assert.deepEqual(log.map((l) => l.payload.candidate.candidate), ['c1', 'c2', 'c3', 'c4', 'c5']);
  assert.equal(channel.lastApplied, 5);
  await until(() => m.acked === 5, 1000, 'ack 5');
  assert.ok(m.acks.length <= 2, `acks are batched (got ${m.acks.join(',')})`);
});

test('acks are cumulative, at most one in flight, always the latest; re-ack on resend', async (t) => {
  const { channel, server } = setup(t, { net: { maxDelay: 15, seed: 3 } });
  const log = record(channel);
  await channel.join('r1');
  const m = [...server.room('r1').values()][0];
  /** @type {number[]} */
  const inFlight = [];
  let concurrent = 0;
  let maxConcurrent = 0;
  const origHandle = server.handle.bind(server);
  server.handle = (conn, event, payload, reply) => {
    if (event !== 'ack') return origHandle(conn, event, payload, reply);
    concurrent++;
    maxConcurrent = Math.max(maxConcurrent, concurrent);
    inFlight.push(payload.seq);
    return origHandle(conn, event, payload, (/** @type {any} */ r) => { concurrent--; reply(r); });
  };
  for (let i = 0; i < 50; i++) {
    server.push(m, 'candidate', { from: 'x', candidate: { candidate: `c${i}` } });
    if (i % 10 === 0) await sleep(7);
  }
  await until(() => m.acked === 50, 2000, 'ack 50');
  assert.equal(log.length, 50);
  assert.ok(m.acks.length < 50, `batched: ${m.acks.length} acks for 50 messages`);
  for (let i = 1; i < m.acks.length; i++) assert.ok(m.acks[i] >= m.acks[i - 1], 'cumulative, non-decreasing');
  assert.equal(maxConcurrent, 1, 'one ack in flight');
  // The server resends an applied message (it missed the ack): dropped, but acknowledged again.
  const before = m.acks.length;
  server.resend({ ...m, queue: [{ event: 'candidate', payload: { room: 'r1', seq: 50, from: 'x', candidate: null } }] });
  await until(() => m.acks.length > before, 1000, 're-ack');
  assert.equal(m.acks[m.acks.length - 1], 50);
  assert.equal(log.length, 50, 'not applied twice');
});

test('lost acks: the server resends, the client re-acknowledges', async (t) => {
  let dropAcks = true;
  const { channel, server } = setup(t, {
    net: { filter: (/** @type {any} */ p) => (p.event === 'ack' && dropAcks ? 'drop' : 'pass') },
  });
  const log = record(channel);
  await channel.join('r1');
  const m = [...server.room('r1').values()][0];
  server.push(m, 'offer', { from: 'x', sdp: 'v=0' });
  server.push(m, 'candidate', { from: 'x', candidate: null });
  await until(() => log.length === 2);
  await sleep(50);
  assert.equal(m.acked, 0);
  dropAcks = false;
  server.resend(m);
  await until(() => m.acked === 2, 1000, 'ack after resend');
  assert.equal(log.length, 2);
});

test('server events arriving before the join reply are emitted after it, in order', async (t) => {
  const world = setup(t);
  const a = world.channel;
  await a.join('r1');
  // b's first join reply is lost: the events the server sends right after it arrive first.
  let lost = 0;
  world.net.filter = (/** @type {any} */ p) => (p.kind === 'ack' && p.event === 'join' && lost++ === 0 ? 'drop' : 'pass');
  const b = peer(world);
  const log = record(b.channel);
  /** @type {boolean[]} */
  const joinedAtEmit = [];
  b.channel.on('offer', () => joinedAtEmit.push(b.channel.joined));
  const joined = b.channel.join('r1');
  await until(() => world.server.room('r1').size === 2);
  const bm = [...world.server.room('r1').values()].find((x) => x.peer !== a.peer);
  assert.ok(bm);
  world.server.push(bm, 'offer', { from: a.peer, sdp: 'v=0' });
  world.server.push(bm, 'candidate', { from: a.peer, candidate: null });
  await sleep(5);
  assert.equal(log.length, 0, 'held back until the join reply');
  await joined;
  assert.deepEqual(log.map((l) => [l.event, l.payload.seq]), [['offer', 1], ['candidate', 2]]);
  assert.deepEqual(joinedAtEmit, [true]);
  await until(() => bm.acked === 2, 1000, 'ack');
});

test('two channels: a full exchange with drops, duplicates and reordering', async (t) => {
  const world = setup(t, { net: { drop: 0.2, dup: 0.1, maxDelay: 20, seed: 42 }, server: { reorderTimeoutMs: 2000 } });
  const a = world.channel;
  const aLog = record(a);
  await a.join('room');
  const b = peer(world);
  const bLog = record(b.channel);
  await b.channel.join('room');
  const N = 100;
  await Promise.all([
    ...Array.from({ length: N }, (_, i) => a.send('candidate', { candidate: { candidate: `a${i}` } })),
    ...Array.from({ length: N }, (_, i) => b.channel.send('candidate', { candidate: { candidate: `b${i}` } })),
  ]);
  // Server → client losses are repaired by resends, as the real server does periodically.
  const ma = world.server.member('room', a.peer || '');
  const mb = world.server.member('room', b.channel.peer || '');
  const resender = setInterval(() => { if (ma) world.server.resend(ma); if (mb) world.server.resend(mb); }, 50);
  try {
    await until(() => aLog.filter((l) => l.event === 'candidate').length === N
      && bLog.filter((l) => l.event === 'candidate').length === N, 10000, 'all candidates');
    await until(() => ma?.queue.length === 0 && mb?.queue.length === 0, 5000, 'all acknowledged');
  } finally {
    clearInterval(resender);
  }
  assert.deepEqual(aLog.filter((l) => l.event === 'candidate').map((l) => l.payload.candidate.candidate),
    Array.from({ length: N }, (_, i) => `b${i}`));
  assert.deepEqual(bLog.filter((l) => l.event === 'candidate').map((l) => l.payload.candidate.candidate),
    Array.from({ length: N }, (_, i) => `a${i}`));
  assert.equal(aLog[0].event, 'peer-joined');
  assert.ok(world.net.stats.dropped > 0 && world.net.stats.duplicated > 0);
});

test('resume drops applied outbox entries and sends the rest again', async (t) => {
  let blackhole = false;
  const { channel, server, socket } = setup(t, {
    net: { filter: (/** @type {any} */ p) => (blackhole && p.kind === 'ack' ? 'drop' : 'pass') },
  });
  const log = record(channel);
  let resumed = 0;
  channel.on('resumed', () => resumed++);
  await channel.join('r1');
  const m = [...server.room('r1').values()][0];
  // The server applies 1 and 2, whose replies are lost; 3 never reaches it.
  blackhole = true;
  const origHandle = server.handle.bind(server);
  server.handle = (conn, event, payload, reply) => {
    if (event === 'candidate' && payload.seq === 3 && !server.requests.some((r) => r.event === 'resume')) return;
    return origHandle(conn, event, payload, reply);
  };
  const sends = [1, 2, 3].map((i) => channel.send('candidate', { candidate: { candidate: `c${i}` } }));
  await until(() => m.applied.length === 2, 1000, 'two applied');
  // Meanwhile the server queued messages for this peer; the first was applied by the client.
  server.push(m, 'candidate', { from: 'x', candidate: { candidate: 's1' } });
  server.push(m, 'candidate', { from: 'x', candidate: { candidate: 's2' } });
  await until(() => log.length === 2);
  socket.disconnect();
  blackhole = false;
  socket.connect();
  const replies = await Promise.all(sends);
  assert.equal(resumed, 1);
  assert.deepEqual(replies.map((r) => r.seq), [1, 2, 3]);
  assert.equal(replies[0].applied, true, 'settled by the resume reply');
  assert.equal(replies[1].applied, true);
  assert.equal(replies[2].applied, undefined, 'sent again, answered normally');
  assert.deepEqual(m.applied.map((a) => a.payload.seq), [1, 2, 3], 'each applied once');
  const resumes = socket.sent.filter((s) => s.event === 'resume');
  assert.equal(resumes.length, 1);
  assert.deepEqual(resumes[0].payload, { room: 'r1', peer: channel.peer, token: channel.token });
  const after = socket.sent.slice(socket.sent.indexOf(resumes[0]));
  assert.deepEqual(after.filter((s) => s.event === 'candidate').map((s) => s.payload.seq), [3]);
  // Resent server messages are deduplicated; the client acknowledges what it has.
  await until(() => m.acked === 2, 1000, 'ack after resume');
  assert.equal(log.length, 2);
  // New messages continue the numbering.
  const r4 = await channel.send('hangup');
  assert.equal(r4.seq, 4);
});

test('nothing is emitted while disconnected; sends queued meanwhile go out after resume', async (t) => {
  const { channel, server, socket } = setup(t);
  await channel.join('r1');
  socket.disconnect();
  const p = channel.send('offer', { sdp: 'v=0' });
  await sleep(100);
  assert.equal(socket.sent.filter((s) => s.event === 'offer').length, 0);
  socket.connect();
  const r = await p;
  assert.equal(r.seq, 1);
  const events = socket.sent.map((s) => s.event);
  assert.ok(events.indexOf('resume') < events.indexOf('offer'), 'resume before the resend');
  assert.equal([...server.room('r1').values()][0].applied.length, 1);
});

test('resume_failed: event, pending sends rejected, channel stops', async (t) => {
  const { channel, server, socket } = setup(t);
  await channel.join('r1');
  /** @type {any[]} */
  const failures = [];
  channel.on('resume-failed', (/** @type {any} */ e) => failures.push(e));
  socket.disconnect();
  const p = channel.send('candidate', { candidate: null });
  server.intercept = (_c, event) => (event === 'resume' ? err('resume_failed') : undefined);
  socket.connect();
  await assert.rejects(p, { code: 'resume_failed' });
  assert.equal(failures.length, 1);
  assert.equal(failures[0].code, 'resume_failed');
  assert.equal(channel.joined, false);
  assert.equal(channel.room, null);
  await sleep(3 * FAST.retryMs);
  assert.equal(socket.sent.filter((s) => s.event === 'resume').length, 1, 'no further resume');
});

test('resume is retried until a reply arrives', async (t) => {
  let lost = 0;
  const { channel, socket } = setup(t, {
    net: { filter: (/** @type {any} */ p) => (p.event === 'resume' && lost++ < 3 ? 'drop' : 'pass') },
  });
  await channel.join('r1');
  socket.disconnect();
  const resumed = new Promise((r) => channel.once('resumed', r));
  socket.connect();
  await resumed;
  assert.ok(socket.sent.filter((s) => s.event === 'resume').length >= 4);
});

test('attach() moves the membership to a new socket and resumes there', async (t) => {
  const world = setup(t);
  const a = world.channel;
  const aLog = record(a);
  await a.join('r1');
  const b = peer(world);
  await b.channel.join('r1');
  await until(() => aLog.length === 1); // peer-joined
  const oldSocket = world.socket;
  oldSocket.disconnect();
  // b sends while a is away
  const sends = Array.from({ length: 5 }, (_, i) => b.channel.send('candidate', { candidate: { candidate: `b${i}` } }));
  await Promise.all(sends);
  const fresh = new FakeSocket(world.server, world.net);
  const pending = a.send('candidate', { candidate: { candidate: 'a0' } });
  a.attach(fresh);
  assert.equal(oldSocket.listenerTotal(), 0, 'old socket listeners removed');
  fresh.connect();
  await pending;
  await until(() => aLog.length === 6, 2000, 'messages from b');
  assert.deepEqual(aLog.slice(1).map((l) => l.payload.candidate.candidate), ['b0', 'b1', 'b2', 'b3', 'b4']);
  assert.equal(fresh.sent[0].event, 'resume');
  // attach to an already connected socket resumes at once
  const third = new FakeSocket(world.server, world.net);
  third.connect();
  const resumed = new Promise((r) => a.once('resumed', r));
  a.attach(third);
  await resumed;
  const r = await a.send('hangup');
  assert.equal(r.seq, 2);
});

test('leave ends the membership; the channel can join again', async (t) => {
  const world = setup(t);
  const a = world.channel;
  await a.join('r1');
  const b = peer(world);
  const bLog = record(b.channel);
  await b.channel.join('r1');
  await a.leave();
  assert.equal(a.joined, false);
  await until(() => bLog.some((l) => l.event === 'peer-left'));
  assert.deepEqual(bLog.find((l) => l.event === 'peer-left')?.payload.reason, 'left');
  assert.equal(b.channel.peers.length, 0);
  await a.join('r2');
  const r = await a.send('offer', { sdp: 'x' });
  assert.equal(r.seq, 1);
});

test('storage: the membership can be restored by a new channel', async (t) => {
  /** @type {Map<string, string>} */
  const mem = new Map();
  const storage = {
    getItem: (/** @type {string} */ k) => mem.get(k) ?? null,
    setItem: (/** @type {string} */ k, /** @type {string} */ v) => { mem.set(k, v); },
    removeItem: (/** @type {string} */ k) => { mem.delete(k); },
  };
  const world = setup(t, { channel: { storage } });
  await world.channel.join('r1');
  await world.channel.send('offer', { sdp: 'x' });
  const m = [...world.server.room('r1').values()][0];
  world.server.push(m, 'candidate', { from: 'z', candidate: null });
  await until(() => world.channel.lastApplied === 1);
  const peerId = world.channel.peer;
  world.channel.close();
  world.socket.disconnect();
  const socket2 = new FakeSocket(world.server, world.net);
  socket2.connect();
  const restored = new SignalingChannel(socket2, { ...FAST, storage });
  world.closables.push(restored);
  const log = record(restored);
  const reply = await restored.restore();
  assert.equal(reply.ok, true);
  assert.equal(restored.peer, peerId);
  assert.equal(restored.lastApplied, 1);
  const r = await restored.send('candidate', { candidate: null });
  assert.equal(r.seq, 2);
  await sleep(50);
  assert.equal(log.length, 0, 'the applied message is not emitted again');
  await restored.leave();
  assert.equal(mem.size, 0);
});

test('close() rejects pending sends, removes listeners and clears timers', async (t) => {
  const { channel, socket, net } = setup(t);
  await channel.join('r1');
  net.filter = () => 'drop';
  const p = channel.send('offer', { sdp: 'x' });
  channel.close();
  await assert.rejects(p, { code: 'closed' });
  assert.equal(socket.listenerTotal(), 0);
  await assert.rejects(channel.join('r2'), { code: 'closed' });
});

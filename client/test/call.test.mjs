// Unit tests of the call state machine (client/src/call.js, client/src/switchboard.js) with a
// fake WebRTC stack and a fake server that holds offers (rtc-fakes.mjs, fake.mjs).

import test from 'node:test';
import assert from 'node:assert/strict';
import { Switchboard, SignalingChannel, SignalingError } from '../src/index.js';
import { FakeSocket, Network, until, sleep } from './fake.mjs';
import { FakePC, FakeStream, FakeTrack, HoldingServer, parse } from './rtc-fakes.mjs';

/**
 * @typedef {object} World
 * @property {HoldingServer} server
 * @property {Network} net
 * @property {(name: string, o?: {urls?: string[], storage?: any}) => Client} client
 */

/**
 * @typedef {object} Client
 * @property {string} name
 * @property {Switchboard} sb
 * @property {FakeSocket[]} sockets every socket the Switchboard made, in order
 * @property {FakeStream} stream
 */

/**
 * @param {import('node:test').TestContext} t
 * @param {{drop?: number, dup?: number, maxDelay?: number, seed?: number}} [netOpts]
 * @returns {World}
 */
function world(t, netOpts = {}) {
  const server = new HoldingServer({ reorderTimeoutMs: 300 });
  const net = new Network(netOpts);
  /** @type {Switchboard[]} */
  const made = [];
  t.after(async () => {
    await Promise.all(made.map((sb) => sb.close()));
    server.close();
    net.close();
  });
  return {
    server,
    net,
    client(name, { urls = ['http://a.test'], storage = null } = {}) {
      /** @type {FakeSocket[]} */
      const sockets = [];
      const sb = new Switchboard(urls, {
        io: (url) => {
          const s = new FakeSocket(server, net);
          /** @type {any} */ (s).url = url;
          sockets.push(s);
          return s;
        },
        RTCPeerConnection: FakePC,
        storage,
        retryMs: 40,
        maxRetryMs: 320,
        ackTimeoutMs: 40,
      });
      made.push(sb);
      sockets[0].connect();
      const stream = new FakeStream([new FakeTrack('audio'), new FakeTrack('video')]);
      return { name, sb, sockets, stream };
    },
  };
}

/**
 * Joins and records what the call emits.
 * @param {Client} c
 * @param {string} room
 * @param {object} [opts]
 */
async function join(c, room, opts = {}) {
  const call = await c.sb.join(room, { stream: /** @type {any} */ (c.stream), dataChannel: true, ...opts });
  return observe(call);
}

/** @param {any} call */
function observe(call) {
  const rec = {
    call,
    statuses: /** @type {string[]} */ ([]),
    tracks: /** @type {any[]} */ ([]),
    channels: /** @type {any[]} */ ([]),
    messages: /** @type {any[]} */ ([]),
    errors: /** @type {Error[]} */ ([]),
    events: /** @type {Array<[string, any]>} */ ([]),
  };
  call.on('status', (/** @type {string} */ s) => rec.statuses.push(s));
  call.on('track', (/** @type {any} */ e) => rec.tracks.push(e.track));
  call.on('datachannel', (/** @type {any} */ dc) => {
    rec.channels.push(dc);
    dc.addEventListener('message', (/** @type {any} */ ev) => rec.messages.push(ev.data));
  });
  call.on('error', (/** @type {Error} */ e) => rec.errors.push(e));
  for (const e of ['peer-joined', 'peer-left', 'hangup', 'expired']) {
    call.on(e, (/** @type {any} */ p) => rec.events.push([e, p]));
  }
  return rec;
}

/** @param {any} rec @param {number} [ms] */
const connected = (rec, ms = 3000) => until(() => rec.call.status === 'connected' && rec.call.pc?.connectionState === 'connected', ms, `${rec.call.peer} connected`);

/** Offers/answers/candidates the server received from `peer`, in apply order. */
function sent(server, room, peer) {
  return server.member(room, peer)?.applied.map((/** @type {any} */ a) => a) || [];
}

test('caller alone: the offer is held, every candidate goes after it, status waiting', async (t) => {
  const w = world(t);
  const a = w.client('a');
  const rec = await join(a, 'r1');
  assert.equal(rec.call.role, 'caller');
  await until(() => w.server.held.get('r1')?.entries.length === 3, 2000, 'offer + 2 candidates held');
  const held = /** @type {any} */ (w.server.held.get('r1'));
  assert.deepEqual(held.entries.map((e) => e.event), ['offer', 'candidate', 'candidate']);
  // The first candidate fired before setLocalDescription resolved: it was kept until the offer went.
  const ufrag = parse(held.entries[0].data.sdp).ufrag;
  assert.ok(held.entries.slice(1).every((e) => e.data.candidate.usernameFragment === ufrag));
  assert.equal(held.entries[0].data.to, undefined, 'no target while alone');
  assert.equal(rec.call.status, 'waiting');
  assert.deepEqual(rec.errors, []);
  // The offer carries the tracks and the DataChannel.
  const body = parse(held.entries[0].data.sdp);
  assert.deepEqual(body.tracks.map((/** @type {any} */ x) => x.kind), ['audio', 'video']);
  assert.equal(body.dc, true);
});

test('answerer: held offer and early candidates applied in order; the call connects both ways', async (t) => {
  const w = world(t);
  const a = w.client('a');
  const b = w.client('b');
  const ra = await join(a, 'r1');
  await until(() => w.server.held.get('r1')?.entries.length === 3, 2000, 'held');
  const rb = await join(b, 'r1');
  assert.equal(rb.call.role, 'answerer');
  await connected(ra);
  await connected(rb);
  assert.equal(ra.call.polite, false, 'the caller is impolite');
  assert.equal(rb.call.polite, true, 'the answerer is polite');
  assert.equal(ra.call.remotePeer, rb.call.peer);
  assert.equal(rb.call.remotePeer, ra.call.peer);
  // The answerer applied the offer before any candidate (held candidates came buffered or not).
  const pcB = /** @type {any} */ (rb.call.pc);
  assert.ok(pcB.log.indexOf('sRD offer') < pcB.log.indexOf('candidate'));
  // The answer went to the caller.
  const answer = sent(w.server, 'r1', rb.call.peer).find((x) => x.event === 'answer');
  assert.equal(answer.payload.to, ra.call.peer);
  // Tracks each way, listeners added after join resolved missed nothing.
  await until(() => ra.tracks.length === 2 && rb.tracks.length === 2, 2000, 'tracks');
  assert.deepEqual(rb.tracks.map((x) => x.id).sort(), a.stream.getTracks().map((x) => x.id).sort());
  assert.deepEqual(ra.tracks.map((x) => x.id).sort(), b.stream.getTracks().map((x) => x.id).sort());
  // The DataChannel, both ways.
  await until(() => ra.channels.length === 1 && rb.channels.length === 1, 2000, 'datachannels');
  ra.channels[0].send('ping');
  rb.channels[0].send('pong');
  await until(() => ra.messages.includes('pong') && rb.messages.includes('ping'), 2000, 'messages');
  assert.deepEqual(ra.statuses, ['waiting', 'connecting', 'connected']);
  assert.deepEqual(rb.statuses, ['connecting', 'connected']);
  assert.deepEqual([...ra.errors, ...rb.errors], []);
  assert.deepEqual(ra.events, [['peer-joined', { peer: rb.call.peer, role: 'answerer' }]]);
});

test('remote candidates that arrive before the remote description wait for it', async (t) => {
  const w = world(t);
  const a = w.client('a');
  const ra = await join(a, 'r1');
  await until(() => w.server.held.has('r1'), 2000, 'held');
  // A hand-driven answerer that sends its candidates before its answer.
  const sock = new FakeSocket(w.server, w.net);
  sock.connect();
  const ch = new SignalingChannel(sock, { retryMs: 40, maxRetryMs: 320, ackTimeoutMs: 40 });
  t.after(() => ch.close());
  /** @type {any} */
  let offer = null;
  ch.on('offer', (/** @type {any} */ p) => { offer = p; });
  await ch.join('r1');
  await until(() => offer, 2000, 'offer');
  const remote = new FakePC({});
  await remote.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
  const ufrag = remote.ufrag;
  const cand = (/** @type {number} */ n) => ({
    candidate: `candidate:${n} 1 udp ${n} 127.0.0.1 ${6000 + n} typ host`, sdpMid: '0', sdpMLineIndex: 0, usernameFragment: ufrag,
  });
  await ch.send('candidate', { candidate: cand(1) });
  await ch.send('candidate', { candidate: cand(2) });
  await until(() => ra.call.pc && w.server.member('r1', ra.call.peer)?.acked >= 3, 2000, 'candidates delivered');
  const pc = /** @type {any} */ (ra.call.pc);
  assert.equal(pc.remoteDescription, null);
  assert.equal(pc.log.filter((/** @type {string} */ l) => l === 'candidate').length, 0, 'nothing applied yet');
  remote.onicecandidate = null;
  await remote.setLocalDescription();
  await ch.send('answer', { sdp: remote.localDescription.sdp });
  await until(() => pc.log.filter((/** @type {string} */ l) => l === 'candidate').length === 2, 2000, 'buffered candidates applied');
  assert.ok(pc.log.indexOf('sRD answer') < pc.log.indexOf('candidate'));
  assert.deepEqual(ra.errors, []);
  remote.close();
});

test('glare: both sides add a track at once; perfect negotiation converges without errors', async (t) => {
  const w = world(t);
  const a = w.client('a');
  const b = w.client('b');
  const ra = await join(a, 'r1');
  const rb = await join(b, 'r1');
  await connected(ra);
  await connected(rb);
  await until(() => ra.tracks.length === 2 && rb.tracks.length === 2, 2000, 'tracks');
  const ta = new FakeTrack('video');
  const tb = new FakeTrack('video');
  ra.call.addTrack(ta, a.stream);
  rb.call.addTrack(tb, b.stream);
  await until(() => ra.tracks.some((x) => x.id === tb.id) && rb.tracks.some((x) => x.id === ta.id), 3000, 'new tracks both ways');
  await until(() => ra.call.pc?.signalingState === 'stable' && rb.call.pc?.signalingState === 'stable', 2000, 'stable');
  const pcA = /** @type {any} */ (ra.call.pc);
  const pcB = /** @type {any} */ (rb.call.pc);
  const offersA = sent(w.server, 'r1', ra.call.peer).filter((x) => x.event === 'offer').length;
  const offersB = sent(w.server, 'r1', rb.call.peer).filter((x) => x.event === 'offer').length;
  assert.ok(offersA >= 2 && offersB >= 1, `both sides offered (a ${offersA}, b ${offersB})`);
  assert.ok(pcB.log.includes('implicit rollback'), 'the polite side rolled its offer back');
  assert.ok(!pcA.log.includes('implicit rollback'), 'the impolite side kept its offer');
  assert.equal(ra.call.status, 'connected');
  assert.equal(rb.call.status, 'connected');
  assert.deepEqual([...ra.errors, ...rb.errors], []);
});

test('ICE failure restarts ICE through signaling, from either side', async (t) => {
  const w = world(t);
  const a = w.client('a');
  const b = w.client('b');
  const ra = await join(a, 'r1');
  const rb = await join(b, 'r1');
  await connected(ra);
  await connected(rb);
  const pcA = /** @type {any} */ (ra.call.pc);
  const before = pcA.ufrag;
  pcA.fail();
  assert.equal(ra.call.status, 'reconnecting');
  await until(() => pcA.ufrag !== before && pcA.connectionState === 'connected', 3000, 'restarted (impolite side)');
  await connected(ra);
  // The polite side restarts too.
  const offersB = sent(w.server, 'r1', rb.call.peer).filter((x) => x.event === 'offer').length;
  rb.call.restartIce();
  await until(() => sent(w.server, 'r1', rb.call.peer).filter((x) => x.event === 'offer').length === offersB + 1, 2000, 'offer from b');
  await until(() => rb.call.pc?.signalingState === 'stable' && ra.call.pc?.signalingState === 'stable', 2000, 'stable');
  assert.equal(ra.call.pc, pcA, 'same peer connection');
  assert.deepEqual(ra.statuses.slice(-3), ['connected', 'reconnecting', 'connected']);
  assert.deepEqual([...ra.errors, ...rb.errors], []);
});

test('peer-left: whoever stays offers again (held) and calls the next member', async (t) => {
  const w = world(t);
  const a = w.client('a');
  const b = w.client('b');
  const c = w.client('c');
  const ra = await join(a, 'r1');
  const rb = await join(b, 'r1');
  await connected(ra);
  await connected(rb);
  // The caller leaves: the answerer is alone and becomes the offerer.
  await ra.call.hangup();
  assert.equal(ra.call.status, 'ended');
  await until(() => rb.call.status === 'waiting' && w.server.held.get('r1')?.from === rb.call.peer, 2000, 'b holds an offer');
  assert.deepEqual(rb.events.at(-1), ['peer-left', { peer: ra.call.peer, reason: 'left' }]);
  assert.equal(rb.call.polite, false, 'b now makes the first offer');
  const rc = await join(c, 'r1');
  await connected(rb);
  await connected(rc);
  assert.equal(rc.call.remotePeer, rb.call.peer);
  await until(() => rc.channels.length === 1 && rb.channels.length === 2, 2000, 'new DataChannel');
  rc.channels[0].send('hi b');
  await until(() => rb.messages.includes('hi b'), 2000, 'message on the new DataChannel');
  assert.deepEqual([...ra.errors, ...rb.errors, ...rc.errors], []);
  assert.deepEqual(rb.statuses, ['connecting', 'connected', 'waiting', 'connecting', 'connected']);
});

test('expired: the held offer times out; the next member still gets a call', async (t) => {
  const w = world(t);
  const a = w.client('a');
  const b = w.client('b');
  const ra = await join(a, 'r1');
  await until(() => w.server.held.has('r1'), 2000, 'held');
  const firstPc = ra.call.pc;
  assert.ok(w.server.expire('r1'));
  await until(() => ra.call.status === 'expired', 2000, 'expired');
  assert.deepEqual(ra.events, [['expired', { what: 'offer' }]]);
  assert.equal(ra.call.pc, null);
  assert.equal(/** @type {any} */ (firstPc).signalingState, 'closed');
  const rb = await join(b, 'r1');
  await connected(ra);
  await connected(rb);
  assert.deepEqual(ra.statuses, ['waiting', 'expired', 'connecting', 'connected']);
  assert.deepEqual([...ra.errors, ...rb.errors], []);
});

test('too_many_held: the offer is not held; the next member still gets a call', async (t) => {
  const w = world(t);
  w.server.maxHeld = 0;
  const a = w.client('a');
  const b = w.client('b');
  const ra = await join(a, 'r1');
  await until(() => ra.errors.length === 1, 2000, 'the refusal');
  assert.equal(/** @type {any} */ (ra.errors[0]).code, 'too_many_held');
  assert.equal(w.server.held.size, 0);
  assert.equal(ra.call.pc, null);
  const rb = await join(b, 'r1');
  await connected(ra);
  await connected(rb);
  assert.equal(ra.call.status, 'connected');
  assert.deepEqual(rb.errors, []);
});

test('room_full: join rejects with the code, nothing is left behind', async (t) => {
  const w = world(t);
  const [a, b, c] = [w.client('a'), w.client('b'), w.client('c')];
  await join(a, 'r1');
  await join(b, 'r1');
  await assert.rejects(join(c, 'r1'), (/** @type {any} */ e) => e instanceof SignalingError && e.code === 'room_full');
  assert.equal(c.sb.calls.size, 0);
  assert.equal(c.sockets[0].listenerTotal(), 3, 'only the Switchboard listens on the socket');
});

test('signaling reconnect: the call resumes and renegotiates after it', async (t) => {
  const w = world(t);
  const a = w.client('a');
  const b = w.client('b');
  const ra = await join(a, 'r1');
  const rb = await join(b, 'r1');
  await connected(ra);
  await connected(rb);
  assert.equal(ra.call.pc?.getConfiguration().bundlePolicy, 'max-bundle');
  const statuses = /** @type {string[]} */ ([]);
  a.sb.on('status', (s) => statuses.push(s));
  // The resume reply brings new ICE servers (e.g. fresh TURN credentials).
  const reply = w.server.reply.bind(w.server);
  w.server.reply = (m, extra) => ({ ...reply(m, extra), iceServers: [{ urls: ['stun:fresh.test'] }] });
  a.sockets[0].disconnect();
  // Meanwhile a renegotiation starts on the disconnected side: it is sent after the resume.
  const extra = new FakeTrack('video');
  ra.call.addTrack(extra, a.stream);
  await sleep(100);
  assert.ok(!rb.tracks.some((x) => x.id === extra.id));
  a.sockets[0].connect();
  await until(() => rb.tracks.some((x) => x.id === extra.id), 3000, 'track added across the reconnect');
  assert.deepEqual(statuses, ['reconnecting', 'connected']);
  assert.equal(ra.call.status, 'connected');
  assert.deepEqual(ra.call.pc?.getConfiguration().iceServers, [{ urls: ['stun:fresh.test'] }]);
  assert.equal(ra.call.pc?.getConfiguration().bundlePolicy, 'max-bundle');
  assert.deepEqual([...ra.errors, ...rb.errors], []);
});

test('failover: after connection errors the next URL is used and the membership resumes there', async (t) => {
  const w = world(t);
  const a = w.client('a', { urls: ['http://one.test', 'http://two.test'] });
  const b = w.client('b');
  const ra = await join(a, 'r1');
  const rb = await join(b, 'r1');
  await connected(ra);
  const first = a.sockets[0];
  first.disconnect();
  first._local('connect_error', new Error('xhr poll error'));
  assert.equal(a.sockets.length, 1, 'one failure is not enough');
  first._local('connect_error', new Error('xhr poll error'));
  assert.equal(a.sockets.length, 2, 'a new socket');
  assert.equal(a.sb.url, 'http://two.test');
  assert.equal(/** @type {any} */ (a.sockets[1]).url, 'http://two.test');
  assert.equal(first.listenerTotal(), 0, 'the old socket is abandoned');
  a.sockets[1].connect();
  await until(() => a.sb.status === 'connected', 2000, 'connected again');
  // The membership lives on: a renegotiation goes through the new socket.
  rb.call.restartIce();
  await until(() => ra.call.pc?.signalingState === 'stable' && sent(w.server, 'r1', ra.call.peer).filter((x) => x.event === 'answer').length === 1, 2000, 'a answered b through the new socket');
  assert.ok(w.server.requests.some((r) => r.event === 'resume' && r.conn === a.sockets[1].id));
  assert.deepEqual([...ra.errors, ...rb.errors], []);
});

test('page reload: the stored membership is released, then the page joins afresh', async (t) => {
  const w = world(t);
  const store = new Map();
  const storage = {
    getItem: (/** @type {string} */ k) => (store.has(k) ? store.get(k) : null),
    setItem: (/** @type {string} */ k, /** @type {string} */ v) => { store.set(k, v); },
    removeItem: (/** @type {string} */ k) => { store.delete(k); },
  };
  const a = w.client('a', { storage });
  const b = w.client('b');
  const ra = await join(a, 'r1');
  const rb = await join(b, 'r1');
  await connected(ra);
  await connected(rb);
  assert.ok([...store.keys()].some((k) => k.endsWith(':r1')), 'membership stored per room');
  // "Reload": the page is gone without leaving; a new page with the same storage opens the room.
  a.sockets[0].disconnect();
  ra.call._end(); // what remains of the old page does nothing more
  const a2 = w.client('a2', { storage });
  const ra2 = await join(a2, 'r1'); // would be room_full without releasing the old membership
  assert.equal(ra2.call.role, 'answerer');
  await connected(ra2);
  await connected(rb);
  assert.equal(rb.call.remotePeer, ra2.call.peer);
  assert.ok(rb.events.some(([e, p]) => e === 'peer-left' && p.peer === ra.call.peer));
  assert.deepEqual([...ra2.errors, ...rb.errors], []);
});

test('the call goes on over a signaling network that drops, duplicates and reorders', async (t) => {
  const w = world(t, { drop: 0.2, dup: 0.1, maxDelay: 15, seed: 7 });
  // Server → client losses are repaired by resends, as the real server does periodically.
  const resender = setInterval(() => {
    for (const r of w.server.rooms.values()) for (const m of r.values()) w.server.resend(m);
  }, 50);
  t.after(() => clearInterval(resender));
  const a = w.client('a');
  const b = w.client('b');
  const ra = await join(a, 'r1');
  await sleep(50);
  const rb = await join(b, 'r1');
  await connected(ra, 10000);
  await connected(rb, 10000);
  await until(() => ra.tracks.length === 2 && rb.tracks.length === 2, 5000, 'tracks');
  assert.deepEqual([...ra.errors, ...rb.errors], []);
  assert.ok(w.net.stats.dropped > 0);
});

test('a caller without media or DataChannel still offers to receive audio and video', async (t) => {
  const w = world(t);
  const a = w.client('a');
  const call = await a.sb.join('r1', {});
  await until(() => w.server.held.has('r1'), 2000, 'held');
  const body = parse(/** @type {any} */ (w.server.held.get('r1')).entries[0].data.sdp);
  assert.deepEqual(body.recv, ['audio', 'video']);
  assert.deepEqual(body.tracks, []);
  await call.hangup();
});

test('hangup while the join is on its way: the membership is left at once', async (t) => {
  const w = world(t);
  const a = w.client('a');
  a.sockets[0].disconnect();
  const joining = a.sb.join('r1', {});
  await sleep(20);
  const [call] = [...a.sb.calls];
  const hung = call.hangup({ timeoutMs: 500 });
  a.sockets[0].connect();
  await assert.rejects(joining, (/** @type {any} */ e) => e.code === 'closed');
  await hung;
  await until(() => (w.server.rooms.get('r1')?.size ?? 0) === 0, 2000, 'left');
});

test('handshake watchdog: a connection without a CONNECT reply is closed and made again', async () => {
  /** @type {Map<string, Function[]>} */
  const mgrListeners = new Map();
  let closed = 0;
  const engine = { close: () => { closed++; } };
  const manager = {
    engine,
    on: (/** @type {string} */ e, /** @type {Function} */ fn) => { mgrListeners.set(e, [...(mgrListeners.get(e) || []), fn]); },
    off: (/** @type {string} */ e, /** @type {Function} */ fn) => { mgrListeners.set(e, (mgrListeners.get(e) || []).filter((f) => f !== fn)); },
  };
  const socket = {
    io: manager, connected: false, active: true,
    on() {}, off() {}, disconnect() {},
  };
  const sb = new Switchboard('http://x.test', { io: () => socket, connectTimeoutMs: 30, storage: null, RTCPeerConnection: FakePC });
  for (const fn of mgrListeners.get('open') || []) fn();
  await sleep(80);
  assert.equal(closed, 1, 'engine closed after the timeout');
  socket.connected = true;
  for (const fn of mgrListeners.get('open') || []) fn();
  await sleep(80);
  assert.equal(closed, 1, 'a connected socket is left alone');
  await sb.close();
  assert.equal([...mgrListeners.values()].flat().length, 0, 'listeners removed on close');
});

// Unit tests of group calls (a full mesh: one connection per pair of members) with the fake
// WebRTC stack and a fake server that holds offers and routes by `to` (rtc-fakes.mjs).

import test from 'node:test';
import assert from 'node:assert/strict';
import { SignalingChannel, Switchboard } from '../src/index.js';
import { FakeSocket, Network, until, sleep } from './fake.mjs';
import { FakePC, FakeStream, FakeTrack, HoldingServer } from './rtc-fakes.mjs';

/**
 * @param {import('node:test').TestContext} t
 * @param {number} capacity
 * @param {{filter?: import('./fake.mjs').Filter}} [netOpts]
 */
function world(t, capacity, netOpts = {}) {
  const server = new HoldingServer({ reorderTimeoutMs: 300, capacity });
  const net = new Network(netOpts);
  /** @type {Switchboard[]} */
  const made = [];
  t.after(async () => {
    await Promise.all(made.map((sb) => sb.close()));
    server.close();
    net.close();
  });
  /** @type {Map<string, string>} socket id → client name, for network filters */
  const names = new Map();
  return {
    server,
    net,
    names,
    /** @param {string} name */
    client(name) {
      /** @type {FakeSocket[]} */
      const sockets = [];
      const sb = new Switchboard('http://a.test', {
        io: () => {
          const s = new FakeSocket(server, net);
          sockets.push(s);
          return s;
        },
        RTCPeerConnection: FakePC, storage: null, retryMs: 40, maxRetryMs: 320, ackTimeoutMs: 40,
      });
      made.push(sb);
      sockets[0].connect();
      names.set(sockets[0].id, name);
      const stream = new FakeStream([new FakeTrack('audio'), new FakeTrack('video')]);
      return { name, sb, sockets, stream };
    },
  };
}

/**
 * Joins and records what the call emits, per remote member.
 * @param {{sb: Switchboard, stream: FakeStream}} c
 * @param {string} room
 */
async function join(c, room) {
  const call = /** @type {any} */ (await c.sb.join(room, { stream: /** @type {any} */ (c.stream), dataChannel: true }));
  const rec = {
    call,
    statuses: /** @type {string[]} */ ([]),
    /** @type {Map<string, string[]>} peer → remote track ids */
    tracks: new Map(),
    /** @type {Array<[string, any]>} [peer, data] */
    messages: /** @type {Array<[string, any]>} */ ([]),
    errors: /** @type {Error[]} */ ([]),
    /** @type {Array<[string, string]>} [peer, state] */
    states: /** @type {Array<[string, string]>} */ ([]),
  };
  call.on('status', (/** @type {string} */ s) => rec.statuses.push(s));
  call.on('track', (/** @type {any} */ e) => {
    rec.tracks.set(e.peer, [...(rec.tracks.get(e.peer) || []), e.track.id]);
  });
  call.on('datachannel', (/** @type {any} */ dc, /** @type {string} */ peer) => {
    dc.addEventListener('message', (/** @type {any} */ ev) => rec.messages.push([peer, ev.data]));
  });
  call.on('connectionstatechange', (/** @type {string} */ s, /** @type {string} */ peer) => rec.states.push([peer, s]));
  call.on('error', (/** @type {Error} */ e) => rec.errors.push(e));
  return rec;
}

/** Every member is connected to every other, both ways. @param {any[]} recs */
function meshConnected(recs) {
  return recs.every((r) => {
    const others = recs.filter((o) => o !== r).map((o) => o.call.peer);
    return others.every((p) => r.call.peers.get(p)?.pc?.connectionState === 'connected'
      && r.call.peers.get(p)?.state === 'connected');
  });
}

/** Offers, answers and candidates the server applied from `peer`. @param {HoldingServer} server */
function sent(server, room, peer) {
  return (server.member(room, peer)?.applied || []).filter((a) => ['offer', 'answer', 'candidate'].includes(a.event));
}

test('four members join one by one: each pair connects, the older one offers, DataChannel to all', async (t) => {
  const w = world(t, 4);
  const clients = ['a', 'b', 'c', 'd'].map((n) => w.client(n));
  const recs = [];
  for (const c of clients) {
    recs.push(await join(c, 'g'));
    await until(() => meshConnected(recs), 3000, `${recs.length} members connected`);
  }
  const [ra, rb, rc, rd] = recs;
  assert.ok(recs.every((r) => r.call.capacity === 4), 'capacity from the join reply');
  for (const r of recs) {
    assert.equal(r.call.peers.size, 3);
    assert.equal(r.call.status, 'connected');
    // Tracks of each other member arrive named by their sender.
    for (const o of recs.filter((x) => x !== r)) {
      const stream = clients[recs.indexOf(o)].stream;
      await until(() => (r.tracks.get(o.call.peer) || []).length === 2, 2000, 'tracks');
      assert.deepEqual([...(r.tracks.get(o.call.peer) || [])].sort(), stream.getTracks().map((x) => x.id).sort());
      // Of each pair, the member that joined first offered and is the impolite side.
      const older = recs.indexOf(r) < recs.indexOf(o);
      assert.equal(r.call.peers.get(o.call.peer).polite, !older, `${r.call.peer} polite towards ${o.call.peer}`);
    }
  }
  // Only the first member's offer was held; everything later named its target.
  assert.ok(sent(w.server, 'g', rd.call.peer).every((m) => m.payload.to), 'd addressed everything');
  assert.ok(sent(w.server, 'g', rc.call.peer).every((m) => m.payload.to), 'c addressed everything');
  // d was called by the three others: it only answered.
  assert.deepEqual([...new Set(sent(w.server, 'g', rd.call.peer).filter((m) => m.event !== 'candidate').map((m) => m.event))], ['answer']);
  // The first member's statuses: alone, then connected, never disturbed by later joiners.
  assert.deepEqual(ra.statuses, ['waiting', 'connecting', 'connected']);
  assert.deepEqual(rd.statuses, ['connecting', 'connected']);
  // broadcast reaches every other member once.
  assert.equal(rb.call.broadcast('hello from b'), 3);
  await until(() => [ra, rc, rd].every((r) => r.messages.some(([p, d]) => p === rb.call.peer && d === 'hello from b')), 2000, 'broadcast');
  assert.ok(ra.states.some(([p, s]) => p === rd.call.peer && s === 'connected'), 'per-peer connection state');
  assert.deepEqual(recs.flatMap((r) => r.errors), []);
});

test('two members join at the same moment: both end up connected to everyone', async (t) => {
  for (let round = 0; round < 4; round++) {
    const room = `same${round}`;
    const w = world(t, 4);
    const first = [await join(w.client('a'), room)];
    await until(() => w.server.held.has(room), 2000, 'held');
    if (round >= 2) {
      // Two already in the room: nothing is held, both newcomers are called.
      first.push(await join(w.client('x'), room));
      await until(() => meshConnected(first), 3000, 'pair');
    }
    const pair = await Promise.all([join(w.client('b'), room), join(w.client('c'), room)]);
    const all = [...first, ...pair];
    await until(() => meshConnected(all), 3000, `round ${round}: mesh of ${all.length}`);
    const [rb, rc] = pair;
    // Exactly one of the pair offered first: one polite side per pair.
    assert.notEqual(rb.call.peers.get(rc.call.peer).polite, rc.call.peers.get(rb.call.peer).polite);
    assert.deepEqual(all.flatMap((r) => r.errors), []);
  }
});

test('glare in a group: two members add a track at once; every pair converges', async (t) => {
  const w = world(t, 3);
  const recs = [];
  for (const n of ['a', 'b', 'c']) recs.push(await join(w.client(n), 'glare'));
  await until(() => meshConnected(recs), 3000, 'mesh');
  const [ra, rb, rc] = recs;
  const tb = new FakeTrack('video');
  const tc = new FakeTrack('video');
  rb.call.addTrack(tb, new FakeStream([tb]));
  rc.call.addTrack(tc, new FakeStream([tc]));
  await until(() => (ra.tracks.get(rb.call.peer) || []).includes(tb.id) && (ra.tracks.get(rc.call.peer) || []).includes(tc.id)
    && (rb.tracks.get(rc.call.peer) || []).includes(tc.id) && (rc.tracks.get(rb.call.peer) || []).includes(tb.id), 3000, 'new tracks everywhere');
  await until(() => recs.every((r) => [...r.call.peers.values()].every((l) => l.pc.signalingState === 'stable')), 2000, 'stable');
  // b and c offered each other at the same moment: the newer one (c) rolled back.
  const pcCB = /** @type {any} */ (rc.call.peers.get(rb.call.peer).pc);
  const pcBC = /** @type {any} */ (rb.call.peers.get(rc.call.peer).pc);
  assert.ok(pcCB.log.includes('implicit rollback'), 'the polite side rolled back');
  assert.ok(!pcBC.log.includes('implicit rollback'), 'the impolite side kept its offer');
  assert.ok(meshConnected(recs));
  assert.deepEqual(recs.flatMap((r) => r.errors), []);
});

test('a member leaves during negotiation: the others stay connected; a fifth joins in its place', async (t) => {
  const w = world(t, 3);
  const [ra, rb] = [await join(w.client('a'), 'leave'), await join(w.client('b'), 'leave')];
  await until(() => meshConnected([ra, rb]), 3000, 'pair');
  // c, driven by hand: it joins, gets the offers of a and b, and leaves without answering.
  const sock = new FakeSocket(w.server, w.net);
  sock.connect();
  const ch = new SignalingChannel(sock, { retryMs: 40, maxRetryMs: 320, ackTimeoutMs: 40 });
  t.after(() => ch.close());
  /** @type {string[]} */
  const offersFrom = [];
  ch.on('offer', (/** @type {any} */ p) => offersFrom.push(p.from));
  const cPeer = (await ch.join('leave')).peer;
  await until(() => offersFrom.length === 2, 2000, 'a and b call c');
  assert.deepEqual(offersFrom.sort(), [ra.call.peer, rb.call.peer].sort());
  const pcAC = ra.call.peers.get(cPeer).pc;
  assert.equal(pcAC.signalingState, 'have-local-offer', 'a waits for the answer');
  assert.equal(ra.call.peers.get(cPeer).state, 'connecting');
  await ch.leave();
  await until(() => !ra.call.peers.has(cPeer) && !rb.call.peers.has(cPeer), 2000, 'c gone');
  assert.equal(pcAC.signalingState, 'closed', 'a closed its connection to c');
  assert.equal(ra.call.status, 'connected');
  assert.equal(rb.call.status, 'connected');
  assert.deepEqual(ra.statuses, ['waiting', 'connecting', 'connected'], 'a was never disturbed');
  assert.ok(meshConnected([ra, rb]));
  const rd = await join(w.client('d'), 'leave');
  await until(() => meshConnected([ra, rb, rd]), 3000, 'd connected to both');
  assert.deepEqual([...ra.errors, ...rb.errors, ...rd.errors], []);
});

test('a held offer applied only after two others joined goes again, addressed', async (t) => {
  let block = true;
  const w = world(t, 3, { filter: (p) => (block && p.dir === 'up' && p.event === 'offer' ? 'drop' : undefined) });
  const a = w.client('a');
  const ra = await join(a, 'late');
  await sleep(60);
  assert.equal(w.server.held.size, 0, 'the offer has not arrived');
  const rb = await join(w.client('b'), 'late');
  const rc = await join(w.client('c'), 'late');
  block = false;
  await until(() => meshConnected([ra, rb, rc]), 4000, 'mesh');
  const fromA = sent(w.server, 'late', ra.call.peer);
  const refusedOffer = fromA.findIndex((m) => m.event === 'offer' && m.payload.to === undefined);
  assert.ok(refusedOffer >= 0, 'the unaddressed offer reached the server');
  assert.ok(fromA.some((m, i) => i > refusedOffer && m.event === 'offer' && m.payload.to === rb.call.peer), 'sent again to b');
  assert.deepEqual([...ra.errors, ...rb.errors, ...rc.errors], []);
});

test('a member that joins late is called at once by everyone in the room', async (t) => {
  const w = world(t, 4);
  const recs = [];
  for (const n of ['a', 'b', 'c']) recs.push(await join(w.client(n), 'late2'));
  await until(() => meshConnected(recs), 3000, 'three');
  const started = Date.now();
  const rd = await join(w.client('d'), 'late2');
  await until(() => meshConnected([...recs, rd]), 3000, 'four');
  assert.ok(Date.now() - started < 2000);
  for (const r of recs) assert.equal(rd.call.peers.get(r.call.peer).polite, true, 'the newcomer is polite');
  assert.equal(w.server.held.size, 0, 'nothing held: the room was not empty');
  assert.deepEqual([...recs, rd].flatMap((r) => r.errors), []);
});

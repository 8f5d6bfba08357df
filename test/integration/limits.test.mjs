// Per-connection limits: events per second (token bucket) and rooms per connection. A refused
// event gets rate_limited and consumes nothing; the delivery layer retries it, so a burst from
// a well-behaved client still arrives complete and in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withCluster, connect, connected, makePeer, request, roomName, sdp, cand, sleep, until } from './harness.mjs';

const ENV = {
  SWITCHBOARD_EVENT_RATE: '20',
  SWITCHBOARD_EVENT_BURST: '10',
  SWITCHBOARD_MAX_ROOMS_PER_CONN: '2',
  SWITCHBOARD_MAX_HELD_CANDIDATES: '100',
};

test('a flood gets rate_limited; a burst through the delivery layer still arrives in order', async (t) => {
  await withCluster(t, ENV, async ({ a, b }) => {
    const s = connect(a.url);
    await connected(s);
    // One round trip first: the Go library sometimes loses the first packet after the handshake
    // (the delivery layer retries; a raw flood would not).
    await until(async () => (await request(s, 'ack', { room: 'nowhere', seq: 1 }).catch(() => null))?.error?.code === 'not_joined',
      10000, 'a first reply');
    await sleep(600); // refill the bucket
    const replies = await Promise.all(Array.from({ length: 40 }, () => request(s, 'ack', { room: 'nowhere', seq: 1 })));
    const limited = replies.filter((r) => r?.error?.code === 'rate_limited').length;
    assert.ok(limited >= 20, `40 events at once with a burst of 10: ${limited} rate_limited`);
    s.disconnect();

    const room = roomName('burst');
    const caller = await makePeer('caller', a.url, { retryMs: 200 });
    await caller.channel.join(room);
    const sends = [caller.channel.send('offer', { sdp: sdp('o') })];
    for (let i = 0; i < 30; i++) sends.push(caller.channel.send('candidate', { candidate: cand('c', i) }));
    await Promise.all(sends);
    const answerer = await makePeer('answerer', b.url);
    await answerer.channel.join(room);
    await answerer.waitFor('candidate', 30, 15000);
    const got = answerer.events('candidate').map((p) => p.candidate.candidate);
    assert.deepEqual(got, Array.from({ length: 30 }, (_, i) => cand('c', i).candidate));
  });
});

test('a connection may be in a limited number of rooms', async (t) => {
  await withCluster(t, ENV, async ({ a }) => {
    const s = connect(a.url);
    await connected(s);
    assert.equal((await request(s, 'join', { room: roomName('one') })).ok, true);
    assert.equal((await request(s, 'join', { room: roomName('two') })).ok, true);
    const third = await request(s, 'join', { room: roomName('three') });
    assert.equal(third?.error?.code, 'too_many_rooms', JSON.stringify(third));
    s.disconnect();
  }, { ids: ['a'] });
});

test('new connections per address are throttled; socket.io-client retries and gets in', async (t) => {
  await withCluster(t, { SWITCHBOARD_CONN_RATE: '1', SWITCHBOARD_CONN_BURST: '2' }, async ({ a }) => {
    /** @type {import('socket.io-client').Socket[]} */
    const sockets = [];
    /** @type {string[]} */
    const errors = [];
    for (let i = 0; i < 4; i++) {
      const s = connect(a.url, { opts: { reconnectionDelay: 300, reconnectionDelayMax: 1000 } });
      s.on('connect_error', (/** @type {any} */ err) => errors.push(String(err?.description?.message ?? err?.message)));
      sockets.push(s);
    }
    await until(() => errors.length > 0, 10000, 'a refused connection');
    // The refusal is the HTTP 429 of the handshake request, with its code.
    const res = await fetch(`${a.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(res.status, 429);
    assert.equal((await res.json()).code, 'rate_limited');
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
    // Retrying with backoff, every client is in within a few seconds (1 new connection/s).
    await until(() => sockets.every((s) => s.connected), 20000, 'every client connected');
    for (const s of sockets) s.disconnect();
  }, { ids: ['a'] });
});

test('held offers are capped across the prefix; the slot frees when one is answered', async (t) => {
  await withCluster(t, { SWITCHBOARD_MAX_HELD_OFFERS: '1' }, async ({ a, b }) => {
    const r1 = roomName('held1');
    const r2 = roomName('held2');
    const first = await makePeer('first', a.url);
    await first.channel.join(r1);
    assert.equal((await first.channel.send('offer', { sdp: sdp('o1') })).held, true);
    const second = await makePeer('second', b.url);
    await second.channel.join(r2);
    await assert.rejects(second.channel.send('offer', { sdp: sdp('o2') }), (/** @type {any} */ err) => {
      assert.equal(err.code, 'too_many_held');
      return true;
    });
    const answerer = await makePeer('answerer', b.url);
    await answerer.channel.join(r1);
    await answerer.waitFor('offer', 1);
    // The other instance reads the count anew near the bound: the slot is free.
    assert.equal((await second.channel.send('offer', { sdp: sdp('o2') })).held, true);
  });
});

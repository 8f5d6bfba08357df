// Guarantee on a real Redis Cluster (3 masters, 3 replicas): a held offer and its early
// candidates reach the answerer who joins later on another instance; the answer and live
// candidates both ways are relayed across instances; every message arrives exactly once and in
// order, over websocket and polling. Several rooms at once, so their slots likely fall on
// different masters.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  TRANSPORTS, withCluster, makePeer, roomName, sdp, cand, candIndex, sleep, assertGaplessSeq,
} from './harness.mjs';
import { startRedisCluster } from './redis_cluster.mjs';

/** @type {Awaited<ReturnType<typeof startRedisCluster>>} */
let cluster;
before(async () => { cluster = await startRedisCluster(); });
after(async () => { await cluster?.stop(); });

const ROOMS = 3;
const EARLY = 3;
const LIVE = 10;

/** One call from a (caller) to b (answerer). @param {string} callerURL @param {string} answererURL @param {'websocket'|'polling'} transport */
async function call(callerURL, answererURL, transport) {
  const room = roomName('cluster');
  const caller = await makePeer('caller', callerURL, { transport });
  await caller.channel.join(room);
  const offer = await caller.channel.send('offer', { sdp: sdp('cluster-offer') });
  assert.equal(offer.held, true, 'offer sent alone is held');
  for (let i = 0; i < EARLY; i++) {
    assert.equal((await caller.channel.send('candidate', { candidate: cand('caller', i) })).held, true);
  }

  const answerer = await makePeer('answerer', answererURL, { transport });
  await answerer.channel.join(room);
  await answerer.waitFor('candidate', EARLY);
  assert.equal((await answerer.channel.send('answer', { sdp: sdp('cluster-answer') })).ok, true);
  await caller.waitFor('answer', 1);

  const sent = await Promise.all([
    ...Array.from({ length: LIVE }, (_, i) => caller.channel.send('candidate', { candidate: cand('caller', 100 + i) })),
    ...Array.from({ length: LIVE }, (_, i) => answerer.channel.send('candidate', { candidate: cand('answerer', i) })),
  ]);
  assert.ok(sent.every((r) => r.ok && r.held === false), 'live candidates are relayed');
  await caller.waitFor('candidate', LIVE);
  await answerer.waitFor('candidate', EARLY + LIVE);
  await sleep(300); // room for duplicates to show up

  assert.deepEqual(answerer.log.map((l) => l.event),
    ['offer', ...Array(EARLY + LIVE).fill('candidate')], `${room}: answerer's events`);
  assert.equal(answerer.log[0].payload.sdp, sdp('cluster-offer'));
  assert.deepEqual(answerer.events('candidate').map(candIndex),
    [...Array.from({ length: EARLY }, (_, i) => i), ...Array.from({ length: LIVE }, (_, i) => 100 + i)]);
  assert.deepEqual(caller.log.map((l) => l.event),
    ['peer-joined', 'answer', ...Array(LIVE).fill('candidate')], `${room}: caller's events`);
  assert.equal(caller.events('answer')[0].sdp, sdp('cluster-answer'));
  assert.deepEqual(caller.events('candidate').map(candIndex), Array.from({ length: LIVE }, (_, i) => i));
  assertGaplessSeq(caller);
  assertGaplessSeq(answerer);
}

for (const transport of TRANSPORTS) {
  test(`calls across two instances on a Redis Cluster (${transport})`, async (t) => {
    await withCluster(t, { REDIS_URL: cluster.url }, async ({ a, b }) => {
      await Promise.all(Array.from({ length: ROOMS }, (_, i) => (i % 2 ? call(b.url, a.url, transport) : call(a.url, b.url, transport))));
    });
  });
}

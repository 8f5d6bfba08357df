// Guarantee on a real Redis Sentinel set (a master, a replica, 3 sentinels): calls across two
// instances work as on a single Redis, over websocket and polling; and when the master is
// killed (SIGKILL) while calls stream candidates both ways, the sentinels promote the replica,
// the instances find it, and every candidate sent (the client resends those left unanswered)
// arrives exactly once and in order; sends succeed again after the promotion.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  TRANSPORTS, withCluster, makePeer, roomName, sdp, cand, candIndex, sleep, until, assertGaplessSeq,
} from './harness.mjs';
import { crossCall } from './cross_call.mjs';
import { startRedisSentinel } from './redis_sentinel.mjs';

/** @type {Awaited<ReturnType<typeof startRedisSentinel>>} */
let set;
before(async () => { set = await startRedisSentinel(); });
after(async () => { await set?.stop(); });

for (const transport of TRANSPORTS) {
  test(`calls across two instances on a Redis Sentinel set (${transport})`, async (t) => {
    await withCluster(t, { REDIS_URL: set.url }, async ({ a, b }) => {
      await Promise.all([crossCall('sentinel', a.url, b.url, transport), crossCall('sentinel', b.url, a.url, transport)]);
    });
  });
}

const EVERY_MS = 50; // one candidate per direction per call this often
const BEFORE_MS = 1000; // streaming before the kill
const AFTER_MS = 1000; // streaming after the first send acknowledged past the kill

/**
 * A connected call from a caller on callerURL to an answerer on answererURL, streaming
 * candidates both ways from start() to stop().
 * @param {string} callerURL @param {string} answererURL @param {'websocket'|'polling'} transport
 */
async function streamingCall(callerURL, answererURL, transport) {
  const room = roomName('failover');
  // Quick resends, so the recovery time is the failover's, not the backoff's.
  const opts = { transport, retryMs: 200, maxRetryMs: 1000 };
  const caller = await makePeer('caller', callerURL, opts);
  await caller.channel.join(room);
  await caller.channel.send('offer', { sdp: sdp('fo-offer') });
  const answerer = await makePeer('answerer', answererURL, opts);
  await answerer.channel.join(room);
  await answerer.waitFor('offer', 1);
  await answerer.channel.send('answer', { sdp: sdp('fo-answer') });
  await caller.waitFor('answer', 1);

  const peers = [caller, answerer];
  /** @type {Promise<any>[]} */
  const sends = [];
  /** @type {number[]} when each send was issued and acknowledged, per peer */
  const acked = [];
  const count = [0, 0];
  let timer;
  return {
    room,
    caller,
    answerer,
    count,
    acked,
    start() {
      timer = setInterval(() => {
        peers.forEach((p, i) => {
          const issued = Date.now();
          sends.push(p.channel.send('candidate', { candidate: cand(p.name, count[i]++) }).then((r) => {
            acked.push(issued);
            return r;
          }));
        });
      }, EVERY_MS);
    },
    halt() { clearInterval(timer); },
    /** Stops streaming; resolves with every send's reply. */
    stop() {
      clearInterval(timer);
      return Promise.all(sends);
    },
  };
}

test('the master killed mid-call: the replica takes over, nothing lost or doubled', async (t) => {
  await withCluster(t, { REDIS_URL: set.url }, async ({ a, b }) => {
    const calls = await Promise.all(TRANSPORTS.map((tr, i) => (i % 2 ? streamingCall(b.url, a.url, tr) : streamingCall(a.url, b.url, tr))));
    const oldMaster = await set.masterPort();
    for (const c of calls) c.start();
    // A failure below must not leave the streams running: they would keep the process alive.
    t.after(() => { for (const c of calls) c.halt(); });
    await sleep(BEFORE_MS);

    const killedAt = Date.now();
    await set.killData(oldMaster);
    await until(async () => (await set.masterPort().catch(() => oldMaster)) !== oldMaster, 30000, 'a new master');
    const promotedMs = Date.now() - killedAt;
    // Recovered: every call had a send issued after the kill acknowledged.
    await until(() => calls.every((c) => c.acked.some((at) => at > killedAt)), 30000, 'sends acknowledged again');
    const recoveredMs = Date.now() - killedAt;
    t.diagnostic(`master killed: promoted after ${promotedMs} ms, sends acknowledged again after ${recoveredMs} ms`);
    await sleep(AFTER_MS);

    for (const c of calls) {
      const replies = await c.stop();
      assert.ok(replies.every((r) => r.ok), `${c.room}: every candidate acknowledged`);
      const [toAnswerer, toCaller] = c.count;
      await c.answerer.waitFor('candidate', toAnswerer, 15000);
      await c.caller.waitFor('candidate', toCaller, 15000);
    }
    await sleep(500); // room for duplicates to show up
    for (const c of calls) {
      const [toAnswerer, toCaller] = c.count;
      t.diagnostic(`${c.room}: ${toAnswerer} candidates to the answerer, ${toCaller} to the caller`);
      assert.deepEqual(c.answerer.log.map((l) => l.event), ['offer', ...Array(toAnswerer).fill('candidate')], `${c.room}: answerer's events`);
      assert.deepEqual(c.answerer.events('candidate').map(candIndex), Array.from({ length: toAnswerer }, (_, i) => i), `${c.room}: caller's candidates`);
      assert.deepEqual(c.caller.log.map((l) => l.event), ['peer-joined', 'answer', ...Array(toCaller).fill('candidate')], `${c.room}: caller's events`);
      assert.deepEqual(c.caller.events('candidate').map(candIndex), Array.from({ length: toCaller }, (_, i) => i), `${c.room}: answerer's candidates`);
      assertGaplessSeq(c.caller);
      assertGaplessSeq(c.answerer);
    }
    // And a send after it all goes through at once.
    const after = await calls[0].caller.channel.send('candidate', { candidate: cand('caller', calls[0].count[0]) });
    assert.equal(after.ok, true);
  });
});

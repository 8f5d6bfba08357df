// Guarantee: end to end, every message is delivered exactly once and in order whatever the
// transport drops, duplicates, delays or reorders (websocket through a fault-injecting proxy).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  withCluster, makePeer, roomName, sdp, cand, candIndex, sleep, assertGaplessSeq, assertSequence, replyStats,
} from './harness.mjs';
import { startFaultProxy } from './faultproxy.mjs';

const N = 200;
const SEED = Number(process.env.SWITCHBOARD_FAULT_SEED || 20240611);
const ENV = {
  SWITCHBOARD_RESEND_INTERVAL: '200ms',
  SWITCHBOARD_REORDER_TIMEOUT: '3s',
  SWITCHBOARD_MAX_BACKLOG: '2000',
};
// The client's resend backoff scaled down with retryMs (the defaults are 1 s up to 8 s).
const CLIENT = { transport: /** @type {const} */ ('websocket'), retryMs: 250, maxRetryMs: 2000, ackTimeoutMs: 250 };

test(`a full call through a lossy, duplicating, reordering proxy (websocket, seed ${SEED})`, async (t) => {
  await withCluster(t, ENV, async ({ a, b }) => {
    const faults = { drop: 0.2, dup: 0.1, maxDelay: 50 };
    const pa = await startFaultProxy({ target: a.url, ...faults, seed: SEED });
    const pb = await startFaultProxy({ target: b.url, ...faults, seed: SEED + 1 });
    try {
      const room = roomName('faults');
      const caller = await makePeer('caller', pa.url, CLIENT);
      const answerer = await makePeer('answerer', pb.url, CLIENT);

      const cj = await caller.channel.join(room);
      assert.equal(cj.role, 'caller');
      assert.equal((await caller.channel.send('offer', { sdp: sdp('offer') })).ok, true);
      const early = await Promise.all(Array.from({ length: 5 }, (_, i) => caller.channel.send('candidate', { candidate: cand('caller', i) })));
      assert.ok(early.every((r) => r.ok));

      const aj = await answerer.channel.join(room);
      assert.equal(aj.role, 'answerer', 'one membership despite retried joins');
      await answerer.waitFor('candidate', 5, 15000);
      assert.equal(answerer.log[0].event, 'offer');
      await answerer.channel.send('answer', { sdp: sdp('answer') });
      await caller.waitFor('answer', 1, 15000);

      const started = Date.now();
      const replies = await Promise.all([
        ...Array.from({ length: N }, (_, i) => caller.channel.send('candidate', { candidate: cand('caller', 5 + i) })),
        ...Array.from({ length: N }, (_, i) => answerer.channel.send('candidate', { candidate: cand('answerer', i) })),
      ]);
      assert.ok(replies.every((r) => r.ok === true));
      await Promise.allSettled([
        caller.waitFor('candidate', N, 30000),
        answerer.waitFor('candidate', N + 5, 30000),
      ]);
      t.diagnostic(`exchange of ${2 * N} candidates took ${Date.now() - started} ms; replies ${JSON.stringify(replyStats(replies))}`);

      await answerer.channel.send('hangup');
      await caller.waitFor('hangup', 1, 15000);
      await caller.channel.leave();
      await answerer.waitFor('peer-left', 1, 15000);
      await sleep(1000); // resends and duplicates still in flight show up here

      t.diagnostic(`proxy A (caller): ${JSON.stringify(pa.stats)}`);
      t.diagnostic(`proxy B (answerer): ${JSON.stringify(pb.stats)}`);
      console.log(`fault proxy counts: A ${JSON.stringify(pa.stats)}; B ${JSON.stringify(pb.stats)}`);

      assertSequence(caller.events('candidate').map(candIndex), N, 'caller received');
      assertSequence(answerer.events('candidate').map(candIndex), N + 5, 'answerer received');
      assert.deepEqual(caller.log.map((l) => l.event), ['peer-joined', 'answer', ...Array(N).fill('candidate'), 'hangup']);
      assert.deepEqual(answerer.log.map((l) => l.event), ['offer', ...Array(N + 5).fill('candidate'), 'peer-left']);
      assert.equal(answerer.events('peer-left')[0].reason, 'left');
      assertGaplessSeq(caller);
      assertGaplessSeq(answerer);
      for (const p of [pa, pb]) {
        assert.ok(p.stats.up.dropped > 0 && p.stats.down.dropped > 0, 'faults were injected both ways');
        assert.ok(p.stats.up.duplicated > 0 && p.stats.down.duplicated > 0);
      }
    } finally {
      await pa.close();
      await pb.close();
    }
  });
});

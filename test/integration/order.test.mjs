// Guarantee: in the live phase, messages sent without waiting arrive in send order, exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TRANSPORTS, withCluster, makePeer, roomName, sdp, cand, candIndex, sleep, assertGaplessSeq, assertSequence, replyStats,
} from './harness.mjs';

const N = 500;
const ENV = { SWITCHBOARD_MAX_BACKLOG: '2000' };

for (const transport of TRANSPORTS) {
  test(`${N} candidates each way arrive in send order, exactly once (${transport})`, async (t) => {
    await withCluster(t, ENV, async ({ a, b }) => {
      const room = roomName('order');
      const caller = await makePeer('caller', a.url, { transport });
      const answerer = await makePeer('answerer', b.url, { transport });
      await caller.channel.join(room);
      await answerer.channel.join(room);
      await caller.waitFor('peer-joined', 1);
      assert.equal((await caller.channel.send('offer', { sdp: sdp('offer') })).held, false);
      await answerer.waitFor('offer', 1);
      await answerer.channel.send('answer', { sdp: sdp('answer') });
      await caller.waitFor('answer', 1);

      const started = Date.now();
      const replies = await Promise.all([
        ...Array.from({ length: N }, (_, i) => caller.channel.send('candidate', { candidate: cand('caller', i) })),
        ...Array.from({ length: N }, (_, i) => answerer.channel.send('candidate', { candidate: cand('answerer', i) })),
      ]);
      const stats = replyStats(replies);
      t.diagnostic(`replies: ${JSON.stringify(stats)}`);
      assert.ok(replies.every((r) => r.ok === true));
      assert.equal(stats.held, 0, 'nothing held in the live phase');
      await Promise.allSettled([caller.waitFor('candidate', N, 30000), answerer.waitFor('candidate', N, 30000)]);
      t.diagnostic(`${2 * N} candidates delivered in ${Date.now() - started} ms`);
      await sleep(500);
      assertSequence(caller.events('candidate').map(candIndex), N, 'caller received');
      assertSequence(answerer.events('candidate').map(candIndex), N, 'answerer received');
      assert.ok(caller.events('candidate').every((c) => c.candidate.usernameFragment === 'answerer'));
      assertGaplessSeq(caller);
      assertGaplessSeq(answerer);
    });
  });
}

// Guarantee: a candidate sent while the answerer is joining is delivered exactly once: with
// the held ones or live afterwards, never lost, never twice, always in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TRANSPORTS, withCluster, makePeer, roomName, sdp, cand, candIndex, sleep, assertGaplessSeq, assertSequence, replyStats,
} from './harness.mjs';

const N = 200;
const ENV = { SWITCHBOARD_MAX_HELD_CANDIDATES: '1000', SWITCHBOARD_MAX_BACKLOG: '2000' };

for (const transport of TRANSPORTS) {
  test(`candidates streamed across the answerer's join arrive once, in order (${transport})`, async (t) => {
    await withCluster(t, ENV, async ({ a, b }) => {
      const room = roomName('gap');
      const caller = await makePeer('caller', a.url, { transport });
      const answerer = await makePeer('answerer', b.url, { transport });
      await caller.channel.join(room);
      assert.equal((await caller.channel.send('offer', { sdp: sdp('offer') })).held, true);

      /** @type {Promise<any>[]} */
      const sends = [];
      /** @type {Promise<any> | null} */
      let joining = null;
      let joinedAt = -1;
      for (let i = 0; i < N; i++) {
        sends.push(caller.channel.send('candidate', { candidate: cand('caller', i) }));
        if (i === 40) {
          joining = answerer.channel.join(room).then((r) => { joinedAt = sends.length; return r; });
        }
        // Pace the stream a little so the join lands in its middle.
        if (i % 4 === 3) await sleep(2);
      }
      const replies = await Promise.all(sends);
      await joining;
      const stats = replyStats(replies);
      const { held } = stats;
      t.diagnostic(`replies: ${JSON.stringify(stats)}; join resolved after ${joinedAt} sends`);
      assert.ok(replies.every((r) => r.ok === true));

      await answerer.waitFor('candidate', N, 20000).catch(() => {});
      await sleep(500);
      assert.equal(answerer.log[0].event, 'offer');
      assertSequence(answerer.events('candidate').map(candIndex), N, 'answerer received');
      assertGaplessSeq(answerer);
      assert.ok(held > 0, 'some candidates were held before the join');
      // Replies follow the seq order of the server: once relayed live, never held again.
      const firstLive = replies.findIndex((r) => r.held === false);
      if (firstLive >= 0) assert.ok(replies.slice(firstLive).every((r) => r.held !== true), 'no held reply after a live one');
    });
  });
}

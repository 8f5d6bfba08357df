// Guarantee: held offers live in the store; losing the caller's instance (SIGKILL) loses none
// of it: the caller resumes on the other instance and the call completes there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TRANSPORTS, withCluster, makePeer, connect, roomName, sdp, cand, candIndex, sleep, until,
  assertGaplessSeq, assertSequence,
} from './harness.mjs';

for (const transport of TRANSPORTS) {
  test(`caller's instance killed while holding an offer; the call completes on the other (${transport})`, async (t) => {
    await withCluster(t, {}, async ({ a, b }) => {
      const room = roomName('loss');
      const caller = await makePeer('caller', a.url, { transport });
      await caller.channel.join(room);
      const peerId = caller.channel.peer;
      assert.equal((await caller.channel.send('offer', { sdp: sdp('offer') })).held, true);
      for (let i = 0; i < 5; i++) {
        assert.equal((await caller.channel.send('candidate', { candidate: cand('caller', i) })).held, true);
      }

      await a.kill('SIGKILL');
      assert.equal(a.running(), false);
      await until(() => !caller.socket.connected, 10000, 'caller notices the loss');
      /** @type {any[]} */
      const resumed = [];
      caller.channel.on('resumed', (/** @type {any} */ r) => resumed.push(r));
      caller.socket.disconnect();
      caller.channel.attach(connect(b.url, { transport }));
      await until(() => resumed.length === 1, 10000, 'resume on B');
      assert.equal(resumed[0].peer, peerId);
      assert.equal(resumed[0].role, 'caller');
      assert.equal(resumed[0].next, 7, 'offer and 5 candidates were applied');

      const answerer = await makePeer('answerer', b.url, { transport });
      const aj = await answerer.channel.join(room);
      assert.equal(aj.role, 'answerer');
      await answerer.waitFor('candidate', 5);
      await caller.waitFor('peer-joined', 1);
      assert.equal(answerer.log[0].event, 'offer');
      assert.equal(answerer.log[0].payload.sdp, sdp('offer'));
      assert.equal(answerer.log[0].payload.from, peerId);

      await answerer.channel.send('answer', { sdp: sdp('answer') });
      const [answer] = await caller.waitFor('answer', 1);
      assert.equal(answer.sdp, sdp('answer'));
      await Promise.all([
        ...Array.from({ length: 5 }, (_, i) => caller.channel.send('candidate', { candidate: cand('caller', 5 + i) })),
        ...Array.from({ length: 5 }, (_, i) => answerer.channel.send('candidate', { candidate: cand('answerer', i) })),
      ]);
      await caller.waitFor('candidate', 5);
      await answerer.waitFor('candidate', 10);
      await sleep(300);
      assertSequence(answerer.events('candidate').map(candIndex), 10, 'answerer received');
      assertSequence(caller.events('candidate').map(candIndex), 5, 'caller received');
      assert.equal(answerer.events('peer-left').length, 0);
      assertGaplessSeq(caller);
      assertGaplessSeq(answerer);
    });
  });
}

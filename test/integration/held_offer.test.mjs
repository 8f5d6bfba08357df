// Guarantee: a held offer and its early candidates reach the answerer who joins later, on
// another instance, in order and exactly once; then the call proceeds live.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TRANSPORTS, withCluster, makePeer, roomName, sdp, cand, candIndex, sleep, assertGaplessSeq,
} from './harness.mjs';

for (const transport of TRANSPORTS) {
  test(`held offer reaches a later answerer on another instance (${transport})`, async (t) => {
    await withCluster(t, {}, async ({ a, b }) => {
      const room = roomName('held');
      const caller = await makePeer('caller', a.url, { transport });
      const joined = await caller.channel.join(room);
      assert.equal(joined.role, 'caller');
      assert.deepEqual(joined.peers, []);
      assert.equal(joined.next, 1);
      assert.equal(typeof joined.token, 'string');
      const callerId = caller.channel.peer;

      const offer = await caller.channel.send('offer', { sdp: sdp('caller-offer') });
      assert.equal(offer.ok, true);
      assert.equal(offer.held, true, 'offer sent alone is held');
      assert.equal(offer.seq, 1);
      for (let i = 0; i < 5; i++) {
        const r = await caller.channel.send('candidate', { candidate: cand('caller', i) });
        assert.equal(r.held, true, `early candidate ${i} is held`);
        assert.equal(r.seq, i + 2);
      }
      await sleep(1000);

      const answerer = await makePeer('answerer', b.url, { transport });
      const aj = await answerer.channel.join(room);
      assert.equal(aj.role, 'answerer');
      assert.deepEqual(aj.peers.map((/** @type {any} */ p) => p.peer), [caller.channel.peer]);

      await answerer.waitFor('candidate', 5);
      await caller.waitFor('peer-joined', 1);
      await sleep(300); // room for duplicates to show up
      assert.deepEqual(answerer.log.map((l) => l.event), ['offer', 'candidate', 'candidate', 'candidate', 'candidate', 'candidate']);
      assert.equal(answerer.log[0].payload.sdp, sdp('caller-offer'));
      assert.equal(answerer.log[0].payload.from, caller.channel.peer);
      assert.deepEqual(answerer.events('candidate').map(candIndex), [0, 1, 2, 3, 4]);
      assert.deepEqual(answerer.events('candidate')[0].candidate, cand('caller', 0));
      const pj = caller.events('peer-joined');
      assert.equal(pj.length, 1);
      assert.equal(pj[0].peer, answerer.channel.peer);
      assert.equal(pj[0].role, 'answerer');

      const ans = await answerer.channel.send('answer', { sdp: sdp('answer') });
      assert.equal(ans.ok, true);
      const [gotAnswer] = await caller.waitFor('answer', 1);
      assert.equal(gotAnswer.sdp, sdp('answer'));
      assert.equal(gotAnswer.from, answerer.channel.peer);

      // Live candidates, both ways.
      const live = await Promise.all([
        ...Array.from({ length: 10 }, (_, i) => caller.channel.send('candidate', { candidate: cand('caller', 100 + i) })),
        ...Array.from({ length: 10 }, (_, i) => answerer.channel.send('candidate', { candidate: cand('answerer', i) })),
      ]);
      assert.ok(live.every((r) => r.ok && r.held === false), 'live candidates are relayed, not held');
      await caller.waitFor('candidate', 10);
      await answerer.waitFor('candidate', 15);
      // End-of-candidates (null) is relayed too.
      await caller.channel.send('candidate', { candidate: null });
      await answerer.waitFor('candidate', 16);
      assert.equal(answerer.events('candidate')[15].candidate, null);

      await answerer.channel.send('hangup');
      const [hup] = await caller.waitFor('hangup', 1);
      assert.equal(hup.from, answerer.channel.peer);

      await caller.channel.leave();
      const [left] = await answerer.waitFor('peer-left', 1);
      assert.equal(left.peer, callerId);
      assert.equal(left.reason, 'left');
      await sleep(300);

      assert.deepEqual(caller.events('candidate').map(candIndex), Array.from({ length: 10 }, (_, i) => i));
      assert.deepEqual(answerer.events('candidate').slice(5, 15).map(candIndex), Array.from({ length: 10 }, (_, i) => 100 + i));
      assert.deepEqual(caller.log.map((l) => l.event), ['peer-joined', 'answer', ...Array(10).fill('candidate'), 'hangup']);
      assert.deepEqual(answerer.log.map((l) => l.event),
        ['offer', ...Array(5).fill('candidate'), ...Array(11).fill('candidate'), 'peer-left']);
      assertGaplessSeq(caller);
      assertGaplessSeq(answerer);
    });
  });
}

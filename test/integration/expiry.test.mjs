// Guarantee: a held offer ends after the held-offer TTL and its sender is told with `expired`;
// a member that stays away past the resume window is removed and the others get peer-left
// (timeout).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TRANSPORTS, withCluster, makePeer, roomName, sdp, cand, sleep, until, assertGaplessSeq } from './harness.mjs';

const ENV = { SWITCHBOARD_HELD_OFFER_TTL: '1s', SWITCHBOARD_RESUME_WINDOW: '2s' };

for (const transport of TRANSPORTS) {
  test(`held offer expires after the TTL (${transport})`, async (t) => {
    await withCluster(t, ENV, async ({ a, b }) => {
      const room = roomName('expiry');
      const caller = await makePeer('caller', a.url, { transport });
      const j = await caller.channel.join(room);
      assert.equal(j.heldOfferTtlMs, 1000);
      assert.equal(j.capacity, 2, 'the join reply announces the room capacity');
      const held = await caller.channel.send('offer', { sdp: sdp('offer') });
      assert.equal(held.held, true);
      assert.ok(held.expiresInMs > 0 && held.expiresInMs <= 1000, `expiresInMs ${held.expiresInMs}`);
      await caller.channel.send('candidate', { candidate: cand('caller', 0) });
      const started = Date.now();

      const [expired] = await caller.waitFor('expired', 1, 8000);
      const after = Date.now() - started;
      t.diagnostic(`expired ${after} ms after the offer`);
      assert.equal(expired.what, 'offer');
      assert.equal(expired.room, room);
      assert.ok(after >= 700, `not before the TTL (${after} ms)`);

      const answerer = await makePeer('answerer', b.url, { transport });
      const aj = await answerer.channel.join(room);
      assert.equal(aj.role, 'answerer');
      await caller.waitFor('peer-joined', 1);
      await sleep(1000);
      assert.deepEqual(answerer.log, [], 'no offer, no candidates after expiry');
      // With nothing held, the caller may offer again, live.
      assert.equal((await caller.channel.send('offer', { sdp: sdp('offer2') })).held, false);
      const [offer] = await answerer.waitFor('offer', 1);
      assert.equal(offer.sdp, sdp('offer2'));
      assert.deepEqual(caller.log.map((l) => l.event), ['expired', 'peer-joined']);
      assertGaplessSeq(caller);
    });
  });

  test(`a peer that does not come back within the resume window is removed (${transport})`, async (t) => {
    await withCluster(t, ENV, async ({ a, b }) => {
      const room = roomName('window');
      const caller = await makePeer('caller', a.url, { transport });
      const answerer = await makePeer('answerer', b.url, { transport });
      const j = await caller.channel.join(room);
      assert.equal(j.resumeWindowMs, 2000);
      await answerer.channel.join(room);
      await caller.waitFor('peer-joined', 1);
      const answererId = answerer.channel.peer;

      answerer.channel.close();
      answerer.socket.disconnect(); // gone for good
      const started = Date.now();
      const [left] = await caller.waitFor('peer-left', 1, 15000);
      const after = Date.now() - started;
      t.diagnostic(`peer-left ${after} ms after the disconnect`);
      assert.equal(left.peer, answererId);
      assert.equal(left.reason, 'timeout');
      assert.ok(after >= 1500, `not before the resume window (${after} ms)`);
      assert.deepEqual(caller.channel.peers, []);

      // The place is free again.
      const next = await makePeer('next', b.url, { transport });
      assert.equal((await next.channel.join(room)).role, 'answerer');
    });
  });
}

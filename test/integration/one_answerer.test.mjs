// Guarantee: however many peers join at once, on however many instances, exactly one receives
// a held offer; with capacity 2 the others get room_full.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TRANSPORTS, withCluster, makePeer, roomName, sdp, cand, sleep, until } from './harness.mjs';

const ROUNDS = 10;

/**
 * A caller on `a` holding an offer and two early candidates, and two answerers (on `a` and `b`)
 * connected and ready to join.
 * @param {string} transport @param {string} urlA @param {string} urlB @param {number} round
 */
async function setupRound(transport, urlA, urlB, round) {
  const room = roomName(`one-${round}`);
  const [caller, x, y] = await Promise.all([
    makePeer(`caller#${round}`, urlA, { transport }),
    makePeer(`answererA#${round}`, urlA, { transport }),
    makePeer(`answererB#${round}`, urlB, { transport }),
  ]);
  await caller.channel.join(room);
  const held = await caller.channel.send('offer', { sdp: sdp(`offer-${round}`) });
  assert.equal(held.held, true);
  for (let i = 0; i < 2; i++) assert.equal((await caller.channel.send('candidate', { candidate: cand('c', i) })).held, true);
  return { room, caller, x, y };
}

/** @param {import('./harness.mjs').Peer[]} peers */
function closeAll(peers) {
  for (const p of peers) {
    p.channel.close();
    p.socket.disconnect();
  }
}

for (const transport of TRANSPORTS) {
  test(`exactly one of two simultaneous answerers gets the held offer, capacity 2 (${transport})`, async (t) => {
    await withCluster(t, {}, async ({ a, b }) => {
      for (let round = 0; round < ROUNDS; round++) {
        const { room, caller, x, y } = await setupRound(transport, a.url, b.url, round);
        const results = await Promise.allSettled([x.channel.join(room), y.channel.join(room)]);
        const ok = results.filter((r) => r.status === 'fulfilled');
        const failed = results.filter((r) => r.status === 'rejected');
        assert.equal(ok.length, 1, `round ${round}: exactly one join succeeds (${JSON.stringify(results.map((r) => r.status === 'rejected' ? r.reason.code : 'ok'))})`);
        assert.equal(failed.length, 1);
        assert.equal(/** @type {PromiseRejectedResult} */ (failed[0]).reason.code, 'room_full', `round ${round}: the other gets room_full`);
        const winner = results[0].status === 'fulfilled' ? x : y;
        const loser = winner === x ? y : x;
        await winner.waitFor('candidate', 2);
        await caller.waitFor('peer-joined', 1);
        await sleep(150);
        assert.deepEqual(winner.log.map((l) => l.event), ['offer', 'candidate', 'candidate'], `round ${round}: winner`);
        assert.equal(winner.log[0].payload.sdp, sdp(`offer-${round}`));
        assert.deepEqual(loser.log, [], `round ${round}: loser received nothing`);
        assert.equal(caller.events('peer-joined').length, 1);
        assert.equal(caller.events('peer-joined')[0].peer, winner.channel.peer);
        closeAll([caller, x, y]);
      }
    });
  });

  test(`exactly one of two simultaneous answerers gets the held offer, capacity 3 (${transport})`, async (t) => {
    await withCluster(t, { SWITCHBOARD_ROOM_CAPACITY: '3' }, async ({ a, b }) => {
      for (let round = 0; round < 5; round++) {
        const { room, caller, x, y } = await setupRound(transport, a.url, b.url, round);
        const [jx, jy] = await Promise.all([x.channel.join(room), y.channel.join(room)]);
        assert.equal(jx.role, 'answerer');
        assert.equal(jy.role, 'answerer');
        assert.equal(jx.capacity, 3, 'the join reply announces the room capacity');
        await until(() => x.events('offer').length + y.events('offer').length >= 1, 5000, 'an offer');
        await caller.waitFor('peer-joined', 2);
        await sleep(400);
        const offers = [x, y].map((p) => p.events('offer').length);
        assert.deepEqual(offers.slice().sort(), [0, 1], `round ${round}: exactly one answerer gets the offer (got ${offers})`);
        const winner = offers[0] === 1 ? x : y;
        const other = winner === x ? y : x;
        assert.deepEqual(winner.log.filter((l) => l.event !== 'peer-joined').map((l) => l.event),
          ['offer', 'candidate', 'candidate']);
        assert.equal(other.events('candidate').length, 0, 'no early candidates to the other answerer');
        assert.deepEqual(caller.events('peer-joined').map((p) => p.peer).sort(),
          [x.channel.peer, y.channel.peer].sort());
        // With two others in the room the answer must name its target; the winner answers.
        const ans = await winner.channel.send('answer', { sdp: sdp('answer'), to: caller.channel.peer });
        assert.equal(ans.ok, true);
        await caller.waitFor('answer', 1);
        assert.equal(caller.events('answer')[0].from, winner.channel.peer);
        closeAll([caller, x, y]);
      }
    });
  });
}

// One call across two instances, checked end to end: what the Redis deployment tests (Cluster,
// Sentinel) run on each deployment.
import assert from 'node:assert/strict';
import {
  makePeer, roomName, sdp, cand, candIndex, sleep, assertGaplessSeq,
} from './harness.mjs';

const EARLY = 3;
const LIVE = 10;

/**
 * A held offer and its early candidates reach the answerer who joins later; the answer and live
 * candidates both ways are relayed; every message arrives exactly once and in order.
 * @param {string} tag names the room and the SDPs
 * @param {string} callerURL @param {string} answererURL
 * @param {'websocket'|'polling'} transport
 */
export async function crossCall(tag, callerURL, answererURL, transport) {
  const room = roomName(tag);
  const caller = await makePeer('caller', callerURL, { transport });
  await caller.channel.join(room);
  const offer = await caller.channel.send('offer', { sdp: sdp(`${tag}-offer`) });
  assert.equal(offer.held, true, 'offer sent alone is held');
  for (let i = 0; i < EARLY; i++) {
    assert.equal((await caller.channel.send('candidate', { candidate: cand('caller', i) })).held, true);
  }

  const answerer = await makePeer('answerer', answererURL, { transport });
  await answerer.channel.join(room);
  await answerer.waitFor('candidate', EARLY);
  assert.equal((await answerer.channel.send('answer', { sdp: sdp(`${tag}-answer`) })).ok, true);
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
  assert.equal(answerer.log[0].payload.sdp, sdp(`${tag}-offer`));
  assert.deepEqual(answerer.events('candidate').map(candIndex),
    [...Array.from({ length: EARLY }, (_, i) => i), ...Array.from({ length: LIVE }, (_, i) => 100 + i)]);
  assert.deepEqual(caller.log.map((l) => l.event),
    ['peer-joined', 'answer', ...Array(LIVE).fill('candidate')], `${room}: caller's events`);
  assert.equal(caller.events('answer')[0].sdp, sdp(`${tag}-answer`));
  assert.deepEqual(caller.events('candidate').map(candIndex), Array.from({ length: LIVE }, (_, i) => i));
  assertGaplessSeq(caller);
  assertGaplessSeq(answerer);
}

// Guarantee: a peer that resumes within the resume window, on the same or another instance,
// keeps its place and receives every message sent to it meanwhile, exactly once; what it sent
// while away is delivered too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TRANSPORTS, withCluster, makePeer, connect, roomName, sdp, cand, candIndex, sleep, until,
  assertGaplessSeq, assertSequence,
} from './harness.mjs';

/**
 * Caller on `callerUrl`, answerer on `answererUrl`, offer/answer done and a few live candidates.
 * @param {string} transport @param {string} callerUrl @param {string} answererUrl
 */
async function establishedCall(transport, callerUrl, answererUrl) {
  const room = roomName('reconnect');
  const caller = await makePeer('caller', callerUrl, { transport });
  const answerer = await makePeer('answerer', answererUrl, { transport });
  await caller.channel.join(room);
  await caller.channel.send('offer', { sdp: sdp('offer') });
  await answerer.channel.join(room);
  await answerer.waitFor('offer', 1);
  await answerer.channel.send('answer', { sdp: sdp('answer') });
  await caller.waitFor('answer', 1);
  await Promise.all([
    ...Array.from({ length: 5 }, (_, i) => caller.channel.send('candidate', { candidate: cand('caller', i) })),
    ...Array.from({ length: 5 }, (_, i) => answerer.channel.send('candidate', { candidate: cand('answerer', i) })),
  ]);
  await caller.waitFor('candidate', 5);
  await answerer.waitFor('candidate', 5);
  return { room, caller, answerer };
}

/**
 * While the caller is away: the answerer sends 20 candidates, the caller queues 5.
 * Returns the caller's pending sends.
 * @param {import('./harness.mjs').Peer} caller @param {import('./harness.mjs').Peer} answerer
 */
async function trafficWhileAway(caller, answerer) {
  const fromAnswerer = await Promise.all(
    Array.from({ length: 20 }, (_, i) => answerer.channel.send('candidate', { candidate: cand('answerer', 5 + i) })),
  );
  assert.ok(fromAnswerer.every((r) => r.ok === true), 'sends to an away peer are accepted');
  return Array.from({ length: 5 }, (_, i) => caller.channel.send('candidate', { candidate: cand('caller', 5 + i) }));
}

/**
 * After the resume: everything arrived once, then live traffic both ways.
 * @param {import('./harness.mjs').Peer} caller @param {import('./harness.mjs').Peer} answerer
 * @param {Promise<any>[]} callerPending
 */
async function checkAfterResume(caller, answerer, callerPending) {
  const r = await Promise.all(callerPending);
  assert.ok(r.every((x) => x.ok === true));
  await caller.waitFor('candidate', 25);
  await answerer.waitFor('candidate', 10);
  await Promise.all([
    ...Array.from({ length: 10 }, (_, i) => caller.channel.send('candidate', { candidate: cand('caller', 10 + i) })),
    ...Array.from({ length: 10 }, (_, i) => answerer.channel.send('candidate', { candidate: cand('answerer', 25 + i) })),
  ]);
  await caller.waitFor('candidate', 35);
  await answerer.waitFor('candidate', 20);
  await sleep(500);
  assertSequence(caller.events('candidate').map(candIndex), 35, 'caller received');
  assertSequence(answerer.events('candidate').map(candIndex), 20, 'answerer received');
  assert.deepEqual(caller.log.map((l) => l.event), ['peer-joined', 'answer', ...Array(35).fill('candidate')]);
  assert.equal(answerer.events('peer-left').length, 0, 'the answerer never saw the caller leave');
  assertGaplessSeq(caller);
  assertGaplessSeq(answerer);
  assert.deepEqual(caller.resumeFailures, []);
}

for (const transport of TRANSPORTS) {
  test(`connection cut mid-call: automatic reconnect and resume (${transport})`, async (t) => {
    await withCluster(t, {}, async ({ a, b }) => {
      const { caller, answerer } = await establishedCall(transport, a.url, b.url);
      const peerId = caller.channel.peer;
      /** @type {any[]} */
      const resumed = [];
      caller.channel.on('resumed', (/** @type {any} */ r) => resumed.push(r));
      const firstSid = caller.socket.id;

      // socket.io-client reconnects by itself; slow it down so traffic happens meanwhile.
      caller.socket.io.reconnectionDelay(1000).reconnectionDelayMax(1000);
      caller.socket.io.engine.close();
      await until(() => !caller.socket.connected, 2000, 'disconnect');
      const pending = await trafficWhileAway(caller, answerer);
      assert.equal(caller.socket.connected, false, 'the traffic happened while the caller was away');
      assert.equal(resumed.length, 0);

      await until(() => resumed.length === 1, 10000, 'resume');
      assert.notEqual(caller.socket.id, firstSid, 'a new connection');
      assert.equal(resumed[0].peer, peerId);
      assert.equal(resumed[0].role, 'caller');
      assert.equal(caller.channel.peer, peerId);
      assert.ok(Number.isInteger(resumed[0].next) && Number.isInteger(resumed[0].acked));
      await checkAfterResume(caller, answerer, pending);
    });
  });

  test(`instance stopped mid-call: the client moves to the other instance and resumes (${transport})`, async (t) => {
    await withCluster(t, {}, async ({ a, b }) => {
      const { caller, answerer } = await establishedCall(transport, a.url, b.url);
      const peerId = caller.channel.peer;
      /** @type {any[]} */
      const resumed = [];
      caller.channel.on('resumed', (/** @type {any} */ r) => resumed.push(r));

      const stopping = Date.now();
      await a.stop(); // SIGTERM, graceful: A tells its clients to go
      // It drained and exited by itself (stop() falls back to SIGKILL after 5 s).
      assert.equal(a.proc.exitCode, 0, `exit code ${a.proc.exitCode}, signal ${a.proc.signalCode}`);
      t.diagnostic(`SIGTERM to exit: ${Date.now() - stopping} ms`);
      await until(() => !caller.socket.connected, 5000, 'disconnect from A');
      const pending = await trafficWhileAway(caller, answerer);

      caller.socket.disconnect(); // stop reconnecting to A
      const onB = connect(b.url, { transport });
      caller.channel.attach(onB);
      await until(() => resumed.length === 1, 10000, 'resume on B');
      assert.equal(resumed[0].peer, peerId);
      assert.equal(caller.channel.socket, onB);
      await checkAfterResume(caller, answerer, pending);
    });
  });
}

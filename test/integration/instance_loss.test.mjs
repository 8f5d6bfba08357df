// Guarantee: held offers and undelivered messages live in the store; losing the caller's
// instance (SIGKILL) loses none of them, before, during or after the hand-off: the caller
// resumes on the other instance, its channel sends again what the dead instance never
// answered, and everything arrives exactly once, in order.
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

/**
 * Records the seq of every sequenced message the channel emits on `socket` and whether that
 * socket brought its reply, so a test can tell which messages went to an instance that died.
 * @param {import('socket.io-client').Socket} socket
 */
function watchEmits(socket) {
  /** @type {Map<number, boolean>} seq → replied on this socket */
  const emitted = new Map();
  const emitWithAck = socket.emitWithAck.bind(socket);
  socket.emitWithAck = /** @type {any} */ (async (/** @type {string} */ event, /** @type {any} */ payload, /** @type {any[]} */ ...rest) => {
    const seq = event === 'candidate' && Number.isInteger(payload?.seq) ? payload.seq : null;
    if (seq !== null && !emitted.has(seq)) emitted.set(seq, false);
    const reply = await emitWithAck(event, payload, ...rest);
    if (seq !== null) emitted.set(seq, true);
    return reply;
  });
  return { unanswered: () => [...emitted].filter(([, replied]) => !replied).map(([seq]) => seq) };
}

/**
 * SIGKILLs `dead`, waits until `peer` noticed, calls `whileAway` (the channel has no connection
 * then), and moves the channel to a new socket on `to`. Resolves with the resume reply.
 * @param {import('./harness.mjs').Peer} peer @param {import('./harness.mjs').Instance} dead
 * @param {string} to @param {'websocket' | 'polling'} transport @param {() => void} [whileAway]
 */
async function moveAfterKill(peer, dead, to, transport, whileAway = () => {}) {
  await dead.kill('SIGKILL');
  await until(() => !peer.socket.connected, 10000, `${peer.name} notices the loss`);
  whileAway();
  const resumed = new Promise((resolve) => peer.channel.once('resumed', resolve));
  peer.socket.disconnect(); // stop reconnecting to the dead instance
  const socket = connect(to, { transport });
  peer.channel.attach(socket);
  peer.socket = socket;
  return /** @type {Promise<any>} */ (resumed);
}

for (const transport of TRANSPORTS) {
  test(`caller's instance killed during the answerer's join, candidates in flight (${transport})`, async (t) => {
    await withCluster(t, {}, async ({ a, b }) => {
      const room = roomName('loss-handoff');
      const caller = await makePeer('caller', a.url, { transport });
      await caller.channel.join(room);
      const peerId = caller.channel.peer;
      const watch = watchEmits(caller.socket);
      assert.equal((await caller.channel.send('offer', { sdp: sdp('offer') })).held, true);
      for (let i = 0; i < 20; i++) {
        assert.equal((await caller.channel.send('candidate', { candidate: cand('caller', i) })).held, true);
      }
      const answerer = await makePeer('answerer', b.url, { transport });

      const sends = [];
      const joining = answerer.channel.join(room);
      // Sent around the join, while A still runs.
      for (let i = 20; i < 30; i++) sends.push(caller.channel.send('candidate', { candidate: cand('caller', i) }));
      a.proc.kill('SIGKILL');
      // Emitted on the connection to A after the signal: A never answers them.
      for (let i = 30; i < 40; i++) sends.push(caller.channel.send('candidate', { candidate: cand('caller', i) }));
      const resumed = await moveAfterKill(caller, a, b.url, transport, () => {
        // Queued while the caller has no connection.
        for (let i = 40; i < 45; i++) sends.push(caller.channel.send('candidate', { candidate: cand('caller', i) }));
      });
      assert.equal(resumed.peer, peerId);
      assert.equal(resumed.role, 'caller');
      const aj = await joining;
      assert.equal(aj.role, 'answerer');
      const replies = await Promise.all(sends);
      assert.ok(replies.every((r) => r.ok === true), JSON.stringify(replies));
      const lostOnA = watch.unanswered();
      t.diagnostic(`candidates A never answered (seqs): ${lostOnA.join(',')}; resume next=${resumed.next}`);
      assert.ok(lostOnA.length > 0, 'some candidates were emitted to A and never answered by it');

      await answerer.waitFor('candidate', 45, 15000);
      await answerer.channel.send('answer', { sdp: sdp('answer') });
      await caller.waitFor('answer', 1);
      await Promise.all([
        ...Array.from({ length: 20 }, (_, i) => caller.channel.send('candidate', { candidate: cand('caller', 45 + i) })),
        ...Array.from({ length: 20 }, (_, i) => answerer.channel.send('candidate', { candidate: cand('answerer', i) })),
      ]);
      await answerer.waitFor('candidate', 65);
      await caller.waitFor('candidate', 20);
      await sleep(1500); // longer than the resend interval: a duplicate would show by now

      assert.deepEqual(answerer.events('offer').map((o) => [o.sdp, o.from]), [[sdp('offer'), peerId]], 'one offer');
      assert.equal(answerer.log[0].event, 'offer');
      assertSequence(answerer.events('candidate').map(candIndex), 65, 'answerer received');
      assert.ok(answerer.events('candidate').every((c) => c.from === peerId));
      assert.deepEqual(caller.events('answer').map((x) => x.sdp), [sdp('answer')], 'one answer');
      assert.deepEqual(caller.log.map((l) => l.event), ['peer-joined', 'answer', ...Array(20).fill('candidate')]);
      assertSequence(caller.events('candidate').map(candIndex), 20, 'caller received');
      assert.equal(answerer.events('peer-left').length, 0);
      assert.deepEqual(caller.resumeFailures, []);
      assertGaplessSeq(caller);
      assertGaplessSeq(answerer);
    });
  });

  test(`caller's instance killed mid-call while candidates stream both ways (${transport})`, async (t) => {
    await withCluster(t, {}, async ({ a, b }) => {
      const N = 100;
      const room = roomName('loss-midcall');
      const caller = await makePeer('caller', a.url, { transport });
      const answerer = await makePeer('answerer', b.url, { transport });
      await caller.channel.join(room);
      const peerId = caller.channel.peer;
      await caller.channel.send('offer', { sdp: sdp('offer') });
      await answerer.channel.join(room);
      await answerer.waitFor('offer', 1);
      await answerer.channel.send('answer', { sdp: sdp('answer') });
      await caller.waitFor('answer', 1);

      /** @type {Promise<any>[]} */
      const sends = [];
      let callerSent = 0;
      let answererSent = 0;
      /** @param {import('./harness.mjs').Peer} p */
      const stream = async (p, onSent = () => {}) => {
        for (let i = 0; i < N; i++) {
          sends.push(p.channel.send('candidate', { candidate: cand(p.name, i) }));
          onSent();
          await sleep(5);
        }
      };
      /** @type {Promise<any> | null} */
      let moving = null;
      let sentAtKill = -1;
      await Promise.all([
        stream(caller, () => {
          if (++callerSent === N / 2) {
            sentAtKill = answererSent;
            moving = moveAfterKill(caller, a, b.url, transport);
          }
        }),
        stream(answerer, () => { answererSent++; }),
      ]);
      const resumed = await /** @type {Promise<any>} */ (moving);
      assert.equal(resumed.peer, peerId);
      const replies = await Promise.all(sends);
      assert.ok(replies.every((r) => r.ok === true), JSON.stringify(replies.filter((r) => r.ok !== true)));
      t.diagnostic(`at the kill: caller had sent ${N / 2}, answerer ${sentAtKill}; resume next=${resumed.next} acked=${resumed.acked}`);
      assert.ok(sentAtKill > 0 && sentAtKill < N, 'the kill happened in the middle of the answerer\'s stream too');

      await answerer.waitFor('candidate', N, 15000);
      await caller.waitFor('candidate', N, 15000);
      await sleep(1500); // longer than the resend interval: a duplicate would show by now
      assertSequence(answerer.events('candidate').map(candIndex), N, 'answerer received');
      assertSequence(caller.events('candidate').map(candIndex), N, 'caller received');
      assert.deepEqual(caller.log.map((l) => l.event), ['peer-joined', 'answer', ...Array(N).fill('candidate')]);
      assert.equal(answerer.events('peer-left').length, 0);
      assert.deepEqual(caller.resumeFailures, []);
      assertGaplessSeq(caller);
      assertGaplessSeq(answerer);
    });
  });
}

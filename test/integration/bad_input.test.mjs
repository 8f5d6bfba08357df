// Malformed and misplaced requests from a raw official client each get the documented error
// code, and the instance keeps working afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TRANSPORTS, withCluster, connect, connected, makePeer, request, roomName, sdp, cand, sleep,
} from './harness.mjs';

const ENV = {
  SWITCHBOARD_MAX_SDP_BYTES: '1024',
  SWITCHBOARD_MAX_HELD_CANDIDATES: '3',
  SWITCHBOARD_REORDER_TIMEOUT: '500ms',
};

/**
 * @param {any} reply
 * @param {string | string[]} code one code, or the codes the protocol leaves open
 * @param {string} label
 */
function assertError(reply, code, label) {
  const codes = Array.isArray(code) ? code : [code];
  assert.equal(typeof reply, 'object', `${label}: reply is an object (got ${JSON.stringify(reply)})`);
  assert.ok(reply !== null, `${label}: reply is not null`);
  assert.equal(reply.ok, false, `${label}: expected ok:false, got ${JSON.stringify(reply)}`);
  assert.ok(codes.includes(reply.error?.code), `${label}: expected ${codes.join(' or ')}, got ${JSON.stringify(reply)}`);
  assert.equal(typeof reply.error.message, 'string', `${label}: error.message is a string`);
}

/**
 * @param {any} reply
 * @param {string} label
 * @param {object} [fields] expected fields
 */
function assertOk(reply, label, fields = {}) {
  assert.equal(reply?.ok, true, `${label}: expected ok:true, got ${JSON.stringify(reply)}`);
  for (const [k, v] of Object.entries(fields)) {
    assert.deepEqual(reply[k], v, `${label}: ${k} should be ${JSON.stringify(v)} in ${JSON.stringify(reply)}`);
  }
}

for (const transport of TRANSPORTS) {
  test(`bad input gets the documented error codes; the instance keeps working (${transport})`, async (t) => {
    await withCluster(t, ENV, async ({ a, b }) => {
      const s = connect(a.url, { transport });
      await connected(s);
      const R = roomName('bad');
      const other = roomName('never-joined');

      // --- join: not an object, missing or malformed fields
      assertError(await request(s, 'join', 'notanobject'), 'bad_request', 'join string payload');
      assertError(await request(s, 'join', 42), 'bad_request', 'join number payload');
      assertError(await request(s, 'join', [R]), 'bad_request', 'join array payload');
      assertError(await request(s, 'join', null), 'bad_request', 'join null payload');
      assertError(await request(s, 'join'), 'bad_request', 'join without payload');
      // An open server names a room itself when the join names none: unguessable, and a caller's.
      const creator = connect(a.url, { transport });
      await connected(creator);
      const created = await request(creator, 'join', {});
      assert.equal(created.ok, true, `join without a room: ${JSON.stringify(created)}`);
      assert.match(created.room, /^[A-Za-z0-9_-]{22}$/);
      assert.equal(created.role, 'caller');
      creator.disconnect();
      assertError(await request(s, 'join', { room: 5 }), 'bad_request', 'join room not a string');
      assertError(await request(s, 'join', { room: '' }), 'bad_request', 'join empty room');
      assertError(await request(s, 'join', { room: 'has space' }), 'bad_request', 'join room with a space');
      assertError(await request(s, 'join', { room: 'x'.repeat(129) }), 'bad_request', 'join room too long');
      assertError(await request(s, 'join', { room: R, nonce: 'short' }), 'bad_request', 'join nonce too short');
      assertError(await request(s, 'join', { room: R, nonce: 12345678 }), 'bad_request', 'join nonce not a string');

      // --- events for a room this connection did not join
      assertError(await request(s, 'offer', 'notanobject'), 'bad_request', 'offer string payload');
      assertError(await request(s, 'offer', { seq: 1, sdp: sdp('x') }), 'bad_request', 'offer missing room');
      assertError(await request(s, 'offer', { room: other, seq: 1, sdp: sdp('x') }), 'not_joined', 'offer for a room not joined');
      assertError(await request(s, 'candidate', { room: other, seq: 1, candidate: cand('x', 0) }), 'not_joined', 'candidate for a room not joined');
      assertError(await request(s, 'hangup', { room: other, seq: 1 }), 'not_joined', 'hangup for a room not joined');
      assertError(await request(s, 'leave', { room: other, seq: 1 }), 'not_joined', 'leave for a room not joined');
      assertError(await request(s, 'ack', { room: other, seq: 1 }), 'not_joined', 'ack for a room not joined');

      // --- unknown events
      assertError(await request(s, 'frobnicate', { room: R }), 'unknown_event', 'unknown event with ack');
      s.emit('frobnicate', { room: R }); // without ack: ignored

      // --- joined as caller, alone
      const joined = await request(s, 'join', { room: R, nonce: 'nonce-bad-input-1' });
      assertOk(joined, 'join', { role: 'caller', next: 1 });
      assertError(await request(s, 'offer', { room: R, seq: '1', sdp: sdp('x') }), 'bad_request', 'seq not an integer');
      assertError(await request(s, 'offer', { room: R, seq: 0, sdp: sdp('x') }), 'bad_request', 'seq 0');
      assertError(await request(s, 'offer', { room: R, seq: 1.5, sdp: sdp('x') }), 'bad_request', 'seq not whole');
      // From here on room and seq are valid: each rejection consumes its seq.
      assertError(await request(s, 'offer', { room: R, seq: 1, sdp: 5 }), 'bad_request', 'sdp not a string (seq 1)');
      assertError(await request(s, 'offer', { room: R, seq: 2, sdp: '' }), 'bad_request', 'empty sdp (seq 2)');
      assertError(await request(s, 'offer', { room: R, seq: 3, sdp: `v=0\r\n${'a'.repeat(2000)}` }), 'too_large', 'sdp over MAX_SDP_BYTES (seq 3)');
      assertError(await request(s, 'candidate', { room: R, seq: 4, candidate: cand('x', 0) }), 'no_offer', 'candidate alone without a held offer (seq 4)');
      assertError(await request(s, 'answer', { room: R, seq: 5, sdp: sdp('x') }), ['no_offer', 'no_peer'], 'answer alone without any offer (seq 5)');
      assertOk(await request(s, 'offer', { room: R, seq: 6, sdp: sdp('held') }), 'valid offer after rejections (seq 6)', { seq: 6, held: true });
      assertOk(await request(s, 'offer', { room: R, seq: 6, sdp: sdp('held') }), 'the same seq again', { seq: 6, duplicate: true });
      // A consumed seq is never applied again: a duplicate, or its error once more.
      const again = await request(s, 'offer', { room: R, seq: 1, sdp: sdp('held') });
      t.diagnostic(`a rejected seq sent again (now valid) is answered ${JSON.stringify(again)}`);
      assert.ok(again.ok === false || again.duplicate === true, `rejected seq 1 again: ${JSON.stringify(again)}`);
      for (let seq = 7; seq <= 9; seq++) {
        assertOk(await request(s, 'candidate', { room: R, seq, candidate: cand('x', seq) }), `held candidate (seq ${seq})`, { held: true });
      }
      assertError(await request(s, 'candidate', { room: R, seq: 10, candidate: cand('x', 10) }), 'too_many_candidates', 'fourth held candidate (seq 10)');
      assertError(await request(s, 'candidate', { room: R, seq: 11, candidate: { candidate: 5 } }), 'bad_request', 'candidate string not a string (seq 11)');
      assertError(await request(s, 'candidate', { room: R, seq: 12, candidate: { ...cand('x', 0), sdpMLineIndex: 70000 } }), 'bad_request', 'sdpMLineIndex out of range (seq 12)');
      assertError(await request(s, 'candidate', { room: R, seq: 13, candidate: 'candidate:1 1 udp' }), 'bad_request', 'candidate not an object (seq 13)');
      assertError(await request(s, 'candidate', { room: R, seq: 14, candidate: { ...cand('x', 0), candidate: `candidate:${'9'.repeat(3000)}` } }), 'too_large', 'candidate over MAX_CANDIDATE_BYTES (seq 14)');
      assertError(await request(s, 'offer', { room: R, seq: 15, sdp: sdp('x'), to: 5 }), 'bad_request', 'to not a string (seq 15)');
      // A gap: seq 30 waits for 16..29, which never come.
      const started = Date.now();
      assertError(await request(s, 'hangup', { room: R, seq: 30 }), 'out_of_order', 'seq after a gap');
      t.diagnostic(`out_of_order after ${Date.now() - started} ms (reorder timeout 500 ms)`);
      // ...and out_of_order did not consume seq 30, nor anything before it.
      assertOk(await request(s, 'offer', { room: R, seq: 16, sdp: sdp('replaced') }), 'seq 16 after out_of_order', { seq: 16, held: true });

      // --- ack
      assertError(await request(s, 'ack', { room: R, seq: 'x' }), 'bad_request', 'ack seq not an integer');
      assertError(await request(s, 'ack', { room: R }), 'bad_request', 'ack missing seq');
      assertError(await request(s, 'ack', 'x'), 'bad_request', 'ack string payload');
      assertOk(await request(s, 'ack', { room: R, seq: 1000 }), 'ack above the last assigned seq is idempotent');

      // --- resume
      // (from a fresh connection: this one is a member of R already)
      const fresh = connect(b.url, { transport });
      await connected(fresh);
      assertError(await request(fresh, 'resume', {}), 'bad_request', 'resume without fields');
      assertError(await request(fresh, 'resume', { room: R, peer: joined.peer }), 'bad_request', 'resume without token');
      assertError(await request(fresh, 'resume', { room: R, peer: joined.peer, token: '' }), 'bad_request', 'resume with an empty token');
      assertError(await request(fresh, 'resume', { room: R, peer: joined.peer, token: 'wrong-token' }), 'resume_failed', 'resume with a bad token');
      assertError(await request(fresh, 'resume', { room: other, peer: joined.peer, token: joined.token }), 'resume_failed', 'resume in an unknown room');
      assertError(await request(fresh, 'resume', { room: R, peer: 'nosuchpeer0000', token: joined.token }), 'resume_failed', 'resume of an unknown peer');
      assertError(await request(s, 'resume', { room: R, peer: joined.peer, token: 'wrong-token' }), 'resume_failed', 'resume with a bad token, own connection');
      fresh.disconnect();

      // --- a second room with two members: answer without offer, full room, binary
      const R2 = roomName('bad2');
      const s2 = connect(a.url, { transport });
      const s3 = connect(b.url, { transport });
      const s4 = connect(b.url, { transport });
      await Promise.all([connected(s2), connected(s3), connected(s4)]);
      assertOk(await request(s2, 'join', { room: R2 }), 'join R2 (caller)', { role: 'caller' });
      assertOk(await request(s3, 'join', { room: R2 }), 'join R2 (answerer)', { role: 'answerer' });
      assertError(await request(s4, 'join', { room: R2 }), 'room_full', 'third member with capacity 2');
      assertError(await request(s3, 'answer', { room: R2, seq: 1, sdp: sdp('x') }), 'no_offer', 'answer without an offer');
      assertError(await request(s3, 'candidate', { room: R2, seq: 2, candidate: cand('x', 0), to: 'nosuchpeer0000' }), 'no_peer', 'candidate to an unknown peer');
      assertError(await request(s3, 'hangup', { room: R2 }), 'bad_request', 'hangup without seq');
      assertError(await request(s3, 'offer', { room: R2, seq: 3, sdp: Buffer.from('v=0') }), 'bad_request', 'binary attachment');
      // Whether the binary message consumed seq 3 or not, seq 3 and 4 go through now.
      const after = await request(s3, 'hangup', { room: R2, seq: 3 });
      assertOk(after, 'seq 3 after the binary message');
      t.diagnostic(`seq 3 after a binary message with seq 3: ${JSON.stringify(after)}`);
      assertOk(await request(s3, 'offer', { room: R2, seq: 4, sdp: sdp('live') }), 'answerer offers live', { seq: 4, held: false });
      assertOk(await request(s2, 'answer', { room: R2, seq: 1, sdp: sdp('answer') }), 'caller answers', { seq: 1 });
      assertError(await request(s2, 'answer', { room: R2, seq: 2, sdp: sdp('answer') }), 'no_offer', 'a second answer to the same offer');
      for (const sock of [s, s2, s3, s4]) assert.equal(sock.connected, true, 'bad input does not cost the connection');
      for (const sock of [s, s2, s3, s4]) sock.disconnect();

      // --- the instances still work
      for (const inst of [a, b]) {
        assert.equal(inst.running(), true, `instance ${inst.id} still running`);
        const res = await fetch(`${inst.url}/healthz`);
        assert.equal(res.status, 200, `instance ${inst.id} /healthz`);
      }
      const room = roomName('after-bad');
      const caller = await makePeer('caller', a.url, { transport });
      const answerer = await makePeer('answerer', b.url, { transport });
      await caller.channel.join(room);
      await caller.channel.send('offer', { sdp: sdp('offer') });
      await caller.channel.send('candidate', { candidate: cand('caller', 0) });
      await answerer.channel.join(room);
      await answerer.waitFor('candidate', 1);
      await answerer.channel.send('answer', { sdp: sdp('answer') });
      await caller.waitFor('answer', 1);
      await answerer.channel.send('candidate', { candidate: cand('answerer', 0) });
      await caller.waitFor('candidate', 1);
      await caller.channel.send('hangup');
      await answerer.waitFor('hangup', 1);
      await sleep(100);
      assert.deepEqual(answerer.log.map((l) => l.event), ['offer', 'candidate', 'hangup']);
    });
  });
}

// Binary attachments are refused wherever they sit, in fields the server reads or not: the
// event gets bad_request and changes nothing (no membership, no held offer, no seq consumed).
for (const transport of TRANSPORTS) {
  test(`a binary attachment anywhere refuses the event and changes nothing (${transport})`, async (t) => {
    await withCluster(t, {}, async ({ a }) => {
      const R = roomName('binary');
      const s = connect(a.url, { transport });
      await connected(s);
      const blob = Buffer.from('not for the server');
      assertError(await request(s, 'join', { room: R, blob }), 'bad_request', 'join with a binary field');
      assertError(await request(s, 'join', { room: R, deep: { list: [1, blob] } }), 'bad_request', 'join with nested binary');
      assertError(await request(s, 'join', { room: R }, blob), 'bad_request', 'join with a binary argument');
      // Nothing was joined: the next joiner is the room's caller.
      const caller = await makePeer('caller', a.url, { transport });
      assert.equal((await caller.channel.join(R)).role, 'caller');
      const c = caller.socket;
      assertError(await request(c, 'offer', { room: R, seq: 1, sdp: sdp('with-blob'), blob }), 'bad_request', 'offer with a binary field');
      assertError(await request(c, 'offer', { room: R, seq: 1, sdp: sdp('with-arg') }, blob), 'bad_request', 'offer with a binary argument');
      // Nothing was held and seq 1 is still free.
      const held = await caller.channel.send('offer', { sdp: sdp('plain') });
      assert.deepEqual([held.seq, held.held, held.duplicate], [1, true, undefined], JSON.stringify(held));
      const answerer = await makePeer('answerer', a.url, { transport });
      assert.equal((await answerer.channel.join(R)).role, 'answerer');
      const [offer] = await answerer.waitFor('offer', 1);
      assert.equal(offer.sdp, sdp('plain'));
      assert.equal(s.connected && c.connected, true, 'refused events do not cost the connection');
      await sleep(200);
      assert.equal(answerer.events('offer').length, 1);
    }, { ids: ['a'] });
  });
}

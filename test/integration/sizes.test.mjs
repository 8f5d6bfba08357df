// Size limits at the edges: the join reply announces them and the bundled delivery layer refuses
// an oversized SDP or candidate itself (too_large, nothing sent, the connection kept); a raw
// client's frame over SWITCHBOARD_MAX_MESSAGE_BYTES, or one that cannot be parsed, closes its
// connection without a reply, and the membership stays resumable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TRANSPORTS, withCluster, connect, connected, makePeer, request, roomName, sdp, cand, until, sleep,
} from './harness.mjs';

const ENV = {
  SWITCHBOARD_MAX_MESSAGE_BYTES: '4096',
  SWITCHBOARD_MAX_SDP_BYTES: '2048',
  SWITCHBOARD_MAX_CANDIDATE_BYTES: '256',
};

test('the bundled delivery layer refuses an SDP or candidate over the announced limits before sending', async (t) => {
  await withCluster(t, ENV, async ({ a }) => {
    const room = roomName('sizes');
    const caller = await makePeer('caller', a.url);
    const joined = await caller.channel.join(room);
    /** @type {string[]} */
    const outgoing = [];
    caller.socket.onAnyOutgoing((/** @type {string} */ event) => outgoing.push(event));
    assert.deepEqual(joined.limits, { maxSdpBytes: 2048, maxCandidateBytes: 256, maxMessageBytes: 4096 });
    /** @param {Promise<any>} sent */
    const refused = (sent) => assert.rejects(Promise.race([
      sent, sleep(3000).then(() => { throw new Error('not refused at once'); }),
    ]), { code: 'too_large' });
    await refused(caller.channel.send('offer', { sdp: `v=0\r\n${'a'.repeat(3000)}` }));
    await refused(caller.channel.send('offer', { sdp: `v=0\r\n${'a'.repeat(1 << 20)}` }));
    await refused(caller.channel.send('candidate', { candidate: { ...cand('c', 0), candidate: `candidate:${'9'.repeat(300)}` } }));
    // Within the SDP limit but, with its JSON escapes, over the message limit.
    await refused(caller.channel.send('offer', { sdp: '\u0001'.repeat(1000) }));
    assert.deepEqual(outgoing.filter((e) => e !== 'ack'), [], 'nothing oversized was sent');
    assert.equal(caller.socket.connected, true);
    // No seq was used: the next offer is seq 1, and it is held.
    const held = await caller.channel.send('offer', { sdp: sdp('fits') });
    assert.deepEqual([held.seq, held.held], [1, true]);
  }, { ids: ['a'] });
});

for (const transport of TRANSPORTS) {
  test(`a frame over the message limit or unparseable closes the connection; the membership resumes (${transport})`, async (t) => {
    await withCluster(t, ENV, async ({ a }) => {
      const room = roomName('frames');
      const s = connect(a.url, { transport });
      await connected(s);
      const joined = await request(s, 'join', { room });
      assert.equal(joined.ok, true, JSON.stringify(joined));
      /** @type {string[]} */
      const reasons = [];
      s.on('disconnect', (/** @type {string} */ reason) => reasons.push(reason));

      // Over SWITCHBOARD_MAX_MESSAGE_BYTES: no reply, the connection is closed.
      const big = request(s, 'offer', { room, seq: 1, sdp: `v=0\r\n${'a'.repeat(1 << 20)}` }).then(
        (r) => ({ reply: r }), (e) => ({ error: String(e?.message ?? e) }));
      await until(() => reasons.length >= 1, 10000, 'the connection closed after the oversized frame');
      t.diagnostic(`oversized frame: disconnect "${reasons[0]}", emit ${JSON.stringify(await big)}`);
      assert.equal('reply' in (await big), false, 'an oversized frame gets no reply');
      await connected(s);
      const resumed = await request(s, 'resume', { room, peer: joined.peer, token: joined.token });
      assert.equal(resumed.ok, true, `resume after the oversized frame: ${JSON.stringify(resumed)}`);
      assert.equal(resumed.next, 1, 'the oversized offer was not applied');

      // A frame the Socket.IO parser cannot read: the connection is closed too.
      /** @type {any} */ (s.io.engine).write('2["offer",{not json');
      await until(() => reasons.length >= 2, 10000, 'the connection closed after the unparseable frame');
      t.diagnostic(`unparseable frame: disconnect "${reasons[1]}"`);
      await connected(s);
      const again = await request(s, 'resume', { room, peer: joined.peer, token: joined.token });
      assert.equal(again.ok, true, `resume after the unparseable frame: ${JSON.stringify(again)}`);
      assert.equal(again.next, 1);
      s.disconnect();
    }, { ids: ['a'] });
  });
}

// A room token given to join travels in the join payload (docs/protocol.md, "Room tokens").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SignalingChannel } from '../src/channel.js';

/** A socket that answers every join with a membership and records the payloads. */
function recordingSocket() {
  const sent = [];
  return {
    sent,
    connected: true,
    on() {},
    off() {},
    timeout() {
      return {
        emitWithAck: async (event, payload) => {
          sent.push({ event, payload });
          return { ok: true, room: payload.room, peer: 'p1', token: 'resume-token', role: 'caller', peers: [], next: 1 };
        },
      };
    },
  };
}

test('join sends the room token when one is given, and none otherwise', async () => {
  const withToken = recordingSocket();
  const a = new SignalingChannel(withToken);
  await a.join('r1', { token: 'eyJhbGciOiJIUzI1NiJ9.e30.sig' });
  assert.equal(withToken.sent[0].event, 'join');
  assert.equal(withToken.sent[0].payload.token, 'eyJhbGciOiJIUzI1NiJ9.e30.sig');
  assert.equal(withToken.sent[0].payload.room, 'r1');
  a.close();

  const without = recordingSocket();
  const b = new SignalingChannel(without);
  await b.join('r2');
  assert.equal('token' in without.sent[0].payload, false);
  b.close();
});

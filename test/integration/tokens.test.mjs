// Room tokens: with SWITCHBOARD_AUTH_SECRET set, a join needs a token for its room, minted by
// `switchboard token`; the delivery layer carries it. Instances on both sides verify it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { buildServer, withCluster, makePeer, roomName, sdp } from './harness.mjs';

const SECRET = 'integration-secret-0123456789abcdef';

/** @param {string[]} args */
async function mint(args) {
  const bin = await buildServer();
  return new Promise((resolve, reject) => {
    execFile(bin, ['token', ...args], { env: { ...process.env, SWITCHBOARD_AUTH_SECRET: SECRET } },
      (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout.trim())));
  });
}

test('joins need a room token minted for that room', async (t) => {
  await withCluster(t, { SWITCHBOARD_AUTH_SECRET: SECRET }, async ({ a, b }) => {
    const room = roomName('tok');
    const callerToken = await mint(['-room', room, '-subject', 'alice', '-role', 'caller']);
    const answererToken = await mint(['-room', room, '-subject', 'bob', '-role', 'answerer']);
    const otherRoom = await mint(['-room', roomName('elsewhere'), '-subject', 'mallory']);

    const intruder = await makePeer('intruder', a.url);
    await assert.rejects(intruder.channel.join(room), { code: 'unauthorized' });
    const intruder2 = await makePeer('intruder2', a.url);
    await assert.rejects(intruder2.channel.join(room, { token: otherRoom }), { code: 'forbidden' });
    const early = await makePeer('early-answerer', a.url);
    await assert.rejects(early.channel.join(room, { token: answererToken }), { code: 'forbidden' },
      'an answerer token cannot open the room');

    const caller = await makePeer('caller', a.url);
    assert.equal((await caller.channel.join(room, { token: callerToken })).role, 'caller');
    assert.equal((await caller.channel.send('offer', { sdp: sdp('o') })).held, true);
    const answerer = await makePeer('answerer', b.url);
    assert.equal((await answerer.channel.join(room, { token: answererToken })).role, 'answerer');
    await answerer.waitFor('offer', 1);
  });
});

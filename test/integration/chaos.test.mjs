// Guarantee under faults: with calls running on three instances, one instance killed (SIGKILL)
// and Redis restarted mid-run, every message a peer sent and the server acknowledged reaches
// the other peer exactly once, in order. A short run of chaos.mjs; `npm run chaos` runs a long one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runChaos, formatResult } from './chaos.mjs';

test('chaos: instance killed and Redis restarted mid-run; every message delivered exactly once', async (t) => {
  const r = await runChaos({ calls: 16, seconds: 12, intervalMs: 250, log: (line) => t.diagnostic(line) });
  for (const line of formatResult(r).split('\n')) t.diagnostic(line);

  // The faults happened while messages flowed, and the moved peers went on sending.
  const p = r.phases;
  assert.ok(r.kill.peersMoved > 0, 'the killed instance had peers');
  assert.ok(p.sentBeforeKill > 0 && p.sentAfterKill > 0, `sent around the kill: ${p.sentBeforeKill}/${p.sentAfterKill}`);
  assert.ok(p.sentByMovedPeersAfterKill > 0, 'moved peers sent after the kill');
  assert.ok(p.sentBeforeRedis > 0 && p.sentWhileRedisDown > 0 && p.sentAfterRedis > 0,
    `sent around the Redis restart: ${p.sentBeforeRedis}/${p.sentWhileRedisDown}/${p.sentAfterRedis}`);

  assert.equal(r.lost, 0, `lost: ${r.samples.lost.join('; ')}`);
  assert.equal(r.duplicated, 0, `duplicated: ${r.samples.duplicated.join('; ')}`);
  assert.equal(r.outOfOrder, 0, `out of order: ${r.samples.outOfOrder.join('; ')}`);
  assert.equal(r.refused, 0, `refused: ${r.samples.refused.join('; ')}`);
  assert.equal(r.unsettled, 0, `never answered: ${r.samples.unsettled.join('; ')}`);
  assert.equal(r.unexpected, 0, `received but never sent: ${r.samples.unexpected.join('; ')}`);
  assert.deepEqual(r.errors, []);
  assert.equal(r.delivered, r.sent);
});

// Fault: Redis goes away mid-call and comes back (append-only file on). While it is down, joins
// and offers get `unavailable`, /readyz says 503 and the instances stay idle (no reconnect
// spin); once it is back the held offer, every candidate and the call complete, with no
// instance restarted.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  startInstance, freePort, connect, connected, makePeer, request, roomName, sdp, cand, sleep, until,
} from './harness.mjs';
import { startDurableRedis, killAll } from './redis_procs.mjs';

after(killAll);

/** CPU seconds (user+system) a process has used, from /proc. */
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100 Hz)
}

async function readyz(url) {
  return (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(3000) })).status;
}

test('Redis restart mid-call: unavailable while down, nothing lost, no spin', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-redis-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  let redis = await startDurableRedis(port, dir);
  const env = { REDIS_URL: `redis://127.0.0.1:${port}` };
  const prefix = `it-restart-${process.pid}:`;
  const a = await startInstance({ id: 'a', prefix, env });
  const b = await startInstance({ id: 'b', prefix, env });
  t.after(async () => { await a.kill(); await b.kill(); });

  const room = roomName('restart');
  const caller = await makePeer('caller', a.url, { retryMs: 300 });
  await caller.channel.join(room);
  assert.equal((await caller.channel.send('offer', { sdp: sdp('o') })).held, true);
  for (let i = 0; i < 3; i++) await caller.channel.send('candidate', { candidate: cand('c', i) });

  redis.kill('SIGKILL');
  await new Promise((r) => redis.once('exit', r));

  // Down: clear errors, not ready, and idle.
  const probe = connect(b.url);
  await connected(probe);
  const join = await request(probe, 'join', { room: roomName('while-down') });
  assert.equal(join?.error?.code, 'unavailable', JSON.stringify(join));
  assert.equal(await readyz(a.url), 503);
  assert.equal(await readyz(b.url), 503);
  // A candidate sent now is refused with unavailable and retried by the delivery layer.
  const late = caller.channel.send('candidate', { candidate: cand('c', 3) });
  const cpu0 = cpuSeconds(a.proc.pid) + cpuSeconds(b.proc.pid);
  await sleep(3000);
  const cpuShare = (cpuSeconds(a.proc.pid) + cpuSeconds(b.proc.pid) - cpu0) / 3 / 2;
  t.diagnostic(`CPU of the two instances while Redis was down: ${(cpuShare * 100).toFixed(1)}% of a core each`);
  // A reconnect loop without backoff burns a core (the Socket.IO Redis adapter: 35–40%).
  assert.ok(cpuShare < 0.15, `instances busy while Redis is down: ${(cpuShare * 100).toFixed(1)}%`);

  redis = await startDurableRedis(port, dir);
  await until(async () => (await readyz(a.url)) === 200 && (await readyz(b.url)) === 200, 15000, 'ready again');
  assert.equal((await late).ok, true, 'the candidate sent while Redis was down is applied after');

  const answerer = await makePeer('answerer', b.url);
  await answerer.channel.join(room);
  await answerer.waitFor('candidate', 4, 15000);
  assert.deepEqual(answerer.events('candidate').map((p) => p.candidate.candidate),
    [0, 1, 2, 3].map((i) => cand('c', i).candidate), 'held candidates survived the restart, in order');
  await answerer.channel.send('answer', { sdp: sdp('a') });
  await caller.waitFor('answer', 1, 15000);
  probe.disconnect();
  redis.kill('SIGKILL');
});

// Fault test: many connect / join / leave / disconnect cycles leave nothing behind in the server.
// bench/loadgen's churn mode runs the cycles against one instance (solo joins, held offers
// dropped by leave, and caller/answerer pairs with a hand-off), reads the server's goroutines,
// heap, connections and members from /metrics at rest before and after, counts the Redis keys
// under the instance's prefix, and exits non-zero on any failed cycle or growth over its bounds
// (bench/loadgen/main.go says why those bounds). This test checks its verdict and its numbers.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, REDIS_URL, startInstance, newPrefix } from './harness.mjs';

// 10,000 cycles: the instance here is built with -race and does 130-190 cycles/s on the 2-core
// CI machine (280-390 without -race), so 100,000 would take 10-13 minutes; 10,000 take 60-85 s.
// With 8 MiB of allowed heap growth they still catch a leak of ~850 bytes per cycle, or one
// goroutine per 500 cycles. docs/benchmarks.md ("Churn") has 100,000 cycles without -race.
const CYCLES = 10000;
const CONCURRENCY = 32;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-churn-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** @returns {Promise<string>} the load generator's binary */
function buildLoadgen() {
  const bin = path.join(dir, 'loadgen');
  return new Promise((resolve, reject) => {
    execFile('go', ['build', '-o', bin, './bench/loadgen'], { cwd: ROOT, maxBuffer: 16 << 20 },
      (err, _stdout, stderr) => (err ? reject(new Error(`go build ./bench/loadgen failed:\n${stderr}`)) : resolve(bin)));
  });
}

/** The Redis to count keys in, when it is a single loopback server the load generator accepts. */
function redisForCount() {
  const u = new URL(REDIS_URL);
  return u.protocol === 'redis:' && ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname) ? REDIS_URL : '';
}

/**
 * Runs the load generator to its end (killed after timeoutMs).
 * @param {string} bin @param {string[]} args @param {number} timeoutMs
 * @returns {Promise<{code: number | null, signal: string | null, stdout: string, stderr: string}>}
 */
function run(bin, args, timeoutMs) {
  return new Promise((resolve) => {
    const p = spawn(bin, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('exit', (code, signal) => { clearTimeout(t); resolve({ code, signal, stdout, stderr }); });
  });
}

test(`${CYCLES} connect/join/leave/disconnect cycles leave no growth in goroutines or heap`, { timeout: 15 * 60_000 }, async (t) => {
  const prefix = newPrefix();
  const [bin, inst] = await Promise.all([buildLoadgen(), startInstance({ id: 'churn', prefix })]);
  const redis = redisForCount();
  const args = ['-mode', 'churn', '-label', 'it', '-addrs', `127.0.0.1:${inst.port}`,
    '-cycles', String(CYCLES), '-concurrency', String(CONCURRENCY)];
  if (redis) args.push('-redis-url', redis, '-redis-prefix', prefix);
  const res = await run(bin, args, 12 * 60_000);
  const line = res.stdout.split('\n').filter((l) => l.startsWith('{')).pop();
  const report = line ? JSON.parse(line) : null;
  if (res.code !== 0 || !report?.ok) t.diagnostic(res.stderr);
  assert.ok(report, `no JSON report (exit ${res.code}, signal ${res.signal}):\n${res.stderr}`);

  const { before, after_warmup: warm, after: end } = report;
  for (const [name, p] of [['before', before], ['after warm-up', warm], ['after', end]]) {
    t.diagnostic(`${name}: goroutines ${p.goroutines}, heap in use ${(p.heap_inuse_bytes / 2 ** 20).toFixed(2)} MiB, ` +
      `connections ${p.connections}, members ${p.members}, rooms ${p.rooms}, redis keys ${p.redis_keys ?? '-'}`);
  }
  t.diagnostic(`${report.cycles_completed} cycles (${JSON.stringify(report.kinds)}), ${report.conns} connections, ` +
    `${report.cycles_per_s.toFixed(0)} cycles/s, ${report.dial_retries} handshake retries`);

  assert.equal(res.code, 0, `loadgen exit ${res.code} (${res.signal}): ${(report.problems || []).join('; ')}`);
  assert.equal(report.ok, true);
  assert.equal(report.cycles_failed, 0, JSON.stringify(report.errors));
  assert.equal(report.cycles_completed, CYCLES);
  assert.equal(report.goroutine_growth, end.goroutines - warm.goroutines);
  assert.ok(report.goroutine_growth <= report.max_goroutine_growth && report.max_goroutine_growth <= 20,
    `goroutines ${warm.goroutines} -> ${end.goroutines}`);
  assert.equal(report.heap_growth_bytes, end.heap_inuse_bytes - warm.heap_inuse_bytes);
  assert.ok(report.heap_growth_bytes <= report.max_heap_growth_bytes,
    `heap in use ${warm.heap_inuse_bytes} -> ${end.heap_inuse_bytes} B (bound ${report.max_heap_growth_bytes})`);
  assert.ok(report.max_heap_growth_bytes <= Math.max(8 << 20, warm.heap_inuse_bytes / 4), 'heap bound as documented');
  assert.deepEqual([end.connections, end.members, end.rooms], [0, 0, 0], 'connections, members, rooms left');
  if (redis) {
    assert.ok(report.redis_key_growth <= 10, `Redis keys under ${prefix}: ${warm.redis_keys} -> ${end.redis_keys}`);
  }
  assert.doesNotMatch(inst.logs(), /handler panic|"level":"ERROR"/, 'server logged errors');
  await inst.stop();
});

// What the tests that run redis-servers of their own share: redis-cli, free-port checks, a group
// of redis-server processes in one temp dir that stop() kills (SIGKILL) and removes, and a single
// durable server a test may kill and start again on the same data.
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { until } from './harness.mjs';

export const run = promisify(execFile);

/** @type {Set<import('node:child_process').ChildProcess>} every redis-server started here */
const all = new Set();
// Last line of defence: no redis-server outlives the test process.
process.on('exit', () => {
  for (const p of all) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

/** @param {number} port @returns {Promise<boolean>} whether port is free on 127.0.0.1 */
export function portFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** @param {number} port @param {...string} args @returns {Promise<string>} redis-cli's output */
export async function cli(port, ...args) {
  const { stdout } = await run('redis-cli', ['-p', String(port), ...args], { timeout: 5000 });
  return stdout;
}

/** Waits until the node on port answers PING. @param {number} port */
export function waitPing(port) {
  return until(async () => (await cli(port, 'ping').catch(() => '')).includes('PONG'), 10000, `redis ${port} up`);
}

/**
 * Starts redis-server on port with its append-only file (fsync always) in dir; resolves once it
 * answers. Started again on the same dir, it has everything acknowledged before a kill.
 * @param {number} port @param {string} dir
 */
export async function startDurableRedis(port, dir) {
  const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir], { stdio: 'ignore' });
  all.add(p);
  p.once('exit', () => all.delete(p));
  await waitPing(port);
  return p;
}

/** SIGKILLs every redis-server started here that still runs. */
export function killAll() {
  return Promise.all([...all].map(kill));
}

/**
 * A temp dir and the redis-server processes started in it.
 * @param {string} name prefix of the temp dir
 */
export function redisGroup(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  /** @type {import('node:child_process').ChildProcess[]} */
  const procs = [];
  return {
    dir,
    procs,
    /** Spawns redis-server in dir with args. @param {string[]} args */
    spawn(args) {
      const p = spawn('redis-server', args, { cwd: dir, stdio: 'ignore' });
      procs.push(p);
      all.add(p);
      p.once('exit', () => all.delete(p));
      return p;
    },
    /** Kills every process still running and removes dir. */
    async stop() {
      await Promise.all(procs.map(kill));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** SIGKILLs p (if it still runs) and waits for its exit. @param {import('node:child_process').ChildProcess} p */
export function kill(p) {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  return exited;
}

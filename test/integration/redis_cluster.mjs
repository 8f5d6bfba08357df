// A real Redis Cluster for the integration tests: 3 masters and 3 replicas (redis-server
// --cluster-enabled yes, joined by redis-cli --cluster create) on free loopback ports, in a temp
// dir. stop() kills every node and removes the dir.
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, until } from './harness.mjs';

const run = promisify(execFile);

/** @param {number} port @returns {Promise<boolean>} whether port is free on 127.0.0.1 */
function portFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** @returns {Promise<number>} a free port whose cluster bus port (+10000) is free too */
async function nodePort() {
  for (;;) {
    const port = await freePort();
    if (port + 10000 <= 65535 && await portFree(port + 10000)) return port;
  }
}

/** @param {number} port @param {...string} args */
async function cli(port, ...args) {
  const { stdout } = await run('redis-cli', ['-p', String(port), ...args], { timeout: 5000 });
  return stdout;
}

/**
 * Starts the cluster and waits until every node sees all slots served and every replica synced.
 * @returns {Promise<{url: string, ports: number[], stop: () => Promise<void>}>}
 */
export async function startRedisCluster() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-cluster-'));
  /** @type {import('node:child_process').ChildProcess[]} */
  const procs = [];
  const ports = [];
  const stop = async () => {
    await Promise.all(procs.map((p) => {
      if (p.exitCode !== null || p.signalCode !== null) return undefined;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      return exited;
    }));
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 6; i++) {
      const port = await nodePort();
      ports.push(port);
      procs.push(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
        '--appendonly', 'no', '--dir', dir, '--cluster-enabled', 'yes',
        '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000',
        '--cluster-require-full-coverage', 'no'], { stdio: 'ignore' }));
    }
    for (const port of ports) {
      await until(async () => (await cli(port, 'ping').catch(() => '')).includes('PONG'), 10000, `redis ${port} up`);
    }
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas', '1', '--cluster-yes'], { timeout: 60000 });
    await until(async () => {
      for (const port of ports) {
        const info = await cli(port, 'cluster', 'info').catch(() => '');
        if (!info.includes('cluster_state:ok') || !info.includes('cluster_slots_ok:16384')) return false;
        const repl = await cli(port, 'info', 'replication').catch(() => '');
        if (repl.includes('role:slave') && !(repl.includes('master_link_status:up')
          && repl.includes('master_sync_in_progress:0'))) return false;
      }
      return true;
    }, 30000, 'a healthy Redis Cluster');
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`, ports, stop };
}

// A real Redis Sentinel set for the integration tests: a master, one replica of it and three
// sentinels (redis-server --sentinel, quorum 2) on free loopback ports, in a temp dir. stop()
// kills every process and removes the dir.
import fs from 'node:fs';
import path from 'node:path';
import { freePort, until } from './harness.mjs';
import { cli, redisGroup, waitPing, kill } from './redis_procs.mjs';

export const MASTER_NAME = 'sbmaster';
// Sentinel's down-after-milliseconds: how long a silent master takes to be declared down.
const DOWN_AFTER_MS = 2000;

/**
 * @typedef {object} SentinelSet
 * @property {string} url the REDIS_URL (redis+sentinel://…/sbmaster)
 * @property {{port: number, proc: import('node:child_process').ChildProcess}[]} data master first
 * @property {number[]} sentinels their ports
 * @property {() => Promise<number>} masterPort the port the sentinels name as master now
 * @property {(port: number) => Promise<void>} killData SIGKILLs the data node on port
 * @property {() => Promise<void>} stop
 */

/**
 * Starts the set and waits until the replica is in sync and every sentinel knows the master,
 * the replica and the other two sentinels.
 * @returns {Promise<SentinelSet>}
 */
export async function startRedisSentinel() {
  const group = redisGroup('sb-sentinel');
  const { dir, stop } = group;
  const base = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  try {
    const data = [];
    for (const role of ['master', 'replica']) {
      const port = await freePort();
      const args = ['--port', String(port), ...base];
      if (role === 'replica') args.push('--replicaof', '127.0.0.1', String(data[0].port));
      data.push({ port, proc: group.spawn(args) });
      await waitPing(port);
    }
    await until(async () => {
      const repl = await cli(data[1].port, 'info', 'replication').catch(() => '');
      return repl.includes('master_link_status:up') && repl.includes('master_sync_in_progress:0');
    }, 20000, 'the replica in sync');

    const sentinels = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      // Sentinel rewrites its config file, so each gets its own, writable.
      const conf = path.join(dir, `sentinel${i}.conf`);
      fs.writeFileSync(conf, [
        `port ${port}`, 'bind 127.0.0.1', `dir ${dir}`,
        `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${data[0].port} 2`,
        `sentinel down-after-milliseconds ${MASTER_NAME} ${DOWN_AFTER_MS}`,
        `sentinel failover-timeout ${MASTER_NAME} 10000`, '',
      ].join('\n'));
      group.spawn([conf, '--sentinel']);
      sentinels.push(port);
    }
    for (const port of sentinels) await waitPing(port);
    await until(async () => {
      for (const port of sentinels) {
        const m = fields(await cli(port, 'sentinel', 'master', MASTER_NAME).catch(() => ''));
        if (m.flags !== 'master' || m['num-slaves'] !== '1' || m['num-other-sentinels'] !== '2') return false;
      }
      return true;
    }, 30000, 'every sentinel to know the master, the replica and the others');

    const set = /** @type {SentinelSet} */ ({
      url: `redis+sentinel://${sentinels.map((p) => `127.0.0.1:${p}`).join(',')}/${MASTER_NAME}`,
      data,
      sentinels,
      stop,
      async masterPort() {
        for (const port of sentinels) {
          const out = await cli(port, 'sentinel', 'get-master-addr-by-name', MASTER_NAME).catch(() => '');
          const [, p] = out.trim().split('\n');
          if (p) return Number(p);
        }
        throw new Error('no sentinel names a master');
      },
      async killData(port) {
        const node = data.find((d) => d.port === port);
        if (!node) throw new Error(`no data node on ${port}`);
        await kill(node.proc);
      },
    });
    return set;
  } catch (err) {
    await stop();
    throw err;
  }
}

/** @param {string} out redis-cli's flat key/value lines @returns {Record<string, string>} */
function fields(out) {
  const lines = out.trim().split('\n');
  /** @type {Record<string, string>} */
  const m = {};
  for (let i = 0; i + 1 < lines.length; i += 2) m[lines[i]] = lines[i + 1];
  return m;
}

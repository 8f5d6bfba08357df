// A real Redis Cluster for the integration tests: 3 masters and 3 replicas (redis-server
// --cluster-enabled yes, joined by redis-cli --cluster create) on free loopback ports, in a temp
// dir. stop() kills every node and removes the dir.
import { until } from './harness.mjs';
import { portFree, cli, run, redisGroup, waitPing } from './redis_procs.mjs';

/**
 * A cluster node also listens on its port + 10000. Both are taken from below the kernel's
 * ephemeral range (32768 up), so that no outgoing connection can take the bus port between this
 * check and the node's bind.
 * @returns {Promise<number>} a free port whose cluster bus port (+10000) is free too
 */
async function nodePort() {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 2700);
    if (await portFree(port) && await portFree(port + 10000)) return port;
  }
  throw new Error('no free port pair for a cluster node');
}

/**
 * Starts the cluster and waits until every node sees all slots served and every replica synced.
 * @returns {Promise<{url: string, ports: number[], stop: () => Promise<void>}>}
 */
export async function startRedisCluster() {
  const group = redisGroup('sb-cluster');
  const { dir, stop } = group;
  const ports = [];
  try {
    for (let i = 0; i < 6; i++) {
      const port = await nodePort();
      ports.push(port);
      group.spawn(['--port', String(port), '--bind', '127.0.0.1', '--save', '',
        '--appendonly', 'no', '--dir', dir, '--cluster-enabled', 'yes',
        '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000',
        '--cluster-require-full-coverage', 'no']);
    }
    for (const port of ports) await waitPing(port);
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

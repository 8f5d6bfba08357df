// Guarantee on a real Redis Cluster (3 masters, 3 replicas): a held offer and its early
// candidates reach the answerer who joins later on another instance; the answer and live
// candidates both ways are relayed across instances; every message arrives exactly once and in
// order, over websocket and polling. Several rooms at once, so their slots likely fall on
// different masters.
import { test, before, after } from 'node:test';
import { TRANSPORTS, withCluster } from './harness.mjs';
import { crossCall } from './cross_call.mjs';
import { startRedisCluster } from './redis_cluster.mjs';

/** @type {Awaited<ReturnType<typeof startRedisCluster>>} */
let cluster;
before(async () => { cluster = await startRedisCluster(); });
after(async () => { await cluster?.stop(); });

const ROOMS = 3;

for (const transport of TRANSPORTS) {
  test(`calls across two instances on a Redis Cluster (${transport})`, async (t) => {
    await withCluster(t, { REDIS_URL: cluster.url }, async ({ a, b }) => {
      await Promise.all(Array.from({ length: ROOMS }, (_, i) => (i % 2 ? crossCall('cluster', b.url, a.url, transport) : crossCall('cluster', a.url, b.url, transport))));
    });
  });
}

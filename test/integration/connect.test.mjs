// Every new connection completes its Socket.IO handshake promptly, with no help from the client.
// The Go server library rarely leaves a connection's CONNECT unanswered (a race in its
// handshake); the server closes such a connection after SWITCHBOARD_CONNECT_TIMEOUT and the
// official client reconnects by itself. (The other tests' harness also retries a stalled
// connection early; this test turns that off.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TRANSPORTS, withCluster, connect, connected, sleep } from './harness.mjs';

const N = 500;
const BATCH = 50;
const CONNECT_TIMEOUT_MS = 1000;
// The connect timeout, the client's reconnection delay (at most 500 ms in the harness) and
// slack for a loaded machine running the race detector.
const LIMIT_MS = CONNECT_TIMEOUT_MS + 500 + 2500;

for (const transport of TRANSPORTS) {
  test(`${N} fresh connections all connect within ${LIMIT_MS} ms (${transport})`, async (t) => {
    await withCluster(t, { SWITCHBOARD_CONNECT_TIMEOUT: `${CONNECT_TIMEOUT_MS}ms` }, async ({ a }) => {
      /** @type {string[]} */
      const stalled = [];
      let slow = 0;
      for (let i = 0; i < N; i += BATCH) {
        const batch = Array.from({ length: BATCH }, () => connect(a.url, { transport, watchdog: false }));
        const started = Date.now();
        const results = await Promise.allSettled(batch.map((s) => connected(s, LIMIT_MS)));
        results.forEach((r, j) => {
          if (r.status === 'rejected') {
            const s = batch[j];
            stalled.push(`#${i + j}: Engine.IO ${s.io.engine?.readyState} (${s.io.engine?.transport?.name}), Socket.IO connected=${s.connected}`);
          }
        });
        if (Date.now() - started > CONNECT_TIMEOUT_MS) slow++;
        for (const s of batch) s.disconnect();
        await sleep(10);
      }
      t.diagnostic(`batches that needed a reconnect or were slow: ${slow}/${N / BATCH}`);
      for (const line of stalled) t.diagnostic(line);
      assert.equal(stalled.length, 0, `${stalled.length}/${N} connections did not connect within ${LIMIT_MS} ms`);
    }, { ids: ['a'] });
  });
}

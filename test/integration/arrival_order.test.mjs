// Guarantee: the events of one connection are handled one at a time, in the order they arrive,
// over websocket and over polling. The official client sends numbered events without waiting;
// each reply names its event, and the replies come back in the order the server handled them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TRANSPORTS, withCluster, connect, connected } from './harness.mjs';

const N = 2000;
// The per-connection event rate limit would refuse most of a burst this size.
const ENV = { SWITCHBOARD_EVENT_RATE: '1000000', SWITCHBOARD_EVENT_BURST: '1000000' };

for (const transport of TRANSPORTS) {
  test(`${N} events of one connection are handled in arrival order (${transport})`, async (t) => {
    await withCluster(t, ENV, async ({ a }) => {
      const s = connect(a.url, { transport });
      await connected(s);
      /** @type {number[]} */
      const handled = [];
      const started = Date.now();
      // Unknown events are the cheapest to handle: their reply is immediate and names the event.
      await Promise.all(Array.from({ length: N }, (_, i) => s.timeout(30000).emitWithAck(`probe-${i}`, { i })
        .then((/** @type {any} */ reply) => {
          assert.equal(reply?.error?.code, 'unknown_event', JSON.stringify(reply));
          assert.ok(reply.error.message.includes(`"probe-${i}"`), `reply to probe-${i}: ${reply.error.message}`);
          handled.push(i);
        })));
      let late = 0;
      let highest = -1;
      for (const i of handled) {
        if (i < highest) late++;
        highest = Math.max(highest, i);
      }
      t.diagnostic(`${late} of ${N} handled after a later event; all replies in ${Date.now() - started} ms`);
      assert.equal(handled.length, N);
      assert.equal(late, 0, `${late} events were handled after an event sent later`);
    }, { ids: ['a'] });
  });
}

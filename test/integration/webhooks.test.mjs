// Webhooks: call events reach a receiver on 127.0.0.1, signed per Standard Webhooks (checked
// here with node:crypto, independently of the server's code), at least once and from exactly one
// instance: retries keep the id, a receiver that was down gets everything, a killed instance's
// event is sent by another, and a Redis restart loses nothing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  withCluster, startInstance, newPrefix, freePort, makePeer, roomName, sdp, cand, sleep, until,
  REDIS_URL,
} from './harness.mjs';
import { startDurableRedis, killAll } from './redis_procs.mjs';

const AUTH = 'webhook-test-auth-secret-0123456789';
const SECRET = `whsec_${randomBytes(32).toString('base64')}`;

/** A room token (HS256 JWT) for sub in room, with claims added. */
function token(room, sub, extra = {}) {
  const enc = (/** @type {object} */ o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ room, sub, exp: Math.floor(Date.now() / 1000) + 600, ...extra })}`;
  return `${head}.${createHmac('sha256', AUTH).update(head).digest('base64url')}`;
}

/**
 * @typedef {{id: string, valid: boolean, body: any, raw: string, status?: number}} Received
 * @typedef {object} Receiver
 * @property {string} url
 * @property {Received[]} got every request, in arrival order
 * @property {(r: Received, n: number) => number} answer status for the n-th request of an id
 * @property {() => Promise<void>} start (again, on the same port)
 * @property {() => Promise<void>} stop closes the port: requests are refused
 */

/** A webhook endpoint that verifies each request's signature. @returns {Promise<Receiver>} */
async function startReceiver() {
  const key = Buffer.from(SECRET.slice('whsec_'.length), 'base64');
  const port = await freePort();
  /** @type {http.Server | null} */
  let server = null;
  /** @type {Receiver} */
  const rec = {
    url: `http://127.0.0.1:${port}/hooks/switchboard`,
    got: [],
    answer: () => 200,
    start: () => new Promise((resolve, reject) => {
      server = http.createServer((req, res) => {
        let raw = '';
        req.setEncoding('utf8');
        req.on('data', (d) => { raw += d; });
        req.on('end', () => {
          const id = String(req.headers['webhook-id']);
          const ts = String(req.headers['webhook-timestamp']);
          const want = `v1,${createHmac('sha256', key).update(`${id}.${ts}.${raw}`).digest('base64')}`;
          const valid = String(req.headers['webhook-signature']).split(' ').includes(want)
            && Math.abs(Date.now() / 1000 - Number(ts)) < 300;
          /** @type {Received} */
          const r = { id, valid, body: JSON.parse(raw), raw };
          rec.got.push(r);
          r.status = rec.answer(r, rec.got.filter((x) => x.id === id).length);
          res.writeHead(r.status).end();
        });
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    }),
    stop: () => new Promise((resolve) => {
      if (!server) return resolve();
      server.close(() => resolve());
      server.closeAllConnections();
      server = null;
    }),
  };
  await rec.start();
  after(() => rec.stop());
  return rec;
}

/** The instances' environment for rec. */
function hookEnv(rec, extra = {}) {
  return {
    SWITCHBOARD_AUTH_SECRET: AUTH,
    SWITCHBOARD_WEBHOOK_URLS: rec.url,
    SWITCHBOARD_WEBHOOK_SECRET: SECRET,
    SWITCHBOARD_WEBHOOK_HORIZON: '2m',
    SWITCHBOARD_WEBHOOK_CLAIM_AFTER: '2s',
    ...extra,
  };
}

/** Joins a caller in a fresh room on url and holds an offer: peer.joined and offer.held. */
async function holdCall(url, name, extra = {}) {
  const room = roomName(name);
  const p = await makePeer(name, url);
  await p.channel.join(room, { token: token(room, `user-${name}`, extra) });
  assert.equal((await p.channel.send('offer', { sdp: sdp(name) })).held, true);
  return { room, peer: p };
}

/** Distinct event ids received, with the types. */
const kinds = (/** @type {Received[]} */ got) => [...new Map(got.map((r) => [r.id, `${r.body.type} ${r.body.room}`])).values()].sort();

test('every call event arrives signed, once, from three instances', async (t) => {
  const rec = await startReceiver();
  await withCluster(t, hookEnv(rec, { SWITCHBOARD_HELD_OFFER_TTL: '5s', SWITCHBOARD_WEBHOOK_HORIZON: '1m' }), async ({ instances: [a, b, c] }) => {
    const room = roomName('wh');
    const caller = await makePeer('caller', a.url);
    await caller.channel.join(room, { token: token(room, 'alice', { meta: { ring: 'bob', device: 'phone' } }) });
    await caller.channel.send('offer', { sdp: sdp('o') });
    await caller.channel.send('candidate', { candidate: cand('c', 0) });
    const answerer = await makePeer('answerer', b.url);
    await answerer.channel.join(room, { token: token(room, 'bob') });
    await answerer.waitFor('offer', 1);
    await answerer.channel.send('answer', { sdp: sdp('a') });
    const cp = caller.channel.peer;
    const ap = answerer.channel.peer;
    await answerer.channel.hangup();
    await answerer.channel.leave();
    const lonely = await holdCall(c.url, 'lonely');
    const lonelyPeer = lonely.peer.channel.peer;
    await lonely.peer.waitFor('expired', 1);
    // More joins on every instance: a double send would show as a repeated id.
    const extra = [];
    for (let i = 0; i < 9; i++) {
      const rm = roomName(`x${i}`);
      await (await makePeer(`x${i}`, [a, b, c][i % 3].url)).channel.join(rm, { token: token(rm, `user-x${i}`) });
      extra.push(rm);
    }

    const want = 6 + 3 + extra.length;
    await until(() => new Set(rec.got.map((r) => r.id)).size >= want, 20000, `${want} events`);
    await sleep(1500); // time for a duplicate to show up
    assert.ok(rec.got.every((r) => r.valid), 'every signature valid');
    assert.equal(rec.got.length, want, 'each event once (the receiver always answered 200)');
    for (const r of rec.got) {
      assert.equal(r.body.id, r.id);
      assert.ok(!Number.isNaN(Date.parse(r.body.timestamp)), 'timestamp');
      assert.doesNotMatch(r.raw, /v=0|candidate:|sdp/, 'no SDP or candidate in an event');
    }
    const inRoom = (/** @type {string} */ type, /** @type {string} */ rm) => rec.got.filter((r) => r.body.type === type && r.body.room === rm).map((r) => r.body);
    assert.deepEqual(inRoom('peer.joined', room).map((e) => [e.peer, e.role, e.sub, e.meta]).sort(),
      [[cp, 'caller', 'alice', { ring: 'bob', device: 'phone' }], [ap, 'answerer', 'bob', undefined]].sort());
    const [held] = inRoom('offer.held', room);
    assert.deepEqual([held.peer, held.sub, held.meta], [cp, 'alice', { ring: 'bob', device: 'phone' }]);
    assert.equal(Date.parse(held.expires_at) - Date.parse(held.timestamp), 5000, 'expires after the held-offer TTL');
    const [answered] = inRoom('offer.answered', room);
    assert.deepEqual([answered.peer, answered.sub, answered.caller], [ap, 'bob', cp]);
    assert.ok(answered.held_ms >= 0 && answered.held_ms < 10000, `held_ms ${answered.held_ms}`);
    assert.deepEqual(inRoom('call.hangup', room).map((e) => [e.peer, e.sub]), [[ap, 'bob']]);
    assert.deepEqual(inRoom('peer.left', room).map((e) => [e.peer, e.sub, e.reason]), [[ap, 'bob', 'left']]);
    const [expired] = inRoom('offer.expired', lonely.room);
    assert.equal(expired.peer, lonelyPeer);
    assert.ok(expired.held_ms >= 5000, `held_ms ${expired.held_ms}`);
    for (const rm of extra) assert.deepEqual(rec.got.filter((r) => r.body.room === rm).map((r) => r.body.type), ['peer.joined']);
  }, { ids: ['a', 'b', 'c'] });
});

test('a receiver answering 500 three times gets the event a fourth time with the same id', async (t) => {
  const rec = await startReceiver();
  rec.answer = (_r, n) => (n <= 3 ? 500 : 200);
  await withCluster(t, hookEnv(rec, { SWITCHBOARD_WEBHOOK_EVENTS: 'offer.held' }), async ({ a }) => {
    const { room } = await holdCall(a.url, 'retry');
    await until(() => rec.got.length >= 4, 15000, 'four attempts');
    await sleep(1000);
    assert.equal(rec.got.length, 4, 'no attempt after the 200');
    assert.ok(rec.got.every((r) => r.valid && r.id === rec.got[0].id && r.body.room === room && r.body.type === 'offer.held'));
  }, { ids: ['a'] });
});

test('a receiver down for 10 s gets every event afterwards', async (t) => {
  const rec = await startReceiver();
  await rec.stop();
  await withCluster(t, hookEnv(rec), async ({ a, b }) => {
    const rooms = [];
    for (let i = 0; i < 4; i++) rooms.push((await holdCall([a, b][i % 2].url, `down${i}`)).room);
    await sleep(10000);
    assert.equal(rec.got.length, 0);
    await rec.start();
    await until(() => kinds(rec.got).length >= 8, 30000, 'every event after the receiver came back');
    assert.deepEqual(kinds(rec.got), rooms.flatMap((r) => [`offer.held ${r}`, `peer.joined ${r}`]).sort());
    assert.ok(rec.got.every((r) => r.valid));
  });
});

/** Runs redis-cli against url with args; resolves with its output. */
function redisCli(url, ...args) {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-u', url, '--no-raw', ...args], (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
}

test('kill -9 of the instance holding an undelivered event: another instance delivers it', async (t) => {
  const rec = await startReceiver();
  let alive = false; // answers 503 until the holder is dead
  rec.answer = () => (alive ? 200 : 503);
  await withCluster(t, hookEnv(rec, { SWITCHBOARD_WEBHOOK_EVENTS: 'offer.held' }), async ({ a, b, prefix }) => {
    const { room } = await holdCall(a.url, 'orphan');
    await until(() => rec.got.length >= 1, 10000, 'a first attempt');
    // The consumer holding the event in the group's pending list.
    const pending = String(await redisCli(REDIS_URL, 'XPENDING', `${prefix}webhooks`, 'senders', '-', '+', '10'));
    const holder = pending.includes('"a"') ? a : b;
    const other = holder === a ? b : a;
    assert.ok(pending.includes(`"${holder.id}"`), `pending list names a consumer:\n${pending}`);
    await holder.kill('SIGKILL');
    const before = rec.got.length;
    alive = true;
    await until(() => rec.got.slice(before).some((r) => r.body.room === room), 20000, `${other.id} to deliver`);
    assert.ok(other.running());
    assert.ok(rec.got.every((r) => r.valid && r.id === rec.got[0].id), 'the same event, the same id');
  });
});

after(killAll);

test('Redis restarted mid-delivery: no event lost', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-wh-redis-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  let redis = await startDurableRedis(port, dir);
  const rec = await startReceiver();
  let up = false;
  rec.answer = () => (up ? 200 : 503);
  const env = hookEnv(rec, { REDIS_URL: `redis://127.0.0.1:${port}` });
  const prefix = newPrefix();
  const a = await startInstance({ id: 'a', prefix, env });
  const b = await startInstance({ id: 'b', prefix, env });
  t.after(async () => { await a.kill(); await b.kill(); });

  const rooms = [(await holdCall(a.url, 'r0')).room, (await holdCall(b.url, 'r1')).room];
  await until(() => kinds(rec.got).length >= 4, 10000, 'first attempts');
  redis.kill('SIGKILL');
  await new Promise((r) => redis.once('exit', r));
  await sleep(1500);
  redis = await startDurableRedis(port, dir);
  up = true;
  rooms.push((await holdCall(a.url, 'r2')).room);
  const delivered = () => kinds(rec.got.filter((r) => r.status === 200));
  await until(() => delivered().length >= 6, 30000, 'every event answered 200');
  assert.deepEqual(delivered(), rooms.flatMap((r) => [`offer.held ${r}`, `peer.joined ${r}`]).sort());
  assert.deepEqual(kinds(rec.got), delivered(), 'no other events');
  assert.ok(rec.got.every((r) => r.valid));
});

test('a meta claim that is not a JSON object of at most 1 KB is refused at join', async (t) => {
  const rec = await startReceiver();
  await withCluster(t, hookEnv(rec), async ({ a }) => {
    for (const meta of [{ note: 'x'.repeat(1100) }, ['bob'], 'bob']) {
      const room = roomName('meta');
      const p = await makePeer('meta', a.url);
      await assert.rejects(p.channel.join(room, { token: token(room, 'alice', { meta }) }),
        (err) => err.code === 'unauthorized' && /meta claim must be a JSON object of at most 1024 bytes/.test(err.message));
    }
    await sleep(500);
    assert.equal(rec.got.length, 0, 'a refused join makes no event');
  }, { ids: ['a'] });
});

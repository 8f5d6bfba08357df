// Run by deploy/cluster_test.go: through the load balancer at URL, a caller on HTTP long-polling
// and an answerer on websocket (official socket.io-client and the bundled delivery layer) go
// through the whole call flow in ROOM: held offer and candidates, hand-off, answer, candidates
// back, hangup, leave. Prints one JSON line describing what each side saw; exits non-zero on
// any failure.
//
// A websocket needs no sticky session, but to be sure the two sides sit on different instances
// the answerer sends the load balancer's cookie of an instance other than the caller's (COOKIES
// lists them, NAME=value, comma-separated).
//
// usage: node transports.mjs URL ROOM COOKIES

import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { SignalingChannel } from '../../client/src/channel.js';

const [url, room, cookieList] = process.argv.slice(2);
if (!url || !room || !cookieList) {
  console.error('usage: node transports.mjs URL ROOM COOKIES');
  process.exit(2);
}

const started = Date.now();
/** @type {Record<string, number>} milliseconds from the start to each step */
const timings = {};
const mark = (step) => { timings[step] = Date.now() - started; };

const sockets = [];
const channels = [];

/** Opens one socket with one transport. withCredentials turns on the cookie jar in Node, so
 * the polling transport keeps the load balancer's sticky-session cookie. */
function connect(transport, cookie) {
  const extraHeaders = cookie ? { cookie } : undefined;
  const socket = io(url, { transports: [transport], withCredentials: true, forceNew: true, extraHeaders });
  sockets.push(socket);
  return socket;
}

/** Records the events a channel emits, and lets the test wait for them. */
function record(ch, name) {
  const seen = [];
  const waiters = [];
  for (const ev of ['offer', 'answer', 'candidate', 'peer-joined', 'peer-left', 'hangup', 'expired']) {
    ch.on(ev, (payload) => {
      seen.push({ ev, payload });
      for (const w of [...waiters]) w();
    });
  }
  ch.on('resume-failed', (err) => fail(`${name}: resume failed: ${err}`));
  return {
    seen,
    /** Resolves once `n` events named `ev` were seen. */
    waitFor(ev, n = 1) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name}: timed out waiting for ${n} ${ev}; saw ${JSON.stringify(seen.map((s) => s.ev))}`)), 15000);
        const check = () => {
          const got = seen.filter((s) => s.ev === ev);
          if (got.length >= n) {
            clearTimeout(timer);
            waiters.splice(waiters.indexOf(check), 1);
            resolve(got);
          }
        };
        waiters.push(check);
        check();
      });
    },
  };
}

function fail(msg) {
  console.error(msg);
  cleanup();
  process.exit(1);
}

function cleanup() {
  for (const ch of channels) ch.close();
  for (const s of sockets) s.disconnect();
}

const cand = (n) => ({ candidate: `candidate:${n} 1 udp 2122260223 127.0.0.1 ${50000 + n} typ host`, sdpMid: '0', sdpMLineIndex: 0 });

try {
  // The caller joins alone over polling and trickles an offer and candidates: all held.
  const callerSocket = connect('polling');
  const caller = new SignalingChannel(callerSocket);
  channels.push(caller);
  const callerLog = record(caller, 'caller');
  const cj = await caller.join(room);
  mark('callerJoined');
  assert.equal(cj.role, 'caller');
  const offer = await caller.send('offer', { sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=caller\r\n' });
  assert.equal(offer.held, true, 'offer held');
  for (const n of [1, 2]) assert.equal((await caller.send('candidate', { candidate: cand(n) })).held, true, 'candidate held');

  // The answerer joins over websocket, on another instance, and gets the held offer and
  // candidates. (The cookie jar is engine.io-client's own, kept for withCredentials in Node.)
  const jar = callerSocket.io.engine._cookieJar;
  const callerCookie = [...jar.cookies].map(([name, c]) => `${name}=${c.value}`).find((c) => cookieList.split(',').includes(c));
  assert.ok(callerCookie, `the caller got no sticky cookie (${[...jar.cookies].map(([n]) => n)})`);
  const other = cookieList.split(',').find((c) => c !== callerCookie);
  const answererSocket = connect('websocket', other);
  const answerer = new SignalingChannel(answererSocket);
  channels.push(answerer);
  const answererLog = record(answerer, 'answerer');
  mark('callerHeld');
  const aj = await answerer.join(room);
  mark('answererJoined');
  assert.equal(aj.role, 'answerer');
  const [{ payload: gotOffer }] = await answererLog.waitFor('offer');
  assert.equal(gotOffer.from, cj.peer);
  assert.match(gotOffer.sdp, /s=caller/);
  await answererLog.waitFor('candidate', 2);
  mark('handedOff');

  // The answer and the answerer's candidates cross back to the caller.
  const answer = await answerer.send('answer', { sdp: 'v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=answerer\r\n', to: cj.peer });
  assert.equal(answer.held, false);
  assert.equal((await answerer.send('candidate', { candidate: cand(3), to: cj.peer })).held, false);
  await answerer.send('candidate', { candidate: null, to: cj.peer });
  await callerLog.waitFor('peer-joined');
  const [{ payload: gotAnswer }] = await callerLog.waitFor('answer');
  assert.equal(gotAnswer.from, aj.peer);
  await callerLog.waitFor('candidate', 2);
  mark('answered');

  // Hang up, then both leave.
  await caller.send('hangup', {});
  await answererLog.waitFor('hangup');
  await answerer.send('leave', {});
  await callerLog.waitFor('peer-left');
  await caller.send('leave', {});
  mark('left');

  const result = {
    callerTransport: callerSocket.io.engine.transport.name,
    answererTransport: answererSocket.io.engine.transport.name,
    callerEvents: callerLog.seen.map((s) => s.ev),
    answererEvents: answererLog.seen.map((s) => s.ev),
    callerICEServers: cj.iceServers,
    timings,
  };
  cleanup();
  // A long-poll request still open at the server keeps Node's event loop alive until the
  // server's next ping (25 s): exit once the result is written.
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
} catch (err) {
  fail(err && err.stack ? err.stack : String(err));
}

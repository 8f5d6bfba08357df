// The Node reference for the benchmarks: the subset of Switchboard's protocol v1 (docs/protocol.md)
// that bench/loadgen drives (join with nonce, held offer with early candidates, answer,
// candidates, hangup, leave, ack; sequence numbers both ways; unacknowledged messages resent),
// on the official socket.io server with @socket.io/redis-adapter and ioredis. State lives in
// Redis, one hash per room, changed by one Lua script per event, so instances share it; each
// member's socket joins a room "p:<peer>" and messages go to that one recipient.
//
// Left out (not exercised by the load generator): resume, held-offer expiry, member leases.
//
//   node server.js --port 9001 --redis redis://127.0.0.1:6379 --instance n1
//
// GET /metrics (Prometheus text; ?gc=1 collects garbage first when run with --expose-gc).

import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';

import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';

import { ACK, JOIN, PENDING, SEND } from './lua.js';

const { values: opt } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '9001' },
    redis: { type: 'string', default: 'redis://127.0.0.1:6379' },
    instance: { type: 'string', default: 'n1' },
    prefix: { type: 'string', default: 'ref:' },
  },
});

const CAPACITY = 2;
const ROOM_TTL_MS = 24 * 3600 * 1000;
const RESEND_MS = 1000;
const MAX_HELD = 64;
const MAX_BACKLOG = 256;
const MAX_SDP = 64 << 10;
const MAX_CANDIDATE = 2048;
const ROOM_RE = /^[A-Za-z0-9._~-]{1,128}$/;
const NONCE_RE = /^[A-Za-z0-9_-]{8,64}$/;
const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

const redis = new Redis(opt.redis, { enableAutoPipelining: true, maxRetriesPerRequest: 2 });
const sub = redis.duplicate();
redis.defineCommand('sbJoin', { numberOfKeys: 1, lua: JOIN });
redis.defineCommand('sbSend', { numberOfKeys: 1, lua: SEND });
redis.defineCommand('sbAck', { numberOfKeys: 1, lua: ACK });
redis.defineCommand('sbPending', { numberOfKeys: 1, lua: PENDING });

const roomKey = (room) => `${opt.prefix}room:{${room}}`;
const peerRoom = (peer) => `p:${peer}`;

const httpServer = http.createServer((req, res) => {
  if (req.url.startsWith('/metrics')) {
    if (req.url.includes('gc=1') && typeof globalThis.gc === 'function') globalThis.gc();
    const m = process.memoryUsage();
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end([
      `process_resident_memory_bytes ${m.rss}`,
      `nodejs_heap_used_bytes ${m.heapUsed}`,
      `nodejs_heap_total_bytes ${m.heapTotal}`,
      `nodejs_external_memory_bytes ${m.external}`,
      `sockets ${io.engine.clientsCount}`,
      '',
    ].join('\n'));
    return;
  }
  if (req.url === '/healthz') {
    res.end('ok\n');
    return;
  }
  res.writeHead(404).end();
});

const io = new Server(httpServer, {
  serveClient: false,
  transports: ['polling', 'websocket'],
  pingInterval: 25000,
  pingTimeout: 20000,
  maxHttpBufferSize: 128 << 10,
  cors: { origin: '*' },
});
io.adapter(createAdapter(redis, sub, { key: `${opt.prefix}sio` }));

/**
 * A membership held by a local socket.
 * @typedef {{room: string, peer: string, socket: import('socket.io').Socket,
 *   sent: number, acked: number, lastEmit: number}} Member
 */
/** @type {Map<string, Member>} local members by peer id */
const local = new Map();

const ok = (extra) => ({ ok: true, ...extra });
const fail = (code, message = code) => ({ ok: false, error: { code, message } });

function newId() { return randomBytes(8).toString('hex'); }
function newToken() { return randomBytes(18).toString('base64url'); }

// deliver emits queued messages: straight to a local socket, through the adapter otherwise.
function deliver(room, flat, start) {
  for (let i = start; i + 2 < flat.length; i += 3) {
    const peer = flat[i];
    const seq = Number(flat[i + 1]);
    const entry = flat[i + 2];
    const nl = entry.indexOf('\n');
    const event = entry.slice(0, nl);
    const payload = { room, seq, ...JSON.parse(entry.slice(nl + 1)) };
    const m = local.get(peer);
    if (m) {
      m.socket.emit(event, payload);
    } else {
      io.to(peerRoom(peer)).emit(event, payload);
    }
  }
}

// Tracks what each local member was sent (also through the adapter), for resends.
function track(socket) {
  socket.onAnyOutgoing((event, payload) => {
    if (!payload || typeof payload.seq !== 'number') return;
    const m = socket.data.rooms.get(payload.room);
    if (!m) return;
    if (payload.seq > m.sent) m.sent = payload.seq;
    m.lastEmit = Date.now();
  });
}

async function onJoin(socket, p) {
  if (!p || typeof p !== 'object') return fail('bad_request', 'payload must be an object');
  const { room, nonce = '' } = p;
  if (typeof room !== 'string' || !ROOM_RE.test(room)) return fail('bad_request', 'room is not valid');
  if (nonce !== '' && (typeof nonce !== 'string' || !NONCE_RE.test(nonce))) return fail('bad_request', 'nonce is not valid');
  const mine = socket.data.rooms.get(room);
  if (mine && (nonce === '' || nonce !== mine.nonce)) return fail('bad_request', `this connection is in room ${room} already`);
  const peer = newId();
  socket.join(peerRoom(peer)); // before the script: a delivery right after it must find the socket
  const r = await redis.sbJoin(roomKey(room), ROOM_TTL_MS, peer, newToken(), nonce, CAPACITY);
  const status = r[0];
  if (status === 'room_full') {
    socket.leave(peerRoom(peer));
    return fail('room_full', `room ${room} is full (capacity ${CAPACITY})`);
  }
  const [, id, token, role, next, othersFlat] = r;
  if (id !== peer) {
    socket.leave(peerRoom(peer));
    socket.join(peerRoom(id));
  }
  const m = { room, peer: id, nonce, socket, sent: 0, acked: 0, lastEmit: 0 };
  socket.data.rooms.set(room, m);
  local.set(id, m);
  const peers = [];
  for (let i = 0; i + 1 < othersFlat.length; i += 2) peers.push({ peer: othersFlat[i], role: othersFlat[i + 1] });
  const reply = ok({
    room, peer: id, token, role, peers, next: Number(next),
    resumeWindowMs: 30000, heldOfferTtlMs: 300000, iceServers: [],
  });
  const after = status === 'retry' ? () => flush(m) : () => deliver(room, r, 6);
  return [reply, after];
}

function decodeBody(kind, p, from) {
  if (kind === 'offer' || kind === 'answer') {
    if (typeof p.sdp !== 'string' || p.sdp === '') return [null, fail('bad_request', 'sdp is required')];
    if (p.sdp.length > MAX_SDP) return [null, fail('too_large', 'sdp is too large')];
    return [JSON.stringify({ from, sdp: p.sdp })];
  }
  if (kind === 'candidate') {
    const c = p.candidate;
    if (c === null) return [JSON.stringify({ from, candidate: null })];
    if (!c || typeof c !== 'object' || typeof c.candidate !== 'string') return [null, fail('bad_request', 'candidate must be an object or null')];
    if (c.candidate.length > MAX_CANDIDATE) return [null, fail('too_large', 'candidate is too large')];
    const init = {
      candidate: c.candidate,
      sdpMid: typeof c.sdpMid === 'string' ? c.sdpMid : null,
      sdpMLineIndex: Number.isInteger(c.sdpMLineIndex) ? c.sdpMLineIndex : null,
      usernameFragment: typeof c.usernameFragment === 'string' ? c.usernameFragment : null,
    };
    return [JSON.stringify({ from, candidate: init })];
  }
  return [''];
}

async function onSequenced(socket, kind, p) {
  if (!p || typeof p !== 'object') return fail('bad_request', 'payload must be an object');
  const { room, seq } = p;
  if (typeof room !== 'string' || !ROOM_RE.test(room)) return fail('bad_request', 'room is not valid');
  if (!Number.isSafeInteger(seq) || seq < 1) return fail('bad_request', 'seq must be a positive integer');
  const m = socket.data.rooms.get(room);
  if (!m) return fail('not_joined', `not in room ${room}`);
  let [body, err] = decodeBody(kind, p, m.peer);
  let to = '';
  if (!err && p.to != null) {
    if (typeof p.to !== 'string' || !ID_RE.test(p.to)) err = fail('bad_request', 'to is not valid');
    else to = p.to;
  }
  // A rejected message still consumes its seq.
  const r = await redis.sbSend(roomKey(room), ROOM_TTL_MS, m.peer, seq, err ? 'skip' : kind, to, body ?? '', MAX_HELD, MAX_BACKLOG);
  const status = r[0];
  if (status === 'not_member') {
    forget(m);
    return fail('not_joined', `not in room ${room}`);
  }
  if (status === 'dup') return ok({ seq, duplicate: true });
  if (status === 'gap') return fail('out_of_order', `seq ${seq}: the server expects ${r[1]} first`);
  if (err) return err;
  if (status !== 'ok' && status !== 'bad_kind') return fail(status);
  if (kind === 'leave') forget(m);
  const held = Number(r[2]) === 1;
  const reply = kind === 'offer' || kind === 'answer' || kind === 'candidate'
    ? ok({ seq, held, ...(held && kind === 'offer' ? { expiresInMs: 300000 } : {}) })
    : ok({ seq });
  return [reply, r.length > 3 ? () => deliver(room, r, 3) : null];
}

async function onAck(socket, p) {
  if (!p || typeof p !== 'object') return fail('bad_request', 'payload must be an object');
  const { room, seq } = p;
  if (typeof room !== 'string' || !ROOM_RE.test(room)) return fail('bad_request', 'room is not valid');
  if (!Number.isSafeInteger(seq) || seq < 1) return fail('bad_request', 'seq must be a positive integer');
  const m = socket.data.rooms.get(room);
  if (!m) return fail('not_joined', `not in room ${room}`);
  const status = await redis.sbAck(roomKey(room), ROOM_TTL_MS, m.peer, seq);
  if (status !== 'ok') return fail('not_joined', `not in room ${room}`);
  if (seq > m.acked) m.acked = seq;
  if (seq > m.sent) m.sent = seq;
  return ok();
}

function forget(m) {
  if (m.socket.data.rooms.get(m.room) === m) m.socket.data.rooms.delete(m.room);
  if (local.get(m.peer) === m) local.delete(m.peer);
  m.socket.leave(peerRoom(m.peer));
}

// flush emits every unacknowledged message of m again.
async function flush(m) {
  const r = await redis.sbPending(roomKey(m.room), ROOM_TTL_MS, m.peer, m.acked);
  if (r[0] !== 'ok') return;
  m.lastEmit = Date.now();
  for (let i = 1; i + 1 < r.length; i += 2) {
    const entry = r[i + 1];
    const nl = entry.indexOf('\n');
    m.socket.emit(entry.slice(0, nl), { room: m.room, seq: Number(r[i]), ...JSON.parse(entry.slice(nl + 1)) });
  }
}

// Resend what is not acknowledged after RESEND_MS.
setInterval(() => {
  const now = Date.now();
  for (const m of local.values()) {
    if (m.sent > m.acked && now - m.lastEmit >= RESEND_MS) {
      m.lastEmit = now;
      flush(m).catch(() => {});
    }
  }
}, RESEND_MS / 4).unref();

const handlers = { offer: 1, answer: 1, candidate: 1, hangup: 1, leave: 1 };

io.on('connection', (socket) => {
  socket.data.rooms = new Map();
  track(socket);
  socket.onAny((event, payload, ack) => {
    if (typeof ack !== 'function') {
      if (typeof payload === 'function') { ack = payload; payload = undefined; } else return;
    }
    let work;
    if (event === 'join') work = onJoin(socket, payload);
    else if (event === 'ack') work = onAck(socket, payload);
    else if (handlers[event] === 1) work = onSequenced(socket, event, payload);
    else {
      ack(fail('unknown_event', `unknown event ${String(event).slice(0, 64)}`));
      return;
    }
    work.then((res) => {
      if (Array.isArray(res)) {
        ack(res[0]);
        if (res[1]) res[1]();
      } else {
        ack(res);
      }
    }, (err) => {
      ack(fail('unavailable', String(err && err.message)));
    });
  });
  socket.on('disconnect', () => {
    // Memberships stay in Redis; this instance just stops delivering to the socket.
    for (const m of socket.data.rooms.values()) {
      if (local.get(m.peer) === m) local.delete(m.peer);
    }
  });
});

httpServer.listen(Number(opt.port), opt.host, () => {
  console.log(`reference-node ${opt.instance} listening on ${opt.host}:${opt.port}`);
});

function shutdown() {
  io.close();
  redis.quit().catch(() => {});
  sub.quit().catch(() => {});
  setTimeout(() => process.exit(0), 500).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

// Test doubles for channel.test.mjs: a fake Socket.IO client socket over a lossy in-memory
// network, and a small in-memory server that follows docs/protocol.md closely enough to check
// the client's delivery rules. (This file has no tests of its own.)

/**
 * Deterministic pseudo-random numbers (mulberry32).
 * @param {number} seed
 * @returns {() => number} numbers in [0, 1)
 */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * How the network treats one packet: `'drop'`, `'dup'` or `'pass'`.
 * @typedef {(p: {dir: 'up' | 'down', kind: 'event' | 'ack', event: string, payload: any}) =>
 *   ('drop' | 'dup' | 'pass' | undefined)} Filter
 */

/** A lossy, duplicating, reordering in-memory network. */
export class Network {
  /**
   * @param {{seed?: number, drop?: number, dup?: number, maxDelay?: number, filter?: Filter}} [o]
   */
  constructor({ seed = 1, drop = 0, dup = 0, maxDelay = 0, filter } = {}) {
    this.random = rng(seed);
    this.drop = drop;
    this.dup = dup;
    this.maxDelay = maxDelay;
    /** @type {Filter | undefined} */
    this.filter = filter;
    this.stats = { sent: 0, dropped: 0, duplicated: 0 };
    /** @type {Set<any>} */
    this.timers = new Set();
  }

  /**
   * Carries one packet: calls `deliver` zero, one or two times, later.
   * @param {{dir: 'up' | 'down', kind: 'event' | 'ack', event: string, payload: any}} packet
   * @param {() => void} deliver
   */
  carry(packet, deliver) {
    this.stats.sent++;
    let verdict = this.filter ? this.filter(packet) : undefined;
    if (!verdict) {
      if (this.random() < this.drop) verdict = 'drop';
      else if (this.random() < this.dup) verdict = 'dup';
      else verdict = 'pass';
    }
    if (verdict === 'drop') {
      this.stats.dropped++;
      return;
    }
    const copies = verdict === 'dup' ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      const delay = this.maxDelay > 0 ? Math.floor(this.random() * (this.maxDelay + 1)) : 0;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        deliver();
      }, delay);
      this.timers.add(timer);
    }
  }

  close() {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

let socketIds = 0;

/**
 * A fake socket.io-client Socket: `connected`, `on/off`, `timeout(ms).emitWithAck(...)`,
 * `connect()`/`disconnect()` to simulate the connection, and a server side (`server`).
 */
export class FakeSocket {
  /**
   * @param {FakeServer} server
   * @param {Network} net
   */
  constructor(server, net) {
    this.server = server;
    this.net = net;
    this.connected = false;
    this.id = '';
    /** @type {Map<string, Set<Function>>} */
    this.listeners = new Map();
    /** @type {Map<number, {resolve: Function, reject: Function, timer: any}>} */
    this.acks = new Map();
    this.nextAckId = 0;
    /** every packet the client emitted: {event, payload, conn} */
    this.sent = /** @type {Array<{event: string, payload: any, conn: string}>} */ ([]);
  }

  /** @param {string} event @param {Function} fn */
  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    /** @type {Set<Function>} */ (this.listeners.get(event)).add(fn);
    return this;
  }

  /** @param {string} event @param {Function} [fn] */
  off(event, fn) {
    if (!fn) this.listeners.delete(event);
    else this.listeners.get(event)?.delete(fn);
    return this;
  }

  /** @returns {number} how many listeners are registered */
  listenerTotal() {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  /** @param {string} event @param {...any} args */
  _local(event, ...args) {
    for (const fn of [...(this.listeners.get(event) || [])]) fn(...args);
  }

  /** Opens a new connection (a new Engine.IO session) and fires `connect`. */
  connect() {
    if (this.connected) return;
    this.connected = true;
    this.id = `conn${++socketIds}`;
    this.server.connections.set(this.id, this);
    this._local('connect');
  }

  /** Drops the connection: pending acks fail, packets in flight are lost. */
  disconnect() {
    if (!this.connected) return;
    this.connected = false;
    this.server.connections.delete(this.id);
    this.server.onDisconnect(this.id);
    this.id = '';
    for (const [id, ack] of this.acks) {
      clearTimeout(ack.timer);
      this.acks.delete(id);
      ack.reject(new Error('socket has been disconnected'));
    }
    this._local('disconnect', 'transport close');
  }

  /** @param {number} ms */
  timeout(ms) {
    return {
      /** @param {string} event @param {any} payload */
      emitWithAck: (event, payload) => this._emitWithAck(ms, event, payload),
    };
  }

  /**
   * @param {number} ms
   * @param {string} event
   * @param {any} payload
   * @returns {Promise<any>}
   */
  _emitWithAck(ms, event, payload) {
    return new Promise((resolve, reject) => {
      if (!this.connected) {
        // socket.io-client would buffer it; the channel never emits while disconnected.
        reject(new Error('emitted while disconnected'));
        return;
      }
      const id = ++this.nextAckId;
      const conn = this.id;
      const timer = setTimeout(() => {
        this.acks.delete(id);
        reject(new Error('operation has timed out'));
      }, ms);
      this.acks.set(id, { resolve, reject, timer });
      const copy = structuredClone(payload);
      this.sent.push({ event, payload: copy, conn });
      this.net.carry({ dir: 'up', kind: 'event', event, payload: copy }, () => {
        if (this.id !== conn) return; // that connection is gone
        this.server.handle(conn, event, copy, (/** @type {any} */ reply) => {
          if (this.id !== conn) return;
          this.net.carry({ dir: 'down', kind: 'ack', event, payload: reply }, () => {
            if (this.id !== conn) return;
            const ack = this.acks.get(id);
            if (!ack) return; // late or duplicated ack: socket.io ignores it
            this.acks.delete(id);
            clearTimeout(ack.timer);
            ack.resolve(structuredClone(reply));
          });
        });
      });
    });
  }

  /**
   * Server → client event over the network.
   * @param {string} event
   * @param {any} payload
   */
  deliver(event, payload) {
    const conn = this.id;
    this.net.carry({ dir: 'down', kind: 'event', event, payload }, () => {
      if (this.id !== conn) return;
      this._local(event, structuredClone(payload));
    });
  }
}

/**
 * @typedef {object} Member
 * @property {string} room
 * @property {string} peer
 * @property {string} token
 * @property {string} role
 * @property {string | null} conn
 * @property {number} expected next client seq to apply
 * @property {Map<number, Array<{event: string, payload: any, reply: Function}>>} waiting
 * @property {Array<{event: string, payload: any}>} applied client messages, in apply order
 * @property {number} serverSeq last server seq assigned
 * @property {number} acked last server seq acknowledged
 * @property {Array<{event: string, payload: any}>} queue unacknowledged server messages
 * @property {number[]} acks every ack seq received
 */

/** An in-memory protocol server, enough for the client's delivery rules. */
export class FakeServer {
  /** @param {{capacity?: number, reorderTimeoutMs?: number}} [o] */
  constructor({ capacity = 2, reorderTimeoutMs = 300 } = {}) {
    this.capacity = capacity;
    this.reorderTimeoutMs = reorderTimeoutMs;
    /** @type {Map<string, FakeSocket>} */
    this.connections = new Map();
    /** @type {Map<string, Map<string, Member>>} */
    this.rooms = new Map();
    /** @type {Map<string, Member>} room + nonce → member */
    this.nonces = new Map();
    /** every request received: {conn, event, payload} */
    this.requests = /** @type {Array<{conn: string, event: string, payload: any}>} */ ([]);
    /**
     * Optional hook: returns a reply to send instead of handling the request.
     * @type {((conn: string, event: string, payload: any) => any) | null}
     */
    this.intercept = null;
    this.relay = true;
    /**
     * Optional hook when a sequenced message is applied: a reply returned here (an error such as
     * no_peer) replaces the normal one; the seq is consumed either way.
     * @type {((m: Member, event: string, payload: any) => any) | null}
     */
    this.onApply = null;
    this.peerIds = 0;
    /** @type {Set<any>} */
    this.timers = new Set();
  }

  /** @param {string} conn @param {string} event @param {any} payload @param {Function} reply */
  handle(conn, event, payload, reply) {
    this.requests.push({ conn, event, payload });
    if (this.intercept) {
      const r = this.intercept(conn, event, payload);
      if (r !== undefined) {
        reply(r);
        return;
      }
    }
    switch (event) {
      case 'join': reply(this.join(conn, payload)); return;
      case 'resume': this.resume(conn, payload, reply); return;
      case 'ack': reply(this.ack(conn, payload)); return;
      case 'offer': case 'answer': case 'candidate': case 'hangup': case 'leave':
        this.sequenced(conn, event, payload, reply);
        return;
      default: reply(err('unknown_event'));
    }
  }

  /** @param {string} room @returns {Map<string, Member>} */
  room(room) {
    let r = this.rooms.get(room);
    if (!r) {
      r = new Map();
      this.rooms.set(room, r);
    }
    return r;
  }

  /** @param {string} room @param {string} peer @returns {Member | undefined} */
  member(room, peer) {
    return this.rooms.get(room)?.get(peer);
  }

  /** @param {string} conn @param {any} p */
  join(conn, p) {
    const key = `${p.room}/${p.nonce}`;
    let m = this.nonces.get(key);
    if (m) {
      m.conn = conn;
      return this.reply(m, { token: m.token });
    }
    const r = this.room(p.room);
    if (r.size >= this.capacity) return err('room_full');
    const peer = `p${++this.peerIds}`;
    m = {
      room: p.room, peer, token: `t-${peer}`, role: r.size === 0 ? 'caller' : 'answerer', conn,
      expected: 1, waiting: new Map(), applied: [], serverSeq: 0, acked: 0, queue: [], acks: [],
    };
    for (const other of r.values()) this.push(other, 'peer-joined', { peer, role: m.role });
    r.set(peer, m);
    this.nonces.set(key, m);
    return this.reply(m, { token: m.token });
  }

  /**
   * @param {Member} m
   * @param {object} extra
   */
  reply(m, extra) {
    const peers = [...this.room(m.room).values()].filter((o) => o !== m)
      .map((o) => ({ peer: o.peer, role: o.role }));
    return { ok: true, room: m.room, peer: m.peer, role: m.role, peers, next: m.expected,
      capacity: this.capacity, iceServers: [], ...extra };
  }

  /** @param {string} conn @param {any} p @param {Function} reply */
  resume(conn, p, reply) {
    const m = this.member(p.room, p.peer);
    if (!m || m.token !== p.token) {
      reply(err('resume_failed'));
      return;
    }
    m.conn = conn;
    reply(this.reply(m, { acked: m.acked }));
    this.resend(m);
  }

  /** @param {string} conn @param {any} p */
  ack(conn, p) {
    const m = this.member(p.room, this.peerOf(conn, p.room) || '');
    if (!m) return err('not_joined');
    m.acks.push(p.seq);
    if (p.seq > m.acked && p.seq <= m.serverSeq) {
      m.acked = p.seq;
      m.queue = m.queue.filter((q) => q.payload.seq > p.seq);
    }
    return { ok: true };
  }

  /** @param {string} conn @param {string} room */
  peerOf(conn, room) {
    for (const m of this.rooms.get(room)?.values() || []) if (m.conn === conn) return m.peer;
    return null;
  }

  /** @param {string} conn @param {string} event @param {any} p @param {Function} reply */
  sequenced(conn, event, p, reply) {
    const peer = this.peerOf(conn, p.room);
    const m = peer ? this.member(p.room, peer) : undefined;
    if (!m) {
      reply(err('not_joined'));
      return;
    }
    if (p.seq < m.expected) {
      reply({ ok: true, seq: p.seq, duplicate: true });
      return;
    }
    let list = m.waiting.get(p.seq);
    if (!list) {
      list = [];
      m.waiting.set(p.seq, list);
    }
    const item = { event, payload: p, reply };
    list.push(item);
    if (p.seq > m.expected) {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        const l = m.waiting.get(p.seq);
        if (l && l.includes(item)) {
          l.splice(l.indexOf(item), 1);
          if (l.length === 0) m.waiting.delete(p.seq);
          reply(err('out_of_order'));
        }
      }, this.reorderTimeoutMs);
      this.timers.add(timer);
      return;
    }
    while (m.waiting.has(m.expected)) {
      const items = /** @type {any[]} */ (m.waiting.get(m.expected));
      m.waiting.delete(m.expected);
      const first = items[0];
      m.applied.push({ event: first.event, payload: first.payload });
      m.expected++;
      const result = this.apply(m, first.event, first.payload);
      first.reply(result);
      for (const dup of items.slice(1)) dup.reply({ ok: true, seq: dup.payload.seq, duplicate: true });
    }
  }

  /**
   * Relays to the other members (when `relay` is on).
   * @param {Member} m @param {string} event @param {any} p
   */
  apply(m, event, p) {
    if (this.onApply) {
      const r = this.onApply(m, event, p);
      if (r !== undefined) return r;
    }
    if (this.relay) {
      for (const other of this.room(m.room).values()) {
        if (other === m) continue;
        if (event === 'leave') this.push(other, 'peer-left', { peer: m.peer, reason: 'left' });
        else {
          const { room, seq, to, ...rest } = p;
          this.push(other, event, { from: m.peer, ...rest });
        }
      }
    }
    if (event === 'leave') this.room(m.room).delete(m.peer);
    return { ok: true, seq: p.seq, held: false };
  }

  /**
   * Queues a server message for `m` and sends it if connected.
   * @param {Member} m @param {string} event @param {object} data
   */
  push(m, event, data) {
    const payload = { room: m.room, seq: ++m.serverSeq, ...data };
    m.queue.push({ event, payload });
    const sock = m.conn ? this.connections.get(m.conn) : undefined;
    if (sock) sock.deliver(event, payload);
    return payload.seq;
  }

  /** Sends every unacknowledged message of `m` again. @param {Member} m */
  resend(m) {
    const sock = m.conn ? this.connections.get(m.conn) : undefined;
    if (!sock) return;
    for (const q of m.queue) sock.deliver(q.event, q.payload);
  }

  /** @param {string} conn */
  onDisconnect(conn) {
    for (const r of this.rooms.values()) {
      for (const m of r.values()) if (m.conn === conn) m.conn = null;
    }
  }

  close() {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

/** @param {string} code */
export function err(code) {
  return { ok: false, error: { code, message: code } };
}

/**
 * Polls `fn` until it returns truthy.
 * @param {() => any} fn
 * @param {number} [timeoutMs]
 * @param {string} [what]
 */
export async function until(fn, timeoutMs = 3000, what = 'condition') {
  const start = Date.now();
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** @param {number} ms */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

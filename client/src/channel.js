// Switchboard signaling channel: the client side of the delivery rules in docs/protocol.md.
//
// A SignalingChannel wraps one Socket.IO v4 client socket (from socket.io-client, given by the
// caller, so this module has no dependencies and runs in Node and in browsers) and one room
// membership. It numbers outgoing sequenced messages and retries them, backing off, until the
// server replies, applies incoming server messages exactly once and in order, acknowledges them,
// and resumes the membership after a reconnect.

/** Client events that carry a client `seq`. */
export const SEQUENCED_EVENTS = Object.freeze(['offer', 'answer', 'candidate', 'hangup', 'leave']);

/** Events the server sends to a member; each carries `room` and a server `seq`. */
export const SERVER_EVENTS = Object.freeze([
  'offer', 'answer', 'candidate', 'peer-joined', 'peer-left', 'hangup', 'expired',
]);

/**
 * Error codes after which a sequenced message is sent again with the same `seq`: the server did
 * not consume the number (protocol, "Error codes"). `not_joined` is handled separately.
 */
const RETRY_CODES = new Set(['out_of_order', 'unavailable', 'internal', 'rate_limited']);

/** How many `not_joined` replies in a row a message tolerates outside a reconnect. */
const NOT_JOINED_TOLERANCE = 3;

/** Smallest gap between two `ack` emissions, in milliseconds. */
const ACK_BATCH_MS = 20;

/**
 * How long to wait before resend number `n` (1 for the first) of one request: `retryMs`, doubled
 * per resend up to `maxRetryMs`, drawn uniformly from the upper half of that ("equal jitter").
 * Doubling keeps an overloaded server from being fed one more copy for every late reply; the
 * jitter keeps clients that lost their replies together from resending together.
 * @param {number} n
 * @param {number} retryMs
 * @param {number} maxRetryMs
 * @returns {number} milliseconds
 */
function retryDelay(n, retryMs, maxRetryMs) {
  const base = Math.min(maxRetryMs, retryMs * 2 ** Math.min(Math.max(n, 1) - 1, 30));
  return base / 2 + Math.random() * (base / 2);
}

const STORAGE_KEY = 'switchboard.membership';

/**
 * Bytes a Socket.IO message adds around its JSON arguments, at most: the packet types and the
 * ack id ahead of the array.
 */
const PACKET_OVERHEAD = 24;

/**
 * @typedef {object} Limits
 * The server's size limits, from the join or resume reply (protocol, `join`).
 * @property {number} maxSdpBytes
 * @property {number} maxCandidateBytes
 * @property {number} maxMessageBytes
 */

/**
 * @param {any} v a reply's `limits`
 * @returns {Limits | null} the limits a server announced; a missing or odd value is no limit
 */
function readLimits(v) {
  if (!v || typeof v !== 'object') return null;
  const n = (/** @type {any} */ x) => (Number.isInteger(x) && x > 0 ? x : Infinity);
  return { maxSdpBytes: n(v.maxSdpBytes), maxCandidateBytes: n(v.maxCandidateBytes), maxMessageBytes: n(v.maxMessageBytes) };
}

/**
 * The UTF-8 length of a string, as the server counts it (a lone surrogate arrives as U+FFFD,
 * 3 bytes).
 * @param {string} s
 * @returns {number}
 */
function utf8Length(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * @typedef {object} SocketLike
 * The part of a socket.io-client `Socket` this module uses.
 * @property {boolean} connected
 * @property {(event: string, fn: (...args: any[]) => void) => any} on
 * @property {(event: string, fn?: (...args: any[]) => void) => any} off
 * @property {(ms: number) => { emitWithAck: (event: string, ...args: any[]) => Promise<any> }} timeout
 */

/**
 * @typedef {object} StorageLike
 * A Web Storage-like object (e.g. `sessionStorage`) where the membership is kept so that a
 * reloaded page can resume it with {@link SignalingChannel#restore}.
 * @property {(key: string) => string | null} getItem
 * @property {(key: string, value: string) => void} setItem
 * @property {(key: string) => void} removeItem
 */

/**
 * @typedef {object} ChannelOptions
 * @property {number} [retryMs=1000] wait before the first resend of an unanswered message (or
 *   of a request refused with a transient error); each further resend waits twice as long, up
 *   to `maxRetryMs`, every wait drawn from 50–100% of that; a new connection starts again at
 *   `retryMs`
 * @property {number} [maxRetryMs=8000] the longest wait between two resends
 * @property {number} [ackTimeoutMs=1000] how long one emission waits for its reply at least (up
 *   to the next resend when that comes later)
 * @property {number} [maxInFlight=32] how many sequenced messages may await their reply at
 *   once; later ones wait their turn (the server refuses early messages beyond a limit of its
 *   own with out_of_order, so a larger burst only costs retry rounds)
 * @property {StorageLike} [storage] where to persist the membership (optional)
 */

/**
 * @typedef {object} Reply
 * @property {boolean} ok
 * @property {{code: string, message?: string}} [error]
 */

/**
 * @typedef {object} OutboxEntry
 * @property {number} seq
 * @property {string} event
 * @property {object} payload the full payload, with `room` and `seq`
 * @property {(reply: any) => void} resolve
 * @property {(err: Error) => void} reject
 * @property {boolean} settled
 * @property {any} timer
 * @property {number} notJoined consecutive `not_joined` replies
 * @property {number} attempts emissions in all
 * @property {number} round emissions on the current connection (sets the resend wait)
 */

/** An error from a server reply; `code` is the protocol's error code. */
export class SignalingError extends Error {
  /**
   * @param {string} code
   * @param {string} [message]
   * @param {any} [reply]
   */
  constructor(code, message, reply) {
    super(message || code);
    this.name = 'SignalingError';
    /** @type {string} */
    this.code = code;
    /** @type {any} */
    this.reply = reply;
  }
}

/** A minimal event emitter that does not depend on Node's `events`. */
export class Emitter {
  constructor() {
    /** @type {Map<string, Array<(...args: any[]) => void>>} */
    this._listeners = new Map();
  }

  /**
   * @param {string} event
   * @param {(...args: any[]) => void} fn
   * @returns {this}
   */
  on(event, fn) {
    const list = this._listeners.get(event);
    if (list) list.push(fn);
    else this._listeners.set(event, [fn]);
    return this;
  }

  /**
   * @param {string} event
   * @param {(...args: any[]) => void} fn
   * @returns {this}
   */
  once(event, fn) {
    const wrapper = (/** @type {any[]} */ ...args) => {
      this.off(event, wrapper);
      fn.apply(this, args);
    };
    return this.on(event, wrapper);
  }

  /**
   * Removes one listener, or every listener of `event` when `fn` is omitted, or every listener
   * when both are omitted.
   * @param {string} [event]
   * @param {(...args: any[]) => void} [fn]
   * @returns {this}
   */
  off(event, fn) {
    if (event === undefined) {
      this._listeners.clear();
      return this;
    }
    if (!fn) {
      this._listeners.delete(event);
      return this;
    }
    const list = this._listeners.get(event);
    if (!list) return this;
    const i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this._listeners.delete(event);
    return this;
  }

  /**
   * Calls the listeners of `event` in order. A throwing listener does not stop the others; its
   * error is reported with the `listener-error` event (or rethrown asynchronously when nobody
   * listens to that).
   * @param {string} event
   * @param {...any} args
   * @returns {boolean} whether anyone listened
   */
  emit(event, ...args) {
    const list = this._listeners.get(event);
    if (!list || list.length === 0) return false;
    for (const fn of [...list]) {
      try {
        fn.apply(this, args);
      } catch (err) {
        if (event !== 'listener-error' && this.listenerCount('listener-error') > 0) {
          this.emit('listener-error', err, event);
        } else {
          setTimeout(() => { throw err; }, 0);
        }
      }
    }
    return true;
  }

  /**
   * @param {string} event
   * @returns {number}
   */
  listenerCount(event) {
    const list = this._listeners.get(event);
    return list ? list.length : 0;
  }
}

/** @returns {string} 16 random hex characters */
function randomNonce() {
  const bytes = new Uint8Array(8);
  const c = /** @type {any} */ (globalThis).crypto;
  if (c && typeof c.getRandomValues === 'function') {
    c.getRandomValues(bytes);
  } else {
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  }
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * @param {any} reply
 * @returns {SignalingError}
 */
function replyError(reply) {
  const err = reply && typeof reply === 'object' && reply.error && typeof reply.error === 'object'
    ? reply.error : {};
  const code = typeof err.code === 'string' ? err.code : 'bad_reply';
  return new SignalingError(code, typeof err.message === 'string' ? err.message : code, reply);
}

/**
 * One membership of one room over a Socket.IO connection, with the protocol's delivery rules.
 *
 * Events emitted:
 * - the server events (`offer`, `answer`, `candidate`, `peer-joined`, `peer-left`, `hangup`,
 *   `expired`) with their payload, each exactly once and in server `seq` order;
 * - `resumed` (reply) after a successful resume;
 * - `resume-failed` (error) when the membership could not be resumed: the channel stops;
 * - `listener-error` (error, event) when a listener threw.
 */
export class SignalingChannel extends Emitter {
  /**
   * @param {SocketLike} socket a socket.io-client socket (connected or not)
   * @param {ChannelOptions} [options]
   */
  constructor(socket, {
    retryMs = 1000, maxRetryMs = 8000, ackTimeoutMs = 1000, maxInFlight = 32, storage,
  } = {}) {
    super();
    this.retryMs = retryMs;
    this.maxRetryMs = Math.max(retryMs, maxRetryMs);
    this.ackTimeoutMs = ackTimeoutMs;
    this.maxInFlight = Math.max(1, maxInFlight);
    /** @type {StorageLike | undefined} */
    this.storage = storage;

    /** @type {string | null} */
    this.room = null;
    /** @type {string | null} */
    this.peer = null;
    /** @type {string | null} */
    this.token = null;
    /** @type {string | null} */
    this.role = null;
    /** @type {Array<{peer: string, role: string}>} */
    this.peers = [];
    /** @type {any[]} */
    this.iceServers = [];
    /** @type {any} the last join or resume reply */
    this.membership = null;
    /** @type {Limits | null} the server's size limits, from the last join or resume reply */
    this.limits = null;

    /** Next client seq to assign. */
    this._nextSeq = 1;
    /** @type {Map<number, OutboxEntry>} */
    this._outbox = new Map();
    /** Last server seq applied (emitted). */
    this._applied = 0;
    /** @type {Map<number, {event: string, payload: any}>} server messages ahead of order */
    this._ahead = new Map();
    /** Room whose join is in progress: its events are buffered until the join reply. */
    this._joiningRoom = /** @type {string | null} */ (null);

    // ack batching
    this._ackInFlight = false;
    this._ackWanted = false;
    this._ackForce = false;
    this._ackSent = 0;
    this._ackTimer = /** @type {any} */ (null);
    this._lastAckAt = 0;
    /** Failed `ack` emissions in a row on this connection: the next one backs off. */
    this._ackFailures = 0;

    // connection state
    this._closed = false;
    this._resuming = false;
    this._resumeGen = 0;
    this._resumeTimer = /** @type {any} */ (null);
    /** Bumped on every (re)connect, so stale retry loops can tell. */
    this._connGen = 0;
    /**
     * Pending `sleep` timers, cleared by close().
     * @type {Set<{timer: any, resolve: () => void, untilConnect: boolean}>}
     */
    this._sleeps = new Set();

    /** @type {SocketLike | null} */
    this.socket = null;
    /** @type {Array<[string, (...args: any[]) => void]>} */
    this._socketHandlers = [];
    this._attachSocket(socket, false);
  }

  // ---------------------------------------------------------------------------------------------
  // Public API

  /** @returns {boolean} whether the channel holds a membership */
  get joined() {
    return this.peer !== null && this.token !== null;
  }

  /** @returns {number} the server seq of the last applied message */
  get lastApplied() {
    return this._applied;
  }

  /** @returns {number} how many sequenced messages wait for their reply */
  get pending() {
    return this._outbox.size;
  }

  /**
   * Joins `room`. The join is retried with the same nonce until a reply arrives, so a lost reply
   * or a reconnect never creates a second membership. Resolves with the server's reply; rejects
   * with a {@link SignalingError} on an error reply.
   *
   * Register the server-event listeners before calling: messages that arrive with the reply
   * (a held offer) are emitted just before the returned promise resolves.
   * @param {string} room
   * @param {{token?: string}} [options] `token`: a room token, for servers that require one
   * @returns {Promise<any>}
   */
  async join(room, options = {}) {
    if (this._closed) throw new SignalingError('closed', 'channel is closed');
    if (this.joined || this._joiningRoom !== null) {
      throw new SignalingError('already_joined', 'this channel already has a membership');
    }
    const nonce = randomNonce();
    this._joiningRoom = room;
    this._applied = 0;
    this._ahead.clear();
    try {
      const payload = options.token ? { room, nonce, token: options.token } : { room, nonce };
      const reply = await this._requestUntilReply('join', payload, () => true, (r) => {
        const code = replyError(r).code;
        return code === 'unavailable' || code === 'rate_limited';
      });
      if (!reply || reply.ok !== true) throw replyError(reply);
      this._setMembership(reply, room);
      this._nextSeq = Number.isInteger(reply.next) && reply.next > 0 ? reply.next : 1;
      if (typeof reply.token === 'string') this.token = reply.token;
      this._save();
      this._joiningRoom = null;
      this._drainAhead();
      return reply;
    } catch (err) {
      if (this._joiningRoom === room) {
        this._joiningRoom = null;
        this._ahead.clear();
      }
      throw err;
    }
  }

  /**
   * Sends a sequenced message (`offer`, `answer`, `candidate`, `hangup`, `leave`). `room` and
   * `seq` are filled in. The message is emitted at once and again, backing off from `retryMs` to
   * `maxRetryMs`, until the server replies; several may be in flight. Resolves with the ok reply,
   * once; rejects with a {@link SignalingError} on a final error reply. A message over the
   * server's limits (announced in the join reply: SDP, candidate, whole message) is never sent:
   * it rejects at once with code `too_large` and uses no `seq`.
   *
   * A message the server had applied before a reconnect, whose reply was lost, resolves with
   * `{ok: true, seq, applied: true}` when the resume reply shows it was applied.
   * @param {string} event
   * @param {object} [payload]
   * @returns {Promise<any>}
   */
  send(event, payload = {}) {
    if (!SEQUENCED_EVENTS.includes(event)) {
      return Promise.reject(new SignalingError('bad_request', `not a sequenced event: ${event}`));
    }
    if (this._closed) return Promise.reject(new SignalingError('closed', 'channel is closed'));
    if (!this.joined || this.room === null) {
      return Promise.reject(new SignalingError('not_joined', 'join a room first'));
    }
    const full = { ...payload, room: this.room, seq: this._nextSeq };
    // Refused here, not by the server: a message over its limit would cost the connection.
    const tooLarge = this._oversize(event, full);
    if (tooLarge) return Promise.reject(new SignalingError('too_large', tooLarge));
    const seq = this._nextSeq++;
    const promise = new Promise((resolve, reject) => {
      /** @type {OutboxEntry} */
      const entry = {
        seq, event, payload: full, resolve, reject, settled: false, timer: null,
        notJoined: 0, attempts: 0, round: 0,
      };
      this._outbox.set(seq, entry);
      this._save();
      this._attempt(entry);
    });
    if (event !== 'leave') return promise;
    const room = this.room;
    const peer = this.peer;
    return promise.then((reply) => {
      // The membership ends with the leave (unless a later join replaced it meanwhile).
      if (this.room === room && this.peer === peer) this._endMembership();
      return reply;
    });
  }

  /**
   * Why `payload` is over the server's limits, or null when it is not (or they are unknown).
   * @param {string} event
   * @param {any} payload
   * @returns {string | null}
   */
  _oversize(event, payload) {
    const lim = this.limits;
    if (!lim) return null;
    if ((event === 'offer' || event === 'answer') && typeof payload.sdp === 'string') {
      const n = utf8Length(payload.sdp);
      if (n > lim.maxSdpBytes) return `sdp is ${n} bytes, the limit is ${lim.maxSdpBytes}`;
    }
    const c = event === 'candidate' && payload.candidate;
    if (c && typeof c.candidate === 'string') {
      const n = utf8Length(c.candidate);
      if (n > lim.maxCandidateBytes) return `candidate is ${n} bytes, the limit is ${lim.maxCandidateBytes}`;
    }
    if (lim.maxMessageBytes !== Infinity) {
      let json;
      try {
        json = JSON.stringify([event, payload]);
      } catch {
        return null; // not serialisable: socket.io-client reports that itself
      }
      const n = utf8Length(json) + PACKET_OVERHEAD;
      if (n > lim.maxMessageBytes) return `${event} is about ${n} bytes, the message limit is ${lim.maxMessageBytes}`;
    }
    return null;
  }

  /** @param {any} sdp @param {object} [extra] */
  offer(sdp, extra = {}) { return this.send('offer', { ...extra, sdp }); }

  /** @param {any} sdp @param {object} [extra] */
  answer(sdp, extra = {}) { return this.send('answer', { ...extra, sdp }); }

  /** @param {any} candidate RTCIceCandidateInit or null @param {object} [extra] */
  candidate(candidate, extra = {}) { return this.send('candidate', { ...extra, candidate }); }

  hangup() { return this.send('hangup'); }

  /** Leaves the room; on success the membership ends and the channel may join again. */
  leave() { return this.send('leave'); }

  /**
   * Switches the channel to another socket (e.g. a new connection to another instance after the
   * old one died). The old socket's listeners are removed; closing it is up to the caller. If the
   * channel holds a membership it is resumed on the new socket as soon as that one is connected.
   * @param {SocketLike} socket
   */
  attach(socket) {
    if (this._closed) throw new SignalingError('closed', 'channel is closed');
    this._detachSocket();
    this._cancelResume();
    this._attachSocket(socket, true);
  }

  /**
   * Resumes a membership kept in `storage` (e.g. after a page reload). Resolves with the resume
   * reply, or null when nothing was stored; rejects with a {@link SignalingError}
   * (`resume_failed` included, in which case the stored membership is removed).
   * @returns {Promise<any>}
   */
  async restore() {
    if (!this.storage || this.joined) return null;
    let saved;
    try {
      saved = JSON.parse(this.storage.getItem(STORAGE_KEY) || 'null');
    } catch {
      saved = null;
    }
    if (!saved || typeof saved.room !== 'string' || typeof saved.peer !== 'string'
      || typeof saved.token !== 'string') return null;
    this.room = saved.room;
    this.peer = saved.peer;
    this.token = saved.token;
    this.role = saved.role || null;
    this._applied = Number.isInteger(saved.applied) ? saved.applied : 0;
    this._nextSeq = Number.isInteger(saved.next) ? saved.next : 1;
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        this.off('resumed', onOk);
        this.off('resume-failed', onFail);
      };
      const onOk = (/** @type {any} */ reply) => { cleanup(); resolve(reply); };
      const onFail = (/** @type {any} */ err) => { cleanup(); reject(err); };
      this.on('resumed', onOk);
      this.on('resume-failed', onFail);
      if (this.socket && this.socket.connected) this._startResume();
    });
  }

  /**
   * Stops everything: timers, retries, socket listeners. Pending sends reject with code
   * `closed`. The socket itself is left to the caller.
   */
  close() {
    if (this._closed) return;
    this._closed = true;
    this._cancelResume();
    if (this._ackTimer) clearTimeout(this._ackTimer);
    this._ackTimer = null;
    for (const t of this._sleeps) {
      clearTimeout(t.timer);
      t.resolve();
    }
    this._sleeps.clear();
    const pending = [...this._outbox.values()];
    this._outbox.clear();
    for (const entry of pending) {
      this._settle(entry, null, new SignalingError('closed', 'channel is closed'));
    }
    this._detachSocket();
    this.off();
  }

  // ---------------------------------------------------------------------------------------------
  // Socket wiring

  /**
   * @param {SocketLike} socket
   * @param {boolean} isNew whether this replaces an earlier socket (then a socket that is
   *   connected already is treated as a fresh connection)
   */
  _attachSocket(socket, isNew) {
    this.socket = socket;
    /** @type {Array<[string, (...args: any[]) => void]>} */
    const handlers = [];
    handlers.push(['connect', () => this._onConnect()]);
    handlers.push(['disconnect', () => {
      this._connGen++;
      this._cancelResume();
    }]);
    for (const event of SERVER_EVENTS) {
      handlers.push([event, (/** @type {any} */ payload) => this._onServerEvent(event, payload)]);
    }
    for (const [event, fn] of handlers) socket.on(event, fn);
    this._socketHandlers = handlers;
    if (isNew && socket.connected) this._onConnect();
  }

  /**
   * A membership can only exist at a connect if it was made on an earlier connection (or
   * restored from storage): it is resumed on this one before anything else is sent.
   */
  _onConnect() {
    this._connGen++;
    this._ackFailures = 0;
    for (const t of this._sleeps) {
      if (!t.untilConnect) continue;
      clearTimeout(t.timer);
      this._sleeps.delete(t);
      t.resolve();
    }
    if (this.joined) this._startResume();
    else this._kickOutbox();
  }

  _detachSocket() {
    const socket = this.socket;
    if (!socket) return;
    for (const [event, fn] of this._socketHandlers) socket.off(event, fn);
    this._socketHandlers = [];
  }

  /** @returns {boolean} */
  _connected() {
    return !!this.socket && this.socket.connected === true;
  }

  // ---------------------------------------------------------------------------------------------
  // Requests

  /**
   * Emits `event` until a reply arrives that `retryable` does not refuse (timeouts and
   * disconnections are retried too), backing off between emissions as `send` does; one emission
   * at a time, so the next one also waits for the last one's `ackTimeoutMs`. Used for `join` and
   * `resume`.
   * @param {string} event
   * @param {object} payload
   * @param {() => boolean} keepGoing checked before every attempt
   * @param {(reply: any) => boolean} [retryable] whether a reply is a transient error
   * @returns {Promise<any>}
   */
  async _requestUntilReply(event, payload, keepGoing, retryable = () => false) {
    let round = 0;
    let connGen = this._connGen;
    for (;;) {
      if (this._closed) throw new SignalingError('closed', 'channel is closed');
      if (!keepGoing()) throw new SignalingError('cancelled', `${event} cancelled`);
      if (!this._connected()) {
        await this._sleep(Math.min(this.retryMs, 100));
        continue;
      }
      if (connGen !== this._connGen) {
        // A fresh connection: try promptly again.
        connGen = this._connGen;
        round = 0;
      }
      const wait = retryDelay(++round, this.retryMs, this.maxRetryMs);
      const started = Date.now();
      const socket = /** @type {SocketLike} */ (this.socket);
      let answered = false;
      let reply;
      try {
        reply = await socket.timeout(Math.max(this.ackTimeoutMs, wait)).emitWithAck(event, payload);
        answered = true;
      } catch {
        // timed out or disconnected
      }
      if (answered && ((reply && reply.ok === true) || !retryable(reply))) return reply;
      // Emit again once the wait is over, or at once on a new connection.
      const left = wait - (Date.now() - started);
      if (left > 0 && connGen === this._connGen) await this._sleep(left, true);
    }
  }

  /**
   * @param {number} ms
   * @param {boolean} [untilConnect] end early when a new connection is made
   * @returns {Promise<void>}
   */
  _sleep(ms, untilConnect = false) {
    return new Promise((resolve) => {
      const t = { timer: /** @type {any} */ (null), resolve, untilConnect };
      t.timer = setTimeout(() => {
        this._sleeps.delete(t);
        resolve();
      }, ms);
      this._sleeps.add(t);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Outgoing sequenced messages

  /** @returns {boolean} whether sequenced messages and acks may be emitted now */
  _canSend() {
    return !this._closed && !this._resuming && this._connected() && this.joined;
  }

  /**
   * Emits every unanswered message now (after a (re)connect or resume); the backoff starts
   * again, as the new connection may well answer at once.
   */
  _kickOutbox() {
    const entries = [...this._outbox.values()].sort((a, b) => a.seq - b.seq);
    for (const entry of entries) {
      if (entry.timer) clearTimeout(entry.timer);
      entry.timer = null;
      entry.round = 0;
      this._attempt(entry);
    }
  }

  /**
   * Whether `entry` is among the `maxInFlight` lowest unanswered seqs.
   * @param {OutboxEntry} entry
   */
  _inWindow(entry) {
    const first = this._outbox.keys().next();
    return first.done || entry.seq < first.value + this.maxInFlight;
  }

  /** Emits the messages that just entered the window and were never sent. */
  _kickWindow() {
    if (!this._canSend()) return;
    let n = 0;
    for (const entry of this._outbox.values()) {
      if (++n > this.maxInFlight) break;
      if (!entry.settled && entry.attempts === 0 && !entry.timer) this._attempt(entry);
    }
  }

  /** @param {OutboxEntry} entry */
  _attempt(entry) {
    if (entry.settled || this._closed) return;
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = null;
    if (!this._canSend()) {
      // Sent again by _kickOutbox once connected and resumed.
      return;
    }
    if (!this._inWindow(entry)) {
      // Sent by _kickWindow once the messages before it are answered.
      return;
    }
    entry.attempts++;
    const connGen = this._connGen;
    const resumeGen = this._resumeGen;
    const socket = /** @type {SocketLike} */ (this.socket);
    const wait = retryDelay(++entry.round, this.retryMs, this.maxRetryMs);
    entry.timer = setTimeout(() => {
      entry.timer = null;
      this._attempt(entry);
    }, wait);
    // A reply after ackTimeoutMs but before the resend still settles the message, rather than
    // being dropped and costing the (overloaded) server one more copy.
    socket.timeout(Math.max(this.ackTimeoutMs, wait)).emitWithAck(entry.event, entry.payload).then(
      (reply) => this._onSendReply(entry, reply, connGen, resumeGen),
      () => { /* no reply in time: the retry timer sends it again */ },
    );
  }

  /**
   * @param {OutboxEntry} entry
   * @param {any} reply
   * @param {number} connGen connection generation when the attempt was emitted
   * @param {number} resumeGen resume generation when the attempt was emitted
   */
  _onSendReply(entry, reply, connGen, resumeGen) {
    if (entry.settled || this._closed) return;
    if (reply && reply.ok === true) {
      this._settle(entry, reply, null);
      return;
    }
    const err = replyError(reply);
    if (RETRY_CODES.has(err.code)) return; // the retry timer sends it again
    if (err.code === 'not_joined') {
      // Right after a reconnect the server may answer for a connection that had not resumed
      // yet; that is retried. Repeated not_joined on a settled connection is final.
      const raced = connGen !== this._connGen || resumeGen !== this._resumeGen || this._resuming;
      if (raced) return;
      if (entry.event === 'leave' && entry.attempts > 1) {
        // A retried leave whose first reply was lost: the membership is gone, as it asked.
        this._settle(entry, { ok: true, seq: entry.seq, applied: true }, null);
        return;
      }
      entry.notJoined++;
      if (entry.notJoined < NOT_JOINED_TOLERANCE) return;
    }
    this._settle(entry, null, err);
  }

  /**
   * @param {OutboxEntry} entry
   * @param {any} reply
   * @param {Error | null} err
   */
  _settle(entry, reply, err) {
    if (entry.settled) return;
    entry.settled = true;
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = null;
    const wasFirst = this._outbox.keys().next().value === entry.seq;
    this._outbox.delete(entry.seq);
    if (err) entry.reject(err);
    else entry.resolve(reply);
    if (wasFirst && !this._closed) this._kickWindow();
  }

  // ---------------------------------------------------------------------------------------------
  // Resume

  _startResume() {
    if (this._closed || !this.joined) return;
    this._cancelResume();
    this._resuming = true;
    const gen = ++this._resumeGen;
    const connGen = this._connGen;
    const payload = { room: this.room, peer: this.peer, token: this.token };
    const keepGoing = () => gen === this._resumeGen && connGen === this._connGen && !this._closed;
    /** @param {any} r unavailable, internal, …: tried again */
    const transient = (r) => {
      const code = replyError(r).code;
      return code !== 'resume_failed' && code !== 'bad_request';
    };
    const run = async () => {
      let reply;
      try {
        reply = await this._requestUntilReply('resume', payload, keepGoing, transient);
      } catch {
        return; // cancelled or closed: a later connect starts again
      }
      if (!keepGoing()) return;
      if (reply && reply.ok === true) {
        this._onResumed(reply);
        return;
      }
      this._resuming = false;
      this._onResumeFailed(replyError(reply));
    };
    run();
  }

  _cancelResume() {
    if (this._resuming) this._resumeGen++;
    this._resuming = false;
  }

  /** @param {any} reply */
  _onResumed(reply) {
    this._resuming = false;
    this._ackFailures = 0;
    this._setMembership(reply, /** @type {string} */ (this.room));
    const next = Number.isInteger(reply.next) ? reply.next : null;
    if (next !== null) {
      // Everything below `next` was applied by the server; its reply was lost.
      for (const entry of [...this._outbox.values()]) {
        if (entry.seq < next) this._settle(entry, { ok: true, seq: entry.seq, applied: true }, null);
      }
      // With nothing left to send (e.g. restored from storage) numbering goes on at `next`.
      if (this._outbox.size === 0 || this._nextSeq < next) this._nextSeq = next;
    }
    this._save();
    this.emit('resumed', reply);
    this._kickOutbox();
    // An ack held back by failures on the old connection goes now.
    if (this._ackTimer) clearTimeout(this._ackTimer);
    this._ackTimer = null;
    // The server resends every message after `acked`; make sure it learns what we applied.
    const acked = Number.isInteger(reply.acked) ? reply.acked : 0;
    if (this._applied > acked || this._ackWanted) this._scheduleAck(true);
  }

  /** @param {SignalingError} err */
  _onResumeFailed(err) {
    const pending = [...this._outbox.values()];
    this._outbox.clear();
    // A leave whose reply was lost ended the membership as it meant to.
    const leaving = pending.some((e) => e.event === 'leave');
    for (const entry of pending) {
      if (entry.event === 'leave') this._settle(entry, { ok: true, seq: entry.seq, applied: true }, null);
      else this._settle(entry, null, err);
    }
    this._endMembership();
    if (!leaving) this.emit('resume-failed', err);
  }

  // ---------------------------------------------------------------------------------------------
  // Incoming server messages

  /**
   * @param {string} event
   * @param {any} payload
   */
  _onServerEvent(event, payload) {
    if (this._closed || !payload || typeof payload !== 'object') return;
    const room = this.joined ? this.room : this._joiningRoom;
    if (room === null || payload.room !== room) return;
    const seq = payload.seq;
    if (!Number.isInteger(seq) || seq < 1) return;
    if (seq <= this._applied) {
      // Already applied: the server resends it because it missed our ack.
      this._scheduleAck(true);
      return;
    }
    if (!this._ahead.has(seq)) this._ahead.set(seq, { event, payload });
    if (this.joined) this._drainAhead();
  }

  /** Applies buffered messages that are next in order, then acknowledges. */
  _drainAhead() {
    let progressed = false;
    for (;;) {
      const next = this._ahead.get(this._applied + 1);
      if (!next) break;
      this._ahead.delete(this._applied + 1);
      this._applied++;
      progressed = true;
      this._track(next.event, next.payload);
      this.emit(next.event, next.payload);
      if (this._closed) return;
    }
    if (progressed) {
      this._save();
      this._scheduleAck(false);
    }
  }

  /**
   * Keeps `peers` up to date.
   * @param {string} event
   * @param {any} payload
   */
  _track(event, payload) {
    if (event === 'peer-joined' && typeof payload.peer === 'string') {
      if (!this.peers.some((p) => p.peer === payload.peer)) {
        this.peers.push({ peer: payload.peer, role: payload.role });
      }
    } else if (event === 'peer-left' && typeof payload.peer === 'string') {
      this.peers = this.peers.filter((p) => p.peer !== payload.peer);
    }
  }

  /**
   * Sends `ack {room, seq: lastApplied}` soon: at most one in flight, at most one per
   * ACK_BATCH_MS, always the latest. After a failed one the next waits as a resend does.
   * @param {boolean} force send even if this seq was acknowledged already
   */
  _scheduleAck(force) {
    if (this._closed) return;
    if (force) this._ackForce = true;
    this._ackWanted = true;
    if (this._ackInFlight || this._ackTimer) return;
    const gap = this._ackFailures > 0
      ? Math.max(ACK_BATCH_MS, retryDelay(this._ackFailures, this.retryMs, this.maxRetryMs))
      : ACK_BATCH_MS;
    const wait = Math.max(0, this._lastAckAt + gap - Date.now());
    this._ackTimer = setTimeout(() => {
      this._ackTimer = null;
      this._flushAck();
    }, wait);
  }

  _flushAck() {
    if (this._closed || !this._ackWanted) return;
    if (!this._canSend()) return; // resent after resume
    const seq = this._applied;
    if (seq < 1) {
      this._ackWanted = false;
      return;
    }
    if (!this._ackForce && seq <= (this._ackSent || 0)) {
      this._ackWanted = false;
      return;
    }
    this._ackWanted = false;
    this._ackForce = false;
    this._ackInFlight = true;
    this._lastAckAt = Date.now();
    const socket = /** @type {SocketLike} */ (this.socket);
    const connGen = this._connGen;
    const done = (/** @type {any} */ reply) => {
      this._ackInFlight = false;
      const ok = reply && reply.ok === true;
      if (ok && seq > (this._ackSent || 0)) this._ackSent = seq;
      if (this._closed) return;
      if (connGen === this._connGen) this._ackFailures = ok ? 0 : this._ackFailures + 1;
      if (!ok) {
        // Lost or refused (e.g. a resume race): try again with whatever is latest then.
        this._ackWanted = true;
        this._ackForce = true;
      }
      if (this._ackWanted) this._scheduleAck(false);
    };
    socket.timeout(this.ackTimeoutMs).emitWithAck('ack', { room: this.room, seq })
      .then(done, () => done(null));
  }

  // ---------------------------------------------------------------------------------------------
  // Membership state

  /**
   * @param {any} reply a join or resume reply
   * @param {string} room
   */
  _setMembership(reply, room) {
    this.membership = reply;
    this.room = typeof reply.room === 'string' ? reply.room : room;
    if (typeof reply.peer === 'string') this.peer = reply.peer;
    if (typeof reply.role === 'string') this.role = reply.role;
    if (Array.isArray(reply.peers)) this.peers = reply.peers.map((/** @type {any} */ p) => ({ ...p }));
    if (Array.isArray(reply.iceServers)) this.iceServers = reply.iceServers;
    const limits = readLimits(reply.limits);
    if (limits) this.limits = limits;
  }

  _endMembership() {
    this._cancelResume();
    const pending = [...this._outbox.values()];
    this._outbox.clear();
    for (const entry of pending) {
      this._settle(entry, null, new SignalingError('not_joined', 'the membership ended'));
    }
    this.room = null;
    this.peer = null;
    this.token = null;
    this.role = null;
    this.peers = [];
    this.membership = null;
    this._nextSeq = 1;
    this._applied = 0;
    this._ahead.clear();
    this._ackWanted = false;
    this._ackForce = false;
    this._ackSent = 0;
    if (this._ackTimer) clearTimeout(this._ackTimer);
    this._ackTimer = null;
    if (this.storage) {
      try { this.storage.removeItem(STORAGE_KEY); } catch { /* storage unavailable */ }
    }
  }

  _save() {
    if (!this.storage || !this.joined) return;
    const state = {
      room: this.room, peer: this.peer, token: this.token, role: this.role,
      next: this._nextSeq, applied: this._applied,
    };
    try {
      this.storage.setItem(STORAGE_KEY, JSON.stringify(state));
    } catch { /* storage full or unavailable: resume after reload will not be possible */ }
  }
}

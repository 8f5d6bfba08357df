// The connection to Switchboard: one socket.io-client socket (websocket by default), a watchdog
// for connections whose Socket.IO handshake gets no reply, failover across a list of server
// URLs, and the calls made on it.

import { io as defaultIo } from 'socket.io-client';
import { Emitter, SignalingError } from './channel.js';
import { Call } from './call.js';

/** @typedef {'connecting' | 'connected' | 'reconnecting' | 'closed'} ConnectionStatus */

/**
 * @typedef {object} SwitchboardOptions
 * @property {Array<'websocket' | 'polling'>} [transports=['websocket']] Engine.IO transports;
 *   `['polling', 'websocket']` starts with long-polling and upgrades (needs sticky sessions
 *   behind a load balancer)
 * @property {string} [path='/socket.io/'] Socket.IO path on the server
 * @property {number} [connectTimeoutMs=3000] a connection whose Socket.IO handshake is not
 *   answered by then is closed and made again
 * @property {number} [failoverAfter=2] with several URLs, move to the next one after this many
 *   failed connection attempts in a row
 * @property {number} [reconnectionDelay=250] first delay before a reconnection attempt (ms)
 * @property {number} [reconnectionDelayMax=2000] largest delay between attempts (ms)
 * @property {number} [retryMs=1000] wait before the first resend of an unanswered signaling
 *   message; it doubles per resend up to `maxRetryMs` (each wait drawn from 50–100% of that)
 *   and starts again at `retryMs` on a new connection
 * @property {number} [maxRetryMs=8000] the longest wait between two resends
 * @property {number} [ackTimeoutMs=1000] how long one emission waits for its reply at least (up
 *   to the next resend when that comes later)
 * @property {import('./channel.js').StorageLike | null} [storage] where memberships are kept
 *   for a page reload (default `sessionStorage`; `null` for none)
 * @property {object} [socketOptions] more socket.io-client options
 * @property {(url: string, opts: object) => any} [io] socket factory (default socket.io-client's `io`)
 * @property {any} [RTCPeerConnection] constructor (default the global one)
 */

/**
 * A connection to a Switchboard deployment.
 *
 * Events: `status` (ConnectionStatus). `url` is the server currently used.
 */
export class Switchboard extends Emitter {
  /**
   * @param {string | string[]} [url] server URL, or several instances of one deployment to fail
   *   over between (default: the page's origin)
   * @param {SwitchboardOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    const list = (Array.isArray(url) ? url : [url]).filter((u) => typeof u === 'string' && u !== '');
    if (list.length === 0) {
      const loc = /** @type {any} */ (globalThis).location;
      if (!loc || !loc.origin || loc.origin === 'null') throw new TypeError('Switchboard: a server URL is required');
      list.push(loc.origin);
    }
    /** @type {string[]} */
    this.urls = list;
    this.options = {
      transports: options.transports || ['websocket'],
      path: options.path || '/socket.io/',
      connectTimeoutMs: options.connectTimeoutMs ?? 3000,
      failoverAfter: Math.max(1, options.failoverAfter ?? 2),
      reconnectionDelay: options.reconnectionDelay ?? 250,
      reconnectionDelayMax: options.reconnectionDelayMax ?? 2000,
      socketOptions: options.socketOptions || {},
    };
    this.retryMs = options.retryMs ?? 1000;
    this.maxRetryMs = options.maxRetryMs ?? 8000;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 1000;
    this.storage = options.storage === undefined ? defaultStorage() : options.storage;
    this.RTCPeerConnection = options.RTCPeerConnection || /** @type {any} */ (globalThis).RTCPeerConnection;
    this._io = options.io || defaultIo;
    /** @type {ConnectionStatus} */
    this.status = 'connecting';
    /** @type {Set<Call>} */
    this.calls = new Set();
    this._index = 0;
    this._failures = 0;
    this._closed = false;
    /** @type {Array<() => void>} undoes the listeners of the current socket */
    this._unwatch = [];
    /** @type {string} */
    this.url = this.urls[0];
    this.socket = this._open(this.url);
  }

  /** @returns {boolean} whether the signaling connection is up */
  get connected() {
    return !!this.socket && this.socket.connected === true;
  }

  /**
   * Joins `room` and starts the call: the first member's offer is held by the server until the
   * next member joins, which answers it. Rejects with a SignalingError whose `code` is
   * `room_full`, `bad_request`, … Add the call's listeners right after this resolves.
   * @param {string} room
   * @param {import('./call.js').CallOptions} [options]
   * @returns {Promise<Call>}
   */
  async join(room, options = {}) {
    if (this._closed) throw new SignalingError('closed', 'Switchboard is closed');
    const call = new Call(this, room, options);
    this.calls.add(call);
    let reply;
    try {
      reply = await call._join();
    } catch (err) {
      this.calls.delete(call);
      call.channel.close();
      throw err;
    }
    // Handling starts after the application got the call and added its listeners.
    setTimeout(() => call._start(reply), 0);
    return call;
  }

  /** Hangs up every call and closes the connection. */
  async close() {
    if (this._closed) return;
    await Promise.all([...this.calls].map((c) => c.hangup()));
    this._closed = true;
    this._closeSocket(this.socket);
    this._setStatus('closed');
  }

  // ---------------------------------------------------------------------------------------------

  /** @param {Call} call */
  forget(call) {
    this.calls.delete(call);
  }

  /**
   * @param {string} url
   * @returns {any} a socket.io-client socket
   */
  _open(url) {
    const socket = this._io(url, {
      transports: this.options.transports,
      path: this.options.path,
      forceNew: true,
      reconnectionDelay: this.options.reconnectionDelay,
      reconnectionDelayMax: this.options.reconnectionDelayMax,
      ...this.options.socketOptions,
    });
    /** @type {Array<() => void>} */
    const undo = [];
    /** @param {any} emitter @param {string} event @param {(...args: any[]) => void} fn */
    const listen = (emitter, event, fn) => {
      emitter.on(event, fn);
      undo.push(() => emitter.off(event, fn));
    };
    listen(socket, 'connect', () => {
      this._failures = 0;
      this._setStatus('connected');
    });
    listen(socket, 'disconnect', (/** @type {string} */ reason) => {
      if (this._closed) return;
      this._setStatus('reconnecting');
      // socket.io-client does not reconnect after a disconnect from the server side.
      if (reason === 'io server disconnect' && socket === this.socket) socket.connect();
    });
    listen(socket, 'connect_error', () => {
      if (this._closed || socket !== this.socket) return;
      if (this.status === 'connected') this._setStatus('reconnecting');
      this._failures++;
      if (this.urls.length > 1 && this._failures >= this.options.failoverAfter) this._failover();
    });
    this._watchHandshake(socket, listen, undo);
    this._unwatch = undo;
    return socket;
  }

  /**
   * Now and then a server accepts the Engine.IO connection but never answers the Socket.IO
   * CONNECT; the client would wait forever. Close such a connection so that it is made again.
   * @param {any} socket
   * @param {(emitter: any, event: string, fn: (...args: any[]) => void) => void} listen
   * @param {Array<() => void>} undo
   */
  _watchHandshake(socket, listen, undo) {
    const manager = socket.io;
    if (!manager || typeof manager.on !== 'function') return;
    /** @type {any} */
    let timer = null;
    const clear = () => {
      if (timer) clearTimeout(timer);
      timer = null;
    };
    listen(manager, 'open', () => {
      clear();
      const engine = manager.engine;
      timer = setTimeout(() => {
        timer = null;
        if (socket.connected || !socket.active || manager.engine !== engine) return;
        engine.close();
      }, this.options.connectTimeoutMs);
      if (typeof timer.unref === 'function') timer.unref();
    });
    listen(socket, 'connect', clear);
    listen(manager, 'close', clear);
    undo.push(clear);
  }

  /** Moves to the next URL: a new socket, and every call resumes its membership there. */
  _failover() {
    const old = this.socket;
    this._index = (this._index + 1) % this.urls.length;
    this.url = this.urls[this._index];
    this._failures = 0;
    this._closeSocket(old);
    this.socket = this._open(this.url);
    for (const call of this.calls) call._attach(this.socket);
  }

  /** @param {any} socket */
  _closeSocket(socket) {
    for (const fn of this._unwatch) fn();
    this._unwatch = [];
    try { socket.disconnect(); } catch { /* closed already */ }
  }

  /** @param {ConnectionStatus} status */
  _setStatus(status) {
    if (this.status === status || this.status === 'closed') return;
    this.status = status;
    this.emit('status', status);
  }
}

/**
 * Connects to a Switchboard deployment.
 * @param {string | string[]} [url]
 * @param {SwitchboardOptions} [options]
 * @returns {Switchboard}
 */
export function connect(url, options) {
  return new Switchboard(url, options);
}

/** @returns {import('./channel.js').StorageLike | null} */
function defaultStorage() {
  try {
    const s = /** @type {any} */ (globalThis).sessionStorage;
    return s && typeof s.getItem === 'function' ? s : null;
  } catch {
    return null; // blocked (e.g. some privacy settings)
  }
}

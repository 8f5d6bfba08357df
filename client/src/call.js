// A Call is one membership of one room plus one RTCPeerConnection per other member (a full
// mesh; one-to-one in a room of two): who offers to whom, the held offer, and what happens when
// a member joins, leaves, hangs up, or the held offer expires. The per-member connection (trickle
// ICE, perfect negotiation, ICE restarts) is a PeerLink (link.js).

import { Emitter, SignalingChannel, SignalingError } from './channel.js';
import { DATA_CHANNEL_LABEL, PeerLink } from './link.js';

export { DATA_CHANNEL_LABEL, PeerLink };

/** @typedef {'joining' | 'waiting' | 'connecting' | 'connected' | 'reconnecting' | 'expired' | 'ended'} CallStatus */

/**
 * @typedef {object} CallOptions
 * @property {MediaStream | null} [stream] local media; its tracks are sent to the other member
 * @property {boolean} [dataChannel=false] open a DataChannel (both sides should ask for it)
 * @property {RTCIceServer[]} [iceServers] overrides the ICE servers from the join reply
 * @property {RTCConfiguration} [rtcConfig] more RTCPeerConnection settings (default
 *   `bundlePolicy: 'max-bundle'`; `iceServers` come from the join reply)
 * @property {number} [iceRestartDelayMs=4000] how long ICE may stay `disconnected` before it is
 *   restarted (`failed` restarts at once)
 * @property {boolean} [resume=true] after a page reload, take back the membership stored in
 *   `storage` (so the room does not count this page twice), then join afresh
 * @property {string} [token] a room token, for servers with `SWITCHBOARD_AUTH_SECRET`
 */

/**
 * @typedef {object} CallHost what a Call needs from its Switchboard
 * @property {any} socket the current socket.io-client socket
 * @property {any} RTCPeerConnection constructor
 * @property {import('./channel.js').StorageLike | null} storage
 * @property {number} retryMs
 * @property {number} maxRetryMs
 * @property {number} ackTimeoutMs
 * @property {(call: Call) => void} forget
 */

/**
 * One call in one room. Create it with `Switchboard#join`.
 *
 * Events: `status` (CallStatus), `track` ({track, streams, transceiver, receiver, peer}),
 * `datachannel` (RTCDataChannel when open, peer), `connectionstatechange`
 * (RTCPeerConnectionState, peer), `peer-joined` ({peer, role}), `peer-left` ({peer, reason}),
 * `hangup` ({from}), `expired` ({what}), `error` (Error).
 *
 * Who offers to whom: of each pair of members, the one that was in the room first offers (its
 * held offer, if it was alone; else a fresh one when it sees `peer-joined`), the newer one
 * answers and is the polite side of that pair's perfect negotiation.
 */
export class Call extends Emitter {
  /**
   * @param {CallHost} host
   * @param {string} room
   * @param {CallOptions} [options]
   */
  constructor(host, room, options = {}) {
    super();
    this.host = host;
    this.room = room;
    this.options = {
      dataChannel: !!options.dataChannel,
      iceServers: options.iceServers,
      rtcConfig: options.rtcConfig || {},
      iceRestartDelayMs: options.iceRestartDelayMs ?? 4000,
      resume: options.resume !== false,
      token: options.token,
    };
    /** @type {Array<{track: MediaStreamTrack, streams: MediaStream[]}>} */
    this._localTracks = [];
    if (options.stream) {
      for (const track of options.stream.getTracks()) {
        this._localTracks.push({ track, streams: [options.stream] });
      }
    }
    /** @type {CallStatus} */
    this.status = 'joining';
    /** @type {string | null} this member's peer id */
    this.peer = null;
    /** @type {string | null} 'caller' or 'answerer', as the server assigned it */
    this.role = null;
    /** @type {number | null} members the room holds at most, from the join reply */
    this.capacity = null;

    this._storage = host.storage ? scopedStorage(host.storage, room) : null;
    /** @type {SignalingChannel | null} releases a membership a reloaded page left behind */
    this._oldChannel = null;
    this.channel = this._newChannel();
    /** @type {Map<string, PeerLink>} one per other member, as the processed events tell */
    this._links = new Map();
    /** The link whose offer waits for the next member (held by the server); only while alone. */
    this._held = /** @type {PeerLink | null} */ (null);
    /** @type {RTCIceServer[]} */
    this._iceServers = [];
    this._ended = false;
    this._discardEvents = false;
    /** @type {import('./link.js').LinkOwner} */
    this._owner = this._linkOwner();

    // Server events are handled one at a time, in order; until the join completed (and the
    // application had a chance to add listeners) they wait in _pending.
    this._paused = true;
    /** @type {Array<[string, any]>} */
    this._pending = [];
    this._chain = Promise.resolve();
  }

  // ---------------------------------------------------------------------------------------------
  // Public API

  /**
   * The other members, by peer id, each with its connection (`pc`, `dataChannel`, `polite`,
   * `state`; `pc` is null until the pair negotiates).
   * @returns {ReadonlyMap<string, PeerLink>}
   */
  get peers() {
    return this._links;
  }

  /** @returns {PeerLink | null} the connection the one-to-one members below describe */
  get _primary() {
    if (this._held) return this._held;
    for (const link of this._links.values()) if (link.pc) return link;
    return null;
  }

  /** @returns {string | null} the member the (first) connection talks to */
  get remotePeer() {
    const link = this._primary;
    return link ? link.peer : null;
  }

  /** @returns {RTCPeerConnection | null} the (first) peer connection */
  get pc() {
    const link = this._primary;
    return link ? link.pc : null;
  }

  /** @returns {RTCDataChannel | null} the DataChannel of the (first) connection */
  get dataChannel() {
    const link = this._primary;
    return link ? link.dataChannel : null;
  }

  /** @returns {boolean} perfect negotiation role of the (first) connection */
  get polite() {
    const link = this._primary;
    return link ? link.polite : false;
  }

  /**
   * Sends `data` on every open DataChannel (one per member).
   * @param {string | Blob | ArrayBuffer | ArrayBufferView} data
   * @returns {number} how many members it was sent to
   */
  broadcast(data) {
    let n = 0;
    for (const link of this._links.values()) {
      const dc = link.dataChannel;
      if (!dc || dc.readyState !== 'open') continue;
      try {
        dc.send(/** @type {any} */ (data));
        n++;
      } catch (err) {
        this._error(err);
      }
    }
    return n;
  }

  /**
   * Sends another local track (e.g. screen sharing) to every member; each connection
   * renegotiates. It is sent on later connections of this call too.
   * @param {MediaStreamTrack} track
   * @param {...MediaStream} streams
   * @returns {RTCRtpSender | null} the sender of the (first) connection
   */
  addTrack(track, ...streams) {
    this._localTracks.push({ track, streams });
    const primary = this._primary;
    /** @type {RTCRtpSender | null} */
    let first = null;
    for (const link of this._allLinks()) {
      if (!link.pc) continue;
      const sender = link.pc.addTrack(track, ...streams);
      if (link === primary) first = sender;
    }
    return first;
  }

  /**
   * Stops sending a local track; each connection renegotiates.
   * @param {MediaStreamTrack} track
   */
  removeTrack(track) {
    this._localTracks = this._localTracks.filter((t) => t.track !== track);
    for (const link of this._allLinks()) {
      if (!link.pc) continue;
      for (const sender of link.pc.getSenders()) {
        if (sender.track === track) link.pc.removeTrack(sender);
      }
    }
  }

  /** Restarts ICE on every connection (done on its own for a connection whose ICE fails). */
  restartIce() {
    for (const link of this._links.values()) link.restartIce();
  }

  /**
   * Ends the call and leaves the room: the other members get `peer-left`. Local tracks are not
   * stopped (they belong to the application). Resolves when the server confirmed the leave, or
   * after `timeoutMs`.
   * @param {{timeoutMs?: number}} [o]
   */
  async hangup({ timeoutMs = 3000 } = {}) {
    if (this._ended) return;
    this._end();
    const channel = this.channel;
    if (channel.joined) {
      /** @type {any} */
      let timer;
      const leave = channel.leave().catch(() => {});
      const limit = new Promise((resolve) => { timer = setTimeout(resolve, timeoutMs); });
      await Promise.race([leave, limit]);
      clearTimeout(timer);
    }
    channel.close();
    if (this._storage) removeStored(this._storage);
  }

  // ---------------------------------------------------------------------------------------------
  // Joining (called by Switchboard)

  /**
   * Joins the room (after taking back a membership a reloaded page left behind). Rejects with a
   * SignalingError (`room_full`, …).
   */
  async _join() {
    if (this.options.resume && this._storage && hasStored(this._storage)) await this._dropStored();
    if (this._ended) throw new SignalingError('closed', 'the call was hung up');
    const reply = await this.channel.join(this.room, { token: this.options.token });
    this.peer = reply.peer;
    this.role = reply.role;
    if (Number.isInteger(reply.capacity)) this.capacity = reply.capacity;
    if (this._ended) {
      this.channel.leave().catch(() => {}).finally(() => this.channel.close());
      throw new SignalingError('closed', 'the call was hung up');
    }
    return reply;
  }

  /**
   * Starts handling the events (the held offer among them) once the application has the call.
   * @param {any} reply the join reply
   */
  _start(reply) {
    this._run(() => this._afterJoin(reply));
    this._paused = false;
    for (const [kind, payload] of this._pending.splice(0)) this._run(() => this._handle(kind, payload));
  }

  /** A page reload left a membership in storage: resume it and leave, so the join is clean. */
  async _dropStored() {
    const old = new SignalingChannel(this.host.socket, {
      retryMs: this.host.retryMs, maxRetryMs: this.host.maxRetryMs,
      ackTimeoutMs: this.host.ackTimeoutMs,
      storage: /** @type {any} */ (this._storage),
    });
    this._oldChannel = old;
    try {
      await old.restore();
      await old.leave();
    } catch {
      // Gone already (resume_failed): nothing to leave.
    } finally {
      old.close();
      this._oldChannel = null;
      if (this._storage) removeStored(this._storage);
    }
  }

  /** @returns {SignalingChannel} */
  _newChannel() {
    const channel = new SignalingChannel(this.host.socket, {
      retryMs: this.host.retryMs,
      maxRetryMs: this.host.maxRetryMs,
      ackTimeoutMs: this.host.ackTimeoutMs,
      storage: this._storage || undefined,
    });
    for (const event of ['offer', 'answer', 'candidate', 'peer-joined', 'peer-left', 'hangup', 'expired']) {
      channel.on(event, (/** @type {any} */ payload) => this._enqueue(event, payload));
    }
    channel.on('resume-failed', (/** @type {any} */ err) => this._enqueue('resume-failed', err));
    channel.on('resumed', (/** @type {any} */ reply) => this._onResumed(reply));
    channel.on('listener-error', (/** @type {any} */ err) => this._error(err));
    return channel;
  }

  /**
   * Moves the membership to another socket (the Switchboard switched servers).
   * @param {any} socket
   */
  _attach(socket) {
    if (!this._ended) this.channel.attach(socket);
    if (this._oldChannel) this._oldChannel.attach(socket);
  }

  // ---------------------------------------------------------------------------------------------
  // Event handling

  /** @param {string} kind @param {any} payload */
  _enqueue(kind, payload) {
    if (this._ended || this._discardEvents) return;
    if (this._paused) this._pending.push([kind, payload]);
    else this._run(() => this._handle(kind, payload));
  }

  /** @param {() => any} fn */
  _run(fn) {
    this._chain = this._chain.then(() => (this._ended ? undefined : fn())).catch((err) => this._error(err));
  }

  /** @param {string} kind @param {any} p */
  async _handle(kind, p) {
    switch (kind) {
      case 'offer': return this._onOffer(p.from, p.sdp);
      case 'answer': return this._onAnswer(p.from, p.sdp);
      case 'candidate': return this._onCandidate(p.from, p.candidate);
      case 'peer-joined': return this._onPeerJoined(p);
      case 'peer-left': return this._onPeerLeft(p);
      case 'hangup': return this._onRemoteHangup(p);
      case 'expired': return this._onExpired(p);
      case 'resume-failed': return this._rejoin();
      default: return undefined;
    }
  }

  /** @param {any} reply a join reply */
  _afterJoin(reply) {
    this.peer = reply.peer;
    this.role = reply.role;
    if (Number.isInteger(reply.capacity)) this.capacity = reply.capacity;
    this._iceServers = this.options.iceServers || (Array.isArray(reply.iceServers) ? reply.iceServers : []);
    this._closeLinks();
    for (const p of reply.peers || []) this._links.set(p.peer, new PeerLink(this._owner, p.peer, p.role));
    if (this._links.size === 0) {
      // Alone: make the offer now; the server holds it (and the early candidates) for the
      // next member.
      this._held = new PeerLink(this._owner, null, null);
      this._held.open(true);
      this._setStatus('waiting');
    } else {
      // Every member before us calls us: the first one's held offer, or fresh offers, come as
      // the next events.
      this._setStatus('connecting');
    }
  }

  /** @param {string} from @param {string} sdp */
  async _onOffer(from, sdp) {
    let link = this._links.get(from);
    if (!link) {
      link = new PeerLink(this._owner, from, null);
      this._links.set(from, link);
    }
    // A first offer (or one after a hangup) opens the pair's connection: this side is polite.
    if (!link.pc || link.pc.signalingState === 'closed') link.open(false);
    link.offered();
    this._refreshStatus();
    await link.onDescription({ type: 'offer', sdp });
  }

  /** @param {string} from @param {string} sdp */
  async _onAnswer(from, sdp) {
    const link = this._links.get(from);
    if (link) await link.onDescription({ type: 'answer', sdp });
  }

  /** @param {string} from @param {RTCIceCandidateInit | null} candidate */
  async _onCandidate(from, candidate) {
    if (!candidate) return; // end-of-candidates: nothing to do
    const link = this._links.get(from);
    if (link) await link.onCandidate(candidate);
  }

  /** @param {{peer: string, role: string}} p */
  _onPeerJoined(p) {
    this.emit('peer-joined', { peer: p.peer, role: p.role });
    if (this._links.has(p.peer)) return;
    const held = this._held;
    if (held) {
      // The server handed our held offer to the first member to join.
      this._held = null;
      this._links.set(p.peer, held);
      held.assign(p.peer, p.role);
    } else {
      // A later member (or our held offer is gone): call it now.
      const link = new PeerLink(this._owner, p.peer, p.role);
      this._links.set(p.peer, link);
      link.open(true);
    }
    this._refreshStatus();
  }

  /** @param {{peer: string, reason: string}} p */
  _onPeerLeft(p) {
    const link = this._links.get(p.peer);
    if (link) {
      link.close();
      this._links.delete(p.peer);
    }
    this.emit('peer-left', { peer: p.peer, reason: p.reason });
    if (!link) return;
    if (this._links.size === 0) {
      // Alone again: offer to whoever comes next (held by the server).
      this._held = new PeerLink(this._owner, null, null);
      this._held.open(true);
      this._setStatus('waiting');
    } else if (!this._refreshStatus()) {
      this._setStatus('connecting');
    }
  }

  /** @param {{from: string}} p */
  _onRemoteHangup(p) {
    const link = this._links.get(p.from);
    if (!link || !link.pc) return;
    link.close();
    this.emit('hangup', { from: p.from });
    // A new offer from them starts a new call.
    if (!this._refreshStatus()) this._setStatus('waiting');
  }

  /** @param {{what: string}} p */
  _onExpired(p) {
    if (this._held) this._held.close();
    this._held = null;
    this.emit('expired', { what: p.what });
    this._setStatus('expired'); // the next member to join gets a fresh offer
  }

  /**
   * The membership moved to a new connection: take the ICE servers of that reply (fresh TURN
   * credentials) for later ICE restarts.
   * @param {any} reply
   */
  _onResumed(reply) {
    if (this.options.iceServers || !Array.isArray(reply.iceServers)) return;
    this._iceServers = reply.iceServers;
    for (const link of this._allLinks()) {
      const pc = link.pc;
      if (!pc || pc.signalingState === 'closed') continue;
      try {
        pc.setConfiguration({ ...pc.getConfiguration(), iceServers: reply.iceServers });
      } catch {
        // Some browsers refuse to change the configuration of a connection: the next one has it.
      }
    }
  }

  /** The membership is gone (the resume window passed): join the room again. */
  async _rejoin() {
    this._closeLinks();
    this._setStatus('joining');
    this._paused = true; // the new join's events wait until _afterJoin ran
    try {
      const reply = await this.channel.join(this.room, { token: this.options.token });
      this._afterJoin(reply);
    } catch (err) {
      this._error(err);
      this._end();
      this.channel.close();
      return;
    } finally {
      this._paused = false;
    }
    for (const [kind, payload] of this._pending.splice(0)) this._run(() => this._handle(kind, payload));
  }

  // ---------------------------------------------------------------------------------------------
  // The links

  /** @returns {PeerLink[]} every link, the held one included */
  _allLinks() {
    const all = [...this._links.values()];
    if (this._held) all.push(this._held);
    return all;
  }

  _closeLinks() {
    for (const link of this._allLinks()) link.close();
    this._links = new Map();
    this._held = null;
  }

  /**
   * Sets the status from the connections to known members: `connected` while one is,
   * `reconnecting` while none is and one restarts ICE, `connecting` otherwise.
   * @returns {boolean} false when there is no such connection (the caller decides)
   */
  _refreshStatus() {
    let open = 0;
    let connected = false;
    let reconnecting = false;
    for (const link of this._links.values()) {
      if (!link.pc) continue;
      open++;
      if (link.state === 'connected') connected = true;
      else if (link.state === 'reconnecting') reconnecting = true;
    }
    if (open === 0) return false;
    if (connected) this._setStatus('connected');
    else if (reconnecting) this._setStatus('reconnecting');
    else this._setStatus('connecting');
    return true;
  }

  /** @returns {import('./link.js').LinkOwner} what the links use of this call */
  _linkOwner() {
    const call = this;
    return {
      get RTCPeerConnection() { return call.host.RTCPeerConnection; },
      get options() { return call.options; },
      get iceServers() { return call._iceServers; },
      get localTracks() { return call._localTracks; },
      get ended() { return call._ended; },
      send: (event, payload) => call.channel.send(event, payload),
      emit: (event, ...args) => { call.emit(event, ...args); },
      error: (err) => call._error(err),
      changed: (link) => { if (link.peer !== null && call._links.get(link.peer) === link) call._refreshStatus(); },
      held: (link) => { if (link === call._held) call._setStatus('waiting'); },
      notHeld: (link) => {
        // The server holds too many offers: this one is not held. As after an expiry, the next
        // member to join gets a fresh offer.
        if (link !== call._held) return;
        link.close();
        call._held = null;
        call._setStatus('waiting');
      },
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  /** @param {CallStatus} status */
  _setStatus(status) {
    if (this.status === status || (this._ended && status !== 'ended')) return;
    this.status = status;
    this.emit('status', status);
  }

  /** @param {any} err */
  _error(err) {
    if (this._ended) return;
    this.emit('error', err instanceof Error ? err : new Error(String(err)));
  }

  _end() {
    if (this._ended) return;
    this._closeLinks();
    this._setStatus('ended');
    this._ended = true;
    this._pending = [];
    this.host.forget(this);
  }
}

const STORAGE_KEY = 'switchboard.membership';

/**
 * A view of `storage` whose keys are specific to one room.
 * @param {import('./channel.js').StorageLike} storage
 * @param {string} room
 * @returns {import('./channel.js').StorageLike}
 */
function scopedStorage(storage, room) {
  const key = (/** @type {string} */ k) => `${k}:${room}`;
  return {
    getItem: (k) => { try { return storage.getItem(key(k)); } catch { return null; } },
    setItem: (k, v) => { try { storage.setItem(key(k), v); } catch { /* full or blocked */ } },
    removeItem: (k) => { try { storage.removeItem(key(k)); } catch { /* blocked */ } },
  };
}

/** @param {import('./channel.js').StorageLike} storage */
function hasStored(storage) {
  return !!storage.getItem(STORAGE_KEY);
}

/** @param {import('./channel.js').StorageLike} storage */
function removeStored(storage) {
  storage.removeItem(STORAGE_KEY);
}

// A Call is one membership of one room plus the RTCPeerConnection to the other member: the
// caller/answerer steps, trickle ICE, perfect negotiation, ICE restarts, and what happens when
// the other member leaves, hangs up, or the held offer expires.

import { Emitter, SignalingChannel, SignalingError } from './channel.js';

/** @typedef {'joining' | 'waiting' | 'connecting' | 'connected' | 'reconnecting' | 'expired' | 'ended'} CallStatus */

/** Label of the call's DataChannel (negotiated, stream id 0, on both sides). */
export const DATA_CHANNEL_LABEL = 'switchboard';

/** Remote candidates kept while no remote description is set. */
const MAX_BUFFERED_CANDIDATES = 256;

/** Signaling error codes that are expected in normal operation and not reported. */
const QUIET_CODES = new Set([
  'closed', 'not_joined', 'no_peer', 'no_offer', 'too_many_candidates', 'target_required',
]);

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
 * Events: `status` (CallStatus), `track` ({track, streams, transceiver, receiver}),
 * `datachannel` (RTCDataChannel, when open), `connectionstatechange` (RTCPeerConnectionState),
 * `peer-joined` ({peer, role}), `peer-left` ({peer, reason}), `hangup` ({from}),
 * `expired` ({what}), `error` (Error).
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
    /** @type {string | null} the member this call talks to */
    this.remotePeer = null;
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {RTCDataChannel | null} */
    this.dataChannel = null;
    /** Perfect negotiation role of the current connection: the side that answered the first offer. */
    this.polite = false;

    this._storage = host.storage ? scopedStorage(host.storage, room) : null;
    /** @type {SignalingChannel | null} releases a membership a reloaded page left behind */
    this._oldChannel = null;
    this.channel = this._newChannel();
    /** @type {Map<string, string>} other members, as the processed events tell */
    this._peers = new Map();
    /** The member the current RTCPeerConnection is negotiated with (null: offer held). */
    this._pcPeer = /** @type {string | null} */ (null);
    this._makingOffer = false;
    this._ignoreOffer = false;
    /** Local description being made: candidates wait until it is sent. */
    this._descPending = false;
    /** @type {RTCIceCandidateInit[]} */
    this._localCandidates = [];
    /** @type {RTCIceCandidateInit[]} */
    this._remoteCandidates = [];
    this._expired = false;
    this._ended = false;
    this._discardEvents = false;
    this._disconnectTimer = /** @type {any} */ (null);

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
   * Sends another local track (e.g. screen sharing); the call renegotiates. It is sent on later
   * connections of this call too.
   * @param {MediaStreamTrack} track
   * @param {...MediaStream} streams
   * @returns {RTCRtpSender | null}
   */
  addTrack(track, ...streams) {
    this._localTracks.push({ track, streams });
    return this.pc ? this.pc.addTrack(track, ...streams) : null;
  }

  /**
   * Stops sending a local track; the call renegotiates.
   * @param {MediaStreamTrack} track
   */
  removeTrack(track) {
    this._localTracks = this._localTracks.filter((t) => t.track !== track);
    if (!this.pc) return;
    for (const sender of this.pc.getSenders()) {
      if (sender.track === track) this.pc.removeTrack(sender);
    }
  }

  /** Restarts ICE (a new offer with fresh credentials); done on its own when ICE fails. */
  restartIce() {
    if (this.pc && this._pcPeer && this.pc.signalingState !== 'closed') this.pc.restartIce();
  }

  /**
   * Ends the call and leaves the room: the other member gets `peer-left`. Local tracks are not
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
    this._iceServers = this.options.iceServers || (Array.isArray(reply.iceServers) ? reply.iceServers : []);
    this._peers = new Map((reply.peers || []).map((/** @type {any} */ p) => [p.peer, p.role]));
    this._expired = false;
    this.remotePeer = null;
    if (this._peers.size === 0) {
      // Alone: make the offer now; the server holds it (and the early candidates) for the
      // next member.
      this._newPc(true, null);
      this._setStatus('waiting');
    } else {
      // The member before us holds an offer for us: it comes as the next events.
      this._setStatus('connecting');
    }
  }

  /** @param {string} from @param {string} sdp */
  async _onOffer(from, sdp) {
    const pc = this.pc;
    if (!pc || pc.signalingState === 'closed' || this._pcPeer === null) {
      // A new call: its first offer comes from the other side, which makes this side polite.
      this._newPc(false, from);
    } else if (this._pcPeer !== from) {
      return; // busy with another member
    }
    this.remotePeer = from;
    if (this.status !== 'connected') this._setStatus('connecting');
    await this._onDescription(/** @type {RTCPeerConnection} */ (this.pc), { type: 'offer', sdp });
  }

  /** @param {string} from @param {string} sdp */
  async _onAnswer(from, sdp) {
    const pc = this.pc;
    if (!pc || (this._pcPeer !== null && this._pcPeer !== from)) return;
    this._pcPeer = from;
    this.remotePeer = from;
    await this._onDescription(pc, { type: 'answer', sdp });
  }

  /**
   * Perfect negotiation: on colliding offers the impolite side ignores the other's offer, the
   * polite side rolls its own back (implicitly, in setRemoteDescription) and answers.
   * @param {RTCPeerConnection} pc
   * @param {RTCSessionDescriptionInit} description
   */
  async _onDescription(pc, description) {
    const collision = description.type === 'offer'
      && (this._makingOffer || pc.signalingState !== 'stable');
    this._ignoreOffer = !this.polite && collision;
    if (this._ignoreOffer) return;
    if (description.type === 'answer' && pc.signalingState !== 'have-local-offer') return; // stale
    await pc.setRemoteDescription(description);
    if (pc !== this.pc) return;
    await this._flushRemoteCandidates(pc);
    if (description.type === 'offer') {
      this._descPending = true;
      try {
        await pc.setLocalDescription();
        if (pc === this.pc) this._sendDescription(pc);
      } finally {
        this._flushLocalCandidates(pc);
      }
    }
  }

  /** @param {string} from @param {RTCIceCandidateInit | null} candidate */
  async _onCandidate(from, candidate) {
    if (!candidate) return; // end-of-candidates: nothing to do
    if (this._pcPeer !== null && from !== this._pcPeer) return;
    const pc = this.pc;
    if (!pc || !pc.remoteDescription) {
      if (this._remoteCandidates.length < MAX_BUFFERED_CANDIDATES) this._remoteCandidates.push(candidate);
      return;
    }
    await this._addCandidate(pc, candidate);
  }

  /** @param {RTCPeerConnection} pc @param {RTCIceCandidateInit} candidate */
  async _addCandidate(pc, candidate) {
    try {
      await pc.addIceCandidate(candidate);
    } catch (err) {
      // A candidate of an ignored offer or of an earlier ICE generation: expected.
      if (!this._ignoreOffer && pc === this.pc && pc.signalingState !== 'closed'
        && !/ufrag|generation|closed/i.test(String(/** @type {any} */ (err)?.message))) {
        this._error(err);
      }
    }
  }

  /** @param {RTCPeerConnection} pc */
  async _flushRemoteCandidates(pc) {
    const buffered = this._remoteCandidates.splice(0);
    for (const c of buffered) await this._addCandidate(pc, c);
  }

  /** @param {{peer: string, role: string}} p */
  _onPeerJoined(p) {
    this._peers.set(p.peer, p.role);
    this.emit('peer-joined', { peer: p.peer, role: p.role });
    if (this.remotePeer !== null && this.remotePeer !== p.peer) return;
    if (this._expired || !this.pc) {
      // Our held offer is gone: call the newcomer with a fresh offer.
      this._expired = false;
      this.remotePeer = p.peer;
      this._newPc(true, p.peer);
      this._setStatus('connecting');
    } else if (this._pcPeer === null) {
      // The server handed our held offer to the newcomer.
      this._pcPeer = p.peer;
      this.remotePeer = p.peer;
      this._setStatus('connecting');
    }
  }

  /** @param {{peer: string, reason: string}} p */
  _onPeerLeft(p) {
    this._peers.delete(p.peer);
    this.emit('peer-left', { peer: p.peer, reason: p.reason });
    if (p.peer !== this.remotePeer && p.peer !== this._pcPeer) return;
    this._closePc();
    this.remotePeer = null;
    if (this._peers.size === 0) {
      // Alone again: offer to whoever comes next (held by the server).
      this._newPc(true, null);
      this._setStatus('waiting');
    } else {
      this._setStatus('connecting');
    }
  }

  /** @param {{from: string}} p */
  _onRemoteHangup(p) {
    if (p.from !== this.remotePeer && p.from !== this._pcPeer) return;
    this._closePc();
    this.emit('hangup', { from: p.from });
    this._setStatus('waiting'); // a new offer from them starts a new call
  }

  /** @param {{what: string}} p */
  _onExpired(p) {
    this._expired = true;
    this._closePc();
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
    const pc = this.pc;
    if (!pc || pc.signalingState === 'closed') return;
    try {
      pc.setConfiguration({ ...pc.getConfiguration(), iceServers: reply.iceServers });
    } catch {
      // Some browsers refuse to change the configuration of a connection: the next one has it.
    }
  }

  /** The membership is gone (the resume window passed): join the room again. */
  async _rejoin() {
    this._closePc();
    this.remotePeer = null;
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
  // The peer connection

  /**
   * Replaces the peer connection.
   * @param {boolean} offerer whether this side makes the first offer (then it is impolite)
   * @param {string | null} remote the member it is negotiated with, if known
   */
  _newPc(offerer, remote) {
    this._closePc();
    const Ctor = this.host.RTCPeerConnection;
    if (!Ctor) throw new Error('RTCPeerConnection is not available');
    /** @type {RTCPeerConnection} */
    // max-bundle: one transport, so a held offer carries a third of the early candidates.
    const pc = new Ctor({ bundlePolicy: 'max-bundle', ...this.options.rtcConfig, iceServers: this._iceServers || [] });
    this.pc = pc;
    this._pcPeer = remote;
    this.polite = !offerer;
    this._makingOffer = false;
    this._ignoreOffer = false;
    this._descPending = false;
    this._localCandidates = [];
    this._remoteCandidates = [];

    pc.onnegotiationneeded = () => { this._negotiate(pc); };
    pc.onicecandidate = (ev) => {
      if (pc !== this.pc || !ev.candidate || !ev.candidate.candidate) return;
      const c = ev.candidate;
      /** @type {RTCIceCandidateInit} */
      const init = {
        candidate: c.candidate,
        sdpMid: c.sdpMid ?? null,
        sdpMLineIndex: c.sdpMLineIndex ?? null,
        usernameFragment: c.usernameFragment ?? null,
      };
      if (this._descPending) this._localCandidates.push(init);
      else this._sendCandidate(init);
    };
    pc.ontrack = (ev) => {
      if (pc !== this.pc) return;
      this.emit('track', {
        track: ev.track, streams: ev.streams, transceiver: ev.transceiver, receiver: ev.receiver,
      });
    };
    pc.ondatachannel = (ev) => { if (pc === this.pc) this._watchDataChannel(pc, ev.channel); };
    pc.onconnectionstatechange = () => this._onConnectionState(pc);

    for (const { track, streams } of this._localTracks) pc.addTrack(track, ...streams);
    if (this.options.dataChannel) {
      const dc = pc.createDataChannel(DATA_CHANNEL_LABEL, { negotiated: true, id: 0 });
      this._watchDataChannel(pc, dc);
    }
    if (offerer && this._localTracks.length === 0 && !this.options.dataChannel) {
      // Nothing to send: still offer to receive audio and video.
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
    }
    return pc;
  }

  /** @param {RTCPeerConnection} pc @param {RTCDataChannel} dc */
  _watchDataChannel(pc, dc) {
    if (dc.label === DATA_CHANNEL_LABEL) this.dataChannel = dc;
    const opened = () => { if (pc === this.pc) this.emit('datachannel', dc); };
    if (dc.readyState === 'open') opened();
    else dc.addEventListener('open', opened, { once: true });
  }

  /** @param {RTCPeerConnection} pc */
  async _negotiate(pc) {
    if (pc !== this.pc || this._ended) return;
    try {
      this._makingOffer = true;
      this._descPending = true;
      await pc.setLocalDescription();
      if (pc === this.pc && pc.localDescription && pc.localDescription.type === 'offer') {
        this._sendDescription(pc);
      }
    } catch (err) {
      if (pc === this.pc && pc.signalingState !== 'closed') this._error(err);
    } finally {
      this._makingOffer = false;
      this._flushLocalCandidates(pc);
    }
  }

  /**
   * Sends the local description (an offer, held while alone, or an answer).
   * @param {RTCPeerConnection} pc
   */
  _sendDescription(pc) {
    const desc = /** @type {RTCSessionDescription} */ (pc.localDescription);
    /** @type {any} */
    const payload = { sdp: desc.sdp };
    if (this._pcPeer) payload.to = this._pcPeer;
    const type = desc.type;
    this.channel.send(type, payload).then((reply) => {
      if (type === 'offer' && reply && reply.held === true && pc === this.pc && this._pcPeer === null) {
        this._setStatus('waiting');
      }
    }, (err) => {
      if (type === 'offer' && err instanceof SignalingError && err.code === 'too_many_held'
        && pc === this.pc && this._pcPeer === null) {
        // The server holds too many offers: this one is not held. As after an expiry, the next
        // member to join gets a fresh offer.
        this._closePc();
        this._expired = true;
        this._setStatus('waiting');
      }
      if (!(err instanceof SignalingError) || !QUIET_CODES.has(err.code)) this._error(err);
    });
  }

  /** @param {RTCPeerConnection} pc */
  _flushLocalCandidates(pc) {
    this._descPending = false;
    const list = this._localCandidates.splice(0);
    if (pc !== this.pc) return;
    for (const c of list) this._sendCandidate(c);
  }

  /** @param {RTCIceCandidateInit} candidate */
  _sendCandidate(candidate) {
    /** @type {any} */
    const payload = { candidate };
    if (this._pcPeer) payload.to = this._pcPeer;
    this._send('candidate', payload);
  }

  /**
   * Sends a sequenced message; failures that are part of normal operation are ignored.
   * @param {string} event
   * @param {object} payload
   * @returns {Promise<any>}
   */
  _send(event, payload) {
    return this.channel.send(event, payload).catch((err) => {
      if (!(err instanceof SignalingError) || !QUIET_CODES.has(err.code)) this._error(err);
      return null;
    });
  }

  /** @param {RTCPeerConnection} pc */
  _onConnectionState(pc) {
    if (pc !== this.pc) return;
    const state = pc.connectionState;
    this.emit('connectionstatechange', state);
    if (state !== 'disconnected') this._clearDisconnectTimer();
    switch (state) {
      case 'connected':
        this._setStatus('connected');
        break;
      case 'disconnected':
        this._setStatus('reconnecting');
        this._disconnectTimer = setTimeout(() => {
          this._disconnectTimer = null;
          if (pc === this.pc && pc.connectionState === 'disconnected') this.restartIce();
        }, this.options.iceRestartDelayMs);
        break;
      case 'failed':
        this._setStatus('reconnecting');
        this.restartIce();
        break;
      case 'connecting':
        if (this.status === 'connected') this._setStatus('reconnecting');
        break;
      default:
        break;
    }
  }

  _clearDisconnectTimer() {
    if (this._disconnectTimer) clearTimeout(this._disconnectTimer);
    this._disconnectTimer = null;
  }

  _closePc() {
    this._clearDisconnectTimer();
    const pc = this.pc;
    this.pc = null;
    this.dataChannel = null;
    this._pcPeer = null;
    this._remoteCandidates = [];
    this._localCandidates = [];
    this._descPending = false;
    if (!pc) return;
    pc.onnegotiationneeded = null;
    pc.onicecandidate = null;
    pc.ontrack = null;
    pc.ondatachannel = null;
    pc.onconnectionstatechange = null;
    try { pc.close(); } catch { /* closed already */ }
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
    this._closePc();
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

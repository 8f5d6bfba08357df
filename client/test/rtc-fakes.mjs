// Test doubles for call.test.mjs: a fake WebRTC stack (RTCPeerConnection, DataChannel, tracks)
// whose "SDP" is JSON, and a fake server that holds offers like the real one.
// (This file has no tests of its own.)

import { FakeServer, err } from './fake.mjs';

let ids = 0;
const nextId = (/** @type {string} */ p) => `${p}${++ids}`;

export class FakeTrack {
  /** @param {'audio' | 'video'} kind */
  constructor(kind) {
    this.kind = kind;
    this.id = nextId(kind);
    this.enabled = true;
  }
}

export class FakeStream {
  /** @param {FakeTrack[]} tracks */
  constructor(tracks = []) {
    this.id = nextId('stream');
    this.tracks = tracks;
  }

  getTracks() { return [...this.tracks]; }
}

/** Minimal EventTarget-like base with on<event> properties. */
class Target {
  constructor() {
    /** @type {Map<string, Set<{fn: Function, once: boolean}>>} */
    this._l = new Map();
  }

  /** @param {string} type @param {Function} fn @param {{once?: boolean}} [o] */
  addEventListener(type, fn, o = {}) {
    if (!this._l.has(type)) this._l.set(type, new Set());
    /** @type {Set<any>} */ (this._l.get(type)).add({ fn, once: !!o.once });
  }

  /** @param {string} type @param {any} [ev] */
  _fire(type, ev = {}) {
    const prop = /** @type {any} */ (this)[`on${type}`];
    if (typeof prop === 'function') prop.call(this, ev);
    for (const l of [...(this._l.get(type) || [])]) {
      if (l.once) /** @type {Set<any>} */ (this._l.get(type)).delete(l);
      l.fn.call(this, ev);
    }
  }
}

export class FakeDataChannel extends Target {
  /** @param {FakePC} pc @param {string} label @param {number} id */
  constructor(pc, label, id) {
    super();
    this.pc = pc;
    this.label = label;
    this.id = id;
    this.readyState = 'connecting';
    /** @type {any} */ this.onmessage = null;
    /** @type {any} */ this.onopen = null;
    /** @type {any[]} */ this.sent = [];
  }

  /** @param {any} data */
  send(data) {
    if (this.readyState !== 'open') throw new Error(`InvalidStateError: DataChannel is ${this.readyState}`);
    this.sent.push(data);
    const peer = this.pc.peer();
    const other = peer && peer.channels.find((c) => c.id === this.id);
    if (other && other.readyState === 'open') setTimeout(() => other._fire('message', { data }), 0);
  }

  _open() {
    if (this.readyState !== 'connecting') return;
    this.readyState = 'open';
    this._fire('open');
  }

  close() { this.readyState = 'closed'; }
}

/**
 * The "network" the fake peer connections find each other on: local ICE ufrag → connection.
 * @type {Map<string, FakePC>}
 */
const wire = new Map();

/** Every FakePC made, for the tests to inspect. */
export const allPCs = /** @type {FakePC[]} */ ([]);

/**
 * A fake RTCPeerConnection. SDP is `fake:` + JSON {ufrag, tracks, dc, recv}. It follows the
 * signaling state machine (with implicit rollback), fires negotiationneeded, icecandidate,
 * track, connectionstatechange, and "connects" once both sides have each other's description
 * and at least one candidate of the other side's current ufrag.
 */
export class FakePC extends Target {
  /** @param {any} config */
  constructor(config) {
    super();
    this.config = config;
    this.signalingState = 'stable';
    this.connectionState = 'new';
    /** @type {any} */ this.localDescription = null;
    /** @type {any} */ this.remoteDescription = null;
    /** @type {Array<{track: FakeTrack, streams: FakeStream[]}>} */ this.senders = [];
    /** @type {Array<{kind: string, direction: string}>} */ this.transceivers = [];
    /** @type {FakeDataChannel[]} */ this.channels = [];
    this.ufrag = nextId('u');
    this._restart = false;
    /** Operations chain: setLocalDescription, setRemoteDescription, addIceCandidate run one at a time, in call order. */
    this._chain = Promise.resolve();
    this._ops = 0;
    this._needNeg = false;
    this._negScheduled = false;
    /** @type {any} pending local offer/answer made but not applied */
    this._pendingLocal = null;
    /** remote tracks already announced */
    this._seenRemote = new Set();
    /** ufrags of remote candidates added */
    this._remoteCandUfrags = new Set();
    /** log of what happened, for assertions */
    this.log = /** @type {string[]} */ ([]);
    for (const h of ['negotiationneeded', 'icecandidate', 'track', 'datachannel', 'connectionstatechange']) {
      /** @type {any} */ (this)[`on${h}`] = null;
    }
    allPCs.push(this);
  }

  /** @returns {FakePC | null} the connection this one is negotiated with */
  peer() {
    const remote = this.remoteDescription && parse(this.remoteDescription.sdp);
    return remote ? wire.get(remote.ufrag) || null : null;
  }

  getConfiguration() { return { ...this.config }; }

  /** @param {any} config */
  setConfiguration(config) { this.config = { ...config }; }

  /** @param {FakeTrack} track @param {...FakeStream} streams */
  addTrack(track, ...streams) {
    const sender = { track, streams };
    this.senders.push(sender);
    this._negotiationNeeded();
    return sender;
  }

  /** @param {any} sender */
  removeTrack(sender) {
    this.senders = this.senders.filter((s) => s !== sender);
    this._negotiationNeeded();
  }

  getSenders() { return [...this.senders]; }

  /** @param {string} kind @param {{direction?: string}} [o] */
  addTransceiver(kind, o = {}) {
    const t = { kind, direction: o.direction || 'sendrecv' };
    this.transceivers.push(t);
    this._negotiationNeeded();
    return t;
  }

  /** @param {string} label @param {{negotiated?: boolean, id?: number}} [o] */
  createDataChannel(label, o = {}) {
    const dc = new FakeDataChannel(this, label, o.id ?? this.channels.length);
    this.channels.push(dc);
    this._negotiationNeeded();
    return dc;
  }

  restartIce() {
    this._restart = true;
    this._negotiationNeeded();
  }

  _negotiationNeeded() {
    this._needNeg = true;
    this._scheduleNeg();
  }

  _scheduleNeg() {
    if (this._negScheduled) return;
    this._negScheduled = true;
    setTimeout(() => {
      this._negScheduled = false;
      if (this.signalingState === 'closed' || !this._needNeg || this.signalingState !== 'stable') return;
      if (this._ops > 0) return; // checked again when the chain is empty
      this.log.push('negotiationneeded');
      this._fire('negotiationneeded');
    }, 0);
  }

  _describe(type) {
    if (this._restart && type === 'offer') {
      wire.delete(this.ufrag);
      this.ufrag = nextId('u');
      this._restart = false;
    }
    wire.set(this.ufrag, this);
    const body = {
      ufrag: this.ufrag,
      tracks: this.senders.map((s) => ({ id: s.track.id, kind: s.track.kind, stream: s.streams[0]?.id ?? null })),
      dc: this.channels.length > 0,
      recv: this.transceivers.map((t) => t.kind),
    };
    return { type, sdp: `fake:${JSON.stringify(body)}` };
  }

  /**
   * Runs `fn` after the operations queued before it.
   * @template T @param {() => T} fn @returns {Promise<Awaited<T>>}
   */
  _op(fn) {
    this._ops++;
    const run = this._chain.then(tick).then(fn);
    this._chain = run.catch(() => {}).then(() => {
      this._ops--;
      if (this._ops === 0 && this._needNeg) this._scheduleNeg();
    });
    return run;
  }

  /** @param {any} [desc] */
  setLocalDescription(desc) {
    return this._op(() => this._setLocal(desc));
  }

  /** @param {any} [desc] */
  _setLocal(desc) {
    this._assertOpen();
    if (desc && desc.type === 'rollback') {
      this._rollback();
      return;
    }
    let type;
    if (this.signalingState === 'stable' || this.signalingState === 'have-local-offer') type = 'offer';
    else if (this.signalingState === 'have-remote-offer') type = 'answer';
    else throw new Error(`InvalidStateError: setLocalDescription in ${this.signalingState}`);
    const d = this._describe(type);
    this.localDescription = d;
    this.log.push(`sLD ${type}`);
    if (type === 'offer') {
      this._needNeg = false;
      this.signalingState = 'have-local-offer';
    } else {
      this._needNeg = false;
      this.signalingState = 'stable';
      this._onStable();
    }
    // One candidate before the promise resolves (browsers may do that), one later.
    this._candidate(1);
    setTimeout(() => this._candidate(2), 1);
  }

  /** @param {number} n */
  _candidate(n) {
    if (this.signalingState === 'closed') return;
    const candidate = {
      candidate: `candidate:${n} 1 udp ${n} 127.0.0.1 ${5000 + n} typ host ufrag ${this.ufrag}`,
      sdpMid: '0', sdpMLineIndex: 0, usernameFragment: this.ufrag,
    };
    this._fire('icecandidate', { candidate: { ...candidate, toJSON: () => candidate } });
  }

  /** @param {{type: string, sdp: string}} desc */
  setRemoteDescription(desc) {
    return this._op(() => this._setRemote(desc));
  }

  /** @param {{type: string, sdp: string}} desc */
  _setRemote(desc) {
    this._assertOpen();
    if (desc.type === 'offer') {
      if (this.signalingState === 'have-local-offer') {
        this.log.push('implicit rollback');
        this._rollback();
      } else if (this.signalingState !== 'stable') {
        throw new Error(`InvalidStateError: remote offer in ${this.signalingState}`);
      }
      this.remoteDescription = desc;
      this.signalingState = 'have-remote-offer';
      this.log.push('sRD offer');
    } else if (desc.type === 'answer') {
      if (this.signalingState !== 'have-local-offer') {
        throw new Error(`InvalidStateError: remote answer in ${this.signalingState}`);
      }
      this.remoteDescription = desc;
      this.signalingState = 'stable';
      this.log.push('sRD answer');
      this._onStable();
    } else {
      throw new Error(`unsupported description type ${desc.type}`);
    }
    this._announceTracks();
  }

  _rollback() {
    this.localDescription = null;
    this.signalingState = 'stable';
    this._needNeg = true; // what that offer carried is not negotiated
  }

  _announceTracks() {
    const body = parse(this.remoteDescription.sdp);
    for (const t of body.tracks) {
      if (this._seenRemote.has(t.id)) continue;
      this._seenRemote.add(t.id);
      const track = { id: t.id, kind: t.kind, remote: true };
      const streams = t.stream ? [{ id: t.stream, getTracks: () => [track] }] : [];
      setTimeout(() => this._fire('track', { track, streams, transceiver: {}, receiver: {} }), 0);
    }
  }

  /** @param {any} init */
  addIceCandidate(init) {
    return this._op(() => this._addCandidate(init));
  }

  /** @param {any} init */
  _addCandidate(init) {
    this._assertOpen();
    if (!this.remoteDescription) throw new Error('InvalidStateError: no remote description');
    const remote = parse(this.remoteDescription.sdp);
    if (init.usernameFragment !== remote.ufrag) throw new Error(`OperationError: unknown ufrag ${init.usernameFragment}`);
    this._remoteCandUfrags.add(init.usernameFragment);
    this.log.push('candidate');
    this._tryConnect();
  }

  _onStable() {
    if (this._needNeg) this._scheduleNeg();
    this._tryConnect();
  }

  _tryConnect() {
    if (this.signalingState !== 'stable' || !this.remoteDescription || !this.localDescription) return;
    const peer = this.peer();
    if (!peer || peer.signalingState !== 'stable' || !peer.remoteDescription) return;
    if (parse(peer.remoteDescription.sdp).ufrag !== this.ufrag) return;
    const remoteUfrag = parse(this.remoteDescription.sdp).ufrag;
    if (!this._remoteCandUfrags.has(remoteUfrag) || !peer._remoteCandUfrags.has(this.ufrag)) return;
    for (const pc of [this, peer]) {
      if (pc.connectionState === 'connected' || pc.connectionState === 'closed') continue;
      pc._setConnection('connecting');
      setTimeout(() => {
        if (pc.connectionState !== 'connecting') return;
        pc._setConnection('connected');
        const remoteHasDc = parse(pc.remoteDescription.sdp).dc;
        for (const dc of pc.channels) if (remoteHasDc) dc._open();
      }, 2);
    }
  }

  /** @param {string} state */
  _setConnection(state) {
    if (this.connectionState === state) return;
    this.connectionState = state;
    this.log.push(`connection ${state}`);
    this._fire('connectionstatechange');
  }

  /** Simulates an ICE failure (e.g. the network path broke). */
  fail() {
    this._setConnection('failed');
  }

  _assertOpen() {
    if (this.signalingState === 'closed') throw new Error('InvalidStateError: closed');
  }

  close() {
    if (this.signalingState === 'closed') return;
    this.signalingState = 'closed';
    this.connectionState = 'closed';
    for (const dc of this.channels) dc.close();
    if (wire.get(this.ufrag) === this) wire.delete(this.ufrag);
  }
}

/** @param {string} sdp */
export function parse(sdp) {
  if (!sdp.startsWith('fake:')) throw new Error(`not a fake SDP: ${sdp.slice(0, 20)}`);
  return JSON.parse(sdp.slice(5));
}

const tick = () => new Promise((r) => setTimeout(r, 0));

/**
 * A FakeServer that holds the offer (and early candidates) of a member that is alone, hands
 * them to the next member to join, and can expire them — like the real server.
 */
export class HoldingServer extends FakeServer {
  /** @param {any} [o] */
  constructor(o) {
    super(o);
    /** @type {Map<string, {from: string, entries: Array<{event: string, data: any}>}>} room → held */
    this.held = new Map();
    /** Offers held at once; more get too_many_held, as SWITCHBOARD_MAX_HELD_OFFERS. */
    this.maxHeld = o?.maxHeld ?? Infinity;
  }

  /** @param {string} conn @param {any} p */
  join(conn, p) {
    const key = `${p.room}/${p.nonce}`;
    const isNew = !this.nonces.has(key);
    const reply = super.join(conn, p);
    if (!reply.ok || !isNew) return reply;
    const held = this.held.get(p.room);
    if (held && held.from !== reply.peer) {
      this.held.delete(p.room);
      const m = /** @type {any} */ (this.member(p.room, reply.peer));
      for (const e of held.entries) this.push(m, e.event, { from: held.from, ...e.data });
    }
    return reply;
  }

  /** @param {any} m @param {string} event @param {any} p */
  apply(m, event, p) {
    const room = this.room(m.room);
    const alone = room.size === 1;
    const { room: _r, seq: _s, to: _t, ...data } = p;
    if (event === 'offer' && alone) {
      if (!this.held.has(m.room) && this.held.size >= this.maxHeld) return err('too_many_held');
      this.held.set(m.room, { from: m.peer, entries: [{ event, data }] });
      return { ok: true, seq: p.seq, held: true, expiresInMs: 300000 };
    }
    if (event === 'candidate' && alone) {
      const held = this.held.get(m.room);
      if (!held || held.from !== m.peer) return err('no_offer');
      held.entries.push({ event, data });
      return { ok: true, seq: p.seq, held: true };
    }
    if ((event === 'hangup' || event === 'leave') && this.held.get(m.room)?.from === m.peer) {
      this.held.delete(m.room);
    }
    if ((event === 'offer' || event === 'answer' || event === 'candidate') && this.relay) {
      // Routed like the real server: to `to`, which is required with several others.
      const others = [...room.values()].filter((o) => o !== m);
      const target = p.to === undefined ? (others.length === 1 ? others[0] : null) : room.get(p.to);
      if (!target) return err(p.to === undefined ? 'target_required' : 'no_peer');
      this.push(target, event, { from: m.peer, ...data });
      return { ok: true, seq: p.seq, held: false };
    }
    return super.apply(m, event, p);
  }

  /** Expires the held offer of `room`, telling its sender. @param {string} room */
  expire(room) {
    const held = this.held.get(room);
    if (!held) return false;
    this.held.delete(room);
    const m = this.member(room, held.from);
    if (m) this.push(m, 'expired', { what: 'offer' });
    return true;
  }
}

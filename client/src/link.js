// A PeerLink is a call's connection to one other member of the room: its RTCPeerConnection with
// trickle ICE, perfect negotiation, ICE restarts and the DataChannel. A call holds one per other
// member (a full mesh), plus, while it is alone, one whose member is not known yet: the link
// whose offer the server holds for the next member to join.

import { SignalingError } from './channel.js';

/** Label of the call's DataChannel (negotiated, stream id 0, on both sides). */
export const DATA_CHANNEL_LABEL = 'switchboard';

/** Remote candidates kept while no remote description is set. */
const MAX_BUFFERED_CANDIDATES = 256;

/** Signaling error codes that are expected in normal operation and not reported. */
export const QUIET_CODES = new Set([
  'closed', 'not_joined', 'no_peer', 'no_offer', 'too_many_candidates', 'target_required',
]);

/** @typedef {'new' | 'connecting' | 'connected' | 'reconnecting' | 'closed'} PeerState */

/**
 * What a link needs from its call.
 * @typedef {object} LinkOwner
 * @property {any} RTCPeerConnection constructor
 * @property {{dataChannel: boolean, rtcConfig: RTCConfiguration, iceRestartDelayMs: number}} options
 * @property {RTCIceServer[]} iceServers
 * @property {Array<{track: MediaStreamTrack, streams: MediaStream[]}>} localTracks
 * @property {boolean} ended
 * @property {(event: string, payload: object) => Promise<any>} send sequenced signaling message
 * @property {(event: string, ...args: any[]) => void} emit
 * @property {(err: any) => void} error
 * @property {(link: PeerLink) => void} changed the link's state changed
 * @property {(link: PeerLink, reply: any) => void} held the link's offer was held
 * @property {(link: PeerLink) => void} notHeld the server refused to hold the link's offer
 */

/** One other member of the room and the connection to it. */
export class PeerLink {
  /**
   * @param {LinkOwner} owner
   * @param {string | null} peer the member's id; null for the offer held for the next member
   * @param {string | null} role
   */
  constructor(owner, peer, role) {
    this._owner = owner;
    /** @type {string | null} */
    this.peer = peer;
    /** @type {string | null} */
    this.role = role;
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {RTCDataChannel | null} */
    this.dataChannel = null;
    /** Perfect negotiation role: the side that answered the connection's first offer is polite. */
    this.polite = false;
    /** @type {PeerState} */
    this.state = 'new';
    this._makingOffer = false;
    this._ignoreOffer = false;
    /** Local description being made: candidates wait until it is sent. */
    this._descPending = false;
    /** @type {RTCIceCandidateInit[]} */
    this._localCandidates = [];
    /** @type {RTCIceCandidateInit[]} */
    this._remoteCandidates = [];
    /** Messages sent without `to` that the server refused with target_required: sent again once the member is known. */
    /** @type {Array<{event: string, payload: any, pc: RTCPeerConnection}>} */
    this._unaddressed = [];
    this._disconnectTimer = /** @type {any} */ (null);
  }

  /**
   * Makes a new peer connection for this member (closing the previous one).
   * @param {boolean} offerer whether this side makes the first offer (then it is impolite)
   * @returns {RTCPeerConnection}
   */
  open(offerer) {
    const keepCandidates = !this.pc; // candidates that came before any connection belong to this one
    const buffered = keepCandidates ? this._remoteCandidates : [];
    this.close();
    const o = this._owner;
    const Ctor = o.RTCPeerConnection;
    if (!Ctor) throw new Error('RTCPeerConnection is not available');
    // max-bundle: one transport, so a held offer carries a third of the early candidates.
    /** @type {RTCPeerConnection} */
    const pc = new Ctor({ bundlePolicy: 'max-bundle', ...o.options.rtcConfig, iceServers: o.iceServers || [] });
    this.pc = pc;
    this.polite = !offerer;
    this.state = 'connecting';
    this._makingOffer = false;
    this._ignoreOffer = false;
    this._descPending = false;
    this._localCandidates = [];
    this._remoteCandidates = buffered;

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
      o.emit('track', {
        track: ev.track, streams: ev.streams, transceiver: ev.transceiver, receiver: ev.receiver, peer: this.peer,
      });
    };
    pc.ondatachannel = (ev) => { if (pc === this.pc) this._watchDataChannel(pc, ev.channel); };
    pc.onconnectionstatechange = () => this._onConnectionState(pc);

    for (const { track, streams } of o.localTracks) pc.addTrack(track, ...streams);
    if (o.options.dataChannel) {
      const dc = pc.createDataChannel(DATA_CHANNEL_LABEL, { negotiated: true, id: 0 });
      this._watchDataChannel(pc, dc);
    }
    if (offerer && o.localTracks.length === 0 && !o.options.dataChannel) {
      // Nothing to send: still offer to receive audio and video.
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
    }
    return pc;
  }

  /**
   * The member of a held offer became known: messages the server could not route without
   * `to` go again, addressed.
   * @param {string} peer
   * @param {string | null} role
   */
  assign(peer, role) {
    this.peer = peer;
    this.role = role;
    this.state = 'connecting';
    this._owner.changed(this);
    for (const m of this._unaddressed.splice(0)) this._resend(m.event, m.payload, m.pc);
  }

  /** Restarts ICE (a new offer with fresh credentials). */
  restartIce() {
    if (this.pc && this.peer && this.pc.signalingState !== 'closed') this.pc.restartIce();
  }

  /**
   * Perfect negotiation: on colliding offers the impolite side ignores the other's offer, the
   * polite side rolls its own back (implicitly, in setRemoteDescription) and answers.
   * @param {RTCSessionDescriptionInit} description
   */
  async onDescription(description) {
    const pc = this.pc;
    if (!pc) return;
    const collision = description.type === 'offer'
      && (this._makingOffer || pc.signalingState !== 'stable');
    this._ignoreOffer = !this.polite && collision;
    if (this._ignoreOffer) return;
    if (description.type === 'answer' && pc.signalingState !== 'have-local-offer') return; // stale
    await pc.setRemoteDescription(description);
    if (pc !== this.pc) return;
    const buffered = this._remoteCandidates.splice(0);
    for (const c of buffered) await this._addCandidate(pc, c);
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

  /** @param {RTCIceCandidateInit} candidate */
  async onCandidate(candidate) {
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
        this._owner.error(err);
      }
    }
  }

  /** @param {RTCPeerConnection} pc @param {RTCDataChannel} dc */
  _watchDataChannel(pc, dc) {
    if (dc.label === DATA_CHANNEL_LABEL) this.dataChannel = dc;
    const opened = () => { if (pc === this.pc) this._owner.emit('datachannel', dc, this.peer); };
    if (dc.readyState === 'open') opened();
    else dc.addEventListener('open', opened, { once: true });
  }

  /** @param {RTCPeerConnection} pc */
  async _negotiate(pc) {
    if (pc !== this.pc || this._owner.ended) return;
    try {
      this._makingOffer = true;
      this._descPending = true;
      await pc.setLocalDescription();
      if (pc === this.pc && pc.localDescription && pc.localDescription.type === 'offer') {
        this._sendDescription(pc);
      }
    } catch (err) {
      if (pc === this.pc && pc.signalingState !== 'closed') this._owner.error(err);
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
    this._resend(desc.type, { sdp: desc.sdp }, pc);
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
    if (this.pc) this._resend('candidate', { candidate }, this.pc);
  }

  /**
   * Sends a sequenced message of `pc` to this member (or, while the member is unknown, without
   * `to`: held, or relayed to the only other member). Failures that are part of normal
   * operation are not reported.
   * @param {string} event
   * @param {any} data
   * @param {RTCPeerConnection} pc
   */
  _resend(event, data, pc) {
    const o = this._owner;
    const addressed = this.peer !== null;
    const payload = addressed ? { ...data, to: this.peer } : data;
    // An unaddressed message the server could not route (sent while alone, applied after two
    // or more members had joined), or whose outcome is unknown (a retry answered `duplicate`
    // after the first reply was lost), goes again addressed once the member is known. A
    // description goes again only while it is current and unanswered.
    const again = () => {
      if (pc !== this.pc) return;
      if (event !== 'candidate' && (pc.localDescription?.sdp !== data.sdp || pc.signalingState !== 'have-local-offer')) return;
      if (this.peer !== null) this._resend(event, data, pc);
      else this._unaddressed.push({ event, payload: data, pc });
    };
    o.send(event, payload).then((reply) => {
      if (!addressed && reply && reply.duplicate === true) again();
      if (event === 'offer' && reply && reply.held === true && pc === this.pc && this.peer === null) {
        o.held(this, reply);
      }
    }, (err) => {
      const code = err instanceof SignalingError ? err.code : '';
      if (code === 'target_required' && !addressed) {
        again();
        return;
      }
      if (event === 'offer' && code === 'too_many_held' && pc === this.pc && this.peer === null) {
        o.notHeld(this);
      }
      if (!QUIET_CODES.has(code)) o.error(err);
    });
  }

  /** @param {RTCPeerConnection} pc */
  _onConnectionState(pc) {
    if (pc !== this.pc) return;
    const state = pc.connectionState;
    this._owner.emit('connectionstatechange', state, this.peer);
    if (state !== 'disconnected') this._clearDisconnectTimer();
    switch (state) {
      case 'connected':
        this._setState('connected');
        break;
      case 'disconnected':
        this._setState('reconnecting');
        this._disconnectTimer = setTimeout(() => {
          this._disconnectTimer = null;
          if (pc === this.pc && pc.connectionState === 'disconnected') this.restartIce();
        }, this._owner.options.iceRestartDelayMs);
        break;
      case 'failed':
        this._setState('reconnecting');
        this.restartIce();
        break;
      case 'connecting':
        if (this.state === 'connected') this._setState('reconnecting');
        break;
      default:
        break;
    }
  }

  /** @param {PeerState} state */
  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._owner.changed(this);
  }

  /** A new offer from the member starts (or restarts) negotiation. */
  offered() {
    if (this.state !== 'connected') this._setState('connecting');
  }

  _clearDisconnectTimer() {
    if (this._disconnectTimer) clearTimeout(this._disconnectTimer);
    this._disconnectTimer = null;
  }

  /** Closes the peer connection; the member stays (a new offer opens a new connection). */
  close() {
    this._clearDisconnectTimer();
    const pc = this.pc;
    this.pc = null;
    this.dataChannel = null;
    this.state = 'closed';
    this._remoteCandidates = [];
    this._localCandidates = [];
    this._unaddressed = [];
    this._descPending = false;
    if (!pc) return;
    pc.onnegotiationneeded = null;
    pc.onicecandidate = null;
    pc.ontrack = null;
    pc.ondatachannel = null;
    pc.onconnectionstatechange = null;
    try { pc.close(); } catch { /* closed already */ }
  }
}

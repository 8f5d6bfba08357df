// Types of the Switchboard browser client (client/dist/switchboard.js and, as the global
// `Switchboard`, client/dist/switchboard.iife.js).

export as namespace Switchboard;

/** Version of the signaling protocol (docs/protocol.md) this client speaks. */
export const PROTOCOL_VERSION: 1;

/** Label of the call's DataChannel (negotiated, stream id 0, on both sides). */
export const DATA_CHANNEL_LABEL: 'switchboard';

/** A Web Storage-like object, e.g. `sessionStorage`. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface SwitchboardOptions {
  /** Engine.IO transports. Default `['websocket']` (no sticky sessions needed). */
  transports?: Array<'websocket' | 'polling'>;
  /** Socket.IO path on the server. Default `'/socket.io/'`. */
  path?: string;
  /** A connection whose Socket.IO handshake is not answered by then is made again. Default 3000. */
  connectTimeoutMs?: number;
  /** With several URLs, move to the next after this many failed attempts in a row. Default 2. */
  failoverAfter?: number;
  /** First delay before a reconnection attempt, ms. Default 250. */
  reconnectionDelay?: number;
  /** Largest delay between reconnection attempts, ms. Default 2000. */
  reconnectionDelayMax?: number;
  /**
   * Wait before the first resend of an unanswered signaling message, ms. Default 1000. Each
   * further resend waits twice as long, up to `maxRetryMs`, every wait drawn from 50–100% of
   * that; a new connection starts again at `retryMs`.
   */
  retryMs?: number;
  /** The longest wait between two resends, ms. Default 8000. */
  maxRetryMs?: number;
  /** How long one emission waits for its reply at least (up to the next resend), ms. Default 1000. */
  ackTimeoutMs?: number;
  /** Where memberships are kept across a page reload. Default `sessionStorage`; `null`: nowhere. */
  storage?: StorageLike | null;
  /** More socket.io-client options. */
  socketOptions?: Record<string, unknown>;
  /** Socket factory (default socket.io-client's `io`); for tests. */
  io?: (url: string, options: object) => unknown;
  /** RTCPeerConnection constructor (default the global one); for tests. */
  RTCPeerConnection?: typeof RTCPeerConnection;
}

export type ConnectionStatus = 'connecting' | 'connected' | 'reconnecting' | 'closed';

export interface CallOptions {
  /** Local media; its tracks are sent to the other member. */
  stream?: MediaStream | null;
  /** Open a DataChannel (negotiated, id 0; both sides should ask for it). Default false. */
  dataChannel?: boolean;
  /** Overrides the ICE servers of the join reply. */
  iceServers?: RTCIceServer[];
  /** More RTCPeerConnection settings (default `bundlePolicy: 'max-bundle'`). */
  rtcConfig?: RTCConfiguration;
  /** How long ICE may stay `disconnected` before it is restarted, ms. Default 4000. */
  iceRestartDelayMs?: number;
  /** After a page reload, release the membership the page held before, then join. Default true. */
  resume?: boolean;
  /** A room token, for servers with SWITCHBOARD_AUTH_SECRET (minted by your backend). */
  token?: string;
}

export type CallStatus =
  | 'joining'      // the join is on its way
  | 'waiting'      // alone in the room; the offer is held for the next member
  | 'connecting'   // the other member is there; negotiating, ICE checking
  | 'connected'    // media and data flow
  | 'reconnecting' // ICE disconnected or failed; restarting
  | 'expired'      // nobody came before the held offer expired; the next member gets a new offer
  | 'ended';       // hung up, or the room could not be joined again

export interface TrackEvent {
  track: MediaStreamTrack;
  streams: readonly MediaStream[];
  transceiver: RTCRtpTransceiver;
  receiver: RTCRtpReceiver;
  /** The member that sends the track. */
  peer: string;
}

/** State of the connection to one other member. */
export type PeerState = 'new' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** Another member of the room and this call's connection to it. */
export interface RemotePeer {
  /** The member's peer id. */
  readonly peer: string;
  /** `'caller'` or `'answerer'`, when known. */
  readonly role: string | null;
  /** The connection to this member; null until the pair negotiates (and after a hangup). */
  readonly pc: RTCPeerConnection | null;
  /** The DataChannel to this member, with `dataChannel: true`. */
  readonly dataChannel: RTCDataChannel | null;
  /** Perfect negotiation role of this pair: the member that joined later is polite. */
  readonly polite: boolean;
  readonly state: PeerState;
}

export type CallEvents = {
  status: (status: CallStatus) => void;
  track: (event: TrackEvent) => void;
  /** A member's DataChannel is open (again after the connection to it was made anew). */
  datachannel: (channel: RTCDataChannel, peer: string) => void;
  /** The connection state of the connection to `peer` changed. */
  connectionstatechange: (state: RTCPeerConnectionState, peer: string) => void;
  'peer-joined': (peer: { peer: string; role: string }) => void;
  'peer-left': (peer: { peer: string; reason: 'left' | 'timeout' | string }) => void;
  hangup: (event: { from: string }) => void;
  expired: (event: { what: 'offer' | string }) => void;
  error: (error: Error) => void;
};

/** A minimal event emitter. */
export class Emitter<Events extends { [event: string]: (...args: any[]) => void } = any> {
  on<E extends keyof Events & string>(event: E, listener: Events[E]): this;
  once<E extends keyof Events & string>(event: E, listener: Events[E]): this;
  off<E extends keyof Events & string>(event?: E, listener?: Events[E]): this;
}

/** One call in one room. */
export class Call extends Emitter<CallEvents> {
  readonly room: string;
  readonly status: CallStatus;
  /** This member's peer id. */
  readonly peer: string | null;
  /** `'caller'` (first in the room) or `'answerer'`, as the server assigned it. */
  readonly role: string | null;
  /** Members the room holds at most (from the join reply); null before the join completed. */
  readonly capacity: number | null;
  /** The other members by peer id, each with its connection (a group call is a full mesh). */
  readonly peers: ReadonlyMap<string, RemotePeer>;
  /** The member this call talks to (in a group: the first connected member). */
  readonly remotePeer: string | null;
  /** The current peer connection (in a group: the first one; see `peers`). */
  readonly pc: RTCPeerConnection | null;
  /** The call's DataChannel, with `dataChannel: true` (in a group: the first one). */
  readonly dataChannel: RTCDataChannel | null;
  /** Perfect negotiation role of the current connection (the side that answered first). */
  readonly polite: boolean;
  /** The delivery layer. */
  readonly channel: SignalingChannel;
  /** Sends `data` on every open DataChannel; returns how many members it was sent to. */
  broadcast(data: string | Blob | ArrayBuffer | ArrayBufferView): number;
  /** Sends another local track to every member; the connections renegotiate. */
  addTrack(track: MediaStreamTrack, ...streams: MediaStream[]): RTCRtpSender | null;
  /** Stops sending a local track; the call renegotiates. */
  removeTrack(track: MediaStreamTrack): void;
  /** Restarts ICE through signaling on every connection (done on its own when ICE fails). */
  restartIce(): void;
  /** Ends the call and leaves the room. Local tracks are not stopped. */
  hangup(options?: { timeoutMs?: number }): Promise<void>;
}

export type SwitchboardEvents = {
  status: (status: ConnectionStatus) => void;
};

/** A connection to a Switchboard deployment. */
export class Switchboard extends Emitter<SwitchboardEvents> {
  constructor(url?: string | string[], options?: SwitchboardOptions);
  /** The server URLs, in failover order. */
  readonly urls: string[];
  /** The server currently used. */
  readonly url: string;
  readonly status: ConnectionStatus;
  readonly connected: boolean;
  readonly calls: ReadonlySet<Call>;
  /** The socket.io-client socket in use. */
  readonly socket: unknown;
  /**
   * Joins `room` and starts the call. Rejects with a SignalingError (`code` `room_full`, …).
   * Add the call's listeners right after it resolves.
   */
  join(room: string, options?: CallOptions): Promise<Call>;
  /** Hangs up every call and closes the connection. */
  close(): Promise<void>;
}

/** Connects to a Switchboard deployment (default URL: the page's origin). */
export function connect(url?: string | string[], options?: SwitchboardOptions): Switchboard;

/** An error from the server; `code` is the protocol's error code. */
export class SignalingError extends Error {
  constructor(code: string, message?: string, reply?: unknown);
  readonly code: string;
  readonly reply: unknown;
}

export interface ChannelOptions {
  retryMs?: number;
  maxRetryMs?: number;
  ackTimeoutMs?: number;
  maxInFlight?: number;
  storage?: StorageLike;
}

/** The delivery layer: one membership with the protocol's sequence numbers, acks and resume. */
export class SignalingChannel extends Emitter {
  constructor(socket: unknown, options?: ChannelOptions);
  readonly room: string | null;
  readonly peer: string | null;
  readonly role: string | null;
  readonly peers: Array<{ peer: string; role: string }>;
  readonly iceServers: RTCIceServer[];
  /** The server's size limits, from the last join or resume reply (null before one, or from a server that sends none). */
  readonly limits: { maxSdpBytes: number; maxCandidateBytes: number; maxMessageBytes: number } | null;
  readonly joined: boolean;
  readonly lastApplied: number;
  readonly pending: number;
  join(room: string, options?: { token?: string }): Promise<any>;
  /** Rejects with a SignalingError `too_large`, before sending, when the message is over the server's limits. */
  send(event: 'offer' | 'answer' | 'candidate' | 'hangup' | 'leave', payload?: object): Promise<any>;
  leave(): Promise<any>;
  attach(socket: unknown): void;
  restore(): Promise<any>;
  close(): void;
}

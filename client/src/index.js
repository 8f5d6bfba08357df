// Switchboard browser client: connect to a Switchboard deployment, join a room, get a call.
//
//   const sb = Switchboard.connect('https://signal.example.org');
//   const call = await sb.join('room-1', { stream, dataChannel: true });
//   call.on('track', ({ track, streams }) => { video.srcObject = streams[0]; });
//
// See client/README.md for the API, events and options.

export { connect, Switchboard } from './switchboard.js';
export { Call, DATA_CHANNEL_LABEL } from './call.js';
export { Emitter, SignalingChannel, SignalingError } from './channel.js';

/** Version of the signaling protocol (docs/protocol.md) this client speaks. */
export const PROTOCOL_VERSION = 1;

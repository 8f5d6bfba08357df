// Compiled by `npm run check:client` (tsc --noEmit), never run: the shipped declarations
// (src/switchboard.d.ts, copied to dist/) describe the API the README shows.
import { connect, SignalingError, type Call, type CallStatus, type ConnectionStatus } from '../src/switchboard.js';

export async function example(stream: MediaStream, remote: HTMLVideoElement): Promise<Call | null> {
  const sb = connect(['https://a.example', 'https://b.example'], { transports: ['websocket'] });
  sb.on('status', (s: ConnectionStatus) => console.log(s, sb.url));
  let call: Call;
  try {
    call = await sb.join('room-1', { stream, dataChannel: true });
  } catch (err) {
    if (err instanceof SignalingError && err.code === 'room_full') return null;
    throw err;
  }
  call.on('track', ({ track, streams }) => { remote.srcObject = streams[0] ?? new MediaStream([track]); });
  call.on('datachannel', (dc) => { dc.onmessage = (ev) => console.log(ev.data); dc.send('hi'); });
  call.on('status', (s: CallStatus) => console.log(s));
  call.on('connectionstatechange', (state) => console.log(state === 'connected'));
  call.on('peer-joined', ({ peer, role }) => console.log(peer, role));
  call.on('peer-left', ({ peer, reason }) => console.log(peer, reason));
  call.on('expired', ({ what }) => console.log(what));
  call.on('error', (e) => console.error(e.message));
  call.addTrack(stream.getVideoTracks()[0], stream);
  call.restartIce();
  const pc: RTCPeerConnection | null = call.pc;
  console.log(pc?.connectionState, call.role, call.peer, call.remotePeer, call.polite, call.status);
  await call.hangup();
  await sb.close();
  return call;
}

export async function group(stream: MediaStream, tiles: Map<string, HTMLVideoElement>): Promise<number> {
  const call = await connect().join('team', { stream, dataChannel: true });
  call.on('track', ({ streams, peer }) => { const v = tiles.get(peer); if (v) v.srcObject = streams[0] ?? null; });
  call.on('datachannel', (dc, peer) => { dc.onmessage = (ev) => console.log(peer, ev.data); });
  call.on('connectionstatechange', (state, peer) => console.log(peer, state));
  for (const [id, p] of call.peers) console.log(id, p.state, p.polite, p.pc?.connectionState, p.dataChannel?.readyState);
  const sent: number = call.broadcast(JSON.stringify({ muted: true }));
  return sent + (call.capacity ?? 0);
}

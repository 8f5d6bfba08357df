// Compiled by `npm run check:client`, never run: the classic script build's global `Switchboard`
// (a script, not a module, like a page using <script src="/switchboard.iife.js">).
const sbGlobal: Switchboard.Switchboard = Switchboard.connect(undefined, { transports: ['websocket', 'polling'] });
sbGlobal.join('room-2', { dataChannel: true }).then((call) => call.hangup());

// A websocket man-in-the-middle between a Socket.IO client (websocket transport) and a server
// instance. The Engine.IO handshake, pings, pongs and the Socket.IO CONNECT go through
// untouched; Socket.IO EVENT and ACK packets (Engine.IO message frames "42…" / "43…", with or
// without a namespace) are dropped, duplicated and delayed at random, which reorders them.
// Seeded, so a run can be reproduced. (This file has no tests of its own.)

import { WebSocketServer, WebSocket } from 'ws';

/**
 * Deterministic pseudo-random numbers (mulberry32).
 * @param {number} seed
 * @returns {() => number} numbers in [0, 1)
 */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * @typedef {object} DirectionStats
 * @property {number} packets Socket.IO EVENT/ACK packets seen
 * @property {number} dropped
 * @property {number} duplicated
 * @property {number} delivered copies actually written
 * @property {number} passthrough other frames forwarded untouched
 */

/**
 * @typedef {object} FaultProxy
 * @property {string} url http URL to give to socket.io-client
 * @property {number} port
 * @property {{up: DirectionStats, down: DirectionStats, connections: number}} stats
 *   up: client → server, down: server → client
 * @property {(o: {drop?: number, dup?: number, maxDelay?: number}) => void} configure change the
 *   fault rates for what comes next (e.g. stop faulting at the end of a test)
 * @property {() => void} cutAll closes every proxied connection abruptly
 * @property {() => Promise<void>} close
 */

/**
 * Whether an Engine.IO text frame carries a Socket.IO EVENT (2) or ACK (3) packet:
 * Engine.IO type 4 (message), then the Socket.IO type.
 * @param {string} frame
 */
export function isEventOrAck(frame) {
  return frame.length >= 2 && frame[0] === '4' && (frame[1] === '2' || frame[1] === '3');
}

/**
 * @param {{target: string, drop?: number, dup?: number, maxDelay?: number, seed?: number}} o
 *   target: the instance's http URL
 * @returns {Promise<FaultProxy>}
 */
export async function startFaultProxy({ target, drop = 0.2, dup = 0.1, maxDelay = 50, seed = 1 }) {
  const random = rng(seed);
  const cfg = { drop, dup, maxDelay };
  const targetWs = target.replace(/^http/, 'ws');
  const newStats = () => ({ packets: 0, dropped: 0, duplicated: 0, delivered: 0, passthrough: 0 });
  const stats = { up: newStats(), down: newStats(), connections: 0 };
  /** @type {Set<any>} */
  const timers = new Set();
  /** @type {Set<WebSocket>} */
  const open = new Set();

  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => wss.once('listening', resolve));
  const port = /** @type {import('node:net').AddressInfo} */ (wss.address()).port;

  wss.on('connection', (client, req) => {
    stats.connections++;
    const upstream = new WebSocket(`${targetWs}${req.url}`);
    open.add(client);
    open.add(upstream);
    /** @type {Array<[any, boolean]>} */
    const early = [];

    /**
     * @param {WebSocket} to
     * @param {any} data
     * @param {boolean} isBinary
     */
    const write = (to, data, isBinary) => {
      if (to.readyState === WebSocket.OPEN) to.send(data, { binary: isBinary });
      else if (to === upstream && to.readyState === WebSocket.CONNECTING) early.push([data, isBinary]);
    };

    /**
     * @param {'up' | 'down'} dir
     * @param {WebSocket} to
     * @param {any} data
     * @param {boolean} isBinary
     */
    const forward = (dir, to, data, isBinary) => {
      const s = stats[dir];
      const text = isBinary ? null : data.toString();
      if (text === null || !isEventOrAck(text)) {
        s.passthrough++;
        write(to, data, isBinary);
        return;
      }
      s.packets++;
      if (random() < cfg.drop) {
        s.dropped++;
        return;
      }
      const copies = random() < cfg.dup ? 2 : 1;
      if (copies === 2) s.duplicated++;
      for (let i = 0; i < copies; i++) {
        const delay = cfg.maxDelay > 0 ? Math.floor(random() * (cfg.maxDelay + 1)) : 0;
        const timer = setTimeout(() => {
          timers.delete(timer);
          if (to.readyState === WebSocket.OPEN) {
            s.delivered++;
            to.send(text);
          }
        }, delay);
        timers.add(timer);
      }
    };

    upstream.on('open', () => {
      for (const [data, isBinary] of early.splice(0)) upstream.send(data, { binary: isBinary });
    });
    client.on('message', (data, isBinary) => forward('up', upstream, data, isBinary));
    upstream.on('message', (data, isBinary) => forward('down', client, data, isBinary));

    /** @param {WebSocket} ws @param {number} code */
    const closeQuietly = (ws, code) => {
      open.delete(ws);
      if (ws.readyState === WebSocket.CLOSED || ws.readyState === WebSocket.CLOSING) return;
      const valid = code === 1000 || (code >= 3000 && code < 5000) || (code >= 1001 && code <= 1003)
        || (code >= 1007 && code <= 1014);
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(valid ? code : 1000);
    };
    client.on('close', (code) => { open.delete(client); closeQuietly(upstream, code); });
    upstream.on('close', (code) => { open.delete(upstream); closeQuietly(client, code); });
    client.on('error', () => closeQuietly(upstream, 1011));
    upstream.on('error', () => closeQuietly(client, 1011));
  });

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stats,
    configure(o) {
      Object.assign(cfg, o);
    },
    cutAll() {
      for (const ws of [...open]) ws.terminate();
      open.clear();
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const ws of [...open]) ws.terminate();
      open.clear();
      for (const ws of wss.clients) ws.terminate();
      await new Promise((resolve) => wss.close(() => resolve(null)));
    },
  };
}

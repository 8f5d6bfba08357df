// The demo call page: create or open a room link, call whoever opens it. In a room with a
// capacity above 2 it is a group call: one tile per member, names, who speaks and who is muted
// (told over the DataChannels).
//
// URL: /#<room>. Options in the query string: ?servers=<url>,<url> (instances of one deployment
// to fail over between; default this page's server), ?transport=polling and ?video=<w>x<h>
// (camera size, default 640x480).

import { connect } from './switchboard.js';

const ROOM_RE = /^[A-Za-z0-9._~-]{1,128}$/;
const JOINED_KEY = 'switchboard-demo.joined';
const NAME_KEY = 'switchboard-demo.name';

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const ui = {
  conn: $('conn'), lobby: $('lobby'), room: $('room'), start: $('start'), openForm: $('open-form'),
  roomInput: $('room-input'), link: $('link'), copy: $('copy'), remote: $('remote'), local: $('local'),
  badges: $('remote-badges'), notice: $('notice'), noticeText: $('notice-text'), join: $('join'),
  again: $('again'), unmuteRemote: $('unmute-remote'), status: $('status'), mute: $('mute'),
  camera: $('camera'), hangup: $('hangup'), stage: $('stage'), name: $('name'), roster: $('roster'),
};

const params = new URLSearchParams(location.search);
const servers = (params.get('servers') || '').split(',').map((s) => s.trim()).filter(Boolean);
const transports = params.get('transport') === 'polling' ? ['polling', 'websocket'] : ['websocket'];
const videoSize = /^(\d{2,4})x(\d{2,4})$/.exec(params.get('video') || '') || [null, '640', '480'];

const sb = connect(servers.length ? servers : location.origin, { transports });
/** @type {import('../src/switchboard.d.ts').Call | null} */
let call = null;
/** @type {MediaStream | null} */
let localStream = null;
let joining = false;
/**
 * What each other member told us over its DataChannel.
 * @type {Map<string, {name: string, audio: boolean, video: boolean, speaking: boolean}>}
 */
const remoteStates = new Map();
/** Why we are waiting again, when the other person left. */
let leftText = '';
/** Whether the local microphone picks up speech (sent to the others). */
let speaking = false;
/** @type {{ctx: AudioContext, timer: any} | null} */
let speechWatch = null;
/** Who left last (shown until the next member comes or goes). */
let rosterNote = '';
try { ui.name.value = localStorage.getItem(NAME_KEY) || ''; } catch { /* storage blocked */ }

// Exposed for debugging (and the end-to-end tests).
/** @type {any} */ (window).switchboardDemo = { sb, get call() { return call; } };

const CONN_TEXT = { connecting: 'connecting…', connected: 'online', reconnecting: 'reconnecting…', closed: 'offline' };
sb.on('status', showConnection);
showConnection(sb.status);

/** @param {string} s */
function showConnection(s) {
  ui.conn.dataset.state = s;
  ui.conn.textContent = /** @type {any} */ (CONN_TEXT)[s] || s;
}

// ------------------------------------------------------------------------------------------------
// Views

function roomFromUrl() {
  const fromHash = decodeURIComponent(location.hash.slice(1));
  const room = fromHash || params.get('room') || '';
  return ROOM_RE.test(room) ? room : '';
}

function newRoomName() {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(bytes, (b) => b.toString(36).padStart(2, '0')).join('').slice(0, 10);
}

/** @param {string} room */
function roomLink(room) {
  return `${location.origin}${location.pathname}${location.search}#${encodeURIComponent(room)}`;
}

function showLobby() {
  document.body.dataset.view = 'lobby';
  ui.lobby.hidden = false;
  ui.room.hidden = true;
  document.title = 'Switchboard call';
}

/** @param {string} room @param {{autoJoin: boolean}} o */
function showRoom(room, { autoJoin }) {
  document.body.dataset.view = 'room';
  ui.lobby.hidden = true;
  ui.room.hidden = false;
  ui.link.value = roomLink(room);
  document.title = `Switchboard call · ${room}`;
  if (autoJoin) {
    join(room);
  } else {
    notice(`Room “${room}”. Join to start your camera and call whoever is there.`, '');
    ui.join.hidden = false;
    setStatus('idle', 'Not joined yet');
  }
}

/**
 * @param {string} text
 * @param {'' | 'warn' | 'bad'} tone
 */
function notice(text, tone) {
  ui.notice.hidden = false;
  ui.notice.dataset.tone = tone;
  ui.noticeText.textContent = text;
  ui.join.hidden = true;
  ui.again.hidden = true;
}

function hideNotice() {
  ui.notice.hidden = true;
}

/** @param {string} status @param {string} text */
function setStatus(status, text) {
  ui.status.dataset.status = status;
  ui.status.textContent = text;
}

/** @param {boolean} enabled */
function setControls(enabled) {
  for (const b of [ui.mute, ui.camera, ui.hangup]) b.disabled = !enabled;
}

// ------------------------------------------------------------------------------------------------
// Media

async function getMedia() {
  const video = { width: { ideal: Number(videoSize[1]) }, height: { ideal: Number(videoSize[2]) } };
  for (const constraints of [{ video, audio: true }, { video }, { audio: true }]) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch { /* try with less */ }
  }
  return null;
}

function stopMedia() {
  stopSpeechWatch();
  if (localStream) for (const t of localStream.getTracks()) t.stop();
  localStream = null;
  ui.local.srcObject = null;
  ui.local.classList.add('off');
}

/** @returns {string} this member's name as the others see it */
function myName() {
  const n = ui.name.value.trim();
  return n || (call && call.peer ? `Guest ${call.peer.slice(0, 4)}` : 'Guest');
}

function stateMessage() {
  const audio = !!localStream && localStream.getAudioTracks().some((t) => t.enabled);
  const video = !!localStream && localStream.getVideoTracks().some((t) => t.enabled);
  return JSON.stringify({ type: 'state', name: myName(), audio, video, speaking: audio && speaking });
}

/** Tells every member our name, mute and camera state, and whether we speak. */
function sendState() {
  if (!call) return;
  call.broadcast(stateMessage());
}

/**
 * Watches the microphone's level: "speaking" while it was loud in the last 600 ms.
 * @param {MediaStream} stream
 */
function watchSpeech(stream) {
  stopSpeechWatch();
  const track = stream.getAudioTracks()[0];
  const Ctx = /** @type {any} */ (window).AudioContext;
  if (!track || !Ctx) return;
  const ctx = new Ctx();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  let loudUntil = 0;
  const timer = setInterval(() => {
    if (ctx.state === 'suspended') ctx.resume().catch(() => {});
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    const now = performance.now();
    if (track.enabled && Math.sqrt(sum / buf.length) > 0.02) loudUntil = now + 600;
    const s = now < loudUntil;
    if (s === speaking) return;
    speaking = s;
    sendState();
    renderRoster();
  }, 150);
  speechWatch = { ctx, timer };
}

function stopSpeechWatch() {
  if (!speechWatch) return;
  clearInterval(speechWatch.timer);
  speechWatch.ctx.close().catch(() => {});
  speechWatch = null;
  speaking = false;
}

// ------------------------------------------------------------------------------------------------
// Tiles: one per other member. The first one is in the page (#remote, the one-to-one view);
// more are added for a group, and the stage turns into a grid.

/**
 * @typedef {object} Tile
 * @property {HTMLElement} el
 * @property {HTMLVideoElement} video
 * @property {HTMLElement} badges
 * @property {HTMLElement} name
 * @property {string | null} peer
 */

/** @type {Tile} */
const firstTile = {
  el: ui.stage.querySelector('[data-slot="first"]'), video: ui.remote, badges: ui.badges,
  name: ui.stage.querySelector('[data-slot="first"] .name'), peer: null,
};
/** @type {Map<string, Tile>} member → its tile */
const tiles = new Map();

/** @param {string} peer @returns {Tile} */
function tileFor(peer) {
  let tile = tiles.get(peer);
  if (tile) return tile;
  if (firstTile.peer === null) {
    tile = firstTile;
  } else {
    const el = document.createElement('div');
    el.className = 'tile';
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    video.className = 'remote';
    const badges = document.createElement('div');
    badges.className = 'badges';
    const name = document.createElement('span');
    name.className = 'name';
    el.append(video, badges, name);
    ui.stage.insertBefore(el, ui.notice);
    tile = { el, video, badges, name, peer: null };
  }
  tile.peer = peer;
  tile.el.dataset.peer = peer;
  tiles.set(peer, tile);
  layout();
  renderTile(peer);
  return tile;
}

/** @param {string} peer the member left: its tile goes, the others stay as they are */
function dropTile(peer) {
  const tile = tiles.get(peer);
  remoteStates.delete(peer);
  if (!tile) return;
  tiles.delete(peer);
  tile.video.srcObject = null;
  if (tile !== firstTile) {
    tile.el.remove();
  } else {
    // Keep the first tile (the one-to-one view) in use: the newest tile moves into it.
    const last = [...tiles.values()].pop();
    firstTile.peer = null;
    delete firstTile.el.dataset.peer;
    firstTile.el.classList.remove('speaking');
    firstTile.badges.replaceChildren();
    firstTile.name.textContent = '';
    if (last) {
      tiles.delete(/** @type {string} */ (last.peer));
      const t = tileFor(/** @type {string} */ (last.peer));
      t.video.srcObject = last.video.srcObject;
      t.video.muted = last.video.muted;
      play(t.video);
      last.el.remove();
    }
  }
  layout();
}

function clearTiles() {
  for (const peer of [...tiles.keys()]) dropTile(peer);
  remoteStates.clear();
  rosterNote = '';
  layout();
  renderRoster();
}

/** Grid size: the stage shows the one-to-one view for one other member, a grid for more. */
function layout() {
  const n = tiles.size;
  ui.stage.dataset.count = String(Math.max(1, n));
  ui.stage.classList.toggle('grid', n >= 2);
}

/** @param {string} peer */
function nameOf(peer) {
  return remoteStates.get(peer)?.name || `Guest ${peer.slice(0, 4)}`;
}

/** @param {string} peer */
function renderTile(peer) {
  const tile = tiles.get(peer);
  if (!tile) return;
  const st = remoteStates.get(peer);
  const link = call && call.peers.get(peer);
  const connected = !!link && link.state === 'connected';
  const group = tiles.size >= 2 || (call?.capacity ?? 2) > 2;
  tile.el.classList.toggle('speaking', connected && !!st?.speaking && st.audio);
  tile.name.textContent = group || st?.name ? `${nameOf(peer)}${connected ? '' : ' · connecting…'}` : '';
  tile.badges.replaceChildren();
  if (!connected || !st) return;
  if (!st.audio) tile.badges.append(badge('muted'));
  if (!st.video) tile.badges.append(badge('camera off'));
}

function showRemoteBadges() {
  for (const peer of tiles.keys()) renderTile(peer);
  renderRoster();
}

/** The line under the video: who is in the call, who speaks, who is muted. */
function renderRoster() {
  if (!call || call.status === 'ended') {
    ui.roster.textContent = '';
    return;
  }
  const peers = [...call.peers.keys()];
  const capacity = call.capacity ?? 2;
  const parts = [];
  if (capacity > 2) parts.push(`${peers.length + 1} of ${capacity} in the call`);
  const talking = peers.filter((p) => remoteStates.get(p)?.speaking && remoteStates.get(p)?.audio).map(nameOf);
  if (speaking) talking.unshift('you');
  if (talking.length) parts.push(`Speaking: ${talking.join(', ')}`);
  const muted = peers.filter((p) => remoteStates.get(p) && !remoteStates.get(p)?.audio).map(nameOf);
  if (muted.length) parts.push(`Muted: ${muted.join(', ')}`);
  if (rosterNote) parts.push(rosterNote);
  ui.roster.textContent = parts.join(' · ');
}

/** @param {string} text */
function badge(text) {
  const s = document.createElement('span');
  s.textContent = text;
  return s;
}

/** @param {HTMLVideoElement} video */
function play(video) {
  const p = video.play();
  if (p && typeof p.catch === 'function') {
    p.catch(() => {
      // Autoplay with sound refused: play muted and offer a tap to unmute.
      video.muted = true;
      video.play().catch(() => {});
      ui.unmuteRemote.hidden = false;
      ui.notice.hidden = false;
      ui.noticeText.textContent = '';
    });
  }
}

// ------------------------------------------------------------------------------------------------
// The call

const STATUS_TEXT = {
  joining: 'Joining…',
  waiting: 'Waiting for someone to join',
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Connection interrupted, reconnecting…',
  expired: 'Call offer expired',
  ended: 'Call ended',
};

/** @param {string} room */
async function join(room) {
  if (joining || call) return;
  joining = true;
  ui.join.hidden = true;
  setStatus('joining', 'Starting camera…');
  notice('Starting your camera and microphone…', '');
  localStream = localStream || await getMedia();
  ui.local.srcObject = localStream;
  ui.local.classList.toggle('off', !localStream || localStream.getVideoTracks().length === 0);
  setStatus('joining', STATUS_TEXT.joining);
  notice(localStream ? 'Joining the room…' : 'No camera or microphone available: joining to watch and listen only.', localStream ? '' : 'warn');
  try {
    call = await sb.join(room, { stream: localStream, dataChannel: true });
  } catch (err) {
    joining = false;
    const code = /** @type {any} */ (err).code;
    sessionStorage.removeItem(JOINED_KEY);
    stopMedia();
    if (code === 'room_full') {
      setStatus('full', 'Room is full');
      notice('This room is full: everyone it has room for is already in this call. Start a new call instead.', 'bad');
    } else {
      setStatus('error', 'Could not join');
      notice(`Could not join the room: ${/** @type {Error} */ (err).message}`, 'bad');
    }
    ui.again.hidden = false;
    return;
  }
  joining = false;
  sessionStorage.setItem(JOINED_KEY, room);
  setControls(true);
  if (localStream) watchSpeech(localStream);
  wire(call);
}

/** @param {import('../src/switchboard.d.ts').Call} c */
function wire(c) {
  c.on('status', (s) => onStatus(s));
  c.on('track', ({ track, streams, peer }) => {
    const tile = tileFor(peer);
    const stream = streams[0] || new MediaStream([track]);
    if (tile.video.srcObject !== stream) tile.video.srcObject = stream;
    play(tile.video);
  });
  c.on('datachannel', (dc, peer) => {
    dc.addEventListener('message', (ev) => {
      try {
        const msg = JSON.parse(ev.data);
        if (msg.type === 'state') {
          const name = typeof msg.name === 'string' ? msg.name.slice(0, 32) : '';
          remoteStates.set(peer, { name, audio: !!msg.audio, video: !!msg.video, speaking: !!msg.speaking });
          renderTile(peer);
          renderRoster();
        }
      } catch { /* not ours */ }
    });
    // The member that just connected learns our state at once.
    try { dc.send(stateMessage()); } catch { /* closed meanwhile */ }
  });
  c.on('connectionstatechange', (_state, peer) => {
    if (peer) renderTile(peer);
    renderRoster();
  });
  c.on('peer-joined', () => {
    rosterNote = '';
    renderRoster();
  });
  c.on('peer-left', ({ peer, reason }) => {
    const name = nameOf(peer);
    dropTile(peer);
    const why = reason === 'timeout' ? 'lost their connection' : 'left';
    if (c.peers.size > 0) {
      // The others stay in the call; only a line says who went.
      rosterNote = `${name} ${why}`;
      renderRoster();
      return;
    }
    leftText = `The other person ${why}. Waiting for someone to join — the link still works.`;
    notice(leftText, 'warn');
    renderRoster();
  });
  c.on('hangup', ({ from }) => {
    const tile = tiles.get(from);
    if (tile) tile.video.srcObject = null;
  });
  c.on('error', (err) => console.warn('switchboard:', err));
  onStatus(c.status);
}

/** @param {string} s */
function onStatus(s) {
  setStatus(s, /** @type {any} */ (STATUS_TEXT)[s] || s);
  showRemoteBadges();
  switch (s) {
    case 'waiting':
      if (leftText) notice(leftText, 'warn');
      else if (!ui.remote.srcObject) notice('Waiting for someone to join. Send them the room link above.', '');
      break;
    case 'connecting':
      notice('Connecting…', '');
      break;
    case 'connected':
      leftText = '';
      hideNotice();
      sendState();
      break;
    case 'reconnecting':
      break; // keep showing the last frames; the status line says what is going on
    case 'expired':
      clearTiles();
      notice('Nobody joined in time, so your call offer expired. Keep this page open: when someone opens the link, the call starts.', 'warn');
      break;
    case 'ended':
      // Hung up here, or the room could not be joined again after a long disconnection.
      call = null;
      sessionStorage.removeItem(JOINED_KEY);
      stopSpeechWatch();
      endedView('The call ended.');
      break;
    default:
      break;
  }
}

/** @param {string} text */
function endedView(text) {
  setControls(false);
  clearTiles();
  notice(text, '');
  ui.join.hidden = false;
  ui.join.textContent = 'Rejoin';
}

// ------------------------------------------------------------------------------------------------
// Controls

ui.start.addEventListener('click', () => {
  const room = newRoomName();
  history.pushState(null, '', roomLink(room));
  showRoom(room, { autoJoin: true });
});

ui.openForm.addEventListener('submit', (/** @type {Event} */ ev) => {
  ev.preventDefault();
  const room = ui.roomInput.value.trim();
  if (!ROOM_RE.test(room)) return;
  history.pushState(null, '', roomLink(room));
  showRoom(room, { autoJoin: true });
});

ui.join.addEventListener('click', () => {
  const room = roomFromUrl();
  if (room) join(room);
});

ui.again.addEventListener('click', () => {
  const room = newRoomName();
  history.pushState(null, '', roomLink(room));
  showRoom(room, { autoJoin: true });
});

ui.copy.addEventListener('click', async () => {
  try {
    if (navigator.share && matchMedia('(pointer: coarse)').matches) {
      await navigator.share({ title: 'Join my call', url: ui.link.value });
      return;
    }
    await navigator.clipboard.writeText(ui.link.value);
    ui.copy.textContent = 'Copied';
  } catch {
    ui.link.select();
    ui.copy.textContent = 'Select & copy';
  }
  setTimeout(() => { ui.copy.textContent = 'Copy'; }, 2000);
});

ui.unmuteRemote.addEventListener('click', () => {
  for (const tile of new Set([firstTile, ...tiles.values()])) {
    tile.video.muted = false;
    tile.video.play().catch(() => {});
  }
  ui.unmuteRemote.hidden = true;
  if (call && call.status === 'connected') hideNotice();
});

ui.mute.addEventListener('click', () => {
  const tracks = localStream ? localStream.getAudioTracks() : [];
  const muted = ui.mute.getAttribute('aria-pressed') !== 'true';
  for (const t of tracks) t.enabled = !muted;
  ui.mute.setAttribute('aria-pressed', String(muted));
  ui.mute.textContent = muted ? 'Unmute' : 'Mute';
  sendState();
});

ui.camera.addEventListener('click', () => {
  const tracks = localStream ? localStream.getVideoTracks() : [];
  const off = ui.camera.getAttribute('aria-pressed') !== 'true';
  for (const t of tracks) t.enabled = !off;
  ui.camera.setAttribute('aria-pressed', String(off));
  ui.camera.textContent = off ? 'Camera on' : 'Camera off';
  ui.local.classList.toggle('off', off);
  sendState();
});

ui.hangup.addEventListener('click', async () => {
  const c = call;
  call = null;
  sessionStorage.removeItem(JOINED_KEY);
  setControls(false);
  if (c) await c.hangup();
  stopMedia();
  for (const [b, text] of [[ui.mute, 'Mute'], [ui.camera, 'Camera off']]) {
    b.setAttribute('aria-pressed', 'false');
    b.textContent = text;
  }
  endedView('You left the call.');
  setStatus('ended', STATUS_TEXT.ended);
});

ui.name.addEventListener('change', () => {
  try { localStorage.setItem(NAME_KEY, ui.name.value.trim()); } catch { /* storage blocked */ }
  sendState();
});

window.addEventListener('hashchange', () => {
  if (call || joining) return;
  const room = roomFromUrl();
  if (room) showRoom(room, { autoJoin: false });
  else showLobby();
});

// ------------------------------------------------------------------------------------------------
// Start

const initial = roomFromUrl();
if (initial) {
  // A reload during a call rejoins at once (the library releases the old membership first).
  showRoom(initial, { autoJoin: sessionStorage.getItem(JOINED_KEY) === initial });
} else {
  showLobby();
}

// The demo call page: create or open a room link, call whoever opens it.
//
// URL: /#<room>. Options in the query string: ?servers=<url>,<url> (instances of one deployment
// to fail over between; default this page's server) and ?transport=polling.

import { connect } from './switchboard.js';

const ROOM_RE = /^[A-Za-z0-9._~-]{1,128}$/;
const JOINED_KEY = 'switchboard-demo.joined';

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const ui = {
  conn: $('conn'), lobby: $('lobby'), room: $('room'), start: $('start'), openForm: $('open-form'),
  roomInput: $('room-input'), link: $('link'), copy: $('copy'), remote: $('remote'), local: $('local'),
  badges: $('remote-badges'), notice: $('notice'), noticeText: $('notice-text'), join: $('join'),
  again: $('again'), unmuteRemote: $('unmute-remote'), status: $('status'), mute: $('mute'),
  camera: $('camera'), hangup: $('hangup'),
};

const params = new URLSearchParams(location.search);
const servers = (params.get('servers') || '').split(',').map((s) => s.trim()).filter(Boolean);
const transports = params.get('transport') === 'polling' ? ['polling', 'websocket'] : ['websocket'];

const sb = connect(servers.length ? servers : location.origin, { transports });
/** @type {import('../src/switchboard.d.ts').Call | null} */
let call = null;
/** @type {MediaStream | null} */
let localStream = null;
let joining = false;
/** What the other side told us over the DataChannel. */
let remoteState = { audio: true, video: true };
/** Why we are waiting again, when the other person left. */
let leftText = '';

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
  const video = { width: { ideal: 640 }, height: { ideal: 480 } };
  for (const constraints of [{ video, audio: true }, { video }, { audio: true }]) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch { /* try with less */ }
  }
  return null;
}

function stopMedia() {
  if (localStream) for (const t of localStream.getTracks()) t.stop();
  localStream = null;
  ui.local.srcObject = null;
  ui.local.classList.add('off');
}

function sendState() {
  if (!call || !call.dataChannel || call.dataChannel.readyState !== 'open' || !localStream) return;
  const audio = localStream.getAudioTracks().some((t) => t.enabled);
  const video = localStream.getVideoTracks().some((t) => t.enabled);
  call.dataChannel.send(JSON.stringify({ type: 'state', audio, video }));
}

function showRemoteBadges() {
  ui.badges.replaceChildren();
  if (!call || call.status !== 'connected') return;
  if (!remoteState.audio) ui.badges.append(badge('🔇 muted'));
  if (!remoteState.video) ui.badges.append(badge('camera off'));
}

/** @param {string} text */
function badge(text) {
  const s = document.createElement('span');
  s.textContent = text;
  return s;
}

function playRemote() {
  const p = ui.remote.play();
  if (p && typeof p.catch === 'function') {
    p.catch(() => {
      // Autoplay with sound refused: play muted and offer a tap to unmute.
      ui.remote.muted = true;
      ui.remote.play().catch(() => {});
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
      notice('This room is full: two people are already in this call. Start a new call instead.', 'bad');
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
  wire(call);
}

/** @param {import('../src/switchboard.d.ts').Call} c */
function wire(c) {
  c.on('status', (s) => onStatus(s));
  c.on('track', ({ track, streams }) => {
    const stream = streams[0] || new MediaStream([track]);
    if (ui.remote.srcObject !== stream) ui.remote.srcObject = stream;
    playRemote();
  });
  c.on('datachannel', (dc) => {
    dc.addEventListener('message', (ev) => {
      try {
        const msg = JSON.parse(ev.data);
        if (msg.type === 'state') {
          remoteState = { audio: !!msg.audio, video: !!msg.video };
          showRemoteBadges();
        }
      } catch { /* not ours */ }
    });
    sendState();
  });
  c.on('peer-left', ({ reason }) => {
    ui.remote.srcObject = null;
    remoteState = { audio: true, video: true };
    showRemoteBadges();
    const why = reason === 'timeout' ? 'lost their connection' : 'left';
    leftText = `The other person ${why}. Waiting for someone to join — the link still works.`;
    notice(leftText, 'warn');
  });
  c.on('hangup', () => { ui.remote.srcObject = null; });
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
      ui.remote.srcObject = null;
      notice('Nobody joined in time, so your call offer expired. Keep this page open: when someone opens the link, the call starts.', 'warn');
      break;
    case 'ended':
      // Hung up here, or the room could not be joined again after a long disconnection.
      call = null;
      sessionStorage.removeItem(JOINED_KEY);
      endedView('The call ended.');
      break;
    default:
      break;
  }
}

/** @param {string} text */
function endedView(text) {
  setControls(false);
  ui.remote.srcObject = null;
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
  ui.remote.muted = false;
  ui.remote.play().catch(() => {});
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

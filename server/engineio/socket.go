package engineio

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/emitter"
	parserpacket "github.com/zishang520/engine.io-go-parser/packet"
	"github.com/zishang520/engine.io/v2/engine"
	"github.com/zishang520/engine.io/v2/transports"
	"github.com/zishang520/engine.io/v2/types"
)

var errNotLibraryEngine = errors.New("engineio: not the library's engine")

// Session states.
const (
	stateOpen    = iota
	stateClosing // Close(false): the buffer drains, then the session ends
	stateClosed
)

// Socket is one Engine.IO session. It emits "data" (a string for text, []byte for binary, in
// arrival order, on the goroutine that read it: a slow listener slows reading from that client),
// "upgrade" when it moves to websocket, and "close" with a reason once.
type Socket struct {
	emitter.Emitter
	srv *Server
	id  string

	// What the layer above may ask of the handshake request; the rest of it is not kept.
	remote  string
	reqURL  *url.URL
	secure  bool
	origin  []string    // the Origin header's values
	headers http.Header // Options.KeepHeaders; nil when none is set

	mu        sync.Mutex
	state     int
	transport string   // "polling" or "websocket"
	out       []packet // written and not yet sent; nil when empty
	flushing  bool     // a goroutine is writing out to the websocket
	poll      *pollWait
	posting   bool    // a polling POST is being read
	ws        *wsConn // the websocket, once the session uses one
	upgrading *wsConn // a websocket probing for the upgrade
	upgraded  bool
	noop      bool // the next poll gets a noop (an upgrade is under way)
	// The noop of an upgrade has been sent: the client has stopped polling, so a poll now is
	// refused (400) without ending the session, which is moving to the websocket.
	noopSent  bool
	closeLast bool // the close packet has left in a poll: end the session once it is written
	// The handshake as the layer above asked for it, kept until the next heartbeat tick: it
	// asks several times in a row while a namespace connects, and keeps copies of its own.
	ctx *types.HttpContext

	// Heartbeat, checked by the server's heartbeat loop.
	nextPing        time.Time
	pongDeadline    time.Time // zero while no ping is outstanding
	upgradeDeadline time.Time
	closeDeadline   time.Time // a closing polling session ends then even if nobody polls
	// A polling client that sent a close packet with no poll parked may have one on the way:
	// that poll gets a noop (200) rather than 400, until lingerUntil.
	lingerUntil time.Time
}

// pollWait is a parked polling GET; whoever answers it sets body and closes ch.
type pollWait struct {
	ch   chan struct{}
	body []byte
	last bool // the body ends the session
	// The poll arrived after the probe was answered: if the upgrade completes while it
	// waits, it was sent after the upgrade packet and is refused (refused set, no body).
	afterProbe, refused bool
}

func newSocket(srv *Server, id string, r *http.Request) *Socket {
	// Copies: the request's values share one array, which would keep every header alive. A
	// header map is built only for the layer above, when it asks (Request).
	var h http.Header
	for _, k := range srv.opts.KeepHeaders {
		if v := r.Header.Values(k); len(v) > 0 {
			if h == nil {
				h = http.Header{}
			}
			h[http.CanonicalHeaderKey(k)] = slices.Clone(v)
		}
	}
	return &Socket{
		srv:       srv,
		id:        id,
		remote:    r.RemoteAddr,
		reqURL:    keptURL(r),
		secure:    r.TLS != nil,
		origin:    slices.Clone(r.Header.Values("Origin")),
		headers:   h,
		transport: "polling",
		nextPing:  time.Now().Add(srv.opts.PingInterval),
	}
}

// Id is the session id.
func (s *Socket) Id() string { return s.id }

// Protocol is the Engine.IO protocol revision: always 4.
func (s *Socket) Protocol() int { return 4 }

// RemoteAddress is the peer address of the handshake request.
func (s *Socket) RemoteAddress() string { return s.remote }

// ReadyState is "open", "closing" or "closed".
func (s *Socket) ReadyState() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return [...]string{"open", "closing", "closed"}[s.state]
}

// SetReadyState is part of engine.Socket; the session's state is its own, so it is ignored.
func (s *Socket) SetReadyState(string) {}

// Upgraded says whether the session moved from polling to websocket.
func (s *Socket) Upgraded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.upgraded
}

// Upgrading says whether a websocket is probing for an upgrade.
func (s *Socket) Upgrading() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.upgrading != nil
}

// Request is the handshake request as the layer above sees it: its URL, peer, TLS, and the kept
// headers. Built on demand and dropped at the next heartbeat tick (the Socket.IO layer copies
// what it needs into its handshake), so an idle session does not hold it; its context is
// already done, so it holds no goroutine.
func (s *Socket) Request() *types.HttpContext {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r := (&http.Request{
			Method: http.MethodGet, URL: s.reqURL, Header: s.header(),
			RequestURI: s.reqURL.RequestURI(), RemoteAddr: s.remote,
		}).WithContext(ctx)
		if s.secure {
			r.TLS = &tls.ConnectionState{}
		}
		s.ctx = types.NewHttpContext(noResponse{}, r)
	}
	return s.ctx
}

// header is the kept part of the handshake's headers.
func (s *Socket) header() http.Header {
	h := make(http.Header, len(s.headers)+1)
	for k, v := range s.headers {
		h[k] = v
	}
	if len(s.origin) > 0 {
		h["Origin"] = s.origin
	}
	return h
}

// noResponse stands in for the handshake's ResponseWriter, long answered.
type noResponse struct{}

func (noResponse) Header() http.Header       { return http.Header{} }
func (noResponse) Write([]byte) (int, error) { return 0, http.ErrHijacked }
func (noResponse) WriteHeader(int)           {}

// Transport describes the current transport. The Socket.IO layer asks it only whether it is
// writable (volatile packets); the rest of transports.Transport is not served.
func (s *Socket) Transport() transports.Transport { return transportView{s: s} }

type transportView struct {
	transports.Transport
	s *Socket
}

func (t transportView) Name() string {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	return t.s.transport
}
func (t transportView) Sid() string   { return t.s.id }
func (t transportView) Protocol() int { return 4 }
func (t transportView) Writable() bool {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	return t.s.state == stateOpen && (t.s.ws != nil || t.s.poll != nil)
}

// Construct and MaybeUpgrade are part of engine.Socket; sessions are made by the server.
func (s *Socket) Construct(string, engine.BaseServer, transports.Transport, *types.HttpContext, int) {
}
func (s *Socket) MaybeUpgrade(transports.Transport) {}

// Send writes one message packet: a *types.StringBuffer, *strings.Reader or string as text,
// anything else as binary. callback, if any, runs once the packet is queued or written.
func (s *Socket) Send(data io.Reader, _ *parserpacket.Options, callback engine.SendCallback) engine.Socket {
	return s.Write(data, nil, callback)
}

// Write is Send.
func (s *Socket) Write(data io.Reader, _ *parserpacket.Options, callback engine.SendCallback) engine.Socket {
	p, err := toPacket(data)
	if err == nil {
		s.send(p)
	}
	if callback != nil {
		callback(s.Transport())
	}
	return s
}

// WriteString writes a text message; WriteBinary a binary one.
func (s *Socket) WriteString(msg string) { s.send(packet{typ: typeMessage, data: []byte(msg)}) }
func (s *Socket) WriteBinary(b []byte)   { s.send(packet{typ: typeMessage, binary: true, data: b}) }

func toPacket(data io.Reader) (packet, error) {
	switch v := data.(type) {
	case nil:
		return packet{typ: typeMessage}, nil
	case *types.StringBuffer:
		return packet{typ: typeMessage, data: v.Bytes()}, nil
	case *types.BytesBuffer:
		return packet{typ: typeMessage, binary: true, data: v.Bytes()}, nil
	case *strings.Reader:
		b, err := io.ReadAll(v)
		return packet{typ: typeMessage, data: b}, err
	default:
		b, err := io.ReadAll(v)
		return packet{typ: typeMessage, binary: true, data: b}, err
	}
}

// send queues a message packet and flushes.
func (s *Socket) send(p packet) { s.sendPacket(p) }

// sendPacket queues p and flushes.
func (s *Socket) sendPacket(p packet) {
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return
	}
	s.out = append(s.out, p)
	if s.transport == "websocket" {
		s.startFlushLocked()
		s.mu.Unlock()
		return
	}
	s.answerPollLocked()
	s.mu.Unlock()
}

// answerPollLocked hands what is queued to a parked poll, if there is one and anything queued.
func (s *Socket) answerPollLocked() {
	w := s.poll
	if w == nil || len(s.out) == 0 {
		return
	}
	s.poll = nil
	w.body, w.last = s.takePayloadLocked()
	close(w.ch)
}

// takePayloadLocked empties the queue into one payload; last says it carries the close packet.
func (s *Socket) takePayloadLocked() (body []byte, last bool) {
	body = appendPayload(nil, s.out)
	s.out = nil
	last = s.state == stateClosing
	if last {
		s.closeLast = true
	}
	return body, last
}

// startFlushLocked starts a goroutine writing the queue to the websocket, unless one is
// writing already. Writers never wait for the network: a slow client holds up nobody but
// itself, and WriteTimeout ends it. Called with s.mu held.
func (s *Socket) startFlushLocked() {
	if s.flushing || s.ws == nil {
		return
	}
	s.flushing = true
	s.srv.writers.Add(1)
	go func() {
		defer s.srv.writers.Done()
		s.mu.Lock()
		s.flushLocked()
	}()
}

// flushWebsocket writes the queue to the websocket on the calling goroutine, unless another
// goroutine is writing (which then takes it).
func (s *Socket) flushWebsocket() {
	s.mu.Lock()
	if s.flushing || s.ws == nil {
		s.mu.Unlock()
		return
	}
	s.flushing = true
	s.flushLocked()
}

// flushLocked writes until the queue is empty, each write taking everything queued so far
// (one write system call); packets queued meanwhile go in the next. Called with s.mu held and
// s.flushing set by the caller; returns with s.mu released.
func (s *Socket) flushLocked() {
	for len(s.out) > 0 && s.ws != nil {
		batch, ws := s.out, s.ws
		s.out = nil
		s.mu.Unlock()
		err := ws.writePackets(batch)
		s.mu.Lock()
		if err != nil {
			// The connection is closed now. Its reader ends the session once it has delivered
			// what the client sent before (a client that closed may have sent a last word).
			s.flushing = false
			s.mu.Unlock()
			return
		}
	}
	s.flushing = false
	done := s.state == stateClosing
	s.mu.Unlock()
	if done {
		s.finish("forced close", typeClose)
	}
}

// Close ends the session: discard=false sends what is queued first (on polling, with a close
// packet in the next poll), discard=true at once.
func (s *Socket) Close(discard bool) {
	if discard {
		s.finish("forced close", typeClose)
		return
	}
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return
	}
	s.state = stateClosing
	if s.transport == "websocket" {
		s.mu.Unlock()
		s.flushWebsocket() // finishes once the queue is out
		return
	}
	s.out = append(s.out, packet{typ: typeClose})
	s.closeDeadline = time.Now().Add(s.srv.opts.PingTimeout)
	s.answerPollLocked()
	s.mu.Unlock()
}

// finish ends the session at once: a parked poll gets pollReply, websockets are closed, the
// server forgets the session, and "close" is emitted with reason.
func (s *Socket) finish(reason string, pollReply byte) {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		return
	}
	s.state = stateClosed
	ws, up, w := s.ws, s.upgrading, s.poll
	s.ws, s.upgrading, s.poll, s.out = nil, nil, nil, nil
	linger := reason == "transport close" && pollReply == typeNoop && w == nil && s.transport == "polling"
	if linger {
		s.lingerUntil = time.Now().Add(s.srv.opts.PingTimeout)
	}
	s.mu.Unlock()
	if w != nil {
		w.body, w.last = []byte{pollReply}, false
		close(w.ch)
	}
	if ws != nil {
		ws.closeWith(closeNormal)
	}
	if up != nil {
		up.closeWith(closeNormal)
	}
	if !linger {
		s.srv.remove(s.id)
	}
	s.Emit("close", reason)
}

// onPacket handles one packet from the client, on the goroutine that read it.
func (s *Socket) onPacket(p packet) {
	switch p.typ {
	case typeMessage:
		if p.binary {
			s.Emit("data", p.data)
		} else {
			s.Emit("data", string(p.data))
		}
	case typePong:
		s.mu.Lock()
		if !s.pongDeadline.IsZero() {
			s.pongDeadline = time.Time{}
			s.nextPing = time.Now().Add(s.srv.opts.PingInterval)
		}
		s.mu.Unlock()
	case typeClose:
		s.finish("transport close", typeNoop)
	case typePing:
		s.finish("transport error", typeClose) // in v4 only the server pings
	}
}

var _ engine.Socket = (*Socket)(nil)

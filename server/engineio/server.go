// Package engineio is an Engine.IO v4 server (HTTP long-polling, websocket, the upgrade
// between them, heartbeats) that the Socket.IO layer of github.com/zishang520/socket.io/v2
// binds to through (*socket.Server).Bind.
package engineio

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/zishang520/engine.io/v2/config"
	"github.com/zishang520/engine.io/v2/engine"
	"github.com/zishang520/engine.io/v2/events"
	"github.com/zishang520/engine.io/v2/transports"
	"github.com/zishang520/engine.io/v2/types"
)

// Options configure a Server. Zero fields take the defaults named beside them.
type Options struct {
	PingInterval time.Duration // between server pings; 25s
	PingTimeout  time.Duration // how long a pong may take; 20s
	// MaxPayload bounds a polling POST body and a websocket message, in bytes; 1e6. Larger
	// input closes the session.
	MaxPayload int
	// UpgradeTimeout bounds a polling→websocket upgrade from the websocket's opening to its
	// upgrade packet; 10s.
	UpgradeTimeout time.Duration
	// WriteTimeout bounds one websocket write; a client that does not read for this long is
	// disconnected; PingTimeout.
	WriteTimeout time.Duration
	CORS         CORS
	// NoPoller reads every websocket on a goroutine of its own instead of through the poller
	// (poller.go); connections the poller cannot take (TLS ones) always are.
	NoPoller bool
	// KeepHeaders names request headers of the handshake that sessions keep for the layer
	// above (Origin is always kept); the rest are dropped once the session is open.
	KeepHeaders []string
}

// CORS is the cross-origin policy of polling requests.
type CORS struct {
	AnyOrigin   bool     // Access-Control-Allow-Origin: *
	Origins     []string // else: origins reflected when listed
	Credentials bool     // Access-Control-Allow-Credentials: true
}

func (o *Options) fill() {
	if o.PingInterval <= 0 {
		o.PingInterval = 25 * time.Second
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = 20 * time.Second
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = 1e6
	}
	if o.UpgradeTimeout <= 0 {
		o.UpgradeTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = o.PingTimeout
	}
}

// Engine.IO error codes, as the reference server sends them.
const (
	codeUnknownTransport = 0
	codeUnknownSID       = 1
	codeBadHandshake     = 2
	codeBadRequest       = 3
	codeForbidden        = 4
	codeUnsupported      = 5
)

var errorMessages = map[int]string{
	codeUnknownTransport: "Transport unknown",
	codeUnknownSID:       "Session ID unknown",
	codeBadHandshake:     "Bad handshake method",
	codeBadRequest:       "Bad request",
	codeForbidden:        "Forbidden",
	codeUnsupported:      "Unsupported protocol version",
}

// Server is an Engine.IO server: an http.Handler for its path, and the engine.BaseServer the
// Socket.IO layer binds to ("connection" events carry an engine.Socket).
type Server struct {
	events.EventEmitter
	opts Options

	mu       sync.RWMutex
	sessions map[string]*Socket
	closed   bool

	readers sync.WaitGroup // websocket read loops and deliverers
	poll    *poller        // started with the first websocket; nil with NoPoller
	pollErr bool           // it could not start: goroutines read
	writers sync.WaitGroup // websocket writes started by startFlushLocked
	stop    chan struct{}  // closed by Close: ends the heartbeat loop
	beat    sync.WaitGroup
}

// New returns a server and starts its heartbeat loop; Close stops it.
func New(opts Options) *Server {
	opts.fill()
	s := &Server{
		EventEmitter: events.New(),
		opts:         opts,
		sessions:     make(map[string]*Socket),
		stop:         make(chan struct{}),
	}
	s.beat.Add(1)
	go s.heartbeat()
	return s
}

// ServeHTTP handles one Engine.IO request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	upgrade := isWebsocketUpgrade(r)
	if !upgrade {
		s.cors(w, r)
		if r.Method == http.MethodOptions {
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	transport := q.Get("transport")
	if transport != "polling" && transport != "websocket" {
		writeError(w, codeUnknownTransport)
		return
	}
	if sid := q.Get("sid"); sid != "" {
		sock := s.session(sid)
		if sock == nil {
			writeError(w, codeUnknownSID)
			return
		}
		if transport == "websocket" {
			if !upgrade {
				writeError(w, codeBadRequest)
				return
			}
			sock.serveUpgrade(w, r)
			return
		}
		sock.servePolling(w, r)
		return
	}
	if r.Method != http.MethodGet {
		writeError(w, codeBadHandshake)
		return
	}
	if q.Get("EIO") != "4" {
		writeError(w, codeUnsupported)
		return
	}
	if transport == "websocket" && !upgrade {
		writeError(w, codeBadRequest)
		return
	}
	s.handshake(w, r, transport == "websocket")
}

// handshake opens a session.
func (s *Server) handshake(w http.ResponseWriter, r *http.Request, websocket bool) {
	id, err := newSessionID()
	if err != nil {
		http.Error(w, "no session id", http.StatusInternalServerError)
		return
	}
	sock := newSocket(s, id, r)
	var ws *wsConn
	if websocket {
		if ws, err = acceptWebsocket(w, r, s.opts.WriteTimeout); err != nil {
			return // acceptWebsocket answered
		}
		sock.ws = ws
		sock.transport = "websocket"
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		if ws != nil {
			ws.closeWith(closeNormal)
		} else {
			writeError(w, codeForbidden)
		}
		return
	}
	s.sessions[id] = sock
	if websocket {
		s.readers.Add(1) // under s.mu: Close, which waits for the read loops, cannot be waiting yet
	}
	s.mu.Unlock()

	upgrades := "[]"
	if !websocket {
		upgrades = `["websocket"]`
	}
	open := []byte(`{"sid":"` + id + `","upgrades":` + upgrades +
		`,"pingInterval":` + strconv.FormatInt(s.opts.PingInterval.Milliseconds(), 10) +
		`,"pingTimeout":` + strconv.FormatInt(s.opts.PingTimeout.Milliseconds(), 10) +
		`,"maxPayload":` + strconv.Itoa(s.opts.MaxPayload) + `}`)
	openPkt := packet{typ: typeOpen, data: open}
	if websocket {
		if err := ws.writePackets([]packet{openPkt}); err != nil {
			s.readers.Done()
			sock.finish("transport error", typeClose)
			return
		}
		s.Emit("connection", sock)
		sock.startReading(ws)
		return
	}
	// The layer above takes the session before the client can know its id, so nothing the
	// client sends is emitted before anyone listens; what it writes at once goes to the next
	// poll, the open packet alone being this response.
	s.Emit("connection", sock)
	writePayload(w, appendPayload(nil, []packet{openPkt}))
}

// wsPoller returns the server's poller, starting it on first use; nil when websockets are read
// by goroutines of their own.
func (s *Server) wsPoller() *poller {
	if s.opts.NoPoller {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.poll == nil && !s.pollErr && !s.closed {
		p, err := newPoller(s)
		if err != nil {
			s.pollErr = true
			return nil
		}
		s.poll = p
	}
	return s.poll
}

func (s *Server) session(id string) *Socket {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sessions[id]
}

func (s *Server) remove(id string) {
	s.mu.Lock()
	delete(s.sessions, id)
	s.mu.Unlock()
}

// cors sets the cross-origin headers of a polling request or preflight.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) {
	c := s.opts.CORS
	h := w.Header()
	if c.AnyOrigin {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		origin := r.Header.Get("Origin")
		allowed := "false"
		for _, o := range c.Origins {
			if o == origin && origin != "" {
				allowed = origin
				break
			}
		}
		h.Set("Access-Control-Allow-Origin", allowed)
		h.Add("Vary", "Origin")
	}
	if c.Credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE")
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
			h.Add("Vary", "Access-Control-Request-Headers")
		}
	}
}

func writeError(w http.ResponseWriter, code int) {
	status := http.StatusBadRequest
	if code == codeForbidden {
		status = http.StatusForbidden
	}
	body, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, errorMessages[code]})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writePayload(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

func newSessionID() (string, error) {
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Close closes every session and stops the heartbeat loop and the websocket read loops.
// Requests after Close are refused.
func (s *Server) Close() engine.BaseServer {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s
	}
	s.closed = true
	all := make([]*Socket, 0, len(s.sessions))
	for _, sock := range s.sessions {
		all = append(all, sock)
	}
	s.mu.Unlock()
	for _, sock := range all {
		sock.Close(true)
	}
	close(s.stop)
	s.beat.Wait()
	s.mu.Lock()
	p := s.poll
	s.mu.Unlock()
	if p != nil {
		p.stop()
	}
	s.readers.Wait()
	s.writers.Wait()
	return s
}

// ClientsCount is the number of open sessions.
func (s *Server) ClientsCount() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return uint64(len(s.sessions))
}

// The rest of engine.BaseServer: the Socket.IO layer uses only On("connection") and Close;
// these answer without doing anything, since this server is configured by Options alone.

func (s *Server) Prototype(engine.BaseServer)         {}
func (s *Server) Proto() engine.BaseServer            { return s }
func (s *Server) Opts() config.ServerOptionsInterface { return nil }
func (s *Server) Clients() *types.Map[string, engine.Socket] {
	m := &types.Map[string, engine.Socket]{}
	s.mu.RLock()
	for id, sock := range s.sessions {
		m.Store(id, sock)
	}
	s.mu.RUnlock()
	return m
}
func (s *Server) Middlewares() []engine.Middleware                 { return nil }
func (s *Server) Construct(any)                                    {}
func (s *Server) Init()                                            {}
func (s *Server) ComputePath(config.AttachOptionsInterface) string { return "" }
func (s *Server) Upgrades(string) *types.Set[string]               { return types.NewSet("websocket") }
func (s *Server) Verify(*types.HttpContext, bool) (*types.CodeMessage, map[string]any) {
	return nil, nil
}
func (s *Server) Use(engine.Middleware)                                   {}
func (s *Server) ApplyMiddlewares(_ *types.HttpContext, next func(error)) { next(nil) }
func (s *Server) Cleanup()                                                {}
func (s *Server) GenerateId(*types.HttpContext) (string, error)           { return newSessionID() }
func (s *Server) Handshake(string, *types.HttpContext) (*types.CodeMessage, transports.Transport) {
	return &types.CodeMessage{Code: codeBadRequest, Message: "handshakes go through ServeHTTP"}, nil
}
func (s *Server) CreateTransport(string, *types.HttpContext) (transports.Transport, error) {
	return nil, errNotLibraryEngine
}

var _ engine.BaseServer = (*Server)(nil)

// keptURL is the part of a handshake request a session keeps.
func keptURL(r *http.Request) *url.URL {
	u := *r.URL
	u.User = nil
	return &u
}

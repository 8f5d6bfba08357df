package server

// This file is the seam to the Socket.IO library (github.com/zishang520/socket.io/v2): with
// wsbatch.go (which batches its websocket writes), the only one that imports it. It turns
// library sockets into signaling.Conn and library events into Hub.Handle calls, so moving to
// another library version is a change here and in wsbatch.go alone.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/zishang520/engine.io/v2/types"
	"github.com/zishang520/socket.io/v2/socket"

	"github.com/switchboard-rtc/switchboard/server/engineio"
	"github.com/switchboard-rtc/switchboard/server/signaling"
	"github.com/switchboard-rtc/switchboard/server/sioparser"
)

// sioConn adapts a library socket to signaling.Conn.
type sioConn struct {
	s  *socket.Socket
	id string // instance id + socket id: unique across instances
}

func (c *sioConn) ID() string { return c.id }

// Emit sends to this socket alone. Per-socket emits avoid the library's pre-encoded broadcast
// frames, which it drops under load; order and loss are still handled by the protocol.
func (c *sioConn) Emit(event string, payload json.RawMessage) {
	_ = c.s.Emit(event, payload)
}

func newSocketIO(ctx context.Context, cfg Config, hub *signaling.Hub, work *inflight, log *slog.Logger) *socket.Server {
	opts := socket.DefaultServerOptions()
	opts.SetPingInterval(cfg.PingInterval)
	opts.SetPingTimeout(cfg.PingTimeout)
	opts.SetMaxHttpBufferSize(int64(cfg.MaxMessageBytes))
	opts.SetServeClient(false)
	opts.SetTransports(types.NewSet("polling", "websocket"))
	opts.SetCors(corsOptions(cfg.CORSOrigins))
	// Connection-state recovery stays off: it panics at start-up on Go 1.26 in this library
	// version, and it cannot work across instances; the protocol resumes memberships itself.

	opts.SetConnectTimeout(cfg.ConnectTimeout)
	// Arguments stay undecoded JSON for the hub; a connection's events run in arrival order,
	// at most EventQueue of them decoded and not yet handled.
	opts.SetParser(&sioparser.Parser{MaxPending: cfg.EventQueue})

	io := socket.NewServer(nil, opts)
	// Handlers are attached in a middleware, which runs before the library sends the CONNECT
	// reply: attached in the "connection" event instead, the client's first event may arrive
	// before them and be lost.
	io.Use(func(s *socket.Socket, next func(*socket.ExtendedError)) {
		c := &sioConn{s: s, id: cfg.InstanceID + ":" + string(s.Id())}
		hub.Connect(c)
		s.OnAny(func(args ...any) {
			// The library runs each incoming packet on a goroutine of its own; the parser's
			// queue makes them take turns in arrival order (see handleEvent).
			handleEvent(ctx, hub, log, work, c, args)
		})
		disconnect := func(...any) {
			if work.begin() {
				defer work.end()
			}
			defer recoverTo(log, c.id)
			hub.Disconnect(c) // idempotent: both listeners below may call it
		}
		_ = s.On("disconnect", disconnect)
		// The library records the socket on its connection only after the CONNECT reply; a
		// connection closing in between never emits "disconnect", so the transport's own
		// close event ends the client too.
		conn := s.Conn()
		_ = conn.Once("close", disconnect)
		if conn.ReadyState() == "closed" {
			disconnect()
		}
		next(nil)
	})
	return io
}

// inflight counts event handlers still running, so Close can wait for them.
type inflight struct {
	mu      sync.Mutex
	n       int
	closing bool
	idle    chan struct{} // closed when closing and n reaches 0
}

func newInflight() *inflight { return &inflight{idle: make(chan struct{})} }

// begin registers a handler; false once closing started.
func (w *inflight) begin() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closing {
		return false
	}
	w.n++
	return true
}

func (w *inflight) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n--
	if w.closing && w.n == 0 {
		close(w.idle)
	}
}

// drain refuses new handlers and waits for running ones, at most until timeout.
func (w *inflight) drain(timeout time.Duration) bool {
	w.mu.Lock()
	if !w.closing {
		w.closing = true
		if w.n == 0 {
			close(w.idle)
		}
	}
	w.mu.Unlock()
	select {
	case <-w.idle:
		return true
	case <-time.After(timeout):
		return false
	}
}

// handleEvent runs one incoming event: args are what sioparser decoded (the name and a
// *sioparser.Event), then the acknowledgement callback if the client asked for one. The event
// runs in its connection's turn (sioparser.Event.Run): after the events that arrived before it.
func handleEvent(ctx context.Context, hub *signaling.Hub, log *slog.Logger, work *inflight, c *sioConn, args []any) {
	var ack socket.Ack
	if n := len(args); n > 0 {
		if a, ok := args[n-1].(socket.Ack); ok {
			ack, args = a, args[:n-1]
		}
	}
	if len(args) != 2 {
		return // not from sioparser's decoder
	}
	event, _ := args[0].(string)
	ev, ok := args[1].(*sioparser.Event)
	if !ok {
		return
	}
	ev.Run(func() { runEvent(ctx, hub, log, work, c, event, ev, ack) })
}

// runEvent handles one event in its turn. A panic here would kill the process (the library has
// no recover), so it is caught and logged.
func runEvent(ctx context.Context, hub *signaling.Hub, log *slog.Logger, work *inflight, c *sioConn, event string, ev *sioparser.Event, ack socket.Ack) {
	if !work.begin() {
		return
	}
	defer work.end()
	defer recoverTo(log, c.id)
	var (
		reply signaling.Reply
		after func()
	)
	if ev.Binary {
		reply = hub.Reject(signaling.ErrBinary)
	} else {
		var payload json.RawMessage
		if len(ev.Args) > 0 {
			payload = ev.Args[0]
		}
		// A sequenced event ends its turn once its place among its membership's messages is
		// fixed (signaling.WithRelease): one waiting for a message the client sent after it
		// would otherwise stall the connection, and consecutive messages batch their store
		// writes. It stays counted in the connection's queue until it returns.
		reply, after = hub.Handle(signaling.WithRelease(ctx, ev.Done), c, event, payload)
	}
	if ack != nil {
		// Written out here: the encoder sends pre-encoded JSON as it is (sioparser).
		ack([]any{json.RawMessage(reply.AppendJSON(make([]byte, 0, 64)))}, nil)
	}
	if after != nil {
		after()
	}
}

// recoverTo logs a panic instead of letting it end the process.
func recoverTo(log *slog.Logger, conn string) {
	if r := recover(); r != nil {
		log.Error("handler panic", "conn", conn, "panic", fmt.Sprint(r))
	}
}

// engineCORS is corsOptions for package engineio: the same policy.
func engineCORS(origins []string) engineio.CORS {
	for _, o := range origins {
		if o == "*" {
			return engineio.CORS{AnyOrigin: true}
		}
	}
	return engineio.CORS{Origins: origins, Credentials: true}
}

func corsOptions(origins []string) *types.Cors {
	for _, o := range origins {
		if o == "*" {
			// Any origin, without credentials: a browser refuses "*" with credentials.
			return &types.Cors{Origin: "*"}
		}
	}
	list := make([]any, len(origins))
	for i, o := range origins {
		list[i] = o
	}
	return &types.Cors{Origin: list, Credentials: true}
}

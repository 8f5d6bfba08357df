// Package server is a Switchboard instance: the Socket.IO endpoint running the signaling
// protocol (package signaling) on a store, and the HTTP endpoints beside it.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/zishang520/socket.io/v2/socket"

	"github.com/switchboard-rtc/switchboard/client"
	"github.com/switchboard-rtc/switchboard/server/engineio"
	"github.com/switchboard-rtc/switchboard/server/signaling"
	"github.com/switchboard-rtc/switchboard/store"
	"github.com/switchboard-rtc/switchboard/webhook"
)

// Server is one instance. Create it with New, serve Handler, run Run, end with Close.
type Server struct {
	cfg  Config
	st   store.Store
	hub  *signaling.Hub
	io   *socket.Server
	work *inflight       // event handlers in progress
	hook *webhook.Sender // nil without webhooks
	mux  *http.ServeMux
	log  *slog.Logger

	ctx       context.Context // ends when Close is called; bounds event handling
	cancel    context.CancelFunc
	closeOnce sync.Once
}

// New returns an instance on st.
func New(cfg Config, st store.Store, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("instance", cfg.InstanceID)
	if cfg.AuthSecret == "" {
		log.Warn("no SWITCHBOARD_AUTH_SECRET: running open, any client may join any room (development only)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, st: st, log: log, ctx: ctx, cancel: cancel}
	met := newMetrics()
	hc := cfg.hubConfig()
	hc.Metrics = met
	s.hub = signaling.NewHub(hc, st, log)
	met.watch(s.hub)
	var err error
	if s.hook, err = cfg.webhookSender(st, met, log); err != nil {
		cancel()
		return nil, err
	}
	s.work = newInflight()
	s.io = newSocketIO(ctx, cfg, s.hub, s.work, log)
	s.mux = http.NewServeMux()
	trusted, _ := parsePrefixes(cfg.TrustedProxies) // checked by Validate
	limiter := newConnLimiter(cfg.ConnRate, cfg.ConnBurst, trusted)
	limiter.refused = func() { met.Rejected(signaling.CodeRateLimited) }
	s.mux.Handle("/socket.io/", limiter.middleware(s.engine(cfg)))
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", met.handler())
	// The browser client and the demo page; pages on the origins allowed to use the protocol
	// may load the client too.
	client.Mount(s.mux, client.Options{CORSOrigins: cfg.CORSOrigins})
	return s, nil
}

// engine returns the Engine.IO handler cfg names, with the Socket.IO server bound to it.
func (s *Server) engine(cfg Config) http.Handler {
	if cfg.Engine == EngineSwitchboard {
		eng := engineio.New(engineio.Options{
			PingInterval: cfg.PingInterval,
			PingTimeout:  cfg.PingTimeout,
			MaxPayload:   cfg.MaxMessageBytes,
			CORS:         engineCORS(cfg.CORSOrigins),
			NoPoller:     !cfg.WSPoller,
		})
		s.io.Bind(eng)
		return eng
	}
	return releaseAfterHijack(s.io.ServeHandler(nil))
}

// Handler serves /socket.io/, /healthz, /readyz, /metrics, and the browser client and demo page
// (package client).
func (s *Server) Handler() http.Handler { return s.mux }

// Mux lets the caller add routes beside the server's.
func (s *Server) Mux() *http.ServeMux { return s.mux }

// Run does the background work (deliveries, resends, expiry, leases, webhooks) until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	if s.hook == nil {
		return s.hub.Run(ctx)
	}
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		_ = s.hook.Run(ctx)
	}()
	err := s.hub.Run(ctx)
	<-sent
	return err
}

// Close disconnects every client (they reconnect and resume elsewhere; their memberships stay
// in the store), waits for the events being handled, and stops. It does not close the store.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		done := make(chan struct{})
		s.io.Close(func(error) { close(done) })
		select {
		case <-done:
		case <-time.After(closeTimeout):
			s.log.Warn("socket.io close timed out")
		}
		if !s.work.drain(closeTimeout) {
			s.log.Warn("event handlers still running at close")
		}
		s.cancel()
	})
}

// closeTimeout bounds each step of Close.
const closeTimeout = 5 * time.Second

// Clients returns the number of connected clients.
func (s *Server) Clients() int { return s.hub.Clients() }

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz reports whether the store answers: a load balancer takes an instance whose Redis is
// unreachable out of rotation.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.st.Ping(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "store unreachable: %v\n", err)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

func signalingID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

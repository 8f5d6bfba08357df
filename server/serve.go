package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/switchboard-rtc/switchboard/store"
)

// ShutdownTimeout bounds the graceful part of a shutdown.
const ShutdownTimeout = 10 * time.Second

// OpenStore opens the store cfg names: Redis at cfg.RedisURL, or the embedded in-memory store
// when it is empty. An unreachable Redis is not an error: the instance starts, /readyz reports
// it, and clients get "unavailable" until Redis answers.
func OpenStore(ctx context.Context, cfg Config, log *slog.Logger) (store.Store, error) {
	if cfg.RedisURL == "" {
		log.Warn("no REDIS_URL: using the embedded in-memory store (one instance only, state lost on exit)")
		return store.NewMemory(cfg.StoreOptions()), nil
	}
	st, err := store.OpenRedis(cfg.RedisURL, cfg.StoreOptions())
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	st.SetLogger(log)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := st.Ping(pctx); err != nil {
		log.Warn("redis not reachable yet", "err", err)
	}
	return st, nil
}

// Serve serves s on ln, with its background work running, until ctx is done or serving fails.
// Then clients are told to go (they resume on another instance; memberships stay in the
// store), requests in flight get up to ShutdownTimeout, and the background work stops. It
// returns the HTTP server's error, or nil after a shutdown ctx asked for.
func Serve(ctx context.Context, ln net.Listener, s *Server) error {
	httpSrv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	runCtx, cancelRun := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = s.Run(runCtx)
	}()
	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(ln) }()

	var err error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
	case err = <-served:
		s.log.Error("http server stopped", "err", err)
	}
	s.Close()
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if serr := httpSrv.Shutdown(sctx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		s.log.Warn("http shutdown", "err", serr)
	}
	cancelRun()
	<-ran
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Command sbserver is Switchboard as main.go builds it, plus Go's profiling endpoints under
// /debug/pprof/ on the same listener, so benchmarks can read the heap and take CPU and
// allocation profiles under load. Settings are those of switchboard (flags and environment).
// It is for benchmarks on loopback only: do not expose /debug/pprof/ in production.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/switchboard-rtc/switchboard/server"
	"github.com/switchboard-rtc/switchboard/store"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sbserver:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := server.LoadConfig(os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var st store.Store
	if cfg.RedisURL == "" {
		st = store.NewMemory(cfg.StoreOptions())
	} else {
		r, err := store.OpenRedis(cfg.RedisURL, cfg.StoreOptions())
		if err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		r.SetLogger(log)
		st = r
	}
	defer st.Close()

	srv, err := server.New(cfg, st, log)
	if err != nil {
		return err
	}
	mux := srv.Mux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	httpSrv := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	runCtx, cancelRun := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); _ = srv.Run(runCtx) }()
	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "pprof", "/debug/pprof/")

	select {
	case <-ctx.Done():
	case err = <-served:
	}
	srv.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = httpSrv.Shutdown(sctx)
	cancelRun()
	<-ran
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Command sbserver is Switchboard as main.go builds it, plus Go's profiling endpoints under
// /debug/pprof/ on the same listener, so benchmarks can read the heap and take CPU and
// allocation profiles under load. Settings are those of switchboard (flags and environment).
// It is for benchmarks on loopback only: do not expose /debug/pprof/ in production.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchboard-rtc/switchboard/server"
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

	st, err := server.OpenStore(ctx, cfg, log)
	if err != nil {
		return err
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
	log.Info("listening", "addr", ln.Addr().String(), "pprof", "/debug/pprof/")
	return server.Serve(ctx, ln, srv)
}

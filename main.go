// Command switchboard runs one Switchboard instance: a WebRTC signaling server speaking
// Socket.IO. With REDIS_URL set, instances share state through Redis; without it the embedded
// in-memory store serves a single instance. Settings: README.md, or switchboard -h.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/switchboard-rtc/switchboard/auth"
	"github.com/switchboard-rtc/switchboard/server"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "-healthcheck" {
		os.Exit(healthcheck())
	}
	if len(os.Args) > 1 && os.Args[1] == "token" {
		os.Exit(mintToken(os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "webhook" {
		os.Exit(webhookCmd(os.Args[2:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "switchboard:", err)
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
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	log.Info("listening", "addr", ln.Addr().String(), "store", storeName(cfg))
	return server.Serve(ctx, ln, srv)
}

// healthcheck is the container HEALTHCHECK (the image has no shell and no HTTP client): it asks
// the instance listening on SWITCHBOARD_ADDR's port for /healthz and returns the exit status,
// 0 when it answers 200.
func healthcheck() int {
	addr := os.Getenv("SWITCHBOARD_ADDR")
	if addr == "" {
		addr = server.DefaultConfig().Addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "healthcheck: /healthz answered", resp.Status)
		return 1
	}
	return 0
}

func storeName(cfg server.Config) string {
	if cfg.RedisURL == "" {
		return "memory"
	}
	return "redis"
}

// mintToken is `switchboard token`: it prints a room token signed with SWITCHBOARD_AUTH_SECRET,
// for app backends that do not use the Go package auth.
func mintToken(args []string, getenv func(string) string, out, errOut io.Writer) int {
	fs := flag.NewFlagSet("switchboard token", flag.ContinueOnError)
	fs.SetOutput(errOut)
	room := fs.String("room", "", "room the token admits to (required)")
	subject := fs.String("subject", "", "who the token is for, e.g. a user id (required)")
	role := fs.String("role", "", "caller or answerer; empty: either")
	ttl := fs.Duration("ttl", 10*time.Minute, "how long the token is valid")
	meta := fs.String("meta", "", "a JSON object of at most 1 KB passed on in call events (webhooks); empty: none")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	secret := getenv("SWITCHBOARD_AUTH_SECRET")
	if secret == "" {
		fmt.Fprintln(errOut, "switchboard token: set SWITCHBOARD_AUTH_SECRET")
		return 2
	}
	var m json.RawMessage
	if *meta != "" {
		m = json.RawMessage(*meta)
	}
	tok, err := auth.MintMeta([]byte(secret), *room, *subject, *role, m, *ttl, time.Now())
	if err != nil {
		fmt.Fprintln(errOut, "switchboard token:", err)
		return 2
	}
	fmt.Fprintln(out, tok)
	return 0
}

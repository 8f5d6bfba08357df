package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-rtc/switchboard/internal/sioclient"
	"github.com/switchboard-rtc/switchboard/server"
	"github.com/switchboard-rtc/switchboard/store"
	"github.com/switchboard-rtc/switchboard/webhook"
)

func TestWebhookSettings(t *testing.T) {
	secret := webhook.NewSecret()
	load := func(env map[string]string) (server.Config, error) {
		return server.LoadConfig(nil, func(k string) string { return env[k] }, io.Discard)
	}
	cfg, err := load(nil)
	if err != nil || cfg.StoreOptions().OutboxMax != 0 {
		t.Fatalf("no URL: outbox %d, %v; want none", cfg.StoreOptions().OutboxMax, err)
	}
	cfg, err = load(map[string]string{"SWITCHBOARD_WEBHOOK_URLS": "http://127.0.0.1:9/a, https://h.example/b",
		"SWITCHBOARD_WEBHOOK_SECRET": secret, "SWITCHBOARD_WEBHOOK_EVENTS": "offer.held,offer.answered",
		"SWITCHBOARD_WEBHOOK_OUTBOX_MAX": "500"})
	if err != nil || cfg.StoreOptions().OutboxMax != 500 || len(cfg.Webhook.URLs) != 2 || len(cfg.Webhook.Events) != 2 {
		t.Fatalf("config %+v, %v", cfg.Webhook, err)
	}
	for name, env := range map[string]map[string]string{
		"no secret":    {"SWITCHBOARD_WEBHOOK_URLS": "http://127.0.0.1:9/a"},
		"bad secret":   {"SWITCHBOARD_WEBHOOK_URLS": "http://127.0.0.1:9/a", "SWITCHBOARD_WEBHOOK_SECRET": "hunter2"},
		"bad url":      {"SWITCHBOARD_WEBHOOK_URLS": "127.0.0.1:9", "SWITCHBOARD_WEBHOOK_SECRET": secret},
		"bad event":    {"SWITCHBOARD_WEBHOOK_URLS": "http://127.0.0.1:9/a", "SWITCHBOARD_WEBHOOK_SECRET": secret, "SWITCHBOARD_WEBHOOK_EVENTS": "offer.sent"},
		"zero horizon": {"SWITCHBOARD_WEBHOOK_HORIZON": "0s"},
	} {
		if _, err := load(env); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// Webhooks on a Redis Cluster are refused at start-up: the room scripts cannot reach the outbox.
func TestWebhooksRefusedOnCluster(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.Webhook.URLs, cfg.Webhook.Secret = []string{"http://127.0.0.1:9/hook"}, webhook.NewSecret()
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:9"}})
	st := store.NewRedis(client, cfg.StoreOptions())
	defer st.Close()
	if _, err := server.New(cfg, st, slog.New(slog.DiscardHandler)); !errors.Is(err, store.ErrOutboxCluster) {
		t.Fatalf("New on a Cluster with webhooks: %v, want ErrOutboxCluster", err)
	}
}

// An instance on the embedded store sends its call events and counts them.
func TestWebhookMetrics(t *testing.T) {
	secret := webhook.NewSecret()
	var got atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(secret, r.Header, body, time.Now()); err != nil {
			t.Errorf("receiver: %v", err)
		}
		if strings.Contains(string(body), `"type":"peer.joined"`) {
			got.Add(1)
		}
	}))
	defer recv.Close()
	tweak := func(c *server.Config) {
		c.Webhook.URLs, c.Webhook.Secret, c.Webhook.ClaimAfter = []string{recv.URL}, secret, 300*time.Millisecond
	}
	cfg := server.DefaultConfig()
	tweak(&cfg)
	inst := startInstances(t, store.NewMemory(cfg.StoreOptions()), 1, tweak)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := sioclient.Dial(ctx, inst.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := sioclient.NewPeer(c).Join(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for got.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a statistics round
	m := scrape(t, inst.url)
	for series, want := range map[string]float64{
		`switchboard_webhook_events_total{type="peer.joined"}`:                  1,
		`switchboard_webhook_sent_total{result="delivered",type="peer.joined"}`: 1,
		`switchboard_webhook_attempts_total{result="2xx"}`:                      1,
		"switchboard_webhook_delivery_seconds_count":                            1,
		"switchboard_webhook_outbox_depth":                                      0,
		"switchboard_webhook_outbox_recorded":                                   1,
		"switchboard_webhook_dropped_total":                                     0,
	} {
		if v, ok := m[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
}

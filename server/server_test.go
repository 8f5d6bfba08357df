package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/auth"
	"github.com/switchboard-rtc/switchboard/internal/sioclient"
	"github.com/switchboard-rtc/switchboard/server"
	"github.com/switchboard-rtc/switchboard/store"
)

func TestLoadConfig(t *testing.T) {
	env := map[string]string{
		"SWITCHBOARD_ADDR":                "127.0.0.1:9000",
		"SWITCHBOARD_HELD_OFFER_TTL":      "90s",
		"SWITCHBOARD_ROOM_CAPACITY":       "3",
		"SWITCHBOARD_CORS_ORIGINS":        "https://a.example, https://b.example",
		"SWITCHBOARD_LOG_LEVEL":           "debug",
		"REDIS_URL":                       "redis://127.0.0.1:6379/0",
		"SWITCHBOARD_REDIS_WAIT_REPLICAS": "1",
		"SWITCHBOARD_WS_POLLER":           "false",
	}
	cfg, err := server.LoadConfig([]string{"-room-capacity", "4"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9000" || cfg.HeldOfferTTL != 90*time.Second || cfg.RoomCapacity != 4 ||
		cfg.LogLevel != slog.LevelDebug || cfg.RedisURL != "redis://127.0.0.1:6379/0" ||
		len(cfg.CORSOrigins) != 2 || cfg.CORSOrigins[1] != "https://b.example" ||
		cfg.StoreOptions().WaitReplicas != 1 || cfg.WSPoller {
		t.Fatalf("config %+v", cfg)
	}
	def := server.DefaultConfig()
	if cfg.ResumeWindow != def.ResumeWindow || cfg.MaxSDPBytes != def.MaxSDPBytes || !def.WSPoller {
		t.Fatalf("unset settings lost their defaults: %+v", cfg)
	}
	for _, bad := range []map[string]string{
		{"SWITCHBOARD_HELD_OFFER_TTL": "soon"},
		{"SWITCHBOARD_RESUME_WINDOW": "-1s"},
		{"SWITCHBOARD_ROOM_CAPACITY": "1"},
		{"SWITCHBOARD_MAX_BACKLOG": "0"},
		{"SWITCHBOARD_LOG_LEVEL": "loud"},
		{"SWITCHBOARD_MAX_SDP_BYTES": "999999999"},
		{"SWITCHBOARD_REDIS_CLUSTER_RELOAD": "0s"},
		{"SWITCHBOARD_REDIS_WAIT_REPLICAS": "-1"},
		{"SWITCHBOARD_WS_POLLER": "maybe"},
	} {
		if _, err := server.LoadConfig(nil, func(k string) string { return bad[k] }, io.Discard); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
	if _, err := server.LoadConfig([]string{"-no-such-flag"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("unknown flag: no error")
	}
}

// instance is one server on a loopback listener.
type instance struct {
	srv *server.Server
	url string
}

// startInstances runs n instances on st until the test ends.
func startInstances(t *testing.T, st store.Store, n int, tweak func(*server.Config)) []*instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var out []*instance
	for i := range n {
		cfg := server.DefaultConfig()
		cfg.InstanceID = "it" + string(rune('a'+i))
		cfg.LogLevel = slog.LevelWarn
		// Every test connection comes from 127.0.0.1; connlimit_test.go tests the limit.
		cfg.ConnRate, cfg.ConnBurst = 100000, 100000
		if e := os.Getenv("SWITCHBOARD_ENGINE"); e != "" {
			cfg.Engine = e // the whole package runs on either engine
		}
		if tweak != nil {
			tweak(&cfg)
		}
		srv, err := server.New(cfg, st, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srv.Handler())
		wg.Add(1)
		go func() { defer wg.Done(); _ = srv.Run(ctx) }()
		out = append(out, &instance{srv: srv, url: hs.URL})
		t.Cleanup(func() { srv.Close(); hs.Close() })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return out
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthAndReadiness(t *testing.T) {
	mem := startInstances(t, store.NewMemory(store.Options{}), 1, nil)[0]
	if code, _ := get(t, mem.url+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, _ := get(t, mem.url+"/readyz"); code != 200 {
		t.Fatalf("readyz on memory %d", code)
	}
	// A Redis nobody listens on: the process is healthy, but not ready.
	down, err := store.OpenRedis("redis://127.0.0.1:1/0", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = down.Close() })
	inst := startInstances(t, down, 1, nil)[0]
	if code, _ := get(t, inst.url+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, body := get(t, inst.url+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "unreachable") {
		t.Fatalf("readyz with Redis down: %d %q", code, body)
	}
	// Joins get a clear "unavailable".
	c, err := sioclient.Dial(context.Background(), inst.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.EmitWithAck(context.Background(), "join", map[string]any{"room": "r"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"code":"unavailable"`) {
		t.Fatalf("join with Redis down: %s", raw)
	}
}

// The Socket.IO seam: replies and server events cross the real library intact, and bad input
// gets an error acknowledgement.
// The seam on either Engine.IO server (the rest of the package runs on the one
// SWITCHBOARD_ENGINE names, Switchboard's by default).
func TestSocketIOSeam(t *testing.T) {
	for _, engine := range []string{server.EngineLibrary, server.EngineSwitchboard} {
		t.Run(engine, func(t *testing.T) { testSocketIOSeam(t, engine, true) })
	}
	t.Run("switchboard without the poller", func(t *testing.T) { testSocketIOSeam(t, server.EngineSwitchboard, false) })
}

func testSocketIOSeam(t *testing.T, engine string, poller bool) {
	inst := startInstances(t, store.NewMemory(store.Options{}), 2, func(c *server.Config) { c.Engine, c.WSPoller = engine, poller })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func(url string) *sioclient.Client {
		c, err := sioclient.Dial(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	a, b := dial(inst[0].url), dial(inst[1].url)
	for _, tc := range []struct {
		ev      string
		payload any
		want    string
	}{
		{"join", "not an object", "bad_request"},
		{"join", map[string]any{"room": 5}, "bad_request"},
		{"frobnicate", map[string]any{}, "unknown_event"},
		{"offer", map[string]any{"room": "r", "seq": 1, "sdp": "x"}, "not_joined"},
	} {
		raw, err := a.EmitWithAck(ctx, tc.ev, tc.payload)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), `"code":"`+tc.want+`"`) || !strings.Contains(string(raw), `"ok":false`) {
			t.Errorf("%s %v: want %s, got %s", tc.ev, tc.payload, tc.want, raw)
		}
	}
	events := make(chan string, 16)
	b.OnAny(func(ev string, arg json.RawMessage) { events <- ev + " " + string(arg) })
	pa, pb := sioclient.NewPeer(a), sioclient.NewPeer(b)
	if _, err := pa.Join(ctx, "seam"); err != nil {
		t.Fatal(err)
	}
	if rep, err := pa.Send(ctx, "offer", map[string]any{"sdp": "v=0\r\nseam"}); err != nil || rep["held"] != true {
		t.Fatalf("offer: %v %v", rep, err)
	}
	if _, err := pb.Join(ctx, "seam"); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-events:
		if !strings.HasPrefix(got, `offer {"room":"seam","seq":1,"from":"`) || !strings.Contains(got, `"sdp":"v=0\r\nseam"`) {
			t.Fatalf("answerer got %s", got)
		}
	case <-ctx.Done():
		t.Fatal("no offer")
	}
}

// Room tokens end to end: the real verifier behind the real transport.
func TestRoomTokensRequired(t *testing.T) {
	secret := "0123456789abcdef0123456789abcdef"
	inst := startInstances(t, store.NewMemory(store.Options{}), 1, func(c *server.Config) { c.AuthSecret = secret })[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sioclient.Dial(ctx, inst.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	join := func(payload map[string]any) string {
		raw, err := c.EmitWithAck(ctx, "join", payload)
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	now := time.Now()
	expired, _ := auth.Mint([]byte(secret), "r1", "alice", "", time.Minute, now.Add(-time.Hour))
	other, _ := auth.Mint([]byte(secret), "r2", "alice", "", time.Minute, now)
	forged, _ := auth.Mint([]byte("another secret of the same length"), "r1", "alice", "", time.Minute, now)
	for _, tc := range []struct {
		payload map[string]any
		want    string
	}{
		{map[string]any{"room": "r1"}, "unauthorized"},
		{map[string]any{"room": "r1", "token": expired}, "unauthorized"},
		{map[string]any{"room": "r1", "token": forged}, "unauthorized"},
		{map[string]any{"room": "r1", "token": other}, "forbidden"},
	} {
		if got := join(tc.payload); !strings.Contains(got, `"code":"`+tc.want+`"`) {
			t.Errorf("join %v: want %s, got %s", tc.payload["token"], tc.want, got)
		}
	}
	good, _ := auth.Mint([]byte(secret), "r1", "alice", auth.RoleCaller, time.Minute, now)
	if got := join(map[string]any{"room": "r1", "token": good}); !strings.Contains(got, `"ok":true`) || !strings.Contains(got, `"role":"caller"`) {
		t.Fatalf("join with a good token: %s", got)
	}
}

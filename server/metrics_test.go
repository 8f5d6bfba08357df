package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchboard-rtc/switchboard/internal/metricstest"
	"github.com/switchboard-rtc/switchboard/internal/sioclient"
	"github.com/switchboard-rtc/switchboard/server"
	"github.com/switchboard-rtc/switchboard/store"
)

// scrape returns every sample of url's /metrics by its series.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	return metricstest.Scrape(t, http.DefaultClient, url)
}

// A held-offer call, an expiry, a rejected event and a store failure move the metrics.
func TestMetrics(t *testing.T) {
	inst := startInstances(t, store.NewMemory(store.Options{HeldTTL: 400 * time.Millisecond}), 1, func(c *server.Config) {
		c.HeldOfferTTL = 400 * time.Millisecond
	})[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m := scrape(t, inst.url)
	for _, series := range []string{
		"switchboard_connections", "switchboard_rooms", "switchboard_members",
		"switchboard_connections_total", `switchboard_joins_total{role="caller"}`,
		"switchboard_held_offers_total", "switchboard_handoffs_total", "switchboard_handoff_seconds_count",
		"switchboard_expired_offers_total", `switchboard_relayed_messages_total{event="candidate"}`,
		"go_goroutines", "process_open_fds",
	} {
		v, ok := m[series]
		if !ok || strings.HasPrefix(series, "switchboard_") && v != 0 {
			t.Errorf("%s = %v (present: %v) before any traffic", series, v, ok)
		}
	}

	dial := func() *sioclient.Peer {
		c, err := sioclient.Dial(ctx, inst.url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return sioclient.NewPeer(c)
	}
	caller, answerer := dial(), dial()
	offers := make(chan string, 1)
	answerer.OnEvent(func(ev string, _ map[string]any) {
		if ev == "candidate" {
			offers <- ev
		}
	})
	must := func(rep map[string]any, err error) map[string]any {
		t.Helper()
		if err != nil || rep["ok"] != true {
			t.Fatalf("reply %v, %v", rep, err)
		}
		return rep
	}
	if _, err := caller.Join(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	must(caller.Send(ctx, "offer", map[string]any{"sdp": "v=0\r\n"}))
	must(caller.Send(ctx, "candidate", map[string]any{"candidate": nil}))
	jr, err := answerer.Join(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-offers:
	case <-ctx.Done():
		t.Fatal("the answerer got no held candidate")
	}
	must(answerer.Send(ctx, "answer", map[string]any{"sdp": "v=0\r\n", "to": jr.Peers[0].Peer}))
	must(answerer.Send(ctx, "candidate", map[string]any{"candidate": nil}))
	if _, err := answerer.Send(ctx, "answer", map[string]any{"sdp": "v=0\r\n"}); err == nil {
		t.Fatal("a second answer was accepted")
	}

	// A lone caller's held offer expires.
	lone := dial()
	expired := make(chan struct{}, 1)
	lone.OnEvent(func(ev string, _ map[string]any) {
		if ev == "expired" {
			expired <- struct{}{}
		}
	})
	if _, err := lone.Join(ctx, "m2"); err != nil {
		t.Fatal(err)
	}
	must(lone.Send(ctx, "offer", map[string]any{"sdp": "v=0\r\n"}))
	select {
	case <-expired:
	case <-ctx.Done():
		t.Fatal("no expired event")
	}

	// A handshake the library left unanswered makes the client redial: that connection counts
	// too, and lives until the connect timeout closes it.
	deadline := time.Now().Add(8 * time.Second)
	for m = scrape(t, inst.url); m["switchboard_connections"] != 3 && time.Now().Before(deadline); m = scrape(t, inst.url) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := m["switchboard_connections"]; got != 3 {
		t.Errorf("switchboard_connections = %v, want 3", got)
	}
	if got := m["switchboard_connections_total"]; got < 3 {
		t.Errorf("switchboard_connections_total = %v, want at least 3", got)
	}
	for series, want := range map[string]float64{
		"switchboard_rooms":                                     2,
		"switchboard_members":                                   3,
		`switchboard_joins_total{role="caller"}`:                2,
		`switchboard_joins_total{role="answerer"}`:              1,
		"switchboard_held_offers_total":                         2,
		"switchboard_handoffs_total":                            1,
		"switchboard_handoff_seconds_count":                     1,
		"switchboard_expired_offers_total":                      1,
		`switchboard_relayed_messages_total{event="offer"}`:     2,
		`switchboard_relayed_messages_total{event="answer"}`:    1,
		`switchboard_relayed_messages_total{event="candidate"}`: 2,
		`switchboard_errors_total{code="no_offer"}`:             1,
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}
	if s := m["switchboard_handoff_seconds_sum"]; s <= 0 || s > 5 {
		t.Errorf("hand-off took %vs", s)
	}
}

// docs/deploy.md lists every metric an instance exports.
func TestMetricsDocumented(t *testing.T) {
	inst := startInstances(t, store.NewMemory(store.Options{}), 1, nil)[0]
	doc, err := os.ReadFile("../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	for series := range scrape(t, inst.url) {
		name, _, _ := strings.Cut(series, "{")
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && strings.Contains(string(doc), "`"+base+"`") {
				name = base
			}
		}
		if strings.HasPrefix(name, "switchboard_") && !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("%s is not in docs/deploy.md", name)
		}
	}
}

// A store that cannot be reached counts as store errors, and the client sees unavailable.
func TestMetricsStoreErrors(t *testing.T) {
	down, err := store.OpenRedis("redis://127.0.0.1:1/0", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = down.Close() })
	inst := startInstances(t, down, 1, nil)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sioclient.Dial(ctx, inst.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.EmitWithAck(ctx, "join", map[string]any{"room": "r"}); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, inst.url)
	if m[`switchboard_store_errors_total{op="join"}`] != 1 || m[`switchboard_errors_total{code="unavailable"}`] != 1 {
		t.Fatalf("store errors %v, unavailable replies %v", m[`switchboard_store_errors_total{op="join"}`], m[`switchboard_errors_total{code="unavailable"}`])
	}
}

// Connections that close at any point of the handshake leave no client behind, including a
// close between the library's CONNECT reply and its recording the socket.
func TestAbandonedHandshakesLeaveNoClient(t *testing.T) {
	inst := startInstances(t, store.NewMemory(store.Options{}), 1, nil)[0]
	u := "ws" + strings.TrimPrefix(inst.url, "http") + "/socket.io/?EIO=4&transport=websocket"
	const rounds = 150
	for i := range rounds {
		ws, _, err := websocket.DefaultDialer.Dial(u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := ws.ReadMessage(); err != nil { // Engine.IO OPEN
			t.Fatal(err)
		}
		switch i % 3 {
		case 1: // CONNECT, then gone at once
			_ = ws.WriteMessage(websocket.TextMessage, []byte("40"))
		case 2: // CONNECT and an event right behind it, then gone
			_ = ws.WriteMessage(websocket.TextMessage, []byte("40"))
			_ = ws.WriteMessage(websocket.TextMessage, []byte(`42["join",{"room":"r"}]`))
		}
		_ = ws.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	m := scrape(t, inst.url)
	for ; m["switchboard_connections"] != 0 && time.Now().Before(deadline); m = scrape(t, inst.url) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := m["switchboard_connections"]; got != 0 {
		t.Fatalf("switchboard_connections = %v after %d abandoned handshakes, want 0", got, rounds)
	}
	if got := m["switchboard_connections_total"]; got == 0 {
		t.Fatal("no handshake reached the server")
	}
}

// New sessions over the per-address rate get 429 with a code; existing sessions and other
// addresses (named by a trusted proxy) pass, and the refusals are counted.
func TestConnectionRatePerAddress(t *testing.T) {
	inst := startInstances(t, store.NewMemory(store.Options{}), 1, func(c *server.Config) {
		c.ConnRate, c.ConnBurst = 1, 2
		c.TrustedProxies = []string{"127.0.0.1"}
	})[0]
	open := func(xff string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("GET", inst.url+"/socket.io/?EIO=4&transport=polling", nil)
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	code, first, _ := open("198.51.100.1")
	if code != 200 {
		t.Fatalf("first session: %d %s", code, first)
	}
	if code, body, _ := open("198.51.100.1"); code != 200 {
		t.Fatalf("second session (burst 2): %d %s", code, body)
	}
	code, body, h := open("198.51.100.1")
	if code != http.StatusTooManyRequests || !strings.Contains(body, `"code":"rate_limited"`) || h.Get("Retry-After") == "" {
		t.Fatalf("third session: %d %q Retry-After %q; want 429 rate_limited with Retry-After", code, body, h.Get("Retry-After"))
	}
	if code, body, _ := open("198.51.100.2"); code != 200 {
		t.Fatalf("another client behind the proxy: %d %s", code, body)
	}
	// The first session's next poll is not a new connection.
	var open0 struct{ SID string }
	if err := json.Unmarshal([]byte(first[1:]), &open0); err != nil || open0.SID == "" {
		t.Fatalf("open packet %q: %v", first, err)
	}
	req, _ := http.NewRequest("POST", inst.url+"/socket.io/?EIO=4&transport=polling&sid="+open0.SID, strings.NewReader("40"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("request of an existing session: %d", resp.StatusCode)
	}
	if m := scrape(t, inst.url); m[`switchboard_errors_total{code="rate_limited"}`] != 1 {
		t.Fatalf("rate_limited refusals counted: %v, want 1", m[`switchboard_errors_total{code="rate_limited"}`])
	}
}

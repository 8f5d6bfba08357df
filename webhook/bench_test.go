package webhook_test

// BenchmarkHandoffSlowReceiver shows that webhooks do not slow call set-up: one call's held-offer
// path (the caller joins, offers and sends 10 candidates, held; the answerer joins on the other
// instance and gets all 11) through two hubs on the Redis at SWITCHBOARD_TEST_REDIS_ADDR, with
// webhooks off, and with every call event recorded and sent to a receiver that takes 5 s per
// request. Compare the ns/op of the two:
//
//	go test -run '^$' -bench HandoffSlowReceiver -benchtime 2000x ./webhook/

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/server/signaling"
	"github.com/switchboard-rtc/switchboard/store"
	"github.com/switchboard-rtc/switchboard/store/storetest"
	"github.com/switchboard-rtc/switchboard/webhook"
)

type benchConn struct {
	id      string
	emitted atomic.Int64
}

func (c *benchConn) ID() string                   { return c.id }
func (c *benchConn) Emit(string, json.RawMessage) { c.emitted.Add(1) }

func BenchmarkHandoffSlowReceiver(b *testing.B) {
	for _, mode := range []string{"webhooks-off", "receiver-5s"} {
		b.Run(mode, func(b *testing.B) {
			opts := store.Options{MaxBacklog: 1 << 20}
			if mode != "webhooks-off" {
				opts.OutboxMax = store.DefaultOutboxMax
			}
			st, _, _ := storetest.Redis(b, opts)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			b.Cleanup(func() { cancel(); wg.Wait() })
			var posts atomic.Int64
			if mode != "webhooks-off" {
				slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					posts.Add(1)
					select {
					case <-time.After(5 * time.Second):
					case <-r.Context().Done():
					}
				}))
				b.Cleanup(slow.Close) // after the sender stopped (cleanups run last-in first-out)
				ob, err := st.Outbox("bench", time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				s, err := webhook.New(webhook.Config{URLs: []string{slow.URL}, Secret: webhook.NewSecret()}, ob, slog.New(slog.DiscardHandler))
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() { defer wg.Done(); _ = s.Run(ctx) }()
			}
			var hubs []*signaling.Hub
			for i := range 2 {
				h := signaling.NewHub(signaling.Config{Instance: fmt.Sprintf("i%d", i)}, st, slog.New(slog.DiscardHandler))
				hubs = append(hubs, h)
				wg.Add(1)
				go func() { defer wg.Done(); _ = h.Run(ctx) }()
			}
			do := func(hub int, c signaling.Conn, ev string, payload map[string]any) {
				raw, err := json.Marshal(payload)
				if err != nil {
					b.Fatal(err)
				}
				reply, after := hubs[hub].Handle(context.Background(), c, ev, raw)
				if after != nil {
					after()
				}
				if reply["ok"] != true {
					b.Fatalf("%s %v: %v", ev, payload, reply)
				}
			}
			n := 0
			for b.Loop() {
				n++
				room := fmt.Sprintf("h%d", n)
				caller, answerer := &benchConn{id: "c" + room}, &benchConn{id: "a" + room}
				hubs[0].Connect(caller)
				hubs[1].Connect(answerer)
				do(0, caller, "join", map[string]any{"room": room})
				do(0, caller, "offer", map[string]any{"room": room, "seq": float64(1), "sdp": "v=0\r\ns=-\r\n"})
				for i := range 10 {
					do(0, caller, "candidate", map[string]any{"room": room, "seq": float64(2 + i),
						"candidate": map[string]any{"candidate": fmt.Sprintf("candidate:%d 1 udp 2122260223 127.0.0.1 %d typ host", i, 50000+i), "sdpMid": "0"}})
				}
				do(1, answerer, "join", map[string]any{"room": room})
				if got := answerer.emitted.Load(); got < 11 {
					b.Fatalf("answerer got %d of 11 events", got)
				}
				do(1, answerer, "leave", map[string]any{"room": room, "seq": float64(1)})
				do(0, caller, "leave", map[string]any{"room": room, "seq": float64(12)})
				hubs[0].Disconnect(caller)
				hubs[1].Disconnect(answerer)
			}
			if mode != "webhooks-off" {
				b.ReportMetric(float64(posts.Load()), "posts")
			}
		})
	}
}

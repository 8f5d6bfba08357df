package signaling_test

// Benchmarks of the hub's hot paths on the memory store, without sockets: what one instance
// spends per relayed candidate and per held-offer hand-off, before the transport and Redis.
// HandoffRedis is the hand-off on the Redis at SWITCHBOARD_TEST_REDIS_ADDR (default
// 127.0.0.1:6379) under a fresh key prefix.
//
//	go test -run '^$' -bench . -benchmem ./server/signaling/

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/server/signaling"
	"github.com/switchboard-rtc/switchboard/store"
	"github.com/switchboard-rtc/switchboard/store/storetest"
)

// benchConn counts what the hub emits and keeps the last server seq.
type benchConn struct {
	id      string
	emitted atomic.Int64
	lastSeq atomic.Int64
}

func (c *benchConn) ID() string { return c.id }

func (c *benchConn) Emit(_ string, payload json.RawMessage) {
	var head struct {
		Seq int64 `json:"seq"`
	}
	_ = json.Unmarshal(payload, &head)
	c.lastSeq.Store(head.Seq)
	c.emitted.Add(1)
}

// benchRig runs two hubs (two instances) on one store until the benchmark ends.
type benchRig struct {
	hubs []*signaling.Hub
}

func newBenchRig(b *testing.B) *benchRig {
	b.Helper()
	st := store.NewMemory(store.Options{MaxBacklog: 1 << 20})
	b.Cleanup(func() { _ = st.Close() }) // after the hubs stop
	return startBenchRig(b, st, signaling.Config{})
}

// startBenchRig starts the hubs on st; they stop when the benchmark ends. st stays open.
func startBenchRig(b *testing.B, st store.Store, cfg signaling.Config) *benchRig {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &benchRig{}
	var wg sync.WaitGroup
	for i := range 2 {
		cfg.Instance = fmt.Sprintf("i%d", i)
		h := signaling.NewHub(cfg, st, slog.New(slog.DiscardHandler))
		r.hubs = append(r.hubs, h)
		wg.Add(1)
		go func() { defer wg.Done(); _ = h.Run(ctx) }()
	}
	b.Cleanup(func() { cancel(); wg.Wait() })
	return r
}

func (r *benchRig) do(b *testing.B, hub int, c signaling.Conn, ev string, payload map[string]any) signaling.Reply {
	body, err := json.Marshal(payload)
	if err != nil {
		b.Fatal(err)
	}
	reply, after := r.hubs[hub].Handle(context.Background(), c, ev, body)
	if after != nil {
		after()
	}
	if reply["ok"] != true {
		b.Fatalf("%s %v: %v", ev, payload, reply)
	}
	return reply
}

// candidatePayload is a candidate event as the Socket.IO library decodes it.
func candidatePayload(room string, seq, i int) map[string]any {
	return map[string]any{
		"room": room,
		"seq":  float64(seq),
		"candidate": map[string]any{
			"candidate":        fmt.Sprintf("candidate:%d 1 udp 2122260223 127.0.0.1 %d typ host generation 0", i, 50000+i),
			"sdpMid":           "0",
			"sdpMLineIndex":    float64(0),
			"usernameFragment": "abcd",
		},
	}
}

var benchSDP = func() string {
	s := "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	for len(s) < 1500 {
		s += "a=x-pad:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"
	}
	return s
}()

// BenchmarkRelayCandidate relays a candidate from a caller on one instance to an answerer on
// the other: decode and validate, sequencing, Store.Send, delivery, Emit. The answerer
// acknowledges every ackEvery messages.
func BenchmarkRelayCandidate(b *testing.B) {
	for _, ackEvery := range []int{1, 16} {
		b.Run(fmt.Sprintf("ack-every-%d", ackEvery), func(b *testing.B) {
			r := newBenchRig(b)
			caller, answerer := &benchConn{id: "c"}, &benchConn{id: "a"}
			r.hubs[0].Connect(caller)
			r.hubs[1].Connect(answerer)
			r.do(b, 0, caller, "join", map[string]any{"room": "r1"})
			r.do(b, 1, answerer, "join", map[string]any{"room": "r1"})
			seq := 1
			b.ReportAllocs()
			for b.Loop() {
				r.do(b, 0, caller, "candidate", candidatePayload("r1", seq, seq%10))
				seq++
				if seq%ackEvery == 0 {
					r.do(b, 1, answerer, "ack", map[string]any{"room": "r1", "seq": float64(answerer.lastSeq.Load())})
				}
			}
			if got := answerer.emitted.Load(); got < int64(seq-1) {
				b.Fatalf("answerer got %d of %d candidates", got, seq-1)
			}
		})
	}
}

// BenchmarkHandoff is one call's held-offer path: the caller joins, offers and sends 10
// candidates (held); the answerer joins on the other instance and receives all 11.
func BenchmarkHandoff(b *testing.B) {
	r := newBenchRig(b)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		r.handoff(b, fmt.Sprintf("h%d", n), func() {}, func(got int64) bool { return got == 11 })
	}
}

// BenchmarkHandoffRedis is BenchmarkHandoff on Redis, timing the answerer's join alone (with its
// post-reply step, which emits the offer and candidates) and counting its round trips. The
// background loops are slowed down so that they add none. Deliveries also arrive by pub/sub, so
// the answerer may see an event twice.
func BenchmarkHandoffRedis(b *testing.B) {
	st, c, _ := storetest.Redis(b, store.Options{MaxBacklog: 1 << 20})
	trips := storetest.CountRoundTrips(c)
	r := startBenchRig(b, st, signaling.Config{SweepInterval: time.Hour, RenewInterval: time.Hour, ResendInterval: time.Hour})
	b.ReportAllocs()
	n := 0
	var joinTrips, before int64
	for b.Loop() {
		n++
		b.StopTimer()
		r.handoff(b, fmt.Sprintf("h%d", n),
			func() { before = trips.Load(); b.StartTimer() },
			func(got int64) bool {
				b.StopTimer()
				joinTrips += trips.Load() - before
				return got >= 11
			})
		b.StartTimer()
	}
	b.ReportMetric(float64(joinTrips)/float64(b.N), "roundtrips/op")
}

// handoff runs one call's held-offer path in room; beforeJoin runs right before the answerer's
// join, and joined checks how many events the answerer got right after it.
func (r *benchRig) handoff(b *testing.B, room string, beforeJoin func(), joined func(got int64) bool) {
	caller, answerer := &benchConn{id: "c" + room}, &benchConn{id: "a" + room}
	r.hubs[0].Connect(caller)
	r.hubs[1].Connect(answerer)
	r.do(b, 0, caller, "join", map[string]any{"room": room})
	r.do(b, 0, caller, "offer", map[string]any{"room": room, "seq": float64(1), "sdp": benchSDP})
	for i := range 10 {
		r.do(b, 0, caller, "candidate", candidatePayload(room, 2+i, i))
	}
	beforeJoin()
	r.do(b, 1, answerer, "join", map[string]any{"room": room})
	if got := answerer.emitted.Load(); !joined(got) {
		b.Fatalf("answerer got %d of 11 events", got)
	}
	r.do(b, 1, answerer, "leave", map[string]any{"room": room, "seq": float64(1)})
	r.do(b, 0, caller, "leave", map[string]any{"room": room, "seq": float64(12)})
	r.hubs[0].Disconnect(caller)
	r.hubs[1].Disconnect(answerer)
}

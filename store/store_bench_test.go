package store_test

// Benchmarks of the store operations on the message path, on Memory and on Redis (the Redis at
// SWITCHBOARD_TEST_REDIS_ADDR, default 127.0.0.1:6379, under a fresh key prefix deleted after).
//
//	go test -run '^$' -bench . -benchmem ./store/
//
// Send relays a candidate between two members (the answerer acknowledges every 16 messages);
// Join is a caller joining an empty room; Handoff is an answerer joining a room whose held
// offer has 10 candidates; Ack acknowledges one message. The Parallel variants run many rooms
// at once, as a busy instance does (with Redis they show the connection pool at work).

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/store"
	"github.com/switchboard-rtc/switchboard/store/storetest"
)

func benchStores(b *testing.B, run func(b *testing.B, st store.Store)) {
	b.Run("memory", func(b *testing.B) {
		st := store.NewMemory(store.Options{})
		b.Cleanup(func() { _ = st.Close() })
		run(b, st)
	})
	b.Run("redis", func(b *testing.B) {
		run(b, benchRedisStore(b))
	})
}

func benchRedisStore(b *testing.B) store.Store {
	st, _, _ := storetest.Redis(b, store.Options{})
	return st
}

var roomSeq atomic.Int64

func nextRoom(tag string) string {
	return tag + strconv.FormatInt(roomSeq.Add(1), 10)
}

func benchCandidate(from string, i int) []byte {
	return fmt.Appendf(nil, `{"from":%q,"candidate":{"candidate":"candidate:%d 1 udp 2122260223 127.0.0.1 %d typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}`,
		from, i, 50000+i)
}

// pair is a room with a caller and an answerer.
type pair struct {
	room, caller, answerer string
	seq, acked             int64
}

func newPair(b *testing.B, st store.Store) *pair {
	ctx := context.Background()
	p := &pair{room: nextRoom("s"), caller: "c1", answerer: "a1", seq: 1}
	now := time.Now()
	if _, err := st.Join(ctx, store.JoinParams{Room: p.room, Peer: p.caller, Token: "t1", Instance: "i1", Conn: "cc", Now: now}); err != nil {
		b.Fatal(err)
	}
	if _, err := st.Join(ctx, store.JoinParams{Room: p.room, Peer: p.answerer, Token: "t2", Instance: "i2", Conn: "ca", Now: now}); err != nil {
		b.Fatal(err)
	}
	// The answerer's queue holds nothing the benchmark sends yet; peer-joined went to the caller.
	return p
}

// relay sends one candidate from the caller and acknowledges every 16th on the answerer's side.
func (p *pair) relay(b *testing.B, st store.Store, body []byte) {
	ctx := context.Background()
	res, err := st.Send(ctx, store.SendParams{Room: p.room, Peer: p.caller, Conn: "cc", Seq: p.seq,
		Kind: store.KindCandidate, Body: body, Now: time.Now()})
	if err != nil || res.Duplicate || res.Gap {
		b.Fatalf("send %d: %+v %v", p.seq, res, err)
	}
	if p.seq%16 == 0 {
		if err := st.Ack(ctx, p.room, p.answerer, p.seq); err != nil {
			b.Fatal(err)
		}
	}
	p.seq++
}

func BenchmarkSend(b *testing.B) {
	benchStores(b, func(b *testing.B, st store.Store) {
		p := newPair(b, st)
		body := benchCandidate(p.caller, 1)
		b.ReportAllocs()
		for b.Loop() {
			p.relay(b, st, body)
		}
	})
}

func BenchmarkSendParallel(b *testing.B) {
	benchStores(b, func(b *testing.B, st store.Store) {
		b.ReportAllocs()
		b.SetParallelism(64) // 64 × GOMAXPROCS rooms relaying at once
		b.RunParallel(func(pb *testing.PB) {
			p := newPair(b, st)
			body := benchCandidate(p.caller, 1)
			for pb.Next() {
				p.relay(b, st, body)
			}
		})
	})
}

func BenchmarkAck(b *testing.B) {
	benchStores(b, func(b *testing.B, st store.Store) {
		ctx := context.Background()
		p := newPair(b, st)
		body := benchCandidate(p.caller, 1)
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			res, err := st.Send(ctx, store.SendParams{Room: p.room, Peer: p.caller, Conn: "cc", Seq: p.seq,
				Kind: store.KindCandidate, Body: body, Now: time.Now()})
			if err != nil || res.Gap {
				b.Fatal(err)
			}
			p.seq++
			b.StartTimer()
			if err := st.Ack(ctx, p.room, p.answerer, p.seq-1); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkJoin(b *testing.B) {
	benchStores(b, func(b *testing.B, st store.Store) {
		ctx := context.Background()
		now := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			room := nextRoom("j")
			if _, err := st.Join(ctx, store.JoinParams{Room: room, Peer: "c1", Token: "t1", Nonce: "nonce-" + room,
				Instance: "i1", Conn: "cc", Now: now}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHandoff measures the answerer's join only; the held offer is set up untimed. On Redis
// it also reports the round trips of that join (a pipeline counts once).
func BenchmarkHandoff(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		st := store.NewMemory(store.Options{})
		b.Cleanup(func() { _ = st.Close() })
		benchHandoff(b, st, nil)
	})
	b.Run("redis", func(b *testing.B) {
		st, c, _ := storetest.Redis(b, store.Options{})
		benchHandoff(b, st, storetest.CountRoundTrips(c))
	})
}

func benchHandoff(b *testing.B, st store.Store, trips *atomic.Int64) {
	ctx := context.Background()
	sdp := []byte(`{"from":"c1","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"}`)
	var joinTrips int64
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		room := nextRoom("h")
		now := time.Now()
		if _, err := st.Join(ctx, store.JoinParams{Room: room, Peer: "c1", Token: "t1", Instance: "i1", Conn: "cc", Now: now}); err != nil {
			b.Fatal(err)
		}
		if _, err := st.Send(ctx, store.SendParams{Room: room, Peer: "c1", Conn: "cc", Seq: 1, Kind: store.KindOffer, Body: sdp, Now: now}); err != nil {
			b.Fatal(err)
		}
		for i := range 10 {
			if _, err := st.Send(ctx, store.SendParams{Room: room, Peer: "c1", Conn: "cc", Seq: int64(2 + i),
				Kind: store.KindCandidate, Body: benchCandidate("c1", i), Now: now}); err != nil {
				b.Fatal(err)
			}
		}
		var before int64
		if trips != nil {
			before = trips.Load()
		}
		b.StartTimer()
		m, err := st.Join(ctx, store.JoinParams{Room: room, Peer: "a1", Token: "t2", Instance: "i2", Conn: "ca", Now: now})
		if err != nil {
			b.Fatal(err)
		}
		if m.Last != 11 {
			b.Fatalf("answerer has %d queued messages, want 11", m.Last)
		}
		if trips != nil {
			joinTrips += trips.Load() - before
		}
	}
	if trips != nil {
		b.ReportMetric(float64(joinTrips)/float64(b.N), "roundtrips/op")
	}
}

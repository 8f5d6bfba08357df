package store_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-rtc/switchboard/store"
	"github.com/switchboard-rtc/switchboard/store/storetest"
)

func redisAddr() string { return storetest.RedisAddr() }

func newRedisClient(t *testing.T, addr string) *redis.Client { return storetest.RedisClient(t, addr) }

func newRedisStore(t *testing.T, opts store.Options) (*store.Redis, *redis.Client, string) {
	return storetest.Redis(t, opts)
}

func TestRedis(t *testing.T) {
	storetest.Run(t, func(t *testing.T, opts store.Options) store.Store {
		s, _, _ := newRedisStore(t, opts)
		return s
	})
}

func TestRedisKeysHaveTTL(t *testing.T) {
	s, c, prefix := newRedisStore(t, store.Options{RoomTTL: time.Hour})
	ctx := context.Background()
	if _, err := s.Join(ctx, store.JoinParams{Room: "r", Peer: "alice", Token: "t", Instance: "i1", Conn: "c", Now: storetest.T0}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{store.RoomKey(prefix, "r"), store.RoomTimersKey(prefix, "r")} {
		if ttl := c.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("key %s: ttl %v, want (0, 1h]", k, ttl)
		}
	}
}

// TestRedisRelayIsOneRoundTrip checks that relaying a message costs one command.
func TestRedisRelayIsOneRoundTrip(t *testing.T) {
	s, c, _ := newRedisStore(t, store.Options{})
	ctx := context.Background()
	for _, p := range []string{"alice", "bob"} {
		if _, err := s.Join(ctx, store.JoinParams{Room: "r", Peer: p, Token: "t", Instance: "i1", Conn: "c-" + p, Now: storetest.T0}); err != nil {
			t.Fatal(err)
		}
	}
	send := func(seq int64) {
		t.Helper()
		_, err := s.Send(ctx, store.SendParams{Room: "r", Peer: "alice", Conn: "c-alice", Seq: seq,
			Kind: store.KindCandidate, Body: []byte(`{"from":"alice","candidate":null}`), Now: storetest.T0})
		if err != nil {
			t.Fatal(err)
		}
	}
	send(1) // loads the script if needed
	n := storetest.CountRoundTrips(c)
	send(2)
	if n.Load() != 1 {
		t.Fatalf("relaying a candidate took %d round trips, want 1", n.Load())
	}
}

// TestRedisHandoffIsTwoRoundTrips checks an answerer's join that takes a held offer: the lease
// timer and the script in one round trip, the script's timer changes in another.
func TestRedisHandoffIsTwoRoundTrips(t *testing.T) {
	s, c, prefix := newRedisStore(t, store.Options{})
	ctx := context.Background()
	holdRedisOffer(t, s, "r")
	n := storetest.CountRoundTrips(c)
	m, err := s.Join(ctx, store.JoinParams{Room: "r", Peer: "bob", Token: "t", Instance: "i1", Conn: "c-bob", Now: storetest.T0})
	if err != nil {
		t.Fatal(err)
	}
	if n.Load() != 2 {
		t.Fatalf("the hand-off took %d round trips, want 2", n.Load())
	}
	if len(m.Handed) != 2 || m.Last != 2 {
		t.Fatalf("handed %v (last %d), want the offer and its candidate", m.Handed, m.Last)
	}
	due := storetest.T0.Add(store.DefaultResumeWindow + store.DefaultLeaseGrace).UnixMilli()
	if got, err := c.ZScore(ctx, store.RoomTimersKey(prefix, "r"), "L|r|bob|1").Result(); err != nil || int64(got) != due {
		t.Fatalf("bob's lease timer: %v, %v; want %d", got, err, due)
	}
}

// TestRedisJoinLoadsScript runs joins on a Redis without the scripts cached: the join is applied
// once, with its lease timer.
func TestRedisJoinLoadsScript(t *testing.T) {
	port := freePort(t)
	startRedis(t, port)
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
	s := store.NewRedis(client, store.Options{Prefix: "sbtest:noscript:"})
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	holdRedisOffer(t, s, "r")
	if err := client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	n := storetest.CountRoundTrips(client)
	m, err := s.Join(ctx, store.JoinParams{Room: "r", Peer: "bob", Token: "t", Nonce: "nonce-bob1", Instance: "i1", Conn: "c-bob", Now: storetest.T0})
	if err != nil || m.Retried || len(m.Handed) != 2 {
		t.Fatalf("join without the script cached: %+v, %v", m, err)
	}
	if n.Load() != 3 {
		t.Fatalf("join without the script cached took %d round trips, want 3 (NOSCRIPT, EVAL, timers)", n.Load())
	}
	if msgs, err := s.Pending(ctx, "r", "alice", 0); err != nil || len(msgs) != 1 {
		t.Fatalf("alice's queue: %v, %v; want one peer-joined", msgs, err)
	}
	if err := client.ZScore(ctx, store.RoomTimersKey("sbtest:noscript:", "r"), "L|r|bob|1").Err(); err != nil {
		t.Fatalf("bob's lease timer: %v", err)
	}
	if err := client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	again, err := s.Join(ctx, store.JoinParams{Room: "r", Peer: "bob2", Token: "t2", Nonce: "nonce-bob1", Instance: "i1", Conn: "c-bob2", Now: storetest.T0})
	if err != nil || !again.Retried || again.Peer != "bob" || again.Gen != 2 || len(again.Handed) != 0 {
		t.Fatalf("retried join without the script cached: %+v, %v", again, err)
	}
}

// holdRedisOffer joins alice to room and holds her offer with one candidate.
func holdRedisOffer(t *testing.T, s *store.Redis, room string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Join(ctx, store.JoinParams{Room: room, Peer: "alice", Token: "t", Instance: "i1", Conn: "c-alice", Now: storetest.T0}); err != nil {
		t.Fatal(err)
	}
	for i, k := range []store.Kind{store.KindOffer, store.KindCandidate} {
		_, err := s.Send(ctx, store.SendParams{Room: room, Peer: "alice", Conn: "c-alice", Seq: int64(i + 1), Kind: k,
			Body: []byte(`{"from":"alice"}`), Now: storetest.T0})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestRedisStaleTimersAreNoOps checks that timers whose gen is no longer current change nothing.
func TestRedisStaleTimersAreNoOps(t *testing.T) {
	s, c, prefix := newRedisStore(t, store.Options{})
	ctx := context.Background()
	for _, p := range []string{"alice", "bob"} {
		if _, err := s.Join(ctx, store.JoinParams{Room: "r", Peer: p, Token: "t", Instance: "i1", Conn: "c-" + p, Now: storetest.T0}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Resume(ctx, store.ResumeParams{Room: "r", Peer: "bob", Token: "t", Instance: "i1", Conn: "c2", Now: storetest.T0}); err != nil {
		t.Fatal(err)
	}
	due := float64(storetest.T0.UnixMilli())
	err := c.ZAdd(ctx, store.RoomTimersKey(prefix, "r"),
		redis.Z{Member: "L|r|bob|1", Score: due}, redis.Z{Member: "H|r|1", Score: due},
		redis.Z{Member: "L|gone|alice|1", Score: due}, redis.Z{Member: "garbage", Score: due}).Err()
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Sweep(ctx, storetest.T0.Add(time.Second), 100)
	if err != nil || n != 0 {
		t.Fatalf("sweep of stale timers: fired %d, %v; want 0", n, err)
	}
	if left := c.ZCard(ctx, store.RoomTimersKey(prefix, "r")).Val(); left != 2 {
		t.Fatalf("%d timers left, want the 2 current leases", left)
	}
	msgs, err := s.Pending(ctx, "r", "alice", 0)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("alice's queue after stale timers: %v, %v; want only peer-joined", msgs, err)
	}
}

// The held-offer count follows held offers through hand-off and expiry.
func TestRedisHeldKeyCountsHeldOffers(t *testing.T) {
	s, c, prefix := newRedisStore(t, store.Options{HeldTTL: time.Minute})
	ctx := context.Background()
	count := func(want int64, what string) {
		t.Helper()
		var n int64
		for g := range store.TimerGroups {
			n += c.ZCard(ctx, store.HeldKey(prefix, g)).Val()
		}
		if n != want {
			t.Fatalf("%s: %d held offers counted, want %d", what, n, want)
		}
	}
	for _, r := range []string{"r1", "r2"} {
		if _, err := s.Join(ctx, store.JoinParams{Room: r, Peer: "alice", Token: "t", Instance: "i1", Conn: "c", Now: storetest.T0}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Send(ctx, store.SendParams{Room: r, Peer: "alice", Conn: "c", Seq: 1, Kind: store.KindOffer,
			Body: []byte(`{"from":"alice","sdp":"o"}`), Now: storetest.T0}); err != nil {
			t.Fatal(err)
		}
	}
	count(2, "two held")
	if ttl := c.PTTL(ctx, store.HeldKey(prefix, store.TimerGroup("r1"))).Val(); ttl <= 0 {
		t.Fatalf("held key TTL %v", ttl)
	}
	if _, err := s.Join(ctx, store.JoinParams{Room: "r1", Peer: "bob", Token: "t", Instance: "i1", Conn: "c2", Now: storetest.T0}); err != nil {
		t.Fatal(err)
	}
	count(1, "one handed over")
	if n, err := s.Sweep(ctx, storetest.T0.Add(2*time.Minute), 100); err != nil || n == 0 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	count(0, "the other expired")
}

func TestRedisUnavailable(t *testing.T) {
	port := freePort(t)
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port, DialTimeout: 200 * time.Millisecond,
		MaxRetries: -1, DialerRetries: 1})
	s := store.NewRedis(client, store.Options{Prefix: "sbtest:down:"})
	ctx := context.Background()
	_, err := s.Join(ctx, store.JoinParams{Room: "r", Peer: "alice", Token: "t", Instance: "i1", Conn: "c", Now: storetest.T0})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("join with Redis down: %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("ping with Redis down: %v, want ErrUnavailable", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	up := store.NewRedis(newRedisClient(t, redisAddr()), store.Options{Prefix: "sbtest:closed:"})
	_ = up.Close()
	if _, err := up.Sweep(ctx, storetest.T0, 10); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("sweep on a closed client: %v, want ErrUnavailable", err)
	}
}

// TestRedisListenSurvivesRestart stops and restarts a Redis of its own under a running Listen.
func TestRedisListenSurvivesRestart(t *testing.T) {
	port := freePort(t)
	srv := startRedis(t, port)
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port, DialTimeout: 200 * time.Millisecond})
	s := store.NewRedis(client, store.Options{Prefix: "sbtest:restart:"})
	t.Cleanup(func() { _ = s.Close() })
	logs := &countingHandler{}
	s.SetLogger(slog.New(logs))

	h := &storetest.Recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Listen(ctx, "i1", h) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Listen returned %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Listen did not return after cancel")
		}
	}()
	storetest.Eventually(t, 5*time.Second, "first Resync", func() bool { return h.Resyncs() == 1 })

	srv.stop()
	before := logs.warnings()
	time.Sleep(1500 * time.Millisecond)
	attempts := logs.warnings() - before
	t.Logf("%d failed attempts in 1.5s with Redis down", attempts)
	if attempts == 0 || attempts >= 30 {
		t.Fatalf("%d failed attempts in 1.5s with Redis down, want between 1 and 29", attempts)
	}

	startRedis(t, port)
	// While down, Listen polls (Resync) about once a second; the subscription is back when it says so.
	if h.Resyncs() < 2 {
		t.Errorf("%d Resyncs while Redis was down for 1.5s, want a poll", h.Resyncs()-1)
	}
	storetest.Eventually(t, 8*time.Second, "subscribed again", func() bool { return logs.resubscribed.Load() >= 1 })
	for _, p := range []string{"alice", "bob"} {
		if _, err := s.Join(ctx, store.JoinParams{Room: "r", Peer: p, Token: "t", Instance: "i1", Conn: "c-" + p, Now: storetest.T0}); err != nil {
			t.Fatal(err)
		}
	}
	storetest.Eventually(t, 5*time.Second, "delivery after the restart", func() bool {
		return len(h.Lines()) == 1 && h.Lines()[0] == `r/alice 1 peer-joined {"peer":"bob","role":"answerer"}`
	})
}

type redisProc struct {
	cmd  *exec.Cmd
	once sync.Once
}

func (p *redisProc) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	})
}

// startRedis runs a throwaway redis-server on port until the test ends.
func startRedis(t *testing.T, port string) *redisProc {
	t.Helper()
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	p := &redisProc{cmd: cmd}
	t.Cleanup(p.stop)
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port, DialerRetries: 1})
	defer c.Close()
	storetest.Eventually(t, 5*time.Second, "redis-server on port "+port, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		return c.Ping(ctx).Err() == nil
	})
	return p
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// countingHandler is a slog.Handler counting warnings.
type countingHandler struct{ n, resubscribed atomic.Int64 }

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.n.Add(1)
	}
	if strings.Contains(r.Message, "subscribed again") {
		h.resubscribed.Add(1)
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }
func (h *countingHandler) warnings() int64                    { return h.n.Load() }

// joinPair puts two members in room; the second one's join queues peer-joined (seq 1) to first.
func joinPair(t *testing.T, s store.Store, room, first, second string) {
	t.Helper()
	for _, p := range []string{first, second} {
		if _, err := s.Join(context.Background(), store.JoinParams{Room: room, Peer: p, Token: "t", Instance: "i1",
			Conn: "c-" + p, Now: storetest.T0}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRedisAckBatch(t *testing.T) {
	check := func(t *testing.T, s *store.Redis, roundTrips *atomic.Int64, want int64) {
		ctx := context.Background()
		joinPair(t, s, "r1", "alice", "bob")
		joinPair(t, s, "r2", "carol", "dave")
		roundTrips.Store(0)
		errs := s.AckBatch(ctx, []store.AckParams{{Room: "r1", Peer: "alice", Seq: 1}, {Room: "r2", Peer: "carol", Seq: 1},
			{Room: "r3", Peer: "nobody", Seq: 1}})
		if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], store.ErrNotMember) {
			t.Fatalf("ack batch: %v", errs)
		}
		if want > 0 && roundTrips.Load() != want {
			t.Fatalf("ack batch took %d round trips, want %d", roundTrips.Load(), want)
		}
		for _, m := range [][2]string{{"r1", "alice"}, {"r2", "carol"}} {
			if msgs, err := s.Pending(ctx, m[0], m[1], 0); err != nil || len(msgs) != 0 {
				t.Fatalf("%s's queue after the ack: %v, %v", m[1], msgs, err)
			}
		}
	}
	t.Run("cached", func(t *testing.T) {
		s, c, _ := newRedisStore(t, store.Options{})
		n := storetest.CountRoundTrips(c)
		check(t, s, n, 1)
	})
	t.Run("script not loaded", func(t *testing.T) {
		port := freePort(t)
		startRedis(t, port)
		client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
		s := store.NewRedis(client, store.Options{Prefix: "sbtest:acknoscript:"})
		t.Cleanup(func() { _ = s.Close() })
		if err := client.ScriptFlush(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		n := storetest.CountRoundTrips(client)
		check(t, s, n, 0)
	})
}

// Timers in the first layout's single set are still renewed and fired, so a rolling upgrade neither removes connected members nor forgets dead
// ones.
func TestRedisLegacyTimers(t *testing.T) {
	for _, layout := range []struct {
		name string
		key  func(prefix string) string
	}{
		{"single", store.LegacyTimersKey},
	} {
		t.Run(layout.name, func(t *testing.T) {
			s, c, prefix := newRedisStore(t, store.Options{})
			ctx := context.Background()
			joinPair(t, s, "r", "alice", "bob")
			legacy := layout.key(prefix)
			due := float64(storetest.T0.UnixMilli())
			// As an earlier version left them: both leases in the earlier set only.
			if err := c.ZRem(ctx, store.RoomTimersKey(prefix, "r"), "L|r|alice|1", "L|r|bob|1").Err(); err != nil {
				t.Fatal(err)
			}
			if err := c.ZAdd(ctx, legacy, redis.Z{Member: "L|r|alice|1", Score: due}, redis.Z{Member: "L|r|bob|1", Score: due}).Err(); err != nil {
				t.Fatal(err)
			}
			if err := s.Renew(ctx, []store.Lease{{Room: "r", Peer: "alice", Gen: 1}}, storetest.T0); err != nil {
				t.Fatal(err)
			}
			n, err := s.Sweep(ctx, storetest.T0.Add(time.Second), 100)
			if err != nil || n != 1 {
				t.Fatalf("sweep: fired %d, %v; want bob's lease only", n, err)
			}
			msgs, err := s.Pending(ctx, "r", "alice", 0)
			if err != nil || len(msgs) != 2 || msgs[1].Event != store.EventPeerLeft {
				t.Fatalf("alice's queue: %v, %v; want peer-joined, peer-left", msgs, err)
			}
			if left := c.ZRange(ctx, legacy, 0, -1).Val(); len(left) != 1 || left[0] != "L|r|alice|1" {
				t.Fatalf("timers left: %v, want alice's renewed lease", left)
			}
		})
	}
}

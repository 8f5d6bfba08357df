package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/redistest"
	"github.com/switchboard-rtc/switchboard/store"
	"github.com/switchboard-rtc/switchboard/store/storetest"
)

// openURL opens a store on url under a fresh prefix, closed when t ends.
func openURL(t *testing.T, url string, opts store.Options) (*store.Redis, string) {
	t.Helper()
	opts.Prefix = fmt.Sprintf("sbtest:%016x:", rand.Uint64())
	s, err := store.OpenRedis(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, opts.Prefix
}

// TestRedisCluster runs the contract suite on a real Cluster (3 masters, 3 replicas) opened
// from its REDIS_URL.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	storetest.Run(t, func(t *testing.T, opts store.Options) store.Store {
		s, _ := openURL(t, c.URL(), opts)
		return s
	})
	t.Run("AckBatchScriptMissingOnOneNode", func(t *testing.T) { ackBatchScriptMissing(t, c) })
	t.Run("WaitReplicas", func(t *testing.T) {
		durableSends(t, c.URL(), func(key string) *redistest.Node { return c.ReplicaOf(t, c.MasterFor(t, key)) })
	})
	t.Run("ShardLost", func(t *testing.T) { shardLost(t, c) }) // last: it breaks the cluster
}

// TestRedisSentinel runs the contract suite on a real Sentinel set (master, replica, 3
// sentinels) opened from its REDIS_URL.
func TestRedisSentinel(t *testing.T) {
	t.Parallel()
	d := redistest.StartSentinel(t)
	storetest.Run(t, func(t *testing.T, opts store.Options) store.Store {
		s, _ := openURL(t, d.URL(), opts)
		return s
	})
	t.Run("WaitReplicas", func(t *testing.T) {
		durableSends(t, d.URL(), func(string) *redistest.Node {
			if m := d.Master(t); m != d.Data[0] {
				return d.Data[0]
			}
			return d.Data[1]
		})
	})
}

// durableSends checks Options.WaitReplicas: with 1 (each master has one replica) a Send returns
// once the replica has the write; with 2 it gets ErrUnavailable, also when sent again.
func durableSends(t *testing.T, url string, replicaOf func(key string) *redistest.Node) {
	ctx := context.Background()
	for _, n := range []int{1, 2} {
		s, prefix := openURL(t, url, store.Options{WaitReplicas: n})
		joinPair(t, s, "r", "alice", "bob")
		replica := replicaOf(store.RoomKey(prefix, "r")).Client(t)
		for seq := int64(1); seq <= 3; seq++ {
			_, err := s.Send(ctx, store.SendParams{Room: "r", Peer: "alice", Conn: "c-alice", Seq: min(seq, 2),
				Kind: store.KindCandidate, Body: []byte(`{"from":"alice","candidate":null}`), Now: storetest.T0})
			if n == 2 {
				if !errors.Is(err, store.ErrUnavailable) {
					t.Fatalf("send %d waiting for 2 of 1 replicas: %v, want ErrUnavailable", seq, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("send %d waiting for 1 replica: %v", seq, err)
			}
			// Read on the replica itself: it has the write when Send returns.
			replica.Do(ctx, "READONLY")
			next, err := replica.HGet(ctx, store.RoomKey(prefix, "r"), "m:alice:next").Int64()
			if err != nil || next != min(seq, 2)+1 {
				t.Fatalf("replica after send %d: next %d, %v; want %d", seq, next, err, min(seq, 2)+1)
			}
		}
	}
}

// ackBatchScriptMissing acknowledges in rooms on different masters, one of which lost its
// script cache (as a freshly promoted replica has none): every ack applies.
func ackBatchScriptMissing(t *testing.T, c *redistest.Cluster) {
	s, prefix := openURL(t, c.URL(), store.Options{})
	ctx := context.Background()
	rooms := []string{"r0"}
	first := c.MasterFor(t, store.RoomKey(prefix, "r0"))
	var other *redistest.Node
	for i := 1; other == nil; i++ {
		room := fmt.Sprintf("r%d", i)
		if m := c.MasterFor(t, store.RoomKey(prefix, room)); m != first {
			rooms, other = append(rooms, room), m
		}
	}
	var acks []store.AckParams
	for _, room := range rooms {
		joinPair(t, s, room, "alice", "bob")
		acks = append(acks, store.AckParams{Room: room, Peer: "alice", Seq: 1})
	}
	// Every master has the script cached, then one loses it.
	for _, err := range s.AckBatch(ctx, []store.AckParams{{Room: rooms[0], Peer: "alice"}, {Room: rooms[1], Peer: "alice"}}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Client(t).ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for i, err := range s.AckBatch(ctx, acks) {
		if err != nil {
			t.Fatalf("ack in %s: %v", acks[i].Room, err)
		}
	}
	for _, room := range rooms {
		if msgs, err := s.Pending(ctx, room, "alice", 0); err != nil || len(msgs) != 0 {
			t.Fatalf("alice's queue in %s after the ack: %v, %v", room, msgs, err)
		}
	}
}

// shardLost kills a master and its replica, so its slots stay down: rooms whose hash and timer
// set live on the other masters keep relaying, joining and expiring (also one whose timers the
// previous layout's hashed buckets put on the lost master), and an instance whose
// channel was on the lost master still gets its queues read (Listen polls).
func shardLost(t *testing.T, c *redistest.Cluster) {
	t.Cleanup(redistest.WaitRedials) // after the store's client is closed
	s, prefix := openURL(t, c.URL(), store.Options{HeldTTL: time.Second})
	ctx := context.Background()
	victim := c.MasterFor(t, store.TimersKey(prefix, 0))
	healthy := func(room string) bool {
		return c.MasterFor(t, store.RoomKey(prefix, room)) != victim && c.MasterFor(t, store.RoomTimersKey(prefix, room)) != victim
	}
	var rooms []string
	for i := 0; len(rooms) < 2; i++ {
		if room := fmt.Sprintf("live%d", i); healthy(room) {
			rooms = append(rooms, room)
		}
	}
	inst := ""
	for i := 0; inst == ""; i++ {
		if id := fmt.Sprintf("inst%d", i); c.MasterFor(t, store.InstanceChannel(prefix, id)) == victim {
			inst = id
		}
	}
	relay, held := rooms[0], rooms[1]
	// A room on a live master, first joined after the kill.
	late := ""
	for i := 0; late == ""; i++ {
		if room := fmt.Sprintf("late%d", i); healthy(room) {
			late = room
		}
	}
	join := func(room, peer, instance string) error {
		_, err := s.Join(ctx, store.JoinParams{Room: room, Peer: peer, Token: "t", Instance: instance, Conn: "c-" + peer, Now: storetest.T0})
		return err
	}
	for _, err := range []error{join(relay, "alice", inst), join(relay, "bob", "other"), join(held, "carol", "other")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Send(ctx, store.SendParams{Room: held, Peer: "carol", Conn: "c-carol", Seq: 1, Kind: store.KindOffer,
		Body: []byte(`{"from":"carol"}`), Now: storetest.T0}); err != nil {
		t.Fatal(err)
	}
	rec := &storetest.Recorder{}
	lctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Listen(lctx, inst, rec) }()
	defer func() { stop(); <-done }()
	storetest.Eventually(t, 5*time.Second, "subscribed", func() bool { return rec.Resyncs() >= 1 })

	c.ReplicaOf(t, victim).Kill()
	victim.Kill()
	resyncs := rec.Resyncs()

	if _, err := s.Send(ctx, store.SendParams{Room: relay, Peer: "bob", Conn: "c-bob", Seq: 1, Kind: store.KindCandidate,
		Body: []byte(`{"from":"bob","candidate":null}`), Now: storetest.T0}); err != nil {
		t.Fatalf("relay in a room on a live master: %v", err)
	}
	if err := join(late, "dave", "other"); err != nil {
		t.Fatalf("join in a room on a live master: %v", err)
	}
	n, err := s.Sweep(ctx, storetest.T0.Add(2*time.Second), 100)
	if n < 1 {
		t.Fatalf("sweep with one shard lost fired %d timers (%v), want the held offer's", n, err)
	}
	if msgs, err := s.Pending(ctx, held, "carol", 0); err != nil || len(msgs) != 1 || msgs[0].Event != store.EventExpired {
		t.Fatalf("carol's queue after the sweep: %v, %v; want expired", msgs, err)
	}
	storetest.Eventually(t, 5*time.Second, "Listen polling while its channel's master is down", func() bool {
		return rec.Resyncs() >= resyncs+2
	})
	if msgs, err := s.Pending(ctx, relay, "alice", 0); err != nil || len(msgs) != 2 || !strings.Contains(string(msgs[1].Body), "candidate") {
		t.Fatalf("alice's queue: %v, %v; want peer-joined and the candidate", msgs, err)
	}
}

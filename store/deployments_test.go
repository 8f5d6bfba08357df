package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

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

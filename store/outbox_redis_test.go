package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/store"
	"github.com/switchboard-rtc/switchboard/store/storetest"
)

func TestRedisOutbox(t *testing.T) {
	storetest.RunOutbox(t, func(t *testing.T, opts store.Options) (store.Store, storetest.Outbox) {
		s, _, _ := newRedisStore(t, opts)
		ob, err := s.Outbox("i1", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return s, ob
	})
}

// TestRedisOutboxOffRecordsNothing checks that without an outbox bound no stream is written.
func TestRedisOutboxOffRecordsNothing(t *testing.T) {
	s, c, prefix := newRedisStore(t, store.Options{})
	ctx := context.Background()
	if _, err := s.Join(ctx, store.JoinParams{Room: "r", Peer: "alice", Token: "t", Instance: "i1", Conn: "c", Now: storetest.T0, Sub: "u"}); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, store.OutboxKey(prefix)).Val(); n != 0 {
		t.Fatalf("outbox stream exists with call events off")
	}
	if v := c.HGet(ctx, store.RoomKey(prefix, "r"), "m:alice:sub").Val(); v != "" {
		t.Fatalf("subject stored with call events off: %q", v)
	}
	if _, err := s.Outbox("i1", time.Minute); err == nil {
		t.Fatal("Outbox with call events off: no error")
	}
}

// TestRedisOutboxClaimsFromDeadConsumer checks that an event claimed by a consumer that stops
// (its instance died) goes to another once idle for the claim time, and not before while the
// first keeps it.
func TestRedisOutboxClaimsFromDeadConsumer(t *testing.T) {
	s, _, _ := newRedisStore(t, store.Options{OutboxMax: 10})
	ctx := context.Background()
	a, _ := s.Outbox("a", 300*time.Millisecond)
	b, _ := s.Outbox("b", 300*time.Millisecond)
	if _, err := b.Claim(ctx, 10, time.Millisecond); err != nil { // creates the group
		t.Fatal(err)
	}
	if _, err := s.Join(ctx, store.JoinParams{Room: "r", Peer: "alice", Token: "t", Instance: "i1", Conn: "c", Now: storetest.T0}); err != nil {
		t.Fatal(err)
	}
	got, err := a.Claim(ctx, 10, time.Second)
	if err != nil || len(got) != 1 {
		t.Fatalf("a claimed %v, %v; want 1 event", got, err)
	}
	// a keeps it alive for a while: b gets nothing.
	for range 4 {
		time.Sleep(150 * time.Millisecond)
		if err := a.Keep(ctx, []string{got[0].Ref}); err != nil {
			t.Fatal(err)
		}
		if evs, err := b.Claim(ctx, 10, time.Millisecond); err != nil || len(evs) != 0 {
			t.Fatalf("b claimed %v, %v while a keeps it", evs, err)
		}
	}
	// a stops: b takes it over, same event id.
	var evs []store.Event
	storetest.Eventually(t, 3*time.Second, "b to claim", func() bool {
		evs, err = b.Claim(ctx, 10, 50*time.Millisecond)
		return err != nil || len(evs) > 0
	})
	if err != nil || len(evs) != 1 || evs[0].ID != got[0].ID {
		t.Fatalf("b claimed %v, %v; want event %s", evs, err, got[0].ID)
	}
}

// TestRedisOutboxRestartTakesBackOwnEvents checks that a consumer restarted under the same name
// gets the events it had claimed and not finished at once, without waiting for the claim time.
func TestRedisOutboxRestartTakesBackOwnEvents(t *testing.T) {
	s, _, _ := newRedisStore(t, store.Options{OutboxMax: 10})
	ctx := context.Background()
	before, _ := s.Outbox("a", time.Hour)
	if _, err := before.Claim(ctx, 10, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Join(ctx, store.JoinParams{Room: "r", Peer: "alice", Token: "t", Instance: "i1", Conn: "c", Now: storetest.T0}); err != nil {
		t.Fatal(err)
	}
	got, err := before.Claim(ctx, 10, time.Second)
	if err != nil || len(got) != 1 {
		t.Fatalf("claimed %v, %v", got, err)
	}
	after, _ := s.Outbox("a", time.Hour)
	again, err := after.Claim(ctx, 10, time.Millisecond)
	if err != nil || len(again) != 1 || again[0].ID != got[0].ID {
		t.Fatalf("after a restart: %v, %v; want event %s", again, err, got[0].ID)
	}
	if evs, _ := after.Claim(ctx, 10, time.Millisecond); len(evs) != 0 {
		t.Fatalf("taken back twice: %v", evs)
	}
}

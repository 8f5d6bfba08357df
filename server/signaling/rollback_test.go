package signaling

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-rtc/switchboard/store"
	"github.com/switchboard-rtc/switchboard/store/storetest"
)

// A store that lost acknowledged client messages (as after a failover to a lagging replica:
// here the membership's next is set back in Redis by hand) does not wedge the sender: its next
// message is applied and relayed, not answered out_of_order for good.
func TestStoreRollbackIsRepaired(t *testing.T) {
	_, client, prefix := storetest.Redis(t, store.Options{}) // deletes the prefix's keys at the end
	st := store.NewRedis(redis.NewClient(&redis.Options{Addr: storetest.RedisAddr()}), store.Options{Prefix: prefix})
	r := newRigOn(t, 1, st, Config{})
	alice, bob := r.connect(0, "alice"), r.connect(0, "bob")
	j := r.mustOK(0, alice, EvJoin, obj("room", "r1"))
	r.mustOK(0, bob, EvJoin, obj("room", "r1"))
	for i := 1; i <= 5; i++ {
		r.mustOK(0, alice, EvCandidate, obj("room", "r1", "seq", float64(i), "candidate", cand(i)))
	}
	bob.waitApplied(t, 5)
	// The store forgets alice's messages 3 to 5 (bob got them already).
	field := "m:" + j["peer"].(string) + ":next"
	ctx := context.Background()
	if n, err := client.HGet(ctx, store.RoomKey(prefix, "r1"), field).Int(); err != nil || n != 6 {
		t.Fatalf("alice's next in the store: %d, %v; want 6", n, err)
	}
	if err := client.HSet(ctx, store.RoomKey(prefix, "r1"), field, 3).Err(); err != nil {
		t.Fatal(err)
	}
	rep := r.call(0, alice, EvCandidate, obj("room", "r1", "seq", float64(6), "candidate", cand(6)))
	if rep["ok"] != true {
		t.Fatalf("send after the store went back: %v", rep)
	}
	evs := bob.waitApplied(t, 6)
	if got := evs[5].Payload["candidate"].(map[string]any)["candidate"]; got != cand(6)["candidate"] {
		t.Fatalf("bob's sixth event %v, want candidate 6", evs[5])
	}
	r.mustOK(0, alice, EvCandidate, obj("room", "r1", "seq", float64(7), "candidate", cand(7)))
	bob.waitApplied(t, 7)
}

// A store that forgot server numbers the recipient applied (its last and ack set back in Redis
// by hand) hands them out again; the recipient's instance drops such a message and writes the
// acknowledgement again, after which the store numbers on past it and the messages arrive.
func TestStoreServerSeqRollbackIsRepaired(t *testing.T) {
	_, client, prefix := storetest.Redis(t, store.Options{}) // deletes the prefix's keys at the end
	st := store.NewRedis(redis.NewClient(&redis.Options{Addr: storetest.RedisAddr()}), store.Options{Prefix: prefix})
	r := newRigOn(t, 1, st, Config{})
	alice, bob := r.connect(0, "alice"), r.connect(0, "bob")
	r.mustOK(0, alice, EvJoin, obj("room", "r1"))
	jb := r.mustOK(0, bob, EvJoin, obj("room", "r1"))
	for i := 1; i <= 5; i++ {
		r.mustOK(0, alice, EvCandidate, obj("room", "r1", "seq", float64(i), "candidate", cand(i)))
	}
	bob.waitApplied(t, 5)
	r.mustOK(0, bob, EvAck, obj("room", "r1", "seq", float64(5)))
	ctx := context.Background()
	key, pre := store.RoomKey(prefix, "r1"), "m:"+jb["peer"].(string)+":"
	storetest.Eventually(t, 5*time.Second, "bob's ack of 5 in the store", func() bool {
		n, _ := client.HGet(ctx, key, pre+"ack").Int()
		return n == 5
	})
	// The store forgets bob's numbers 3 to 5.
	if err := client.HSet(ctx, key, pre+"last", 2, pre+"ack", 2).Err(); err != nil {
		t.Fatal(err)
	}
	r.mustOK(0, alice, EvCandidate, obj("room", "r1", "seq", float64(6), "candidate", cand(6))) // bob's number 3 again
	storetest.Eventually(t, 5*time.Second, "the store numbering past what bob applied", func() bool {
		n, _ := client.HGet(ctx, key, pre+"last").Int()
		return n == 5
	})
	r.mustOK(0, alice, EvCandidate, obj("room", "r1", "seq", float64(7), "candidate", cand(7)))
	evs := bob.waitApplied(t, 6)
	if fmt.Sprint(evs[5].Payload["seq"]) != "6" || evs[5].Payload["candidate"].(map[string]any)["candidate"] != cand(7)["candidate"] {
		t.Fatalf("bob's sixth event %v, want candidate 7 as seq 6", evs[5])
	}
}

package signaling

import (
	"context"
	"testing"

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

package signaling

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/redistest"
	"github.com/switchboard-rtc/switchboard/store"
)

// A Cluster shard lost for good (a master and its replica killed) stalls the rooms it holds,
// never the others: rooms on the other masters keep joining and relaying, and their timers keep
// firing (held offers expire, members that went away time out).
func TestLostShardStallsOnlyItsRooms(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	t.Cleanup(redistest.WaitRedials) // after the store's client is closed
	prefix := fmt.Sprintf("sbtest:%016x:", rand.Uint64())
	st, err := store.OpenRedis(c.URL(), store.Options{Prefix: prefix, ResumeWindow: time.Second,
		LeaseGrace: time.Second, HeldTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := newRigOn(t, 2, st, Config{RenewInterval: 300 * time.Millisecond, StoreTimeout: time.Second})

	dead := "dead"
	victim := c.MasterFor(t, store.RoomKey(prefix, dead))
	// Live rooms: on another master, their timer set too (a slot group straddling the edge of
	// the victim's slot range would put it there). The first hashed bucket of the earlier layout
	// on the victim is fine: nothing writes there any more.
	var live []string
	for i := 0; len(live) < 4; i++ {
		room := fmt.Sprintf("live%d", i)
		if c.MasterFor(t, store.RoomKey(prefix, room)) != victim && c.MasterFor(t, store.RoomTimersKey(prefix, room)) != victim {
			live = append(live, room)
		}
	}
	relay, timeout, held, late := live[0], live[1], live[2], live[3]

	alice, bob := r.connect(0, "alice"), r.connect(1, "bob")
	r.mustOK(0, alice, EvJoin, obj("room", relay))
	r.mustOK(1, bob, EvJoin, obj("room", relay))
	tim, ted := r.connect(0, "tim"), r.connect(1, "ted")
	r.mustOK(0, tim, EvJoin, obj("room", timeout))
	r.mustOK(1, ted, EvJoin, obj("room", timeout))
	dan, dora := r.connect(0, "dan"), r.connect(1, "dora")
	r.mustOK(0, dan, EvJoin, obj("room", dead))
	r.mustOK(1, dora, EvJoin, obj("room", dead))
	alice.waitApplied(t, 1)
	tim.waitApplied(t, 1)

	c.ReplicaOf(t, victim).Kill()
	victim.Kill()

	r.mustOK(1, bob, EvCandidate, obj("room", relay, "seq", float64(1), "candidate", cand(1)))
	alice.waitFor(t, func(evs []event) bool {
		return slices.ContainsFunc(evs, func(e event) bool { return e.Name == "candidate" })
	})
	erin := r.connect(0, "erin")
	r.mustOK(0, erin, EvJoin, obj("room", held))
	r.mustOK(0, erin, EvOffer, obj("room", held, "seq", float64(1), "sdp", "v=0 offer"))
	r.hubs[1].Disconnect(ted)
	carol := r.connect(1, "carol")
	r.mustOK(1, carol, EvJoin, obj("room", late))
	if rep := r.call(1, r.connect(1, "dave"), EvJoin, obj("room", dead)); rep["ok"] == true {
		t.Fatalf("join in the lost shard's room: %v", rep)
	}

	waitEvent := func(c *fakeConn, name string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !slices.ContainsFunc(c.applied(), func(e event) bool { return e.Name == name }) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no %s with a shard lost; got %v", c.id, name, c.applied())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitEvent(erin, store.EventExpired) // the held offer's timer fired
	waitEvent(tim, store.EventPeerLeft) // ted's resume window's timer fired
	if slices.ContainsFunc(bob.applied(), func(e event) bool { return e.Name == store.EventPeerLeft }) {
		t.Fatalf("bob, still connected, saw %v", bob.applied())
	}
}

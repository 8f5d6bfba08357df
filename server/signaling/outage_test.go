package signaling

import (
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-rtc/switchboard/internal/redistest"
	"github.com/switchboard-rtc/switchboard/store"
)

// A Redis outage longer than the members' leases removes nobody: once Redis answers again the
// instances renew their members' leases before any sweep fires them.
func TestOutageLongerThanLeasesRemovesNobody(t *testing.T) {
	t.Parallel()
	proxy := redistest.StartProxy(t, redistest.StartServer(t).Addr)
	client := redis.NewClient(&redis.Options{Addr: proxy.Addr, MaxRetries: -1})
	st := store.NewRedis(client, store.Options{Prefix: "sbtest:outage:", ResumeWindow: time.Second, LeaseGrace: time.Second})
	r := newRigOn(t, 2, st, Config{RenewInterval: 300 * time.Millisecond, StoreTimeout: 200 * time.Millisecond})
	alice, bob := r.connect(0, "alice"), r.connect(1, "bob")
	r.mustOK(0, alice, EvJoin, obj("room", "r1"))
	r.mustOK(1, bob, EvJoin, obj("room", "r1"))
	alice.waitApplied(t, 1) // peer-joined

	proxy.Cut()
	time.Sleep(3 * time.Second) // the leases (2 s from the last renewal) are past due
	proxy.Restore(t)
	time.Sleep(2 * time.Second) // renewals and sweeps have run again

	for _, c := range []*fakeConn{alice, bob} {
		if i := slices.IndexFunc(c.applied(), func(e event) bool { return e.Name == "peer-left" }); i >= 0 {
			t.Fatalf("%s got %v after the outage", c.id, c.applied()[i])
		}
	}
	for _, reply := range []Reply{
		r.call(0, alice, EvCandidate, obj("room", "r1", "seq", float64(1), "candidate", cand(0))),
		r.call(1, bob, EvCandidate, obj("room", "r1", "seq", float64(1), "candidate", cand(1))),
	} {
		if reply["ok"] != true {
			t.Fatalf("send after the outage: %v", reply)
		}
	}
}

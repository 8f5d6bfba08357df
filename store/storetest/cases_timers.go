package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/store"
)

var timerCases = []testCase{
	{name: "ResumeTokenAndTakeover", run: func(t *testing.T, e *env) {
		e.join("r", "alice")
		e.join("r", "bob")
		e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", 1))
		e.sendOK("r", "bob", store.KindSkip, "", "")
		e.at(time.Second)
		resume := func(peer, token string) (store.Membership, error) {
			return e.s.Resume(e.ctx, store.ResumeParams{Room: "r", Peer: peer, Token: token, Instance: "i2", Conn: "c2", Now: e.now})
		}
		m, err := resume("bob", "tok-bob")
		if err != nil {
			t.Fatalf("resume: %v", err)
		}
		if m.Peer != "bob" || m.Token != "" || m.Role != store.RoleAnswerer || m.Gen != 2 || m.Next != 2 ||
			m.Acked != 0 || m.Last != 1 || m.Retried {
			t.Fatalf("resume: %+v", m)
		}
		expectPeers(t, m, "alice:caller")
		_, err = e.send("r", "bob", store.KindSkip, "", "")
		expectErr(t, "send on the replaced connection", err, store.ErrNotMember)
		e.conn["r/bob"] = "c2"
		e.sendOK("r", "bob", store.KindSkip, "", "")

		_, err = resume("bob", "wrong")
		expectErr(t, "resume with a wrong token", err, store.ErrResume)
		_, err = resume("zed", "tok-zed")
		expectErr(t, "resume of a stranger", err, store.ErrResume)
		_, err = e.s.Resume(e.ctx, store.ResumeParams{Room: "nowhere", Peer: "bob", Token: "tok-bob", Instance: "i2", Conn: "c3", Now: e.now})
		expectErr(t, "resume in an unknown room", err, store.ErrResume)

		// The takeover renewed bob's lease: only alice's runs out at T0+60s.
		e.at(e.opts.ResumeWindow + e.opts.LeaseGrace)
		e.expectSweep(1)
		e.expectEvents("r", "bob", nth(1, "candidate "+candBody("alice", 1)), nth(2, left("alice", "timeout")))
	}},

	{name: "DisconnectThenSweep", run: func(t *testing.T, e *env) {
		e.join("r", "alice")
		e.join("r", "bob")
		e.at(time.Second)
		disconnect(e, "r", "bob", "not-bobs-conn")
		disconnect(e, "r", "bob", "c-bob")
		_, err := e.send("r", "bob", store.KindSkip, "", "")
		expectErr(t, "send after disconnect", err, store.ErrNotMember)
		e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", 1))

		e.at(time.Second + e.opts.ResumeWindow - time.Millisecond)
		e.expectSweep(0)
		e.at(time.Second + e.opts.ResumeWindow)
		e.expectSweep(1)
		e.expectEvents("r", "alice", nth(1, joined("bob", "answerer")), nth(2, left("bob", "timeout")))
		_, err = e.s.Resume(e.ctx, store.ResumeParams{Room: "r", Peer: "bob", Token: "tok-bob", Instance: "i1", Conn: "c2", Now: e.now})
		expectErr(t, "resume after the sweep", err, store.ErrResume)
	}},

	{name: "ResumeWithinWindow", run: func(t *testing.T, e *env) {
		e.join("r", "alice")
		e.join("r", "bob")
		e.at(time.Second)
		disconnect(e, "r", "bob", "c-bob")
		e.at(time.Second + e.opts.ResumeWindow - time.Millisecond)
		m, err := e.s.Resume(e.ctx, store.ResumeParams{Room: "r", Peer: "bob", Token: "tok-bob", Instance: "i1", Conn: "c2", Now: e.now})
		if err != nil || m.Gen != 2 {
			t.Fatalf("resume within the window: %+v, %v", m, err)
		}
		e.at(time.Second + e.opts.ResumeWindow)
		e.expectSweep(0)
		e.expectEvents("r", "alice", nth(1, joined("bob", "answerer")))
	}},

	{name: "ResumeAfterWindowBeforeSweep", run: func(t *testing.T, e *env) {
		e.join("r", "alice")
		e.join("r", "bob")
		e.at(time.Second)
		disconnect(e, "r", "bob", "c-bob")
		e.at(time.Second + e.opts.ResumeWindow)
		_, err := e.s.Resume(e.ctx, store.ResumeParams{Room: "r", Peer: "bob", Token: "tok-bob", Instance: "i1", Conn: "c2", Now: e.now})
		expectErr(t, "resume once the window passed", err, store.ErrResume)
		e.expectEvents("r", "alice", nth(1, joined("bob", "answerer")), nth(2, left("bob", "timeout")))
		e.expectSweep(0)
	}},

	{name: "JoinEvictsExpiredMember", run: func(t *testing.T, e *env) {
		e.join("r", "alice")
		e.join("r", "bob")
		e.at(time.Second)
		disconnect(e, "r", "bob", "c-bob")
		e.at(time.Second + e.opts.ResumeWindow)
		c := e.join("r", "carol")
		expectPeers(t, c, "alice:caller")
		e.expectEvents("r", "alice", nth(1, joined("bob", "answerer")), nth(2, left("bob", "timeout")),
			nth(3, joined("carol", "answerer")))
	}},

	{name: "LeaseRunsOutWithoutRenew", run: func(t *testing.T, e *env) {
		a := e.join("r", "alice")
		e.join("r", "bob")
		e.at(40 * time.Second)
		err := e.s.Renew(e.ctx, []store.Lease{{Room: "r", Peer: "alice", Gen: a.Gen}, {Room: "r", Peer: "bob", Gen: 99}}, e.now)
		if err != nil {
			t.Fatalf("renew: %v", err)
		}
		lease := e.opts.ResumeWindow + e.opts.LeaseGrace
		e.at(lease - time.Millisecond)
		e.expectSweep(0)
		e.at(lease)
		e.expectSweep(1)
		e.expectEvents("r", "alice", nth(1, joined("bob", "answerer")), nth(2, left("bob", "timeout")))
		e.at(40*time.Second + lease - time.Millisecond)
		e.expectSweep(0)
		e.at(40*time.Second + lease)
		e.expectSweep(1)
		_, err = e.s.Pending(e.ctx, "r", "alice", 0)
		expectErr(t, "pending after the lease ran out", err, store.ErrNotMember)
	}},

	{name: "HeldOfferExpiresViaSweep", run: func(t *testing.T, e *env) {
		holdOffer(e, "r", 1)
		e.at(e.opts.HeldTTL - time.Millisecond)
		e.expectSweep(0)
		e.at(e.opts.HeldTTL)
		e.expectSweep(1)
		e.expectEvents("r", "alice", nth(1, `expired {"what":"offer"}`))
		e.at(e.opts.HeldTTL + time.Second)
		if b := e.join("r", "bob"); b.Last != 0 {
			t.Fatalf("answerer after expiry got %d messages", b.Last)
		}
		e.expectEvents("r", "bob")
		e.expectEvents("r", "alice", nth(1, `expired {"what":"offer"}`), nth(2, joined("bob", "answerer")))
		e.sendErr(store.ErrNoOffer, "r", "bob", store.KindAnswer, "", `{"from":"bob","sdp":"a1"}`)
		e.expectSweep(0)
	}},

	{name: "JoinAfterExpiryBeforeSweep", run: func(t *testing.T, e *env) {
		holdOffer(e, "r", 1)
		e.at(e.opts.HeldTTL)
		if b := e.join("r", "bob"); b.Last != 0 {
			t.Fatalf("answerer after expiry got %d messages", b.Last)
		}
		e.expectEvents("r", "bob")
		e.expectEvents("r", "alice", nth(1, joined("bob", "answerer")), nth(2, `expired {"what":"offer"}`))
		e.expectSweep(0)
		e.sendErr(store.ErrNoOffer, "r", "bob", store.KindAnswer, "", `{"from":"bob","sdp":"a1"}`)
		e.expectEvents("r", "alice", nth(1, joined("bob", "answerer")), nth(2, `expired {"what":"offer"}`))
	}},

	{name: "ConcurrentSweepsFireEachTimerOnce", run: func(t *testing.T, e *env) {
		const rooms = 8
		for i := range rooms {
			room := fmt.Sprintf("r%d", i)
			e.join(room, "alice")
			e.join(room, "bob")
			disconnect(e, room, "bob", "c-bob")
		}
		e.at(e.opts.ResumeWindow)
		var fired atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() {
				n, err := e.s.Sweep(e.ctx, e.now, 100)
				if err != nil {
					errs <- err
				}
				fired.Add(int64(n))
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("sweep: %v", err)
		}
		if fired.Load() != rooms {
			t.Fatalf("concurrent sweeps fired %d timers, want %d", fired.Load(), rooms)
		}
		for i := range rooms {
			e.expectEvents(fmt.Sprintf("r%d", i), "alice", nth(1, joined("bob", "answerer")), nth(2, left("bob", "timeout")))
		}
	}},

	{name: "SweepLimit", run: func(t *testing.T, e *env) {
		for i := range 3 {
			room := fmt.Sprintf("r%d", i)
			e.join(room, "alice")
			disconnect(e, room, "alice", "c-alice")
		}
		e.at(e.opts.ResumeWindow)
		for _, want := range []int{2, 1, 0} {
			n, err := e.s.Sweep(e.ctx, e.now, 2)
			if err != nil || n != want {
				t.Fatalf("sweep with limit 2: %d, %v; want %d", n, err, want)
			}
		}
	}},
}

func disconnect(e *env, room, peer, conn string) {
	e.t.Helper()
	if err := e.s.Disconnect(e.ctx, room, peer, conn, e.now); err != nil {
		e.t.Fatalf("disconnect %s/%s: %v", room, peer, err)
	}
}

package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/store"
)

var joinCases = []testCase{
	{name: "RolesAndPeers", opts: store.Options{Capacity: 3}, run: func(t *testing.T, e *env) {
		a := e.join("r", "alice")
		if a.Role != store.RoleCaller || len(a.Peers) != 0 || a.Peers == nil {
			t.Fatalf("first member: role %q peers %#v, want caller and an empty list", a.Role, a.Peers)
		}
		if a.Peer != "alice" || a.Token != "tok-alice" || a.Gen != 1 || a.Next != 1 || a.Acked != 0 || a.Last != 0 || a.Retried {
			t.Fatalf("first member: %+v", a)
		}
		b := e.join("r", "bob")
		if b.Role != store.RoleAnswerer {
			t.Fatalf("second member role %q, want answerer", b.Role)
		}
		expectPeers(t, b, "alice:caller")
		c := e.join("r", "carol")
		expectPeers(t, c, "alice:caller", "bob:answerer")
		e.expectEvents("r", "alice", nth(1, joined("bob", "answerer")), nth(2, joined("carol", "answerer")))
		e.expectEvents("r", "bob", nth(1, joined("carol", "answerer")))
		e.expectEvents("r", "carol")

		e.sendOK("r", "alice", store.KindLeave, "", "")
		d := e.join("r", "dave")
		if d.Role != store.RoleAnswerer {
			t.Fatalf("joining a room whose caller left: role %q, want answerer", d.Role)
		}
		expectPeers(t, d, "bob:answerer", "carol:answerer")
	}},

	{name: "RoomFull", run: func(t *testing.T, e *env) {
		e.join("r", "alice")
		e.join("r", "bob")
		_, err := e.joinErr("r", "carol")
		expectErr(t, "third join with capacity 2", err, store.ErrRoomFull)
		e.expectEvents("r", "alice", nth(1, joined("bob", "answerer")))
		_, err = e.s.Pending(e.ctx, "r", "carol", 0)
		expectErr(t, "pending of the rejected joiner", err, store.ErrNotMember)
	}},

	{name: "RequiredRole", opts: store.Options{Capacity: 3}, run: func(t *testing.T, e *env) {
		join := func(peer, role string) (store.Membership, error) {
			return e.s.Join(e.ctx, store.JoinParams{Room: "r", Peer: peer, Token: "tok-" + peer,
				Instance: "i1", Conn: "c-" + peer, Now: e.now, Role: role})
		}
		_, err := join("ann", store.RoleAnswerer)
		expectErr(t, "answerer-only join of an empty room", err, store.ErrRole)
		if _, err := e.s.Pending(e.ctx, "r", "ann", 0); !errors.Is(err, store.ErrNotMember) {
			t.Fatalf("refused joiner is a member: %v", err)
		}
		if m, err := join("cal", store.RoleCaller); err != nil || m.Role != store.RoleCaller {
			t.Fatalf("caller-only join of an empty room: %+v, %v", m, err)
		}
		_, err = join("cal2", store.RoleCaller)
		expectErr(t, "caller-only join of a room with a member", err, store.ErrRole)
		if m, err := join("ans", store.RoleAnswerer); err != nil || m.Role != store.RoleAnswerer {
			t.Fatalf("answerer-only join: %+v, %v", m, err)
		}
		// Only the successful answerer's arrival reached the caller.
		e.expectEvents("r", "cal", nth(1, joined("ans", "answerer")))
	}},

	{name: "NonceRetryReturnsSameMembership", run: func(t *testing.T, e *env) {
		p := store.JoinParams{Room: "r", Peer: "alice", Token: "tok-alice", Nonce: "nonce-0001",
			Instance: "i1", Conn: "c1", Now: e.now}
		first, err := e.s.Join(e.ctx, p)
		if err != nil || first.Retried {
			t.Fatalf("first join: %+v, %v", first, err)
		}
		p.Peer, p.Token, p.Conn = "alice2", "tok-alice2", "c2"
		again, err := e.s.Join(e.ctx, p)
		if err != nil {
			t.Fatalf("retried join: %v", err)
		}
		if !again.Retried || again.Peer != "alice" || again.Token != "tok-alice" || again.Role != store.RoleCaller || again.Gen != 2 {
			t.Fatalf("retried join: %+v, want alice's membership with gen 2", again)
		}
		_, err = e.s.Send(e.ctx, store.SendParams{Room: "r", Peer: "alice", Conn: "c1", Seq: 1, Kind: store.KindSkip, Now: e.now})
		expectErr(t, "send on the connection the retry took over from", err, store.ErrNotMember)
		e.conn["r/alice"] = "c2"
		e.sendOK("r", "alice", store.KindSkip, "", "")

		// Still one member: one more fits in a room of two.
		b := e.join("r", "bob")
		expectPeers(t, b, "alice:caller")
		_, err = e.joinErr("r", "carol")
		expectErr(t, "join of a full room", err, store.ErrRoomFull)
		third, err := e.s.Join(e.ctx, p)
		if err != nil || !third.Retried || third.Gen != 3 {
			t.Fatalf("join retried once more: %+v, %v", third, err)
		}
		expectPeers(t, third, "bob:answerer")
	}},

	{name: "HeldOfferHandedToAnswerer", run: func(t *testing.T, e *env) {
		e.join("r", "alice")
		res := e.sendOK("r", "alice", store.KindOffer, "", offerBody("alice", "o1"))
		if !res.Held || !res.HeldExpires.Equal(T0.Add(e.opts.HeldTTL)) || res.Next != 2 {
			t.Fatalf("offer while alone: %+v, want held until T0+%v", res, e.opts.HeldTTL)
		}
		const n = 3
		for i := 1; i <= n; i++ {
			if res := e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", i)); !res.Held {
				t.Fatalf("candidate %d while alone was not held", i)
			}
		}
		b := e.join("r", "bob")
		if b.Last != n+1 || b.Acked != 0 {
			t.Fatalf("answerer: last %d acked %d, want %d and 0", b.Last, b.Acked, n+1)
		}
		want := []string{nth(1, "offer "+offerBody("alice", "o1"))}
		for i := 1; i <= n; i++ {
			want = append(want, nth(i+1, "candidate "+candBody("alice", i)))
		}
		e.expectEvents("r", "bob", want...)
		e.expectEvents("r", "alice", nth(1, joined("bob", "answerer")))

		// Later candidates are relayed live; the answer reaches the caller.
		if res := e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", 9)); res.Held {
			t.Fatal("candidate after the join was held")
		}
		e.sendOK("r", "bob", store.KindAnswer, "", `{"from":"bob","sdp":"a1"}`)
		want = append(want, nth(n+2, "candidate "+candBody("alice", 9)))
		e.expectEvents("r", "bob", want...)
		e.expectEvents("r", "alice", nth(1, joined("bob", "answerer")), nth(2, `answer {"from":"bob","sdp":"a1"}`))
	}},

	{name: "JoinReturnsWhatItHanded", opts: store.Options{Capacity: 3}, run: func(t *testing.T, e *env) {
		a := e.join("r", "alice")
		if len(a.Handed) != 0 {
			t.Fatalf("join of an empty room handed %q", render(a.Handed))
		}
		e.sendOK("r", "alice", store.KindOffer, "", offerBody("alice", "o1"))
		for i := 1; i <= 3; i++ {
			e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", i))
		}
		p := store.JoinParams{Room: "r", Peer: "bob", Token: "tok-bob", Nonce: "nonce-bob1",
			Instance: "i1", Conn: "c-bob", Now: e.now}
		b, err := e.s.Join(e.ctx, p)
		if err != nil {
			t.Fatalf("answerer's join: %v", err)
		}
		want := e.events("r", "bob")
		if got := render(b.Handed); !slices.Equal(got, want) || len(got) != 4 || b.Last != 4 {
			t.Fatalf("answerer's join handed %q (last %d), want what Pending returns: %q", got, b.Last, want)
		}
		p.Peer, p.Token, p.Conn = "bob2", "tok-bob2", "c-bob2"
		again, err := e.s.Join(e.ctx, p)
		if err != nil || !again.Retried {
			t.Fatalf("retried join: %+v, %v", again, err)
		}
		if len(again.Handed) != 0 || again.Last != 4 {
			t.Fatalf("retried join handed %q (last %d), want nothing (last 4)", render(again.Handed), again.Last)
		}
		if c := e.join("r", "carol"); len(c.Handed) != 0 {
			t.Fatalf("join with nothing held handed %q", render(c.Handed))
		}

		// A held offer past its TTL is not handed over.
		e.join("r2", "alice")
		e.sendOK("r2", "alice", store.KindOffer, "", offerBody("alice", "o2"))
		e.at(e.opts.HeldTTL + time.Second)
		if b := e.join("r2", "bob"); len(b.Handed) != 0 || b.Last != 0 {
			t.Fatalf("join after the held offer expired handed %q (last %d)", render(b.Handed), b.Last)
		}
	}},

	{name: "HeldOfferReplacedBySameSender", run: func(t *testing.T, e *env) {
		e.join("r", "alice")
		e.sendOK("r", "alice", store.KindOffer, "", offerBody("alice", "o1"))
		e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", 1))
		e.at(time.Second)
		res := e.sendOK("r", "alice", store.KindOffer, "", offerBody("alice", "o2"))
		if !res.Held || !res.HeldExpires.Equal(e.now.Add(e.opts.HeldTTL)) {
			t.Fatalf("second offer: %+v", res)
		}
		e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", 2))
		e.join("r", "bob")
		e.expectEvents("r", "bob", nth(1, "offer "+offerBody("alice", "o2")), nth(2, "candidate "+candBody("alice", 2)))
		// The first offer's timer is stale: nothing fires at its expiry, and none for the moved one.
		e.at(e.opts.HeldTTL + 2*time.Second)
		e.expectSweep(0)
	}},

	{name: "ExactlyOneAnswererOfTwenty", run: func(t *testing.T, e *env) {
		holdOffer(e, "r", 2)
		const n = 20
		mems := make([]store.Membership, n)
		errs := make([]error, n)
		joinAtOnce(n, func(i int) { mems[i], errs[i] = e.joinErr("r", fmt.Sprintf("p%02d", i)) })
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("two joins succeeded: %d and %d", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, store.ErrRoomFull):
				t.Fatalf("join %d: %v, want ErrRoomFull", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no join succeeded")
		}
		w := mems[winner].Peer
		e.expectEvents("r", w, heldEvents(2)...)
		e.expectEvents("r", "alice", nth(1, joined(w, "answerer")))
	}},

	{name: "ExactlyOneAnswererGetsOfferWithCapacity3", opts: store.Options{Capacity: 3}, run: func(t *testing.T, e *env) {
		holdOffer(e, "r", 2)
		errs := make([]error, 2)
		joinAtOnce(2, func(i int) { _, errs[i] = e.joinErr("r", fmt.Sprintf("p%d", i)) })
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("joins: %v", err)
		}
		withOffer := 0
		for _, p := range []string{"p0", "p1"} {
			ev := e.events("r", p)
			if slices.ContainsFunc(ev, func(s string) bool { return strings.Contains(s, " offer ") }) {
				withOffer++
				if len(ev) < 3 || !slices.Equal(ev[:3], heldEvents(2)) {
					t.Fatalf("%s got the offer but not in order: %q", p, ev)
				}
			}
		}
		if withOffer != 1 {
			t.Fatalf("%d answerers got the held offer, want exactly 1", withOffer)
		}
		if got := len(e.pending("r", "alice")); got != 2 {
			t.Fatalf("caller has %d messages, want 2 peer-joined", got)
		}
	}},

	{name: "NoGapAtHandOff", run: func(t *testing.T, e *env) {
		e.join("r", "alice")
		e.sendOK("r", "alice", store.KindOffer, "", offerBody("alice", "o1"))
		const n = 40
		start := make(chan struct{})
		var wg sync.WaitGroup
		var joinErr error
		wg.Go(func() {
			<-start
			_, joinErr = e.joinErr("r", "bob")
		})
		var held []bool
		for i := 1; i <= n; i++ {
			if i == n/4 {
				close(start)
			}
			if i >= n/4 {
				time.Sleep(200 * time.Microsecond) // let the join land between candidates
			}
			res := e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", i))
			held = append(held, res.Held)
		}
		wg.Wait()
		if joinErr != nil {
			t.Fatalf("join: %v", joinErr)
		}
		t.Logf("%d of %d candidates were held", len(held)-len(slices.DeleteFunc(slices.Clone(held), func(h bool) bool { return h })), n)
		// Held candidates come first, then relayed ones: the hand-off happened once.
		if i := slices.Index(held, false); i >= 0 && slices.Contains(held[i:], true) {
			t.Fatalf("candidate held after one was relayed: %v", held)
		}
		want := []string{nth(1, "offer "+offerBody("alice", "o1"))}
		for i := 1; i <= n; i++ {
			want = append(want, nth(i+1, "candidate "+candBody("alice", i)))
		}
		e.expectEvents("r", "bob", want...)
	}},
}

// holdOffer joins alice to room and holds an offer with n candidates.
func holdOffer(e *env, room string, n int) {
	e.t.Helper()
	e.join(room, "alice")
	e.sendOK(room, "alice", store.KindOffer, "", offerBody("alice", "o1"))
	for i := 1; i <= n; i++ {
		e.sendOK(room, "alice", store.KindCandidate, "", candBody("alice", i))
	}
}

// heldEvents is what holdOffer's answerer receives.
func heldEvents(n int) []string {
	out := []string{nth(1, "offer "+offerBody("alice", "o1"))}
	for i := 1; i <= n; i++ {
		out = append(out, nth(i+1, "candidate "+candBody("alice", i)))
	}
	return out
}

// joinAtOnce runs f(0..n-1) in n goroutines released together.
func joinAtOnce(n int, f func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			f(i)
		})
	}
	close(start)
	wg.Wait()
}

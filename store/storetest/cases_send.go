package storetest

import (
	"testing"

	"github.com/switchboard-rtc/switchboard/store"
)

var sendCases = []testCase{
	{name: "SeqDuplicateGapAndRejection", run: func(t *testing.T, e *env) {
		e.join("r", "alice")
		send := func(seq int64, kind store.Kind, body string) (store.SendResult, error) {
			return e.s.Send(e.ctx, store.SendParams{Room: "r", Peer: "alice", Conn: "c-alice", Seq: seq,
				Kind: kind, Body: []byte(body), Now: e.now})
		}
		check := func(what string, res store.SendResult, err error, want store.SendResult, wantErr error) {
			t.Helper()
			expectErr(t, what, err, wantErr)
			if res.Duplicate != want.Duplicate || res.Gap != want.Gap || res.Next != want.Next || res.Held != want.Held {
				t.Fatalf("%s: %+v, want %+v", what, res, want)
			}
		}
		res, err := send(1, store.KindSkip, "")
		check("seq 1", res, err, store.SendResult{Next: 2}, nil)
		res, err = send(1, store.KindSkip, "")
		check("seq 1 again", res, err, store.SendResult{Duplicate: true, Next: 2}, nil)
		res, err = send(3, store.KindSkip, "")
		check("seq 3 before 2", res, err, store.SendResult{Gap: true, Next: 2}, nil)
		res, err = send(2, store.KindCandidate, candBody("alice", 1))
		check("candidate alone without an offer", res, err, store.SendResult{Next: 3}, store.ErrNoOffer)
		res, err = send(2, store.KindCandidate, candBody("alice", 1))
		check("rejected seq again", res, err, store.SendResult{Duplicate: true, Next: 3}, nil)
		res, err = send(3, store.KindOffer, offerBody("alice", "o1"))
		check("offer", res, err, store.SendResult{Next: 4, Held: true}, nil)
		res, err = send(3, store.KindOffer, offerBody("alice", "other"))
		check("offer again", res, err, store.SendResult{Duplicate: true, Next: 4}, nil)
		res, err = send(5, store.KindCandidate, candBody("alice", 1))
		check("candidate with a gap", res, err, store.SendResult{Gap: true, Next: 4}, nil)
		e.join("r", "bob")
		e.expectEvents("r", "bob", nth(1, "offer "+offerBody("alice", "o1")))

		_, err = e.s.Send(e.ctx, store.SendParams{Room: "r", Peer: "zed", Conn: "c-zed", Seq: 1, Kind: store.KindSkip, Now: e.now})
		expectErr(t, "send from a stranger", err, store.ErrNotMember)
		_, err = e.s.Send(e.ctx, store.SendParams{Room: "nowhere", Peer: "alice", Conn: "c-alice", Seq: 1, Kind: store.KindSkip, Now: e.now})
		expectErr(t, "send to an unknown room", err, store.ErrNotMember)
	}},

	{name: "AnswerNeedsOffer", run: func(t *testing.T, e *env) {
		e.join("r", "alice")
		e.sendErr(store.ErrNoOffer, "r", "alice", store.KindAnswer, "", `{"from":"alice","sdp":"a"}`)
		e.join("r", "bob")
		e.sendErr(store.ErrNoOffer, "r", "bob", store.KindAnswer, "", `{"from":"bob","sdp":"a"}`)
		if res := e.sendOK("r", "alice", store.KindOffer, "", offerBody("alice", "o1")); res.Held {
			t.Fatal("offer to a present peer was held")
		}
		e.expectEvents("r", "bob", nth(1, "offer "+offerBody("alice", "o1")))
		e.sendOK("r", "bob", store.KindAnswer, "", `{"from":"bob","sdp":"a1"}`)
		e.expectEvents("r", "alice", nth(1, joined("bob", "answerer")), nth(2, `answer {"from":"bob","sdp":"a1"}`))
		e.sendErr(store.ErrNoOffer, "r", "bob", store.KindAnswer, "", `{"from":"bob","sdp":"a2"}`)
	}},

	{name: "TooManyHeldCandidates", opts: store.Options{MaxHeldCandidates: 2}, run: func(t *testing.T, e *env) {
		e.join("r", "alice")
		e.sendOK("r", "alice", store.KindOffer, "", offerBody("alice", "o1"))
		e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", 1))
		e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", 2))
		e.sendErr(store.ErrTooManyCandidates, "r", "alice", store.KindCandidate, "", candBody("alice", 3))
		e.sendErr(store.ErrTooManyCandidates, "r", "alice", store.KindCandidate, "", candBody("alice", 4))
		e.join("r", "bob")
		e.expectEvents("r", "bob", heldEvents(2)...)
	}},

	{name: "TooManyHeldOffers", opts: store.Options{MaxHeldOffers: 2}, run: func(t *testing.T, e *env) {
		for _, r := range []string{"r1", "r2", "r3"} {
			e.join(r, "alice")
		}
		e.sendOK("r1", "alice", store.KindOffer, "", offerBody("alice", "o1"))
		e.sendOK("r2", "alice", store.KindOffer, "", offerBody("alice", "o2"))
		e.sendErr(store.ErrTooManyHeld, "r3", "alice", store.KindOffer, "", offerBody("alice", "o3"))
		// Replacing a held offer adds none; a live offer and a hangup are not held.
		if res := e.sendOK("r1", "alice", store.KindOffer, "", offerBody("alice", "o1b")); !res.Held {
			t.Fatal("the replacing offer was not held")
		}
		e.join("r1", "bob") // hands o1b over: one held offer left
		e.expectEvents("r1", "bob", nth(1, "offer "+offerBody("alice", "o1b")))
		e.sendOK("r1", "alice", store.KindOffer, "", offerBody("alice", "live"))
		if res := e.sendOK("r3", "alice", store.KindOffer, "", offerBody("alice", "o3")); !res.Held {
			t.Fatal("the offer was not held once a slot was free")
		}
		e.join("r4", "alice")
		e.sendErr(store.ErrTooManyHeld, "r4", "alice", store.KindOffer, "", offerBody("alice", "o4"))
	}},

	{name: "BacklogFull", opts: store.Options{MaxBacklog: 3}, run: func(t *testing.T, e *env) {
		e.join("r", "alice")
		e.join("r", "bob")
		for i := 1; i <= 3; i++ {
			e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", i))
		}
		res, err := e.send("r", "alice", store.KindCandidate, "", candBody("alice", 4))
		expectErr(t, "fourth message to a member that acknowledged nothing", err, store.ErrBacklogFull)
		if res.Next != 5 {
			t.Fatalf("rejected send: next %d, want 5 (the seq is consumed)", res.Next)
		}
		// Hangup goes to every other member and is refused while one of them is full.
		e.sendErr(store.ErrBacklogFull, "r", "alice", store.KindHangup, "", "")
		if got := len(e.pending("r", "bob")); got != 3 {
			t.Fatalf("bob has %d messages, want 3", got)
		}
		if err := e.s.Ack(e.ctx, "r", "bob", 1); err != nil {
			t.Fatal(err)
		}
		e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", 5))
		e.sendErr(store.ErrBacklogFull, "r", "alice", store.KindOffer, "", offerBody("alice", "o1"))
		// Leave always succeeds.
		e.sendOK("r", "alice", store.KindLeave, "", "")
		e.expectEvents("r", "bob",
			nth(2, "candidate "+candBody("alice", 2)), nth(3, "candidate "+candBody("alice", 3)),
			nth(4, "candidate "+candBody("alice", 5)), nth(5, left("alice", "left")))
	}},

	{name: "AckAndPending", run: func(t *testing.T, e *env) {
		e.join("r", "alice")
		e.join("r", "bob")
		for i := 1; i <= 3; i++ {
			e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", i))
		}
		after := func(n int64) []string {
			msgs, err := e.s.Pending(e.ctx, "r", "bob", n)
			if err != nil {
				t.Fatal(err)
			}
			return render(msgs)
		}
		c := func(i int) string { return nth(i, "candidate "+candBody("alice", i)) }
		expectLines(t, "pending after 0", after(0), c(1), c(2), c(3))
		expectLines(t, "pending after 2", after(2), c(3))
		expectLines(t, "pending after 3", after(3))
		ack := func(seq int64) {
			t.Helper()
			if err := e.s.Ack(e.ctx, "r", "bob", seq); err != nil {
				t.Fatalf("ack %d: %v", seq, err)
			}
		}
		ack(2)
		expectLines(t, "pending after ack 2", after(0), c(3))
		ack(1)
		expectLines(t, "pending after a stale ack", after(0), c(3))
		// Above the last assigned seq (the store lost writes bob had applied): numbers up to 10
		// count as applied, and the next message is 11.
		ack(10)
		expectLines(t, "pending after a future ack", after(0))
		m, err := e.s.Resume(e.ctx, store.ResumeParams{Room: "r", Peer: "bob", Token: "tok-bob", Instance: "i1", Conn: "c-bob", Now: e.now})
		if err != nil || m.Acked != 10 || m.Last != 10 {
			t.Fatalf("resume after acks: %+v, %v; want acked 10 last 10", m, err)
		}
		e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", 4))
		expectLines(t, "pending after the next message", after(0), nth(11, "candidate "+candBody("alice", 4)))
		ack(3)
		expectLines(t, "pending after a stale ack", after(0), nth(11, "candidate "+candBody("alice", 4)))

		expectErr(t, "ack of a stranger", e.s.Ack(e.ctx, "r", "zed", 1), store.ErrNotMember)
		expectErr(t, "ack in an unknown room", e.s.Ack(e.ctx, "nowhere", "bob", 1), store.ErrNotMember)
		_, err = e.s.Pending(e.ctx, "r", "zed", 0)
		expectErr(t, "pending of a stranger", err, store.ErrNotMember)
	}},

	{name: "Hangup", run: func(t *testing.T, e *env) {
		e.join("r", "alice")
		e.join("r", "bob")
		e.sendOK("r", "alice", store.KindOffer, "", offerBody("alice", "o1"))
		e.sendOK("r", "bob", store.KindHangup, "", "")
		e.expectEvents("r", "alice", nth(1, joined("bob", "answerer")), nth(2, `hangup {"from":"bob"}`))
		// The outstanding offer went with the call.
		e.sendErr(store.ErrNoOffer, "r", "bob", store.KindAnswer, "", `{"from":"bob","sdp":"a1"}`)
		e.sendOK("r", "alice", store.KindOffer, "", offerBody("alice", "o2"))
		e.sendOK("r", "bob", store.KindAnswer, "", `{"from":"bob","sdp":"a2"}`)

		// Hangup drops the sender's held offer.
		e.join("r2", "alice")
		e.sendOK("r2", "alice", store.KindOffer, "", offerBody("alice", "o1"))
		e.sendOK("r2", "alice", store.KindHangup, "", "")
		e.sendErr(store.ErrNoOffer, "r2", "alice", store.KindCandidate, "", candBody("alice", 1))
		if b := e.join("r2", "bob"); b.Last != 0 {
			t.Fatalf("answerer after hangup got %d messages", b.Last)
		}
		e.expectEvents("r2", "bob")
		e.at(e.opts.HeldTTL)
		e.expectSweep(0)
		e.expectEvents("r2", "alice", nth(1, joined("bob", "answerer")))
	}},

	{name: "Leave", run: func(t *testing.T, e *env) {
		e.join("r", "alice")
		e.join("r", "bob")
		e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", 1))
		e.sendOK("r", "bob", store.KindLeave, "", "")
		e.expectEvents("r", "alice", nth(1, joined("bob", "answerer")), nth(2, left("bob", "left")))
		_, err := e.send("r", "bob", store.KindSkip, "", "")
		expectErr(t, "send after leave", err, store.ErrNotMember)
		_, err = e.s.Pending(e.ctx, "r", "bob", 0)
		expectErr(t, "pending after leave", err, store.ErrNotMember)
		_, err = e.s.Resume(e.ctx, store.ResumeParams{Room: "r", Peer: "bob", Token: "tok-bob", Instance: "i1", Conn: "c2", Now: e.now})
		expectErr(t, "resume after leave", err, store.ErrResume)

		// The last one out deletes the room: the next member is a caller again.
		e.sendOK("r", "alice", store.KindLeave, "", "")
		if m := e.join("r", "erin"); m.Role != store.RoleCaller || len(m.Peers) != 0 || m.Last != 0 {
			t.Fatalf("join of an emptied room: %+v", m)
		}

		// Leave drops the held offer.
		e.join("r2", "alice")
		e.sendOK("r2", "alice", store.KindOffer, "", offerBody("alice", "o1"))
		e.sendOK("r2", "alice", store.KindLeave, "", "")
		if m := e.join("r2", "bob"); m.Role != store.RoleCaller || m.Last != 0 {
			t.Fatalf("join after the holder left: %+v", m)
		}
		// Only the leases of the two members left fire; the departed ones' do nothing.
		e.at(e.opts.ResumeWindow + e.opts.LeaseGrace)
		e.expectSweep(2)
	}},

	{name: "TargetRequiredAndNoPeer", opts: store.Options{Capacity: 3}, run: func(t *testing.T, e *env) {
		e.join("r", "alice")
		e.join("r", "bob")
		e.join("r", "carol")
		e.sendErr(store.ErrTargetRequired, "r", "alice", store.KindOffer, "", offerBody("alice", "o1"))
		e.sendErr(store.ErrNoPeer, "r", "alice", store.KindOffer, "zed", offerBody("alice", "o1"))
		e.sendErr(store.ErrNoPeer, "r", "alice", store.KindOffer, "alice", offerBody("alice", "o1"))
		e.sendOK("r", "alice", store.KindOffer, "bob", offerBody("alice", "o1"))
		e.expectEvents("r", "bob", nth(1, joined("carol", "answerer")), nth(2, "offer "+offerBody("alice", "o1")))
		e.expectEvents("r", "carol")
		e.sendErr(store.ErrTargetRequired, "r", "bob", store.KindAnswer, "", `{"from":"bob","sdp":"a1"}`)
		e.sendOK("r", "bob", store.KindAnswer, "alice", `{"from":"bob","sdp":"a1"}`)
		e.sendOK("r", "carol", store.KindHangup, "", "")
		e.expectEvents("r", "alice", nth(1, joined("bob", "answerer")), nth(2, joined("carol", "answerer")),
			nth(3, `answer {"from":"bob","sdp":"a1"}`), nth(4, `hangup {"from":"carol"}`))
		e.expectEvents("r", "bob", nth(1, joined("carol", "answerer")), nth(2, "offer "+offerBody("alice", "o1")),
			nth(3, `hangup {"from":"carol"}`))
	}},

	{name: "OutstandingOffersPerPair", opts: store.Options{Capacity: 4}, run: func(t *testing.T, e *env) {
		// A group call: one member offers to two others at once; both answers are accepted.
		e.join("r", "alice")
		e.sendOK("r", "alice", store.KindOffer, "", offerBody("alice", "held"))
		e.join("r", "bob") // gets the held offer
		e.join("r", "carol")
		e.join("r", "dave")
		e.sendErr(store.ErrNoOffer, "r", "carol", store.KindAnswer, "alice", `{"from":"carol","sdp":"a0"}`)
		e.sendOK("r", "alice", store.KindOffer, "carol", offerBody("alice", "o-carol"))
		e.sendOK("r", "alice", store.KindOffer, "dave", offerBody("alice", "o-dave"))
		e.sendOK("r", "bob", store.KindOffer, "dave", offerBody("bob", "o-dave"))
		e.sendOK("r", "dave", store.KindAnswer, "alice", `{"from":"dave","sdp":"a1"}`)
		e.sendOK("r", "carol", store.KindAnswer, "alice", `{"from":"carol","sdp":"a2"}`)
		e.sendOK("r", "bob", store.KindAnswer, "alice", `{"from":"bob","sdp":"a3"}`) // the held offer's answer
		e.sendErr(store.ErrNoOffer, "r", "carol", store.KindAnswer, "alice", `{"from":"carol","sdp":"again"}`)
		// A hangup ends the offers between its sender and the others, not those between two others.
		e.sendOK("r", "alice", store.KindOffer, "dave", offerBody("alice", "o-dave-2"))
		e.sendOK("r", "alice", store.KindHangup, "", "")
		e.sendErr(store.ErrNoOffer, "r", "dave", store.KindAnswer, "alice", `{"from":"dave","sdp":"a4"}`)
		e.sendOK("r", "dave", store.KindAnswer, "bob", `{"from":"dave","sdp":"a5"}`)
		// A member that leaves takes the offers to it along.
		e.sendOK("r", "carol", store.KindOffer, "dave", offerBody("carol", "o-dave"))
		e.sendOK("r", "dave", store.KindLeave, "", "")
		e.join("r", "erin")
		e.sendErr(store.ErrNoOffer, "r", "erin", store.KindAnswer, "carol", `{"from":"erin","sdp":"a6"}`)
		e.expectEvents("r", "alice", nth(1, joined("bob", "answerer")), nth(2, joined("carol", "answerer")),
			nth(3, joined("dave", "answerer")), nth(4, `answer {"from":"dave","sdp":"a1"}`),
			nth(5, `answer {"from":"carol","sdp":"a2"}`), nth(6, `answer {"from":"bob","sdp":"a3"}`),
			nth(7, `peer-left {"peer":"dave","reason":"left"}`), nth(8, joined("erin", "answerer")))
	}},
}

func expectLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
		}
	}
}

package storetest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/store"
)

var listenCases = []testCase{
	{name: "ListenDeliversToItsInstance", run: func(t *testing.T, e *env) {
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		h1, h2 := &Recorder{}, &Recorder{}
		var (
			mu        sync.Mutex
			storeErrs []error
		)
		// A handler may call the store.
		h1.OnDeliver = func(d store.Delivery) {
			_, err := e.s.Pending(e.ctx, d.Room, d.Peer, 0)
			mu.Lock()
			storeErrs = append(storeErrs, err)
			mu.Unlock()
		}
		errc := make(chan error, 2)
		go func() { errc <- e.s.Listen(ctx, "i1", h1) }()
		go func() { errc <- e.s.Listen(ctx, "i2", h2) }()
		stopped := false
		stop := func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			for range 2 {
				select {
				case err := <-errc:
					expectErr(t, "Listen after cancel", err, context.Canceled)
				case <-time.After(5 * time.Second):
					t.Fatal("Listen did not return after its context was cancelled")
				}
			}
		}
		defer stop()
		Eventually(t, 5*time.Second, "Resync at the start of both Listens", func() bool {
			return h1.Resyncs() >= 1 && h2.Resyncs() >= 1
		})

		holdOffer(e, "r", 1)
		_, err := e.s.Join(e.ctx, store.JoinParams{Room: "r", Peer: "bob", Token: "tok-bob", Instance: "i2", Conn: "c-bob", Now: e.now})
		if err != nil {
			t.Fatal(err)
		}
		e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", 2))
		e.sendOK("r", "bob", store.KindAnswer, "", `{"from":"bob","sdp":"a1"}`)
		want1 := []string{"r/alice 1 " + joined("bob", "answerer"), `r/alice 2 answer {"from":"bob","sdp":"a1"}`}
		want2 := []string{
			"r/bob 1 offer " + offerBody("alice", "o1"),
			"r/bob 2 candidate " + candBody("alice", 1),
			"r/bob 3 candidate " + candBody("alice", 2),
		}
		Eventually(t, 5*time.Second, "deliveries", func() bool {
			return len(h1.Lines()) >= len(want1) && len(h2.Lines()) >= len(want2)
		})
		// Concurrent publishes may arrive in any order; the client orders them by seq.
		expectSameLines(t, "instance i1", h1.Lines(), want1)
		expectSameLines(t, "instance i2", h2.Lines(), want2)

		// Away members get no deliveries; after a resume on i1 they arrive there.
		disconnect(e, "r", "bob", "c-bob")
		e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", 3))
		if _, err := e.s.Resume(e.ctx, store.ResumeParams{Room: "r", Peer: "bob", Token: "tok-bob", Instance: "i1", Conn: "c2", Now: e.now}); err != nil {
			t.Fatal(err)
		}
		e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", 4))
		Eventually(t, 5*time.Second, "delivery after resume", func() bool {
			return hasLine(h1.Lines(), "r/bob 5 candidate")
		})
		if hasLine(h1.Lines(), "r/bob 4 ") || hasLine(h2.Lines(), "r/bob 4 ") || len(h2.Lines()) != len(want2) {
			t.Fatalf("delivery while away or to the old instance: i1 %q, i2 %q", h1.Lines(), h2.Lines())
		}
		mu.Lock()
		for _, err := range storeErrs {
			if err != nil {
				t.Errorf("store call from a handler: %v", err)
			}
		}
		mu.Unlock()

		stop()
		n := len(h1.Lines())
		e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", 5))
		time.Sleep(50 * time.Millisecond)
		if got := len(h1.Lines()); got != n {
			t.Fatalf("delivery after Listen returned: %q", h1.Lines()[n:])
		}
	}},

	{name: "CancelledContext", run: func(t *testing.T, e *env) {
		e.join("r", "bob")
		ctx, cancel := context.WithCancel(e.ctx)
		cancel()
		_, joinErr := e.s.Join(ctx, store.JoinParams{Room: "r", Peer: "alice", Token: "t", Instance: "i1", Conn: "c", Now: e.now})
		_, resumeErr := e.s.Resume(ctx, store.ResumeParams{Room: "r", Peer: "bob", Token: "tok-bob", Instance: "i1", Conn: "c", Now: e.now})
		_, sendErr := e.s.Send(ctx, store.SendParams{Room: "r", Peer: "bob", Conn: "c-bob", Seq: 1, Kind: store.KindSkip, Now: e.now})
		_, pendingErr := e.s.Pending(ctx, "r", "bob", 0)
		_, sweepErr := e.s.Sweep(ctx, e.now, 10)
		errs := map[string]error{
			"join":       joinErr,
			"resume":     resumeErr,
			"send":       sendErr,
			"ack":        e.s.Ack(ctx, "r", "bob", 1),
			"pending":    pendingErr,
			"disconnect": e.s.Disconnect(ctx, "r", "bob", "c-bob", e.now),
			"renew":      e.s.Renew(ctx, []store.Lease{{Room: "r", Peer: "bob", Gen: 1}}, e.now),
			"sweep":      sweepErr,
			"ping":       e.s.Ping(ctx),
			"listen":     e.s.Listen(ctx, "i1", &Recorder{}),
		}
		for _, name := range slices.Sorted(maps.Keys(errs)) {
			if !errors.Is(errs[name], context.Canceled) {
				t.Errorf("%s with a cancelled context: %v, want context.Canceled", name, errs[name])
			}
		}
		// Nothing happened.
		m := e.join("r", "carol")
		expectPeers(t, m, "bob:caller")
		e.sendOK("r", "bob", store.KindSkip, "", "")
	}},
}

func expectSameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(g, w) {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
}

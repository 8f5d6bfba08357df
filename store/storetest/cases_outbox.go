package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/store"
)

// Outbox is what the outbox cases need of a store's outbox.
type Outbox interface {
	Claim(ctx context.Context, n int, wait time.Duration) ([]store.Event, error)
	Done(ctx context.Context, refs []string) error
	Stats(ctx context.Context) (store.OutboxStats, error)
}

// RunOutbox runs the call event cases. newStore returns an empty store with opts (OutboxMax set)
// and its outbox.
func RunOutbox(t *testing.T, newStore func(t *testing.T, opts store.Options) (store.Store, Outbox)) {
	t.Run("every call event in order", func(t *testing.T) {
		s, ob := newStore(t, store.Options{OutboxMax: 100, HeldTTL: 10 * time.Second})
		e := &env{t: t, ctx: context.Background(), s: s, now: T0, seq: map[string]int64{}, conn: map[string]string{}}
		join := func(room, peer, sub, meta string) {
			t.Helper()
			if _, err := s.Join(e.ctx, store.JoinParams{Room: room, Peer: peer, Token: "t", Instance: "i1",
				Conn: "c-" + peer, Now: e.now, Sub: sub, Meta: []byte(meta)}); err != nil {
				t.Fatal(err)
			}
		}
		join("r", "alice", "user-a", `{"ring":"bob"}`)
		e.sendOK("r", "alice", store.KindOffer, "", offerBody("alice", "o"))
		e.sendOK("r", "alice", store.KindCandidate, "", candBody("alice", 1)) // no event
		e.at(2 * time.Second)
		join("r", "bob", "user-b", "")
		e.sendOK("r", "bob", store.KindAnswer, "", `{"from":"bob","sdp":"a"}`) // no event
		e.sendOK("r", "bob", store.KindHangup, "", "")
		e.sendOK("r", "bob", store.KindLeave, "", "")
		// Another room: a held offer expires; its sender times out after a disconnect, and
		// alice, never renewed, after her lease.
		join("x", "carol", "user-c", "")
		e.sendOK("x", "carol", store.KindOffer, "", offerBody("carol", "o"))
		e.at(20 * time.Second)
		e.sweep()
		if err := s.Disconnect(e.ctx, "x", "carol", "c-carol", e.now); err != nil {
			t.Fatal(err)
		}
		e.at(2 * time.Minute)
		e.sweep()

		evs := claimAll(t, ob, 13)
		var got []string
		for _, ev := range evs {
			got = append(got, describe(ev))
		}
		want := []string{
			`peer.joined r alice user-a role=caller meta={"ring":"bob"}`,
			`offer.held r alice user-a meta={"ring":"bob"} expires=+10s`,
			`peer.joined r bob user-b role=answerer`,
			`offer.answered r bob user-b caller=alice held=2s`,
			`call.hangup r bob user-b`,
			`peer.left r bob user-b reason=left`,
			`peer.joined x carol user-c role=caller`,
			`offer.held x carol user-c expires=+10s`,
			`offer.expired x carol user-c held=18s`,
			`peer.left x carol user-c reason=timeout`,
			`peer.left r alice user-a reason=timeout`,
		}
		// Events of one room are in order; rooms' timers may sit in different buckets of the
		// timer set, so two rooms' events of one sweep come in either order.
		if !slices.Equal(byRoom(got), byRoom(want)) || len(got) != len(want) {
			t.Fatalf("events:\n got  %q\n want %q", got, want)
		}
		ids := map[string]bool{}
		for _, ev := range evs {
			if ev.ID == "" || ids[ev.ID] {
				t.Fatalf("event id %q empty or repeated", ev.ID)
			}
			ids[ev.ID] = true
		}
		st, err := ob.Stats(e.ctx)
		if err != nil || st.Depth != len(want) || st.Oldest.IsZero() || st.Recorded != int64(len(want)) {
			t.Fatalf("stats before done: %+v, %v; want depth %d", st, err, len(want))
		}
		refs := make([]string, 0, len(evs))
		for _, ev := range evs {
			refs = append(refs, ev.Ref)
		}
		if err := ob.Done(e.ctx, refs); err != nil {
			t.Fatal(err)
		}
		if st, err := ob.Stats(e.ctx); err != nil || st.Depth != 0 {
			t.Fatalf("stats after done: %+v, %v", st, err)
		}
	})

	t.Run("a full outbox drops the oldest and counts them", func(t *testing.T) {
		s, ob := newStore(t, store.Options{OutboxMax: 3})
		ctx := context.Background()
		for i := range 5 {
			if _, err := s.Join(ctx, store.JoinParams{Room: fmt.Sprintf("r%d", i), Peer: "p", Token: "t",
				Instance: "i1", Conn: "c", Now: T0}); err != nil {
				t.Fatal(err)
			}
		}
		st, err := ob.Stats(ctx)
		if err != nil || st.Depth != 3 || st.Dropped != 2 || st.Recorded != 5 {
			t.Fatalf("stats: %+v, %v; want depth 3, dropped 2, recorded 5", st, err)
		}
		var rooms []string
		for _, ev := range claimAll(t, ob, 3) {
			rooms = append(rooms, ev.Room)
		}
		if !slices.Equal(rooms, []string{"r2", "r3", "r4"}) {
			t.Fatalf("kept events of rooms %v, want the newest three", rooms)
		}
		if st, _ := ob.Stats(ctx); st.Dropped != 0 {
			t.Fatalf("dropped counted again: %+v", st)
		}
	})
}

// claimAll claims until max events arrived or nothing more comes.
func claimAll(t *testing.T, ob Outbox, max int) []store.Event {
	t.Helper()
	var out []store.Event
	for len(out) < max {
		evs, err := ob.Claim(context.Background(), max-len(out), 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		out = append(out, evs...)
	}
	return out
}

// describe renders an event as "type room peer sub [fields]", times relative to the event.
func describe(ev store.Event) string {
	parts := []string{ev.Type, ev.Room, ev.Peer, ev.Sub}
	if ev.Role != "" {
		parts = append(parts, "role="+ev.Role)
	}
	if len(ev.Meta) > 0 {
		parts = append(parts, "meta="+string(ev.Meta))
	}
	if ev.Caller != "" {
		parts = append(parts, "caller="+ev.Caller)
	}
	if !ev.Expires.IsZero() {
		parts = append(parts, "expires=+"+ev.Expires.Sub(ev.Time).String())
	}
	if ev.Type == store.EvOfferAnswered || ev.Type == store.EvOfferExpired {
		parts = append(parts, "held="+ev.Held.String())
	}
	if ev.Reason != "" {
		parts = append(parts, "reason="+ev.Reason)
	}
	return strings.Join(parts, " ")
}

// byRoom returns descriptions (as describe writes them: type, room, …) grouped by room, each
// room's in their order.
func byRoom(descs []string) []string {
	var rooms []string
	per := map[string][]string{}
	for _, d := range descs {
		f := strings.Fields(d)
		room := ""
		if len(f) > 1 {
			room = f[1]
		}
		if _, ok := per[room]; !ok {
			rooms = append(rooms, room)
		}
		per[room] = append(per[room], d)
	}
	slices.Sort(rooms)
	var out []string
	for _, r := range rooms {
		out = append(out, per[r]...)
	}
	return out
}

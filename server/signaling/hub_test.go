package signaling

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeConn records what the hub emits.
type fakeConn struct {
	id string
	mu sync.Mutex
	ev []event
	ch chan struct{} // signalled on every emit
}

type event struct {
	Name    string
	Payload map[string]any
}

func newConn(id string) *fakeConn { return &fakeConn{id: id, ch: make(chan struct{}, 1)} }

func (c *fakeConn) ID() string { return c.id }

func (c *fakeConn) Emit(name string, payload json.RawMessage) {
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		panic(fmt.Sprintf("hub emitted invalid JSON %q: %v", payload, err))
	}
	c.mu.Lock()
	c.ev = append(c.ev, event{name, m})
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

// applied returns the events in seq order, each seq once, as a client applying them would.
func (c *fakeConn) applied() []event {
	c.mu.Lock()
	defer c.mu.Unlock()
	bySeq := map[int64]event{}
	for _, e := range c.ev {
		bySeq[int64(e.Payload["seq"].(float64))] = e
	}
	var out []event
	for s := int64(1); ; s++ {
		e, ok := bySeq[s]
		if !ok {
			return out
		}
		out = append(out, e)
	}
}

// waitFor waits until ok holds for everything emitted so far, and returns it.
func (c *fakeConn) waitFor(t *testing.T, ok func([]event) bool) []event {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		c.mu.Lock()
		evs := append([]event(nil), c.ev...)
		c.mu.Unlock()
		if ok(evs) {
			return evs
		}
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("%s: condition not met; emitted %v", c.id, evs)
		}
	}
}

// waitApplied waits until at least n events are applicable in order.
func (c *fakeConn) waitApplied(t *testing.T, n int) []event {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		if evs := c.applied(); len(evs) >= n {
			return evs
		}
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("%s: want %d events, have %v", c.id, n, c.applied())
		}
	}
}

type rig struct {
	t    *testing.T
	st   store.Store
	hubs []*Hub
}

// newRig runs n hubs (instances) on one memory store.
func newRig(t *testing.T, n int, opts store.Options, cfg Config) *rig {
	t.Helper()
	return newRigOn(t, n, store.NewMemory(opts), cfg)
}

// newRigOn runs n hubs (instances) on st, which it closes at the end.
func newRigOn(t *testing.T, n int, st store.Store, cfg Config) *rig {
	t.Helper()
	r := &rig{t: t, st: st}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		c := cfg
		c.Instance = fmt.Sprintf("inst%d", i)
		if c.ResendInterval == 0 {
			c.ResendInterval = 100 * time.Millisecond
		}
		c.SweepInterval = 20 * time.Millisecond
		h := NewHub(c, st, slog.New(slog.DiscardHandler))
		r.hubs = append(r.hubs, h)
		wg.Add(1)
		go func() { defer wg.Done(); _ = h.Run(ctx) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait(); _ = st.Close() })
	return r
}

func (r *rig) connect(hub int, id string) *fakeConn {
	c := newConn(id)
	r.hubs[hub].Connect(c)
	return c
}

// call runs an event and returns its reply, failing on a transport-level surprise.
func (r *rig) call(hub int, c *fakeConn, ev string, payload any) Reply {
	r.t.Helper()
	reply, after := r.hubs[hub].Handle(context.Background(), c, ev, raw(payload))
	if after != nil {
		after()
	}
	return reply
}

func (r *rig) mustOK(hub int, c *fakeConn, ev string, payload any) Reply {
	r.t.Helper()
	reply := r.call(hub, c, ev, payload)
	if reply["ok"] != true {
		r.t.Fatalf("%s %v: %v", ev, payload, reply)
	}
	return reply
}

func code(r Reply) Code {
	if e, ok := r["error"].(*Error); ok {
		return e.Code
	}
	return ""
}

func obj(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// raw encodes a payload as the transport hands it over: JSON, undecoded.
func raw(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func cand(i int) map[string]any {
	return obj("candidate", fmt.Sprintf("candidate:%d 1 udp 2122260223 127.0.0.1 %d typ host", i, 50000+i), "sdpMid", "0", "sdpMLineIndex", float64(0))
}

func TestHeldOfferAcrossInstances(t *testing.T) {
	r := newRig(t, 2, store.Options{}, Config{})
	caller := r.connect(0, "a1")
	j := r.mustOK(0, caller, EvJoin, obj("room", "r1", "nonce", "nonce-0001"))
	if j["role"] != store.RoleCaller || j["next"] != int64(1) || j["token"] == "" || j["capacity"] != 2 {
		t.Fatalf("join reply %v", j)
	}
	rep := r.mustOK(0, caller, EvOffer, obj("room", "r1", "seq", float64(1), "sdp", "v=0 offer"))
	if rep["held"] != true || rep["expiresInMs"].(int64) <= 0 {
		t.Fatalf("offer reply %v", rep)
	}
	for i := range 5 {
		rep = r.mustOK(0, caller, EvCandidate, obj("room", "r1", "seq", float64(2+i), "candidate", cand(i)))
		if rep["held"] != true {
			t.Fatalf("candidate %d not held: %v", i, rep)
		}
	}
	answerer := r.connect(1, "b1")
	j2 := r.mustOK(1, answerer, EvJoin, obj("room", "r1"))
	if j2["role"] != store.RoleAnswerer {
		t.Fatalf("join reply %v", j2)
	}
	evs := answerer.waitApplied(t, 6)
	if evs[0].Name != "offer" || evs[0].Payload["sdp"] != "v=0 offer" || evs[0].Payload["from"] != j["peer"] || evs[0].Payload["room"] != "r1" {
		t.Fatalf("first event %v", evs[0])
	}
	for i := range 5 {
		got := evs[1+i].Payload["candidate"].(map[string]any)["candidate"]
		if evs[1+i].Name != "candidate" || got != cand(i)["candidate"] {
			t.Fatalf("event %d: %v", 1+i, evs[1+i])
		}
	}
	joined := caller.waitApplied(t, 1)
	if joined[0].Name != "peer-joined" || joined[0].Payload["peer"] != j2["peer"] {
		t.Fatalf("caller got %v", joined)
	}
	r.mustOK(1, answerer, EvAnswer, obj("room", "r1", "seq", float64(1), "sdp", "v=0 answer"))
	evs = caller.waitApplied(t, 2)
	if evs[1].Name != "answer" || evs[1].Payload["sdp"] != "v=0 answer" {
		t.Fatalf("caller got %v", evs)
	}
	r.mustOK(1, answerer, EvHangup, obj("room", "r1", "seq", float64(2)))
	if evs = caller.waitApplied(t, 3); evs[2].Name != "hangup" {
		t.Fatalf("caller got %v", evs)
	}
	r.mustOK(0, caller, EvLeave, obj("room", "r1", "seq", float64(7)))
	if evs = answerer.waitApplied(t, 7); evs[6].Name != "peer-left" || evs[6].Payload["reason"] != "left" {
		t.Fatalf("answerer got %v", evs[6])
	}
	if rep := r.call(0, caller, EvOffer, obj("room", "r1", "seq", float64(8), "sdp", "x")); code(rep) != CodeNotJoined {
		t.Fatalf("offer after leave: %v", rep)
	}
}

// handoffStore records the members whose queue is read, and can return less of what a join
// handed over than it did.
type handoffStore struct {
	store.Store
	trim      bool   // drop the last handed message from Join's result
	afterJoin func() // runs once Join is done, before the hub has the result

	listening chan struct{} // gets a value when an instance starts listening

	mu   sync.Mutex
	read []string // peers Pending was called for
}

func (s *handoffStore) Listen(ctx context.Context, instance string, h store.Handler) error {
	return s.Store.Listen(ctx, instance, listenSignal{h, s.listening})
}

// listenSignal reports the first Resync, which comes once the listener is registered.
type listenSignal struct {
	store.Handler
	ch chan struct{}
}

func (l listenSignal) Resync() {
	select {
	case l.ch <- struct{}{}:
	default:
	}
	l.Handler.Resync()
}

func (s *handoffStore) Join(ctx context.Context, p store.JoinParams) (store.Membership, error) {
	ms, err := s.Store.Join(ctx, p)
	if s.afterJoin != nil {
		s.afterJoin()
	}
	if s.trim && len(ms.Handed) > 0 {
		ms.Handed = ms.Handed[:len(ms.Handed)-1]
	}
	return ms, err
}

func (s *handoffStore) Pending(ctx context.Context, room, peer string, after int64) ([]store.Message, error) {
	s.mu.Lock()
	s.read = append(s.read, peer)
	s.mu.Unlock()
	return s.Store.Pending(ctx, room, peer, after)
}

func (s *handoffStore) reads(peer string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.read {
		if p == peer {
			n++
		}
	}
	return n
}

// A join that takes a held offer emits what the store handed over without reading the queue
// back, unless the store's answer does not cover the whole queue or something later was
// published to the new member before the hub had attached it.
func TestHandOffEmitsWhatJoinHanded(t *testing.T) {
	for _, c := range []struct {
		name       string
		trim, live bool
		events     int // what the answerer has right after its join
		reads      int // of the answerer's queue
	}{
		{name: "handed", events: 3, reads: 0},
		{name: "handed-in-part", trim: true, events: 3, reads: 1},
		{name: "candidate-right-after", live: true, events: 4, reads: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := &handoffStore{Store: store.NewMemory(store.Options{}), trim: c.trim, listening: make(chan struct{}, 2)}
			r := newRigOn(t, 2, st, Config{})
			for range 2 {
				<-st.listening
			}
			caller := r.connect(0, "a1")
			jc := r.mustOK(0, caller, EvJoin, obj("room", "r1"))
			r.mustOK(0, caller, EvOffer, obj("room", "r1", "seq", float64(1), "sdp", "v=0 offer"))
			for i := range 2 {
				r.mustOK(0, caller, EvCandidate, obj("room", "r1", "seq", float64(2+i), "candidate", cand(i)))
			}
			if c.live {
				// Relayed live, and published while the answerer's hub is not done joining it.
				st.afterJoin = func() {
					st.afterJoin = nil
					res, err := st.Store.Send(context.Background(), store.SendParams{Room: "r1", Peer: jc["peer"].(string),
						Conn: "a1", Seq: 4, Kind: store.KindCandidate, Body: []byte(`{"candidate":"late"}`), Now: time.Now()})
					if err != nil || res.Held {
						t.Errorf("late candidate: %+v, %v", res, err)
					}
				}
			}
			answerer := r.connect(1, "b1")
			j := r.mustOK(1, answerer, EvJoin, obj("room", "r1"))
			// The post-reply step has run: everything is out, with no resend needed.
			evs := answerer.applied()
			if len(evs) != c.events || evs[0].Name != "offer" || evs[1].Name != "candidate" || evs[2].Name != "candidate" {
				t.Fatalf("answerer got %v right after its join, want the offer and %d candidates", evs, c.events-1)
			}
			if got := st.reads(j["peer"].(string)); got != c.reads {
				t.Fatalf("the answerer's queue was read %d times, want %d", got, c.reads)
			}
		})
	}
}

// A resume sent again on the same connection does not send the backlog again: the first one did.
func TestResumeSentAgainSendsBacklogOnce(t *testing.T) {
	st := &handoffStore{Store: store.NewMemory(store.Options{}), listening: make(chan struct{}, 2)}
	r := newRigOn(t, 2, st, Config{ResendInterval: time.Hour})
	for range 2 {
		<-st.listening
	}
	a, b := r.connect(0, "a"), r.connect(1, "b")
	ja := r.mustOK(0, a, EvJoin, obj("room", "r"))
	r.mustOK(1, b, EvJoin, obj("room", "r"))
	r.hubs[0].Disconnect(a)
	r.mustOK(1, b, EvOffer, obj("room", "r", "seq", float64(1), "sdp", "o"))
	for i := range 3 {
		r.mustOK(1, b, EvCandidate, obj("room", "r", "seq", float64(2+i), "candidate", cand(i)))
	}
	peer := ja["peer"].(string)
	before := st.reads(peer)
	a2 := r.connect(1, "a2")
	resume := obj("room", "r", "peer", peer, "token", ja["token"])
	r.mustOK(1, a2, EvResume, resume)
	r.mustOK(1, a2, EvResume, resume) // its reply was late: sent again
	r.mustOK(1, a2, EvResume, resume)
	if got := a2.applied(); len(got) != 5 { // peer-joined, offer, 3 candidates
		t.Fatalf("resumed connection has %d events, want 5: %v", len(got), got)
	}
	a2.mu.Lock()
	emitted := len(a2.ev)
	a2.mu.Unlock()
	if emitted != 5 {
		t.Fatalf("the backlog of 5 was emitted as %d events over three resumes, want 5", emitted)
	}
	if got := st.reads(peer) - before; got != 1 {
		t.Fatalf("the queue was read %d times for three resumes, want 1", got)
	}
}

// A first member's join reads no queue, unless something was published to it before the hub
// attached it.
func TestFirstJoinReadsQueueOnlyWhenItMissedSomething(t *testing.T) {
	for _, missed := range []bool{false, true} {
		t.Run(fmt.Sprint("missed=", missed), func(t *testing.T) {
			st := &handoffStore{Store: store.NewMemory(store.Options{}), listening: make(chan struct{}, 1)}
			r := newRigOn(t, 1, st, Config{})
			<-st.listening
			if missed {
				// A second member joins through the store while the hub is not done joining
				// the first: its peer-joined is published to a member the hub has not attached.
				st.afterJoin = func() {
					st.afterJoin = nil
					if _, err := st.Store.Join(context.Background(), store.JoinParams{Room: "r1", Peer: "p2",
						Token: "t2", Instance: "elsewhere", Conn: "c2", Now: time.Now()}); err != nil {
						t.Errorf("second join: %v", err)
					}
				}
			}
			a := r.connect(0, "a1")
			j := r.mustOK(0, a, EvJoin, obj("room", "r1"))
			want, reads := 0, 0
			if missed {
				want, reads = 1, 1
			}
			if evs := a.applied(); len(evs) != want || want == 1 && evs[0].Name != "peer-joined" {
				t.Fatalf("first member got %v right after its join, want %d peer-joined", evs, want)
			}
			if got := st.reads(j["peer"].(string)); got != reads {
				t.Fatalf("its queue was read %d times, want %d", got, reads)
			}
		})
	}
}

// The transport may run events of one connection in any order: the hub applies them by seq.
func TestOutOfOrderClientMessagesApplyInOrder(t *testing.T) {
	r := newRig(t, 1, store.Options{}, Config{})
	a, b := r.connect(0, "a"), r.connect(0, "b")
	r.mustOK(0, a, EvJoin, obj("room", "r"))
	r.mustOK(0, b, EvJoin, obj("room", "r"))
	r.mustOK(0, a, EvOffer, obj("room", "r", "seq", float64(1), "sdp", "o"))
	const n = 50
	var wg sync.WaitGroup
	replies := make([]Reply, n)
	for i := n - 1; i >= 0; i-- { // highest first: the worst order
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = r.call(0, a, EvCandidate, obj("room", "r", "seq", float64(2+i), "candidate", cand(i)))
		}()
	}
	wg.Wait()
	for i, rep := range replies {
		if rep["ok"] != true {
			t.Fatalf("candidate %d: %v", i, rep)
		}
	}
	got := b.waitApplied(t, 1+n) // b joined second: the offer, then n candidates
	var cands []string
	for _, e := range got {
		if e.Name == "candidate" {
			cands = append(cands, e.Payload["candidate"].(map[string]any)["candidate"].(string))
		}
	}
	if len(cands) != n {
		t.Fatalf("got %d candidates", len(cands))
	}
	for i, c := range cands {
		if c != cand(i)["candidate"] {
			t.Fatalf("candidate %d is %q", i, c)
		}
	}
	// A retry of an applied seq is acknowledged as a duplicate and not applied again.
	rep := r.call(0, a, EvCandidate, obj("room", "r", "seq", float64(2), "candidate", cand(0)))
	if rep["ok"] != true || rep["duplicate"] != true {
		t.Fatalf("duplicate: %v", rep)
	}
}

func TestGapTimesOut(t *testing.T) {
	r := newRig(t, 1, store.Options{}, Config{ReorderTimeout: 50 * time.Millisecond})
	a := r.connect(0, "a")
	r.mustOK(0, a, EvJoin, obj("room", "r"))
	rep := r.call(0, a, EvOffer, obj("room", "r", "seq", float64(2), "sdp", "o"))
	if code(rep) != CodeOutOfOrder {
		t.Fatalf("want out_of_order, got %v", rep)
	}
	// seq 2 was not consumed: after seq 1, it applies.
	r.mustOK(0, a, EvOffer, obj("room", "r", "seq", float64(1), "sdp", "o"))
	r.mustOK(0, a, EvOffer, obj("room", "r", "seq", float64(2), "sdp", "o2"))
}

func TestBadInput(t *testing.T) {
	r := newRig(t, 1, store.Options{MaxHeldCandidates: 2}, Config{Limits: Limits{MaxSDPBytes: 100, MaxCandidateBytes: 100}})
	a := r.connect(0, "a")
	other := r.connect(0, "o")
	r.mustOK(0, a, EvJoin, obj("room", "r"))
	long := strings.Repeat("x", 101)
	cases := []struct {
		name    string
		ev      string
		payload any
		want    Code
	}{
		{"not an object", EvJoin, "r", CodeBadRequest},
		{"null", EvJoin, nil, CodeBadRequest},
		{"array", EvOffer, []any{1}, CodeBadRequest},
		{"binary", EvOffer, []byte{1, 2}, CodeBadRequest},
		{"room wrong type", EvJoin, obj("room", float64(3)), CodeBadRequest},
		{"room bad chars", EvJoin, obj("room", "a{b}"), CodeBadRequest},
		{"room too long", EvJoin, obj("room", strings.Repeat("r", 129)), CodeBadRequest},
		{"bad nonce", EvJoin, obj("room", "x", "nonce", "short"), CodeBadRequest},
		{"unknown event", "frobnicate", obj(), CodeUnknownEvent},
		{"missing seq", EvOffer, obj("room", "r", "sdp", "x"), CodeBadRequest},
		{"seq zero", EvOffer, obj("room", "r", "seq", float64(0), "sdp", "x"), CodeBadRequest},
		{"seq fraction", EvOffer, obj("room", "r", "seq", 1.5, "sdp", "x"), CodeBadRequest},
		{"seq string", EvOffer, obj("room", "r", "seq", "1", "sdp", "x"), CodeBadRequest},
		{"not joined", EvOffer, obj("room", "elsewhere", "seq", float64(1), "sdp", "x"), CodeNotJoined},
		{"ack not joined", EvAck, obj("room", "elsewhere", "seq", float64(1)), CodeNotJoined},
		{"resume bad token", EvResume, obj("room", "other", "peer", "nobody", "token", "nope"), CodeResumeFailed},
		{"join twice", EvJoin, obj("room", "r"), CodeBadRequest},
	}
	for _, tc := range cases {
		if rep := r.call(0, a, tc.ev, tc.payload); code(rep) != tc.want {
			t.Errorf("%s: want %s, got %v", tc.name, tc.want, rep)
		}
	}
	// Sequenced rejections consume their seq, in order.
	seq := 0
	next := func() float64 { seq++; return float64(seq) }
	seqCases := []struct {
		name    string
		ev      string
		payload map[string]any
		want    Code
	}{
		{"sdp too large", EvOffer, obj("sdp", long), CodeTooLarge},
		{"sdp missing", EvOffer, obj(), CodeBadRequest},
		{"sdp empty", EvOffer, obj("sdp", ""), CodeBadRequest},
		{"answer without offer", EvAnswer, obj("sdp", "x"), CodeNoOffer},
		{"candidate without offer", EvCandidate, obj("candidate", cand(1)), CodeNoOffer},
		{"candidate wrong type", EvCandidate, obj("candidate", "str"), CodeBadRequest},
		{"candidate too large", EvCandidate, obj("candidate", obj("candidate", long)), CodeTooLarge},
		{"candidate bad index", EvCandidate, obj("candidate", obj("candidate", "c", "sdpMLineIndex", float64(-1))), CodeBadRequest},
		{"bad target", EvOffer, obj("sdp", "x", "to", "no such peer"), CodeBadRequest},
	}
	for _, tc := range seqCases {
		p := tc.payload
		p["room"], p["seq"] = "r", next()
		if rep := r.call(0, a, tc.ev, p); code(rep) != tc.want {
			t.Errorf("%s: want %s, got %v", tc.name, tc.want, rep)
		}
	}
	// Nothing was held: an answerer gets no offer. Then too many held candidates.
	r.mustOK(0, a, EvOffer, obj("room", "r", "seq", next(), "sdp", "good"))
	r.mustOK(0, a, EvCandidate, obj("room", "r", "seq", next(), "candidate", cand(1)))
	r.mustOK(0, a, EvCandidate, obj("room", "r", "seq", next(), "candidate", cand(2)))
	if rep := r.call(0, a, EvCandidate, obj("room", "r", "seq", next(), "candidate", cand(3))); code(rep) != CodeTooManyCandidates {
		t.Fatalf("third held candidate: %v", rep)
	}
	r.mustOK(0, other, EvJoin, obj("room", "r"))
	evs := other.waitApplied(t, 3)
	time.Sleep(50 * time.Millisecond)
	if evs = other.applied(); len(evs) != 3 || evs[0].Payload["sdp"] != "good" {
		t.Fatalf("answerer got %v", evs)
	}
	full := r.connect(0, "f")
	if rep := r.call(0, full, EvJoin, obj("room", "r")); code(rep) != CodeRoomFull {
		t.Fatalf("third join: %v", rep)
	}
}

func TestResumeDeliversMissedMessagesOnce(t *testing.T) {
	r := newRig(t, 2, store.Options{}, Config{})
	a, b := r.connect(0, "a"), r.connect(1, "b")
	ja := r.mustOK(0, a, EvJoin, obj("room", "r"))
	r.mustOK(1, b, EvJoin, obj("room", "r"))
	a.waitApplied(t, 1) // peer-joined
	r.mustOK(0, a, EvAck, obj("room", "r", "seq", float64(1)))
	r.hubs[0].Disconnect(a)
	r.mustOK(1, b, EvOffer, obj("room", "r", "seq", float64(1), "sdp", "while away"))
	a2 := r.connect(1, "a2")
	rep := r.mustOK(1, a2, EvResume, obj("room", "r", "peer", ja["peer"], "token", ja["token"]))
	if rep["acked"] != int64(1) || rep["next"] != int64(1) || rep["capacity"] != 2 {
		t.Fatalf("resume reply %v", rep)
	}
	evs := a2.waitFor(t, func(evs []event) bool { return len(evs) > 0 })
	if evs[0].Name != "offer" || evs[0].Payload["seq"] != float64(2) {
		t.Fatalf("resumed conn got %v", evs)
	}
	// The old token holder's old connection is gone; the new one acts.
	r.mustOK(1, a2, EvAnswer, obj("room", "r", "seq", float64(1), "sdp", "ans"))
	if got := b.waitApplied(t, 1); got[0].Name != "answer" {
		t.Fatalf("b got %v", got)
	}
}

func TestUnackedMessagesAreResent(t *testing.T) {
	r := newRig(t, 1, store.Options{}, Config{})
	a, b := r.connect(0, "a"), r.connect(0, "b")
	r.mustOK(0, a, EvJoin, obj("room", "r"))
	r.mustOK(0, b, EvJoin, obj("room", "r"))
	count := func() int {
		a.mu.Lock()
		defer a.mu.Unlock()
		n := 0
		for _, e := range a.ev {
			if e.Name == "peer-joined" {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(3 * time.Second)
	for count() < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if count() < 3 {
		t.Fatalf("peer-joined sent %d times without an ack, want resends", count())
	}
	r.mustOK(0, a, EvAck, obj("room", "r", "seq", float64(1)))
	time.Sleep(150 * time.Millisecond)
	before := count()
	time.Sleep(400 * time.Millisecond)
	if after := count(); after != before {
		t.Fatalf("still resending after ack: %d -> %d", before, after)
	}
}

// The protocol and room logic must not depend on the Socket.IO library.
func TestNoSocketIOImport(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if strings.Contains(string(out), "zishang520") {
		t.Fatal("package signaling imports the Socket.IO library")
	}
}

// panicStore panics in Send, standing in for any bug below the hub.
type panicStore struct{ store.Store }

func (panicStore) Send(context.Context, store.SendParams) (store.SendResult, error) {
	panic("bug")
}

func TestPanicBecomesInternalError(t *testing.T) {
	st := panicStore{store.NewMemory(store.Options{})}
	h := NewHub(Config{Instance: "i"}, st, slog.New(slog.DiscardHandler))
	c := newConn("c")
	h.Connect(c)
	if rep, _ := h.Handle(context.Background(), c, EvJoin, raw(obj("room", "r"))); rep["ok"] != true {
		t.Fatalf("join: %v", rep)
	}
	rep, _ := h.Handle(context.Background(), c, EvOffer, raw(obj("room", "r", "seq", float64(1), "sdp", "x")))
	if code(rep) != CodeInternal {
		t.Fatalf("want internal, got %v", rep)
	}
	// The membership is still usable: the panicking turn was released.
	rep, _ = h.Handle(context.Background(), c, EvAck, raw(obj("room", "r", "seq", float64(1))))
	if rep["ok"] != true {
		t.Fatalf("ack after panic: %v", rep)
	}
}

func TestOpenServerCreatesUnguessableRooms(t *testing.T) {
	r := newRig(t, 1, store.Options{}, Config{})
	a, b := r.connect(0, "a"), r.connect(0, "b")
	ra := r.mustOK(0, a, EvJoin, obj())
	rb := r.mustOK(0, b, EvJoin, obj())
	room := ra["room"].(string)
	if len(room) != 22 || room == rb["room"] || ra["role"] != store.RoleCaller {
		t.Fatalf("created rooms %v and %v", ra, rb)
	}
	// The room is an ordinary room from then on: a second peer joins it by name.
	c := r.connect(0, "c")
	if rc := r.mustOK(0, c, EvJoin, obj("room", room)); rc["role"] != store.RoleAnswerer {
		t.Fatalf("join of a created room: %v", rc)
	}
}

func TestRoomTokens(t *testing.T) {
	const good, wrongRoom, callerOnly, answererOnly = "good", "wrong", "caller-only", "answerer-only"
	authorize := func(token, room string, _ time.Time) (Grant, *Error) {
		switch token {
		case "":
			return Grant{}, errorf(CodeUnauthorized, "token required")
		case good:
			return Grant{}, nil
		case wrongRoom:
			return Grant{}, errorf(CodeForbidden, "other room")
		case callerOnly:
			return Grant{Role: store.RoleCaller}, nil
		case answererOnly:
			return Grant{Role: store.RoleAnswerer}, nil
		}
		return Grant{}, errorf(CodeUnauthorized, "invalid")
	}
	r := newRig(t, 1, store.Options{Capacity: 3}, Config{Authorize: authorize, Capacity: 3})
	c := r.connect(0, "c")
	for _, tc := range []struct {
		payload map[string]any
		want    Code
	}{
		{obj("room", "r"), CodeUnauthorized},
		{obj("room", "r", "token", "forged"), CodeUnauthorized},
		{obj("room", "r", "token", wrongRoom), CodeForbidden},
		{obj("token", good), CodeBadRequest}, // no server-made rooms when tokens are required
		{obj("room", "r", "token", answererOnly), CodeForbidden},
		{obj("room", "r", "token", float64(5)), CodeBadRequest},
	} {
		if rep := r.call(0, c, EvJoin, tc.payload); code(rep) != tc.want {
			t.Errorf("join %v: want %s, got %v", tc.payload, tc.want, rep)
		}
	}
	if rep := r.mustOK(0, c, EvJoin, obj("room", "r", "token", callerOnly)); rep["capacity"] != 3 {
		t.Fatalf("join reply announces capacity %v, want 3", rep["capacity"])
	}
	d := r.connect(0, "d")
	if rep := r.call(0, d, EvJoin, obj("room", "r", "token", callerOnly)); code(rep) != CodeForbidden {
		t.Fatalf("second caller-only join: %v", rep)
	}
	r.mustOK(0, d, EvJoin, obj("room", "r", "token", answererOnly))
}

func TestLimitsPerConnection(t *testing.T) {
	r := newRig(t, 1, store.Options{}, Config{MaxRooms: 2, EventRate: 1, EventBurst: 5})
	a := r.connect(0, "a")
	r.mustOK(0, a, EvJoin, obj("room", "r1"))
	r.mustOK(0, a, EvJoin, obj("room", "r2"))
	if rep := r.call(0, a, EvJoin, obj("room", "r3")); code(rep) != CodeTooManyRooms {
		t.Fatalf("third room: %v", rep)
	}
	// Burst of 5 spent (3 joins, 2 below); the next events are refused until tokens refill.
	r.mustOK(0, a, EvAck, obj("room", "r1", "seq", float64(1)))
	r.mustOK(0, a, EvAck, obj("room", "r1", "seq", float64(1)))
	rep := r.call(0, a, EvOffer, obj("room", "r1", "seq", float64(1), "sdp", "o"))
	if code(rep) != CodeRateLimited {
		t.Fatalf("sixth event in a burst of 5: %v", rep)
	}
	// The refused message consumed nothing: after a refill its seq applies.
	time.Sleep(1100 * time.Millisecond)
	if rep := r.call(0, a, EvOffer, obj("room", "r1", "seq", float64(1), "sdp", "o")); rep["ok"] != true || rep["held"] != true {
		t.Fatalf("offer after refill: %v", rep)
	}
	// Another connection has its own bucket.
	b := r.connect(0, "b")
	r.mustOK(0, b, EvJoin, obj("room", "r1"))
}

// A panic while a batch of sequenced messages is sent releases the turn and every waiter.
func TestPanicReleasesSequencing(t *testing.T) {
	st := &flakyPanicStore{Store: store.NewMemory(store.Options{})}
	h := NewHub(Config{Instance: "i", ReorderTimeout: 2 * time.Second}, st, slog.New(slog.DiscardHandler))
	c := newConn("c")
	h.Connect(c)
	if rep, _ := h.Handle(context.Background(), c, EvJoin, raw(obj("room", "r"))); rep["ok"] != true {
		t.Fatalf("join: %v", rep)
	}
	st.panics.Store(true)
	if rep, _ := h.Handle(context.Background(), c, EvOffer, raw(obj("room", "r", "seq", float64(1), "sdp", "x"))); code(rep) != CodeInternal {
		t.Fatalf("want internal, got %v", rep)
	}
	st.panics.Store(false)
	done := make(chan Reply, 1)
	go func() {
		rep, _ := h.Handle(context.Background(), c, EvOffer, raw(obj("room", "r", "seq", float64(1), "sdp", "x")))
		done <- rep
	}()
	select {
	case rep := <-done:
		if rep["ok"] != true {
			t.Fatalf("seq 1 after the panic: %v", rep)
		}
	case <-time.After(time.Second):
		t.Fatal("the turn was not released after a panic")
	}
}

type flakyPanicStore struct {
	store.Store
	panics atomic.Bool
}

func (s *flakyPanicStore) Send(ctx context.Context, p store.SendParams) (store.SendResult, error) {
	if s.panics.Load() {
		panic("bug")
	}
	return s.Store.Send(ctx, p)
}

// Join and resume replies announce the size limits, so that a client refuses an oversized
// message before sending it.
func TestRepliesAnnounceLimits(t *testing.T) {
	lim := Limits{MaxSDPBytes: 1000, MaxCandidateBytes: 100, MaxMessageBytes: 4000}
	r := newRig(t, 1, store.Options{}, Config{Limits: lim})
	a, b := r.connect(0, "a"), r.connect(0, "b")
	j := r.mustOK(0, a, EvJoin, obj("room", "r"))
	res := r.mustOK(0, b, EvResume, obj("room", "r", "peer", j["peer"], "token", j["token"]))
	for _, rep := range []Reply{j, res} {
		raw, err := json.Marshal(rep)
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ Limits map[string]int }
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"maxSdpBytes": 1000, "maxCandidateBytes": 100, "maxMessageBytes": 4000}
		if fmt.Sprint(got.Limits) != fmt.Sprint(want) {
			t.Fatalf("limits in %s, want %v", raw, want)
		}
	}
}

// Package storetest is the contract suite every store.Store implementation must pass.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/store"
)

// T0 is the suite's clock origin; every call passes T0 plus some offset as its now.
var T0 = time.UnixMilli(1_700_000_000_000)

// Run runs the contract suite. newStore returns an empty store with opts, cleaned up by t.
func Run(t *testing.T, newStore func(t *testing.T, opts store.Options) store.Store) {
	for _, c := range slices.Concat(joinCases, sendCases, timerCases, listenCases) {
		t.Run(c.name, func(t *testing.T) {
			opts := c.opts
			if opts.ResumeWindow == 0 {
				opts.ResumeWindow = 30 * time.Second
			}
			if opts.LeaseGrace == 0 {
				opts.LeaseGrace = 30 * time.Second
			}
			if opts.HeldTTL == 0 {
				opts.HeldTTL = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			e := &env{
				t: t, ctx: ctx, s: newStore(t, opts), opts: opts.WithDefaults(), now: T0,
				seq: make(map[string]int64), conn: make(map[string]string),
			}
			c.run(t, e)
		})
	}
}

type testCase struct {
	name string
	opts store.Options
	run  func(t *testing.T, e *env)
}

// env is one test's store with small helpers. Members are connected as conn "c-<peer>" on
// instance "i1" unless a test says otherwise.
type env struct {
	t    *testing.T
	ctx  context.Context
	s    store.Store
	opts store.Options
	now  time.Time
	mu   sync.Mutex        // guards seq and conn for concurrent helpers
	seq  map[string]int64  // room/peer → next client seq
	conn map[string]string // room/peer → connection owning the membership
}

func (e *env) at(d time.Duration) { e.now = T0.Add(d) }

func (e *env) connOf(room, peer string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.conn[room+"/"+peer]; ok {
		return c
	}
	return "c-" + peer
}

func (e *env) joinErr(room, peer string) (store.Membership, error) {
	return e.s.Join(e.ctx, store.JoinParams{
		Room: room, Peer: peer, Token: "tok-" + peer, Instance: "i1", Conn: "c-" + peer, Now: e.now,
	})
}

func (e *env) join(room, peer string) store.Membership {
	e.t.Helper()
	m, err := e.joinErr(room, peer)
	if err != nil {
		e.t.Fatalf("join %s/%s: %v", room, peer, err)
	}
	return m
}

// send sends the peer's next sequenced message. A rejection consumes the seq, as in the store.
func (e *env) send(room, peer string, kind store.Kind, to, body string) (store.SendResult, error) {
	key := room + "/" + peer
	e.mu.Lock()
	seq := e.seq[key] + 1
	e.mu.Unlock()
	res, err := e.s.Send(e.ctx, store.SendParams{
		Room: room, Peer: peer, Conn: e.connOf(room, peer), Seq: seq, Kind: kind, To: to,
		Body: []byte(body), Now: e.now,
	})
	if err == nil || store.Rejected(err) {
		e.mu.Lock()
		e.seq[key] = seq
		e.mu.Unlock()
	}
	return res, err
}

func (e *env) sendOK(room, peer string, kind store.Kind, to, body string) store.SendResult {
	e.t.Helper()
	res, err := e.send(room, peer, kind, to, body)
	if err != nil {
		e.t.Fatalf("send %s from %s/%s: %v", kind, room, peer, err)
	}
	return res
}

func (e *env) sendErr(want error, room, peer string, kind store.Kind, to, body string) {
	e.t.Helper()
	_, err := e.send(room, peer, kind, to, body)
	if !errors.Is(err, want) {
		e.t.Fatalf("send %s from %s/%s: got %v, want %v", kind, room, peer, err, want)
	}
}

func (e *env) pending(room, peer string) []store.Message {
	e.t.Helper()
	msgs, err := e.s.Pending(e.ctx, room, peer, 0)
	if err != nil {
		e.t.Fatalf("pending %s/%s: %v", room, peer, err)
	}
	return msgs
}

// events renders a member's pending messages as "seq event body" lines.
func (e *env) events(room, peer string) []string {
	e.t.Helper()
	return render(e.pending(room, peer))
}

func render(msgs []store.Message) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%d %s %s", m.Seq, m.Event, m.Body))
	}
	return out
}

func (e *env) expectEvents(room, peer string, want ...string) {
	e.t.Helper()
	if got := e.events(room, peer); !slices.Equal(got, want) {
		e.t.Fatalf("pending of %s/%s:\n got  %q\n want %q", room, peer, got, want)
	}
}

func (e *env) sweep() int {
	e.t.Helper()
	n, err := e.s.Sweep(e.ctx, e.now, 1000)
	if err != nil {
		e.t.Fatalf("sweep: %v", err)
	}
	return n
}

func (e *env) expectSweep(want int) {
	e.t.Helper()
	if got := e.sweep(); got != want {
		e.t.Fatalf("sweep at T0+%v fired %d timers, want %d", e.now.Sub(T0), got, want)
	}
}

func joined(peer, role string) string {
	return fmt.Sprintf(`peer-joined {"peer":"%s","role":"%s"}`, peer, role)
}
func left(peer, reason string) string {
	return fmt.Sprintf(`peer-left {"peer":"%s","reason":"%s"}`, peer, reason)
}
func offerBody(from, sdp string) string {
	return fmt.Sprintf(`{"from":"%s","sdp":"%s"}`, from, sdp)
}
func candBody(from string, i int) string {
	return fmt.Sprintf(`{"from":"%s","candidate":{"candidate":"c%d"}}`, from, i)
}

// nth prefixes an event line with its seq.
func nth(seq int, line string) string { return fmt.Sprintf("%d %s", seq, line) }

func expectErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func expectPeers(t *testing.T, m store.Membership, want ...string) {
	t.Helper()
	var got []string
	for _, p := range m.Peers {
		got = append(got, p.Peer+":"+p.Role)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("peers of %s: got %v, want %v", m.Peer, got, want)
	}
}

// Recorder is a store.Handler that keeps what it gets.
type Recorder struct {
	mu         sync.Mutex
	deliveries []store.Delivery
	resyncs    int
	// OnDeliver, if set, runs inside Deliver (to check a handler may call the store).
	OnDeliver func(store.Delivery)
}

// Deliver implements store.Handler.
func (r *Recorder) Deliver(d store.Delivery) {
	r.mu.Lock()
	r.deliveries = append(r.deliveries, d)
	f := r.OnDeliver
	r.mu.Unlock()
	if f != nil {
		f(d)
	}
}

// Resync implements store.Handler.
func (r *Recorder) Resync() {
	r.mu.Lock()
	r.resyncs++
	r.mu.Unlock()
}

// Deliveries returns a copy of the deliveries so far.
func (r *Recorder) Deliveries() []store.Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deliveries)
}

// Resyncs returns how many times Resync was called.
func (r *Recorder) Resyncs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resyncs
}

// Lines renders the deliveries as "room/peer seq event body".
func (r *Recorder) Lines() []string {
	var out []string
	for _, d := range r.Deliveries() {
		out = append(out, fmt.Sprintf("%s/%s %d %s %s", d.Room, d.Peer, d.Seq, d.Event, d.Body))
	}
	return out
}

// Eventually polls cond every 10 ms until it holds or timeout passes.
func Eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hasLine(lines []string, prefix string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
}

package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/store"
)

// The example of the Standard Webhooks specification: any library implementing it agrees.
func TestSignMatchesTheSpecification(t *testing.T) {
	key, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	secret := NewSecret()
	key, _ := ParseSecret(secret)
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"evt_1"}`)
	headers := func(id string, ts time.Time, sig string) http.Header {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		h.Set(HeaderSignature, sig)
		return h
	}
	good := Sign(key, "evt_1", now, body)
	if err := Verify(secret, headers("evt_1", now, good), body, now.Add(time.Minute)); err != nil {
		t.Fatalf("valid: %v", err)
	}
	if err := Verify(secret, headers("evt_1", now, "v1,AAAA "+good), body, now); err != nil {
		t.Fatalf("valid among several signatures: %v", err)
	}
	for _, tc := range []struct {
		name   string
		secret string
		h      http.Header
		body   string
		want   error
	}{
		{"tampered body", secret, headers("evt_1", now, good), `{"id":"evt_2"}`, ErrSignature},
		{"other id", secret, headers("evt_2", now, good), string(body), ErrSignature},
		{"other secret", NewSecret(), headers("evt_1", now, good), string(body), ErrSignature},
		{"old", secret, headers("evt_1", now.Add(-6*time.Minute), Sign(key, "evt_1", now.Add(-6*time.Minute), body)), string(body), ErrTimestamp},
		{"no signature", secret, headers("evt_1", now, ""), string(body), ErrHeaders},
		{"bad secret", "whsec_short", headers("evt_1", now, good), string(body), ErrSecret},
	} {
		if err := Verify(tc.secret, tc.h, []byte(tc.body), now); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

// receiver is a webhook endpoint on 127.0.0.1 that verifies every request and answers what
// answer says for the n-th request (1-based) of an event id.
type receiver struct {
	t      *testing.T
	secret string
	url    string
	answer func(id string, n int) int

	mu   sync.Mutex
	got  []Payload      // verified requests, in arrival order
	seen map[string]int // requests per event id
}

func newReceiver(t *testing.T, secret string, answer func(id string, n int) int) *receiver {
	r := &receiver{t: t, secret: secret, answer: answer, seen: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: r}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	r.url = "http://" + ln.Addr().String() + "/hook"
	return r
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := Verify(r.secret, req.Header, body, time.Now()); err != nil {
		r.t.Errorf("receiver: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil || p.ID != req.Header.Get(HeaderID) {
		r.t.Errorf("receiver: payload %s: %v", body, err)
	}
	r.mu.Lock()
	r.got = append(r.got, p)
	r.seen[p.ID]++
	n := r.seen[p.ID]
	r.mu.Unlock()
	w.WriteHeader(r.answer(p.ID, n))
}

func (r *receiver) payloads() []Payload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Payload(nil), r.got...)
}

// rig is a memory store with an outbox and a running sender.
type rig struct {
	st  *store.Memory
	ob  *store.MemoryOutbox
	met *countMetrics
}

func newRig(t *testing.T, cfg Config) *rig {
	st := store.NewMemory(store.Options{OutboxMax: 100})
	met := &countMetrics{n: map[string]int{}}
	cfg.Metrics = met
	if cfg.FirstRetry == 0 {
		cfg.FirstRetry = 20 * time.Millisecond
	}
	cfg.KeepEvery = 50 * time.Millisecond
	s, err := New(cfg, st.Outbox(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &rig{st: st, ob: st.Outbox(), met: met}
}

// hold makes one caller join room and hold an offer: peer.joined, then offer.held.
func (r *rig) hold(t *testing.T, room string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	if _, err := r.st.Join(ctx, store.JoinParams{Room: room, Peer: "alice", Token: "t", Instance: "i", Conn: "c",
		Now: now, Sub: "user-a", Meta: []byte(`{"ring": "bob"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.st.Send(ctx, store.SendParams{Room: room, Peer: "alice", Conn: "c", Seq: 1, Kind: store.KindOffer,
		Body: []byte(`{"from":"alice","sdp":"secret-sdp"}`), Now: now}); err != nil {
		t.Fatal(err)
	}
}

type countMetrics struct {
	mu sync.Mutex
	n  map[string]int
}

func (m *countMetrics) add(k string) { m.mu.Lock(); m.n[k]++; m.mu.Unlock() }
func (m *countMetrics) get(k string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n[k]
}
func (m *countMetrics) Taken(typ string)                             { m.add("taken") }
func (m *countMetrics) Attempt(result string)                        { m.add("attempt " + result) }
func (m *countMetrics) Finished(typ, result string, _ time.Duration) { m.add(typ + " " + result) }
func (m *countMetrics) Outbox(store.OutboxStats)                     {}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func depth(t *testing.T, ob *store.MemoryOutbox) int {
	st, err := ob.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Depth
}

func TestSenderRetriesUntil2xx(t *testing.T) {
	secret := NewSecret()
	recv := newReceiver(t, secret, func(_ string, n int) int {
		if n <= 3 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	r := newRig(t, Config{URLs: []string{recv.url}, Secret: secret, Types: []string{store.EvOfferHeld}})
	r.hold(t, "room1")
	eventually(t, "the event delivered and done", func() bool {
		return r.met.get("offer.held delivered") == 1 && depth(t, r.ob) == 0
	})
	got := recv.payloads()
	if len(got) != 4 {
		t.Fatalf("receiver got %d requests, want 4 (three 500s, then 200)", len(got))
	}
	for _, p := range got {
		if p.ID != got[0].ID {
			t.Fatalf("ids differ between attempts: %s, %s", p.ID, got[0].ID)
		}
	}
	p := got[0]
	if p.Type != store.EvOfferHeld || p.Room != "room1" || p.Peer != "alice" || p.Sub != "user-a" ||
		string(p.Meta) != `{"ring":"bob"}` || p.ExpiresAt == nil || p.ExpiresAt.Sub(p.Timestamp) != store.DefaultHeldTTL {
		t.Fatalf("payload %+v", p)
	}
	if n := r.met.get("attempt 5xx"); n != 3 {
		t.Fatalf("counted %d 5xx attempts, want 3", n)
	}
	if r.met.get("taken") != 2 { // peer.joined was taken and filtered out
		t.Fatalf("taken %d events, want 2", r.met.get("taken"))
	}
}

func TestSenderStopsOn410AndAtTheHorizon(t *testing.T) {
	secret := NewSecret()
	gone := newReceiver(t, secret, func(string, int) int { return http.StatusGone })
	broken := newReceiver(t, secret, func(string, int) int { return http.StatusBadGateway })
	r := newRig(t, Config{URLs: []string{gone.url, broken.url}, Secret: secret, Horizon: 400 * time.Millisecond,
		FirstRetry: 50 * time.Millisecond, Types: []string{store.EvPeerJoined}})
	r.hold(t, "room1")
	eventually(t, "the event given up and done", func() bool {
		return r.met.get("peer.joined gave_up") == 1 && depth(t, r.ob) == 0
	})
	if n := len(gone.payloads()); n != 1 {
		t.Fatalf("410 endpoint got %d requests, want 1", n)
	}
	if r.met.get("peer.joined gone") != 1 {
		t.Fatal("410 not counted as gone")
	}
	// 400 ms with waits of 25-50, 50-100, 100-200 ms...: a few attempts, then none.
	n := len(broken.payloads())
	if n < 2 || n > 6 {
		t.Fatalf("failing endpoint got %d requests within the horizon", n)
	}
	time.Sleep(300 * time.Millisecond)
	if m := len(broken.payloads()); m != n {
		t.Fatalf("attempts after giving up: %d, then %d", n, m)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	src := store.NewMemory(store.Options{OutboxMax: 1}).Outbox()
	for name, cfg := range map[string]Config{
		"no url":     {Secret: NewSecret()},
		"bad url":    {URLs: []string{"ftp://x"}, Secret: NewSecret()},
		"bad secret": {URLs: []string{"http://127.0.0.1:1"}, Secret: "nope"},
		"bad filter": {URLs: []string{"http://127.0.0.1:1"}, Secret: NewSecret(), Types: []string{"offer.sent"}},
	} {
		if _, err := New(cfg, src, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

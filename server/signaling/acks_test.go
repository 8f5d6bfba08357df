package signaling

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/store"
)

// ackStore records the acknowledgements written; the first write waits for release, and the
// first fail writes fail.
type ackStore struct {
	store.Store
	release chan struct{}
	started chan struct{} // gets a value when a write starts

	mu      sync.Mutex
	fail    int
	written []int64
}

func (s *ackStore) Ack(ctx context.Context, room, peer string, seq int64) error {
	select {
	case s.started <- struct{}{}:
	default:
	}
	<-s.release
	s.mu.Lock()
	if s.fail > 0 {
		s.fail--
		s.mu.Unlock()
		return store.ErrUnavailable
	}
	s.written = append(s.written, seq)
	s.mu.Unlock()
	return s.Store.Ack(ctx, room, peer, seq)
}

func (s *ackStore) writes() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.written...)
}

// ackRig is a caller that received n messages (peer-joined, then n-1 candidates) from b.
func ackRig(t *testing.T, st *ackStore, n int) (*rig, *fakeConn, string) {
	t.Helper()
	r := newRigOn(t, 1, st, Config{})
	a, b := r.connect(0, "a"), r.connect(0, "b")
	ja := r.mustOK(0, a, EvJoin, obj("room", "r"))
	r.mustOK(0, b, EvJoin, obj("room", "r"))
	r.mustOK(0, b, EvOffer, obj("room", "r", "seq", float64(1), "sdp", "o"))
	for i := range n - 2 {
		r.mustOK(0, b, EvCandidate, obj("room", "r", "seq", float64(2+i), "candidate", cand(i)))
	}
	a.waitApplied(t, n)
	return r, a, ja["peer"].(string)
}

func TestAcksWrittenTogether(t *testing.T) {
	st := &ackStore{Store: store.NewMemory(store.Options{}), release: make(chan struct{}), started: make(chan struct{}, 1)}
	r, a, peer := ackRig(t, st, 5)
	r.mustOK(0, a, EvAck, obj("room", "r", "seq", float64(1)))
	<-st.started // the first write is under way and held
	for seq := 2; seq <= 5; seq++ {
		// Replies do not wait for the store.
		r.mustOK(0, a, EvAck, obj("room", "r", "seq", float64(seq)))
	}
	close(st.release)
	deadline := time.Now().Add(5 * time.Second)
	for len(st.writes()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // room for a write too many
	if w := st.writes(); len(w) != 2 || w[0] != 1 || w[1] != 5 {
		t.Fatalf("acks written %v, want [1 5]: the four that came during the first write go as one", w)
	}
	if msgs, err := st.Store.Pending(context.Background(), "r", peer, 0); err != nil || len(msgs) != 0 {
		t.Fatalf("queue after the acks: %v, %v", msgs, err)
	}
}

func TestFailedAckWrittenAgain(t *testing.T) {
	st := &ackStore{Store: store.NewMemory(store.Options{}), release: make(chan struct{}), fail: 1}
	close(st.release)
	r, a, peer := ackRig(t, st, 3)
	r.mustOK(0, a, EvAck, obj("room", "r", "seq", float64(3)))
	deadline := time.Now().Add(5 * time.Second) // the rig's resend interval is 100 ms
	for len(st.writes()) < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if w := st.writes(); len(w) != 1 || w[0] != 3 {
		t.Fatalf("acks written %v, want [3] after one failure", w)
	}
	if msgs, err := st.Store.Pending(context.Background(), "r", peer, 0); err != nil || len(msgs) != 0 {
		t.Fatalf("queue after the ack: %v, %v", msgs, err)
	}
}

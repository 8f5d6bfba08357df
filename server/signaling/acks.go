package signaling

import (
	"context"
	"errors"
	"sync"

	"github.com/switchboard-rtc/switchboard/internal/clock"
	"github.com/switchboard-rtc/switchboard/store"
)

// Acknowledgements are written to the store off the request path, by one goroutine that takes
// every ack waiting and writes them in one store call, so a member's acks that arrive while a
// write is under way cost one write together (group commit). The ack's reply does not wait:
// this instance already knows what the member has (membership.acked), and an ack another
// instance has not seen yet only makes it resend messages the client drops by seq.
type ackWriter struct {
	mu      sync.Mutex
	pending map[*membership]int64 // highest seq acknowledged and not yet written
	wake    chan struct{}         // capacity 1: "there is something to write"
}

func newAckWriter() ackWriter {
	return ackWriter{pending: make(map[*membership]int64), wake: make(chan struct{}, 1)}
}

// note records that m's client acknowledged everything up to seq, for ackLoop to write.
func (a *ackWriter) note(m *membership, seq int64) {
	a.putBack(m, seq)
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// take returns everything waiting and starts a new batch.
func (a *ackWriter) take() map[*membership]int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.pending) == 0 {
		return nil
	}
	batch := a.pending
	a.pending = make(map[*membership]int64, len(batch))
	return batch
}

// takeOne removes and returns m's waiting acknowledgement, if any.
func (a *ackWriter) takeOne(m *membership) (int64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	seq, ok := a.pending[m]
	delete(a.pending, m)
	return seq, ok
}

// putBack adds seq to the next batch, unless a later ack of m is waiting already; a failed
// write goes back this way.
func (a *ackWriter) putBack(m *membership, seq int64) {
	a.mu.Lock()
	if seq > a.pending[m] {
		a.pending[m] = seq
	}
	a.mu.Unlock()
}

// batchAcker is a store that writes several acknowledgements in one call.
type batchAcker interface {
	AckBatch(ctx context.Context, acks []store.AckParams) []error
}

// ackLoop writes acknowledgements until ctx is done, then writes what is left once.
func (h *Hub) ackLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
		case <-h.acks.wake:
		}
		if ctx.Err() != nil {
			// Both may be ready; done wins, so nothing is written with a canceled context.
			fctx, cancel := context.WithTimeout(context.Background(), h.cfg.StoreTimeout)
			h.writeAcks(fctx)
			cancel()
			return
		}
		if h.writeAcks(ctx) {
			continue
		}
		// The store failed: try again later rather than in a tight loop.
		clock.Sleep(ctx, h.cfg.ResendInterval)
		select {
		case h.acks.wake <- struct{}{}:
		default:
		}
	}
}

// writeAcks writes the waiting acknowledgements; false when some failed and were put back.
func (h *Hub) writeAcks(ctx context.Context) bool {
	batch := h.acks.take()
	if len(batch) == 0 {
		return true
	}
	ms := make([]*membership, 0, len(batch))
	ps := make([]store.AckParams, 0, len(batch))
	for m, seq := range batch {
		ms = append(ms, m)
		ps = append(ps, store.AckParams{Room: m.room, Peer: m.peer, Seq: seq})
	}
	sctx, cancel := context.WithTimeout(ctx, h.cfg.StoreTimeout)
	defer cancel()
	var errs []error
	if ba, ok := h.st.(batchAcker); ok && len(ps) > 1 {
		errs = ba.AckBatch(sctx, ps)
	} else {
		errs = make([]error, len(ps))
		for i, p := range ps {
			errs[i] = h.st.Ack(sctx, p.Room, p.Peer, p.Seq)
		}
	}
	ok := true
	for i, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, store.ErrNotMember):
			h.drop(ms[i]) // gone meanwhile: its next event is told not_joined
		default:
			ok = false
			h.acks.putBack(ms[i], ps[i].Seq)
			h.cfg.Metrics.StoreError("ack")
			h.log.Warn("write ack failed", "room", ps[i].Room, "peer", ps[i].Peer, "err", err)
		}
	}
	return ok
}

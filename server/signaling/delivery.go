package signaling

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/clock"
	"github.com/switchboard-rtc/switchboard/store"
)

// Delivery: the store queues every server→client message and publishes it to the instance the
// recipient is connected to. The hub emits what is published at once, and reads the queue
// again (flush) whenever something may have been missed: a gap in seq, a resubscription,
// an unacknowledged message older than the resend interval, a join or a resume.

var _ store.Handler = (*Hub)(nil)

// Deliver emits a published message to its recipient if it is connected here. A message for a
// member a join here is still creating is noted for that join.
func (h *Hub) Deliver(d store.Delivery) {
	if d.Event == store.EventExpired {
		h.cfg.Metrics.Expired()
	}
	key := memberKey{d.Room, d.Peer}
	h.mu.Lock()
	m := h.members[key]
	if top, ok := h.joining[key]; ok && m == nil && d.Seq > top {
		h.joining[key] = d.Seq
	}
	h.mu.Unlock()
	if m == nil {
		return
	}
	if acked := m.ackedUpTo(); d.Seq <= acked {
		// A number the client has applied already, handed out again: the store went back in
		// time. Writing the ack again makes it number what it queued after it (store.Ack).
		h.acks.note(m, acked)
		return
	}
	m.emit(d.Message, h.now())
}

// Resync marks every local membership for a read of its queue: deliveries may have been missed.
// So do the joins under way: their post-reply step reads the queue.
func (h *Hub) Resync() {
	h.mu.Lock()
	for k := range h.joining {
		h.joining[k] = math.MaxInt64
	}
	h.mu.Unlock()
	for _, m := range h.snapshot() {
		m.markStale()
	}
}

func (h *Hub) snapshot() []*membership {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := make([]*membership, 0, len(h.members))
	for _, m := range h.members {
		ms = append(ms, m)
	}
	return ms
}

// flush emits every unacknowledged message of m from the store.
func (h *Hub) flush(ctx context.Context, m *membership) {
	m.outMu.Lock()
	after := m.ackedSeq
	m.outMu.Unlock()
	h.flushAfter(ctx, m, after)
}

func (h *Hub) flushAfter(ctx context.Context, m *membership, after int64) {
	msgs, err := h.st.Pending(ctx, m.room, m.peer, after)
	if errors.Is(err, store.ErrNotMember) {
		h.drop(m)
		return
	}
	if err != nil {
		m.markStale()
		h.cfg.Metrics.StoreError("pending")
		h.log.Warn("read queue failed", "room", m.room, "peer", m.peer, "err", err)
		return
	}
	now := h.now()
	if len(msgs) == 0 {
		// Everything sent was acknowledged, possibly through another connection.
		m.outMu.Lock()
		if m.sent > m.ackedSeq {
			m.ackedSeq = m.sent
		}
		m.outMu.Unlock()
		return
	}
	for _, msg := range msgs {
		m.emit(msg, now)
	}
}

// Run does the hub's background work until ctx is done: receiving deliveries, resending,
// firing due timers, renewing leases and writing acknowledgements. It returns when all of it has stopped.
func (h *Hub) Run(ctx context.Context) error {
	loops := []func(context.Context){h.listenLoop, h.resendLoop, h.sweepLoop, h.renewLoop, h.ackLoop}
	done := make(chan struct{}, len(loops))
	for _, loop := range loops {
		go func() {
			defer func() { done <- struct{}{} }()
			loop(ctx)
		}()
	}
	for range loops {
		<-done
	}
	return ctx.Err()
}

func (h *Hub) listenLoop(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for {
		start := time.Now()
		err := h.st.Listen(ctx, h.cfg.Instance, h)
		if ctx.Err() != nil {
			return
		}
		h.log.Warn("listen stopped; retrying", "err", err, "in", backoff)
		h.cfg.Metrics.StoreError("listen")
		if time.Since(start) > 10*time.Second {
			backoff = 50 * time.Millisecond
		}
		if !clock.Sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (h *Hub) resendLoop(ctx context.Context) {
	tick := time.NewTicker(max(h.cfg.ResendInterval/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := h.now()
		for _, m := range h.snapshot() {
			after, ok := m.needsResend(now, h.cfg.ResendInterval)
			if !ok {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, h.cfg.StoreTimeout)
			h.flushAfter(cctx, m, after)
			cancel()
		}
	}
}

// sweepBatch bounds the timers fired by one store call.
const sweepBatch = 100

// sweepLoop fires due timers every SweepInterval. A timer set the store could not sweep, or
// renew leases in, is held back (holds): it is only read until it can be reached again, then
// waits renewHold before its timers fire: every instance that could not renew its members'
// leases there meanwhile renews them within that time (renewLoop retries every SweepInterval),
// so an outage does not remove members whose instances were alive all along. The other sets go
// on firing: a dead Cluster master stalls only the rooms whose timers it holds.
func (h *Hub) sweepLoop(ctx context.Context) {
	tick := time.NewTicker(h.cfg.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for {
			now := time.Now()
			held := func(set string) bool { return h.holds.held(set, now) }
			cctx, cancel := context.WithTimeout(ctx, h.cfg.StoreTimeout)
			n, err := h.sweep(cctx, held)
			cancel()
			if ctx.Err() != nil {
				return
			}
			failing, recovered := h.holds.report(sweepFailed, err, time.Now(), h.renewHold())
			h.logHolds("sweep", err, failing, recovered)
			if n < sweepBatch {
				break
			}
		}
	}
}

// sweep fires due timers of the sets that are not held, and reads the held ones.
func (h *Hub) sweep(ctx context.Context, held func(set string) bool) (int, error) {
	if s, ok := h.st.(setSweeper); ok {
		return s.SweepSets(ctx, h.now(), sweepBatch, held)
	}
	if held(allSets) {
		// A sweep as of the Unix epoch reads the timers but fires none.
		return h.st.Sweep(ctx, time.UnixMilli(0), 1)
	}
	return h.st.Sweep(ctx, h.now(), sweepBatch)
}

// logHolds counts a failed sweep or renewal, and logs when timer sets begin or stop failing
// (a shard down for long fails every second: that is logged once).
func (h *Hub) logHolds(op string, err error, failing, recovered int) {
	if err != nil {
		h.cfg.Metrics.StoreError(op)
	}
	switch {
	case failing > 0:
		h.log.Warn(op+" failed; holding back the timers it could not reach", "sets", failing, "err", err)
	case err != nil:
		h.log.Debug(op+" failed", "err", err)
	}
	if recovered > 0 {
		h.log.Info("timer sets reachable again; firing their timers after the hold", "sets", recovered, "hold", h.renewHold())
	}
}

// renewHold is how long sweeps wait after the store came back: two renewal retries, each
// bounded by StoreTimeout.
func (h *Hub) renewHold() time.Duration {
	return 2 * (h.cfg.SweepInterval + h.cfg.StoreTimeout)
}

// renewLoop renews the leases of the members connected here every RenewInterval, and every
// SweepInterval after a failed renewal until one succeeds.
func (h *Hub) renewLoop(ctx context.Context) {
	wait := h.cfg.RenewInterval
	for {
		if !clock.Sleep(ctx, wait) {
			return
		}
		wait = h.cfg.RenewInterval
		h.mu.Lock()
		leases := make([]store.Lease, 0, len(h.members))
		for k, m := range h.members {
			leases = append(leases, store.Lease{Room: k.room, Peer: k.peer, Gen: m.gen})
		}
		h.mu.Unlock()
		if len(leases) == 0 {
			h.holds.report(renewFailed, nil, time.Now(), h.renewHold()) // no lease of its left to renew
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, h.cfg.StoreTimeout)
		err := h.st.Renew(cctx, leases, h.now())
		cancel()
		if ctx.Err() != nil {
			return
		}
		failing, recovered := h.holds.report(renewFailed, err, time.Now(), h.renewHold())
		h.logHolds("renew", err, failing, recovered)
		if err != nil {
			wait = h.cfg.SweepInterval
		}
	}
}

package signaling

import (
	"context"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/store"
)

// membership is one room membership held by a local connection. It orders the client's
// sequenced messages (the transport may run them concurrently and out of order) and tracks
// what was sent to the client and acknowledged, to resend what was not.
type membership struct {
	room, peer string
	client     *client // immutable
	nonce      string  // the join nonce, to recognise a retried join on the same connection
	gen        int64   // guarded by Hub.mu

	seqMu   sync.Mutex
	next    int64                // next client seq to apply
	busy    bool                 // a message with seq == next is being applied
	waiting int                  // early messages waiting for their turn
	changed chan struct{}        // closed and replaced when next or busy changes
	items   map[int64]*batchItem // waiting messages by seq, for the turn holder to send along

	outMu    sync.Mutex
	sent     int64     // highest server seq emitted to the client
	ackedSeq int64     // highest server seq the client acknowledged
	lastEmit time.Time // when something was last emitted
	stale    bool      // a delivery may have been missed: read the store
}

func newMembership(room, peer string, cl *client, nonce string, ms store.Membership) *membership {
	return &membership{
		room: room, peer: peer, client: cl, nonce: nonce, gen: ms.Gen,
		next: ms.Next, changed: make(chan struct{}),
		sent: ms.Acked, ackedSeq: ms.Acked,
	}
}

type turnResult int

const (
	turnGo turnResult = iota
	turnDuplicate
	turnTimeout
	turnCanceled
	turnBatched // the turn holder sent this message with its own; the result is in the item
)

// batchItem is one sequenced message waiting for its turn.
type batchItem struct {
	p     store.SendParams
	res   store.SendResult
	err   error
	taken bool          // guarded by seqMu: a turn holder is sending it
	done  chan struct{} // closed when res and err are set by the turn holder
}

// releaseKey carries the function WithRelease sets.
type releaseKey struct{}

// WithRelease returns ctx carrying release, which Handle calls once a sequenced event's place
// among its membership's messages is fixed: when it starts waiting for messages that precede
// it, or starts its store call. A transport that runs a connection's events one at a time lets
// the next one start then: the message this one waits for may be among them, and messages that
// arrive during a store call are sent together in the next one.
func WithRelease(ctx context.Context, release func()) context.Context {
	return context.WithValue(ctx, releaseKey{}, release)
}

func release(ctx context.Context) {
	if f, ok := ctx.Value(releaseKey{}).(func()); ok {
		f()
	}
}

// maxBatch bounds the messages sent in one store call.
const maxBatch = 32

// turnBatch waits until it.p.Seq is the next message to apply, or until the turn holder took
// it along in its batch (turnBatched: the result is in it). On turnGo the caller applies it and
// the messages collect returns, then calls done. Too many waiting messages count as a timeout.
func (m *membership) turnBatch(ctx context.Context, it *batchItem, timeout time.Duration, maxWaiting int) turnResult {
	seq := it.p.Seq
	var timer *time.Timer
	counted, registered := false, false
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		m.seqMu.Lock()
		if counted {
			m.waiting--
		}
		if registered && !it.taken && m.items[seq] == it {
			delete(m.items, seq)
		}
		m.seqMu.Unlock()
	}()
	for {
		m.seqMu.Lock()
		if it.taken {
			m.seqMu.Unlock()
			<-it.done
			return turnBatched
		}
		if seq < m.next {
			m.seqMu.Unlock()
			return turnDuplicate
		}
		if seq == m.next && !m.busy {
			m.busy = true
			if registered && m.items[seq] == it {
				delete(m.items, seq)
				registered = false
			}
			m.seqMu.Unlock()
			return turnGo
		}
		if !counted {
			if m.waiting >= maxWaiting {
				m.seqMu.Unlock()
				return turnTimeout
			}
			m.waiting++
			counted = true
		}
		if !registered && m.items[seq] == nil {
			if m.items == nil {
				m.items = make(map[int64]*batchItem)
			}
			m.items[seq] = it
			registered = true
		}
		ch := m.changed
		m.seqMu.Unlock()
		if timer == nil {
			timer = time.NewTimer(timeout)
			release(ctx)
		}
		select {
		case <-ch:
		case <-it.done:
			return turnBatched
		case <-timer.C:
			m.seqMu.Lock()
			taken := it.taken
			m.seqMu.Unlock()
			if taken {
				<-it.done
				return turnBatched
			}
			return turnTimeout
		case <-ctx.Done():
			m.seqMu.Lock()
			taken := it.taken
			m.seqMu.Unlock()
			if taken {
				<-it.done
				return turnBatched
			}
			return turnCanceled
		}
	}
}

// collect returns first and the messages waiting right after it, marked taken.
func (m *membership) collect(first *batchItem) []*batchItem {
	batch := []*batchItem{first}
	m.seqMu.Lock()
	for s := first.p.Seq + 1; len(batch) < maxBatch; s++ {
		it := m.items[s]
		if it == nil {
			break
		}
		it.taken = true
		delete(m.items, s)
		batch = append(batch, it)
	}
	m.seqMu.Unlock()
	return batch
}

// done ends the turn taken by turnBatch; next is the client seq expected from now on.
func (m *membership) done(next int64) {
	m.seqMu.Lock()
	m.busy = false
	if next > m.next {
		m.next = next
	}
	close(m.changed)
	m.changed = make(chan struct{})
	m.seqMu.Unlock()
}

// advance moves next forward (a retried join or resume on the same connection).
func (m *membership) advance(next int64) {
	m.seqMu.Lock()
	if next > m.next {
		m.next = next
		close(m.changed)
		m.changed = make(chan struct{})
	}
	m.seqMu.Unlock()
}

// ackedUpTo returns the last server seq the client acknowledged.
func (m *membership) ackedUpTo() int64 {
	m.outMu.Lock()
	defer m.outMu.Unlock()
	return m.ackedSeq
}

func (m *membership) acked(seq int64) {
	m.outMu.Lock()
	if seq > m.ackedSeq {
		m.ackedSeq = seq
	}
	if seq > m.sent {
		m.sent = seq
	}
	m.outMu.Unlock()
}

// emit sends one queued message to the client and notes a gap before it.
func (m *membership) emit(msg store.Message, now time.Time) {
	m.outMu.Lock()
	if msg.Seq <= m.ackedSeq {
		m.outMu.Unlock()
		return
	}
	if msg.Seq > m.sent+1 {
		m.stale = true
	}
	if msg.Seq > m.sent {
		m.sent = msg.Seq
	}
	m.lastEmit = now
	m.outMu.Unlock()
	m.client.conn.Emit(msg.Event, serverEvent(m.room, msg.Seq, msg.Body))
}

// needsResend reports whether the store should be read for this membership now, and from where.
func (m *membership) needsResend(now time.Time, interval time.Duration) (after int64, ok bool) {
	m.outMu.Lock()
	defer m.outMu.Unlock()
	if m.stale || (m.sent > m.ackedSeq && now.Sub(m.lastEmit) >= interval) {
		m.stale = false
		return m.ackedSeq, true
	}
	return 0, false
}

func (m *membership) markStale() {
	m.outMu.Lock()
	m.stale = true
	m.outMu.Unlock()
}

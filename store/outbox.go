package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"time"
)

// Call events: with Options.OutboxMax > 0 the store records one in its outbox in the same
// atomic step that causes it, so an event and the state it reports never disagree. The webhook
// package sends them; nothing reads the outbox otherwise.
const (
	EvOfferHeld     = "offer.held"     // an offer is held: its sender is alone in its room
	EvOfferAnswered = "offer.answered" // a joining answerer took the held offer
	EvOfferExpired  = "offer.expired"  // the held offer expired unanswered
	EvPeerJoined    = "peer.joined"    // a member joined (not on a retried join)
	EvPeerLeft      = "peer.left"      // a member left or timed out (Reason)
	EvCallHangup    = "call.hangup"    // a member hung up
)

// EventTypes lists every call event type.
var EventTypes = []string{EvOfferHeld, EvOfferAnswered, EvOfferExpired, EvPeerJoined, EvPeerLeft, EvCallHangup}

// Event is one recorded call event. It never holds an SDP or an ICE candidate.
type Event struct {
	ID   string    // unique event id, the same on every delivery attempt
	Ref  string    // the outbox entry, for Done and Keep
	Type string    // one of EventTypes
	Room string    //
	Time time.Time // when the step that caused it ran
	Peer string    // the member the event is about (the answerer for offer.answered)
	Role string    // peer.joined: the member's role
	Sub  string    // the subject of the member's room token; empty on an open server
	Meta []byte    // peer.joined, offer.held: the token's meta claim (a JSON object), if any
	// Reason of peer.left: "left" or "timeout".
	Reason string
	// Caller is the sender of the held offer (offer.answered).
	Caller string
	// Expires is when the held offer expires (offer.held).
	Expires time.Time
	// Held is how long the offer was held (offer.answered, offer.expired).
	Held time.Duration
}

// OutboxStats describe an outbox.
type OutboxStats struct {
	Depth   int       // events recorded and not yet done
	Oldest  time.Time // when the oldest of them was recorded; zero when Depth is 0
	Dropped int64     // events dropped because the outbox was full, since the last Stats call
	// Recorded counts the events ever recorded in the outbox (on Redis: by every instance,
	// since the stream was created).
	Recorded int64
}

// ErrOutboxCluster is returned for an outbox on a Redis Cluster: the room scripts would have to
// write to a key outside the room's slot.
var ErrOutboxCluster = errors.New("store: call events (webhooks) need a single Redis server or a Sentinel set, not a Cluster")

// DefaultOutboxMax is a reasonable outbox bound for callers that enable one.
const DefaultOutboxMax = 100_000

// newEventID returns a fresh random event id.
func newEventID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "evt_" + hex.EncodeToString(b)
}

// MemoryOutbox is the embedded store's outbox: an in-process queue bounded by
// Options.OutboxMax, oldest dropped first when full.
type MemoryOutbox struct {
	m *Memory // its mu guards the fields below
	// queue holds recorded events not yet claimed, oldest first; taken those claimed, by Ref.
	queue   []Event
	taken   map[string]Event
	dropped int64
	next    int64         // last Ref assigned
	wake    chan struct{} // signalled (non-blocking) when an event is recorded
}

// record adds e, dropping the oldest unclaimed event when full. Called with m.mu held.
func (q *MemoryOutbox) record(e Event) {
	if len(q.queue)+len(q.taken) >= q.m.opts.OutboxMax && len(q.queue) > 0 {
		q.queue[0] = Event{}
		q.queue = q.queue[1:]
		q.dropped++
	}
	q.next++
	e.ID, e.Ref = newEventID(), strconv.FormatInt(q.next, 10)
	q.queue = append(q.queue, e)
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Claim takes up to n recorded events, waiting up to wait for the first.
func (q *MemoryOutbox) Claim(ctx context.Context, n int, wait time.Duration) ([]Event, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		q.m.mu.Lock()
		k := min(n, len(q.queue))
		out := make([]Event, k)
		copy(out, q.queue[:k])
		q.queue = q.queue[k:]
		for _, e := range out {
			q.taken[e.Ref] = e
		}
		q.m.mu.Unlock()
		if k > 0 {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			return nil, nil
		case <-q.wake:
		}
	}
}

// Keep does nothing: one process holds every claim.
func (q *MemoryOutbox) Keep(context.Context, []string) error { return nil }

// Done forgets claimed events (delivered or given up).
func (q *MemoryOutbox) Done(_ context.Context, refs []string) error {
	q.m.mu.Lock()
	defer q.m.mu.Unlock()
	for _, r := range refs {
		delete(q.taken, r)
	}
	return nil
}

// Stats implements the outbox statistics.
func (q *MemoryOutbox) Stats(context.Context) (OutboxStats, error) {
	q.m.mu.Lock()
	defer q.m.mu.Unlock()
	s := OutboxStats{Depth: len(q.queue) + len(q.taken), Dropped: q.dropped, Recorded: q.next}
	q.dropped = 0
	for _, e := range q.queue {
		if s.Oldest.IsZero() || e.Time.Before(s.Oldest) {
			s.Oldest = e.Time
		}
	}
	for _, e := range q.taken {
		if s.Oldest.IsZero() || e.Time.Before(s.Oldest) {
			s.Oldest = e.Time
		}
	}
	return s, nil
}

// Outbox returns the store's outbox; nil when Options.OutboxMax is 0 (nothing is recorded).
func (m *Memory) Outbox() *MemoryOutbox { return m.outbox }

// emit records a call event when the outbox is on. Called with m.mu held.
func (o *memOp) emit(r *memRoom, e Event) {
	q := o.m.outbox
	if q == nil {
		return
	}
	e.Room, e.Time = r.id, time.UnixMilli(o.now)
	if mb := r.members[e.Peer]; mb != nil {
		e.Sub = mb.sub
		if e.Type == EvPeerJoined || e.Type == EvOfferHeld {
			e.Meta = mb.meta
		}
	}
	q.record(e)
}

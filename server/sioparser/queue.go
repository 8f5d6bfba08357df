package sioparser

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is returned by a decoder that was destroyed (its connection closed) while it waited
// for room in its queue.
var ErrClosed = errors.New("sioparser: connection closed")

// queue is one connection's events between decoding and the end of their handling. Each event
// holds a turn; a turn's handler may start when the previous turn is done, so events run one
// after the other in arrival order. The decoder takes a turn before it hands an event on and
// waits while limit turns are not done: the connection's reads stop (TCP then pushes back on the
// client) instead of the server growing a goroutine per unhandled event.
type queue struct {
	limit int

	mu     sync.Mutex
	head   *turn         // the oldest turn not done: the one that may run; nil when none
	last   *turn         // the newest turn taken while head is not nil
	count  int           // turns from head to last: taken and not passed
	space  chan struct{} // closed when count drops; non-nil only while the decoder waits
	closed bool
	dead   chan struct{} // closed by close: every wait ends
}

// turn is one event's place in its connection's queue.
type turn struct {
	q     *queue
	ready chan struct{} // closed when every earlier turn is done
	next  *turn         // guarded by q.mu
	done  bool          // guarded by q.mu
}

func newQueue(limit int) *queue {
	if limit < 1 {
		limit = 1
	}
	return &queue{limit: limit, dead: make(chan struct{})}
}

// take returns the next turn, waiting while limit turns are not done. It fails once the queue
// is closed.
func (q *queue) take() (*turn, error) {
	q.mu.Lock()
	for q.count >= q.limit && !q.closed {
		if q.space == nil {
			q.space = make(chan struct{})
		}
		space := q.space
		q.mu.Unlock()
		select {
		case <-space:
		case <-q.dead:
		}
		q.mu.Lock()
	}
	if q.closed {
		q.mu.Unlock()
		return nil, ErrClosed
	}
	t := &turn{q: q, ready: make(chan struct{})}
	if q.head == nil {
		close(t.ready)
		q.head = t
	} else {
		q.last.next = t
	}
	q.last = t
	q.count++
	q.mu.Unlock()
	return t, nil
}

// wait blocks until every earlier turn is done, the queue is closed or ctx ends.
func (t *turn) wait(ctx context.Context) error {
	select {
	case <-t.ready:
		return nil
	default:
	}
	select {
	case <-t.ready:
		return nil
	case <-t.q.dead:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// end lets the next turn start and makes room for the decoder. A turn may end before its
// predecessors (its handler gave up waiting): it then stays in line, still counted, until they
// are done, so the bound holds. Calling end again does nothing.
func (t *turn) end() {
	q := t.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if t.done {
		return
	}
	t.done = true
	if q.head != t {
		return
	}
	n := t.next
	q.count--
	for n != nil && n.done {
		n = n.next
		q.count--
	}
	q.head = n
	if n == nil {
		q.last = nil
	} else {
		close(n.ready)
	}
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
}

// close ends every wait: a closed connection's remaining events may run in any order (they
// find the connection gone), and a decoder waiting for room gives up.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.dead)
	}
}

// pending returns the number of turns taken and not passed.
func (q *queue) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.count
}

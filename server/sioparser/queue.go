package sioparser

import (
	"errors"
	"sync"
)

// ErrClosed is returned by a decoder that was destroyed (its connection closed) while it waited
// for room in its queue.
var ErrClosed = errors.New("sioparser: connection closed")

// queue is one connection's events between decoding and the end of their handling. Each event
// holds a turn; a turn's handler starts when every earlier turn is done, so events start one
// after the other in arrival order. A handler that is not yet due is parked on its turn, and the
// goroutine that finishes the turn before it runs it next: a burst runs on one goroutine, with
// no hand-offs, and the library's goroutine per packet ends at once. A handler may end its turn
// early (end) and go on while the next one starts. The decoder takes a turn before it hands an
// event on and waits while limit events are taken and not finished: the connection's reads stop
// (TCP then pushes back on the client) instead of the server holding ever more events.
type queue struct {
	limit int

	mu      sync.Mutex
	head    *turn         // the oldest turn not done: the one that may start; nil when none
	last    *turn         // the newest turn taken while head is not nil
	count   int           // turns taken whose handler has not finished
	running bool          // a goroutine runs head's handler and will go on with the next
	space   chan struct{} // closed when count drops; non-nil only while the decoder waits
	closed  bool
	dead    chan struct{} // closed by close: the decoder's wait ends
}

// turn is one event's place in its connection's queue. Fields are guarded by q.mu.
type turn struct {
	q        *queue
	next     *turn
	fn       func() // the parked handler, waiting for its turn
	started  bool   // its handler began to run
	done     bool   // the turn ended: the next may start
	finished bool   // its handler returned, or it has none: no longer counted
}

func newQueue(limit int) *queue {
	if limit < 1 {
		limit = 1
	}
	return &queue{limit: limit, dead: make(chan struct{})}
}

// take returns the next turn, waiting while limit turns are not finished. It fails once the
// queue is closed.
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
	t := &turn{q: q}
	if q.head == nil {
		q.head = t
	} else {
		q.last.next = t
	}
	q.last = t
	q.count++
	q.mu.Unlock()
	return t, nil
}

// run runs fn in t's turn: now, on this goroutine, if t is due and nobody runs the queue, else
// later, on the goroutine that ends the turn before it. Once the queue is closed fn runs at once.
func (t *turn) run(fn func()) {
	q := t.q
	q.mu.Lock()
	switch {
	case t.done:
		q.mu.Unlock()
		return
	case q.closed:
		t.started = true
		q.mu.Unlock()
		fn()
		q.mu.Lock()
		q.finishLocked(t)
		q.mu.Unlock()
		t.end()
		return
	case q.head != t || q.running:
		t.fn = fn
		q.mu.Unlock()
		return
	}
	q.running = true
	t.started = true
	q.mu.Unlock()
	q.chain(t, fn)
}

// chain runs fn for t, then the handlers parked on the turns after it, as long as they are
// there, and stops when t's turn was ended while fn ran (end passed the queue on).
func (q *queue) chain(t *turn, fn func()) {
	for {
		fn()
		q.mu.Lock()
		q.finishLocked(t)
		if t.done {
			q.mu.Unlock()
			return
		}
		n := q.passLocked(t)
		if n == nil || n.fn == nil || q.closed {
			q.running = false
			var parked func()
			if n != nil {
				parked, n.fn = n.fn, nil
			}
			q.mu.Unlock()
			if parked != nil { // closed meanwhile: no order left to keep
				n.run(parked)
			}
			return
		}
		t, fn = n, n.fn
		n.fn, n.started = nil, true
		q.mu.Unlock()
	}
}

// end ends t's turn: the next event may start, on a goroutine of its own if its handler is
// parked, while t's handler, if it runs, goes on (it stays counted until it returns). A turn
// ended before its predecessors keeps its place until they are done. Calling end again does
// nothing.
func (t *turn) end() {
	q := t.q
	q.mu.Lock()
	if t.done {
		q.mu.Unlock()
		return
	}
	if !t.started {
		q.finishLocked(t) // no handler will run for it
	}
	if q.head != t {
		t.done = true
		t.fn = nil
		q.mu.Unlock()
		return
	}
	n := q.passLocked(t)
	if n == nil || n.fn == nil {
		q.running = false
		q.mu.Unlock()
		return
	}
	fn := n.fn
	n.fn, n.started = nil, true
	q.running = true
	q.mu.Unlock()
	go q.chain(n, fn)
}

// passLocked marks head t done, moves head past it and the turns after it that ended early,
// and returns the new head. q.mu must be held.
func (q *queue) passLocked(t *turn) *turn {
	t.done = true
	n := t.next
	for n != nil && n.done {
		n = n.next
	}
	q.head = n
	if n == nil {
		q.last = nil
	}
	return n
}

// finishLocked stops counting t and makes room for the decoder. q.mu must be held.
func (q *queue) finishLocked(t *turn) {
	if t.finished {
		return
	}
	t.finished = true
	q.count--
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
}

// close makes the decoder's wait fail and lets later handlers run at once: a closed
// connection's remaining events find it gone whatever their order.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.dead)
	}
}

// pending returns the number of turns taken and not finished.
func (q *queue) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.count
}

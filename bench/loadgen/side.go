package main

// side is the client half of the delivery rules (docs/protocol.md) for one connection: it
// numbers sequenced messages and sends each again until it is answered, and applies server
// events once, in seq order, acknowledging them. A connection is reused for one membership
// (call) after another.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"time"
)

// srvEvent is a server event's payload (docs/protocol.md, "Server events").
type srvEvent struct {
	Room      string `json:"room"`
	Seq       int64  `json:"seq"`
	From      string `json:"from"`
	SDP       string `json:"sdp"`
	Peer      string `json:"peer"`
	Reason    string `json:"reason"`
	Candidate *struct {
		Candidate string `json:"candidate"`
	} `json:"candidate"`
}

// applied is one server event applied by the client, with the time it was applied.
type applied struct {
	name string
	ev   srvEvent
	at   time.Time
}

// reply is an acknowledgement reply (only the fields the load generator reads).
type reply struct {
	OK    bool `json:"ok"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Held      bool   `json:"held"`
	Duplicate bool   `json:"duplicate"`
	Peer      string `json:"peer"`
	Role      string `json:"role"`
	Next      int64  `json:"next"`
}

func (r *reply) code() string {
	if r.Error == nil {
		return "no_error_field"
	}
	return r.Error.Code
}

type side struct {
	g    *gen
	conn *sioConn
	inst int // index of the instance it is connected to

	mu          sync.Mutex
	gen         int // bumped by reset: callbacks of an earlier membership are ignored
	room        string
	peer        string
	nextSeq     int64
	last        int64 // last server seq applied
	pending     map[int64]applied
	got         []applied
	notify      chan struct{} // cap 1: got changed
	ackInFlight bool
	ackSent     int64
}

func newSide(g *gen, c *sioConn, inst int) *side {
	s := &side{g: g, conn: c, inst: inst, pending: map[int64]applied{}, notify: make(chan struct{}, 1)}
	c.setOnEvent(s.onEvent)
	return s
}

// reset starts a new membership of room on the same connection.
func (s *side) reset(room string) {
	s.mu.Lock()
	s.gen++
	s.room, s.peer, s.nextSeq, s.last = room, "", 0, 0
	clear(s.pending)
	s.got = nil
	s.ackInFlight, s.ackSent = false, 0
	s.mu.Unlock()
}

func (s *side) onEvent(name string, payload []byte) {
	now := time.Now()
	var ev srvEvent
	if err := json.Unmarshal(payload, &ev); err != nil || ev.Seq <= 0 {
		s.g.errs.add("bad server event " + name)
		return
	}
	s.mu.Lock()
	if ev.Room != s.room {
		s.mu.Unlock()
		s.g.stale.add(1) // a late resend for an earlier membership of this connection
		return
	}
	if _, dup := s.pending[ev.Seq]; dup || ev.Seq <= s.last {
		s.g.redelivered.add(1)
		force := ev.Seq <= s.last // the server missed our ack: say it again
		s.mu.Unlock()
		if force {
			s.ack(true)
		}
		return
	}
	s.pending[ev.Seq] = applied{name: name, ev: ev, at: now}
	for {
		a, ok := s.pending[s.last+1]
		if !ok {
			break
		}
		delete(s.pending, s.last+1)
		s.last++
		s.got = append(s.got, a)
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	s.ack(false)
}

// ack acknowledges what is applied. With coalescing (the default) at most one ack is in flight:
// when its reply comes, the next one covers everything applied meanwhile.
func (s *side) ack(force bool) {
	s.mu.Lock()
	if s.last == 0 || (!force && s.last <= s.ackSent) || (s.g.cfg.ackCoalesce && s.ackInFlight && !force) {
		s.mu.Unlock()
		return
	}
	room, seq, gen := s.room, s.last, s.gen
	s.ackInFlight = true
	s.mu.Unlock()
	payload := fmt.Appendf(nil, `{"room":%q,"seq":%d}`, room, seq)
	_, err := s.conn.emit("ack", payload, func(raw []byte) {
		s.g.ackReplies.add(1)
		s.mu.Lock()
		if s.gen != gen {
			s.mu.Unlock()
			return
		}
		s.ackInFlight = false
		if seq > s.ackSent {
			s.ackSent = seq
		}
		s.mu.Unlock()
		s.ack(false)
	})
	if err != nil {
		s.mu.Lock()
		if s.gen == gen {
			s.ackInFlight = false
		}
		s.mu.Unlock()
		return
	}
	s.g.acks.add(1)
}

// errConnLost marks a call that failed because a connection ended under it.
var errConnLost = errors.New("connection lost")

// waitGot waits until at least n events are applied, and returns them.
func (s *side) waitGot(ctx context.Context, n int) ([]applied, error) {
	for {
		s.mu.Lock()
		if len(s.got) >= n {
			got := s.got
			s.mu.Unlock()
			return got, nil
		}
		have := len(s.got)
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-s.conn.closed:
			return nil, fmt.Errorf("%w with %d of %d events applied: %v", errConnLost, have, n, s.conn.failure())
		case <-ctx.Done():
			return nil, fmt.Errorf("%d of %d events applied: %w", have, n, ctx.Err())
		}
	}
}

func (s *side) applied() []applied {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]applied(nil), s.got...)
}

// request is one client event sent until it is answered.
type request struct {
	s       *side
	event   string
	payload []byte

	mu     sync.Mutex
	sentAt time.Time // first emission
	timer  *time.Timer
	resent int           // resends so far
	next   time.Duration // wait before the next resend
	done   bool
	reply  reply
	err    error
	doneCh chan struct{}
}

// retryWait is the wait before resend n (1 for the first), as the bundled client does it: -retry
// doubled per resend up to -max-retry, drawn uniformly from 50-100% of that (equal jitter), so
// late replies under overload do not each bring one more copy, and clients that lost replies
// together do not resend together.
func retryWait(n int, retry, maxRetry time.Duration) time.Duration {
	d := retry
	for i := 1; i < n && d < maxRetry; i++ {
		d *= 2
	}
	d = min(d, maxRetry)
	return d/2 + mrand.N(d/2+1)
}

// retryCode reports the errors after which a message was not applied and is sent again with
// the same seq (docs/protocol.md, "seq consumed: no").
func retryCode(code string) bool {
	return code == "out_of_order" || code == "unavailable" || code == "internal" || code == "rate_limited"
}

func (s *side) start(event string, payload []byte) *request {
	r := &request{s: s, event: event, payload: payload, doneCh: make(chan struct{})}
	r.mu.Lock()
	r.sentAt = time.Now()
	r.mu.Unlock()
	r.fire(true)
	return r
}

func (r *request) fire(first bool) {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return
	}
	if !first {
		r.s.g.retries.add(1)
		r.resent++
	}
	r.next = retryWait(r.resent+1, r.s.g.cfg.retry, r.s.g.cfg.maxRetry)
	r.timer = time.AfterFunc(r.next, func() { r.fire(false) })
	r.mu.Unlock()
	if _, err := r.s.conn.emit(r.event, r.payload, r.onReply); err != nil {
		r.finish(reply{}, fmt.Errorf("%w: %v", errConnLost, r.s.conn.failure()))
		return
	}
	r.s.g.sends.add(1)
}

func (r *request) onReply(raw []byte) {
	r.s.g.replies.add(1)
	r.mu.Lock()
	late := r.done
	r.mu.Unlock()
	if late {
		r.s.g.lateReplies.add(1)
		return
	}
	var rep reply
	if err := json.Unmarshal(raw, &rep); err != nil {
		r.finish(rep, fmt.Errorf("bad %s reply %.200q", r.event, raw))
		return
	}
	r.mu.Lock()
	resent := r.resent
	r.mu.Unlock()
	if !rep.OK && rep.code() == "not_joined" && r.event == "leave" && resent > 0 {
		// A leave sent again can be answered after the first one removed the membership, as
		// the bundled client knows: the membership is gone, as asked.
		rep = reply{OK: true}
	}
	if !rep.OK && retryCode(rep.code()) {
		r.s.g.errs.add(r.event + " retried after " + rep.code())
		r.mu.Lock()
		if !r.done && r.timer != nil {
			r.timer.Reset(r.next) // the timer sends it again
		}
		r.mu.Unlock()
		return
	}
	r.finish(rep, nil)
}

func (r *request) finish(rep reply, err error) {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return
	}
	r.done, r.reply, r.err = true, rep, err
	if r.timer != nil {
		r.timer.Stop()
	}
	r.mu.Unlock()
	close(r.doneCh)
}

// wait returns the reply, an error for a transport failure or a rejection.
func (r *request) wait(ctx context.Context) (reply, error) {
	select {
	case <-r.doneCh:
	case <-r.s.conn.closed:
		r.finish(reply{}, fmt.Errorf("%w: %v", errConnLost, r.s.conn.failure()))
	case <-ctx.Done():
		r.finish(reply{}, ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.reply, r.err
	}
	if !r.reply.OK {
		return r.reply, &rejected{event: r.event, code: r.reply.code()}
	}
	return r.reply, nil
}

type rejected struct{ event, code string }

func (e *rejected) Error() string { return e.event + " rejected: " + e.code }

// join joins the room set by reset, with a nonce, so a join sent again returns the same membership.
func (s *side) join(ctx context.Context) (reply, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	s.mu.Lock()
	room := s.room
	s.mu.Unlock()
	rep, err := s.start("join", fmt.Appendf(nil, `{"room":%q,"nonce":%q}`, room, hex.EncodeToString(b[:]))).wait(ctx)
	if err != nil {
		return rep, err
	}
	if rep.Peer == "" || rep.Next < 1 {
		return rep, errors.New("join reply without peer or next")
	}
	s.mu.Lock()
	s.peer, s.nextSeq = rep.Peer, rep.Next
	s.mu.Unlock()
	return rep, nil
}

// send starts a sequenced event; fields is the JSON object's content after room and seq
// (without braces), or empty.
func (s *side) send(event, fields string) *request {
	s.mu.Lock()
	room, seq := s.room, s.nextSeq
	s.nextSeq++
	s.mu.Unlock()
	b := make([]byte, 0, len(fields)+len(room)+32)
	b = append(b, `{"room":"`...)
	b = append(b, room...)
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	if fields != "" {
		b = append(b, ',')
		b = append(b, fields...)
	}
	b = append(b, '}')
	return s.start(event, b)
}

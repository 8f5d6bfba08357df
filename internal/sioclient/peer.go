package sioclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"
)

// Error is a protocol error reply: {"ok": false, "error": {"code", "message"}}.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// retryable reports whether a sequenced message rejected with code was not applied and may be
// sent again with the same seq (docs/protocol.md, "seq consumed: no").
func retryable(code string) bool {
	return code == "out_of_order" || code == "unavailable" || code == "rate_limited"
}

// JoinReply is the reply to a successful join.
type JoinReply struct {
	Room           string          `json:"room"`
	Peer           string          `json:"peer"`
	Token          string          `json:"token"`
	Role           string          `json:"role"`
	Peers          []Member        `json:"peers"`
	Next           int64           `json:"next"`
	ResumeWindowMs int64           `json:"resumeWindowMs"`
	HeldOfferTTLMs int64           `json:"heldOfferTtlMs"`
	ICEServers     json.RawMessage `json:"iceServers"`
}

// Member is another peer of the room, as listed in a join reply.
type Member struct {
	Peer string `json:"peer"`
	Role string `json:"role"`
}

// Peer is one membership of one room over a Client, following the client side of the delivery
// rules in docs/protocol.md: sequenced sends retried until answered, and server events applied
// once, in seq order, and acknowledged. Several Peers (for different rooms) may share a Client.
type Peer struct {
	c     *Client
	retry time.Duration

	joinDone chan struct{} // closed when Join returns

	mu      sync.Mutex
	room    string                                     // set by Join
	joined  *JoinReply                                 // nil until Join succeeds
	nextSeq int64                                      // seq of the next sequenced send
	applied int64                                      // last server seq applied
	pending map[int64]serverEvent                      // server events ahead of applied+1
	onEvent func(event string, payload map[string]any) // runs on the client's dispatch goroutine
}

type serverEvent struct {
	name    string
	payload map[string]any
}

// NewPeer returns a Peer using c. Register OnEvent before Join: the server sends a held offer
// right after the join reply.
func NewPeer(c *Client) *Peer {
	p := &Peer{c: c, retry: time.Second, pending: make(map[int64]serverEvent), joinDone: make(chan struct{})}
	c.OnAny(p.receive)
	return p
}

// SetRetryInterval changes how long Join and Send wait for a reply before sending again
// (default 1s). Call it before Join.
func (p *Peer) SetRetryInterval(d time.Duration) { p.retry = d }

// OnEvent sets the handler for server events, each called once and in seq order, on the
// client's dispatch goroutine. payload is the whole event object, room and seq included.
func (p *Peer) OnEvent(h func(event string, payload map[string]any)) {
	p.mu.Lock()
	p.onEvent = h
	p.mu.Unlock()
}

// Joined returns the join reply, or nil before Join succeeded.
func (p *Peer) Joined() *JoinReply {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.joined
}

// Join joins room with a random nonce, sending the join again (same nonce) every retry interval
// until a reply comes. A protocol rejection is returned as *Error; unavailable is retried.
func (p *Peer) Join(ctx context.Context, room string) (*JoinReply, error) {
	p.mu.Lock()
	if p.room != "" {
		p.mu.Unlock()
		return nil, errors.New("sioclient: peer already joined a room")
	}
	p.room = room
	p.mu.Unlock()
	defer close(p.joinDone)

	var b [12]byte
	rand.Read(b[:])
	req := map[string]any{"room": room, "nonce": hex.EncodeToString(b[:])}
	raw, err := p.request(ctx, "join", req, func(code string) bool { return code == "unavailable" })
	if err != nil {
		return nil, err
	}
	var jr JoinReply
	if err := json.Unmarshal(raw, &jr); err != nil {
		return nil, fmt.Errorf("sioclient: bad join reply %s: %w", raw, err)
	}
	p.mu.Lock()
	p.joined = &jr
	p.nextSeq = jr.Next
	p.mu.Unlock()
	return &jr, nil
}

// Send sends a sequenced message (offer, answer, candidate, hangup, leave): payload plus the
// room and the next seq. It is sent again with the same seq every retry interval until a reply
// comes, and again after out_of_order or unavailable. It returns the reply object, or an *Error
// for a final rejection (which consumed the seq). Each call takes the next seq as it starts
// (or, while Join is under way, as Join ends): send messages whose order matters one after
// another. A Send given up (ctx done) leaves its seq unsent, and the server answers later ones
// with out_of_order until it is sent: give Send a context that lasts as long as the membership.
//
// A Send while Join is under way waits for it: the held offer may come before the join reply.
func (p *Peer) Send(ctx context.Context, event string, payload map[string]any) (map[string]any, error) {
	p.mu.Lock()
	started := p.room != ""
	p.mu.Unlock()
	if !started {
		return nil, errors.New("sioclient: send before join")
	}
	select {
	case <-p.joinDone:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	if p.joined == nil {
		p.mu.Unlock()
		return nil, errors.New("sioclient: send after a failed join")
	}
	msg := maps.Clone(payload)
	if msg == nil {
		msg = make(map[string]any)
	}
	msg["room"] = p.room
	msg["seq"] = p.nextSeq
	p.nextSeq++
	p.mu.Unlock()

	raw, err := p.request(ctx, event, msg, retryable)
	if err != nil {
		return nil, err
	}
	var reply map[string]any
	if err := json.Unmarshal(raw, &reply); err != nil {
		return nil, fmt.Errorf("sioclient: bad %s reply %s: %w", event, raw, err)
	}
	return reply, nil
}

// request emits event until it gets a reply that is not retryable, or ctx ends. It returns the
// raw reply of an ok one, or its error as *Error.
func (p *Peer) request(ctx context.Context, event string, msg any, retry func(code string) bool) (json.RawMessage, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, p.retry)
		raw, err := p.c.EmitWithAck(actx, event, msg)
		cancel()
		switch {
		case err == nil:
			var r struct {
				OK    bool   `json:"ok"`
				Error *Error `json:"error"`
			}
			if err := json.Unmarshal(raw, &r); err != nil {
				return nil, fmt.Errorf("sioclient: bad %s reply %s: %w", event, raw, err)
			}
			if r.OK {
				return raw, nil
			}
			if r.Error == nil {
				return nil, fmt.Errorf("sioclient: %s rejected without an error: %s", event, raw)
			}
			if !retry(r.Error.Code) {
				return nil, r.Error
			}
			select { // wait before sending again
			case <-time.After(p.retry):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			// no reply within the retry interval: send again
		default:
			return nil, err
		}
	}
}

// receive handles every event of the client: those of this room carrying a seq are applied in
// order and acknowledged.
func (p *Peer) receive(name string, arg json.RawMessage) {
	var head struct {
		Room string `json:"room"`
		Seq  *int64 `json:"seq"`
	}
	if json.Unmarshal(arg, &head) != nil || head.Seq == nil {
		return
	}
	p.mu.Lock()
	if head.Room == "" || head.Room != p.room {
		p.mu.Unlock()
		return
	}
	seq := *head.Seq
	if seq > p.applied && p.pending[seq].name == "" {
		var payload map[string]any
		if json.Unmarshal(arg, &payload) == nil {
			p.pending[seq] = serverEvent{name: name, payload: payload}
		}
	}
	var ready []serverEvent
	for {
		ev, ok := p.pending[p.applied+1]
		if !ok {
			break
		}
		delete(p.pending, p.applied+1)
		p.applied++
		ready = append(ready, ev)
	}
	applied, room, h := p.applied, p.room, p.onEvent
	p.mu.Unlock()

	if h != nil {
		for _, ev := range ready {
			h(ev.name, ev.payload)
		}
	}
	// Acknowledge what is applied, also for duplicates: the earlier ack may have been lost.
	// The reply does not matter; a lost ack is repaired by the server's resend.
	if applied > 0 {
		p.c.emitNoWait("ack", map[string]any{"room": room, "seq": applied})
	}
}

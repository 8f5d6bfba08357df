// Package signaling is Switchboard's protocol and room logic: it turns client events into store
// operations and store deliveries into client events. It knows nothing of Socket.IO: a transport
// hands it connections (Conn) and payloads as undecoded JSON, so it is testable without sockets.
package signaling

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchboard-rtc/switchboard/store"
)

// Conn is one client connection as the transport gives it.
type Conn interface {
	// ID is unique among the connections of all instances.
	ID() string
	// Emit sends one event to the client. It must not block; a lost emit is resent later.
	Emit(event string, payload json.RawMessage)
}

// ICEServer is one entry of RTCConfiguration.iceServers.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Config is the hub's part of the server configuration. New fills zero fields with defaults.
type Config struct {
	Instance       string        // this instance's id; deliveries are routed by it
	Limits         Limits        // sizes of SDPs, candidates and messages; announced in join and resume replies
	ResumeWindow   time.Duration // announced to clients; the store enforces it
	HeldTTL        time.Duration // announced to clients; the store enforces it
	Capacity       int           // members per room, announced to clients; the store enforces it; default 2
	ResendInterval time.Duration // unacknowledged messages are sent again after this; default 1s
	ReorderTimeout time.Duration // how long an early message waits for its predecessors; default 5s
	MaxReorder     int           // early messages that may wait per membership; default 256
	SweepInterval  time.Duration // how often due timers are fired; default 1s
	RenewInterval  time.Duration // how often leases of connected members are renewed; default 10s
	StoreTimeout   time.Duration // bound of one store call; default 5s
	// ICEServers returns the iceServers of a join or resume reply to peer (TURN credentials are
	// minted per peer); nil: none.
	ICEServers func(peer string, now time.Time) []ICEServer
	Metrics    Metrics // counts and timings; nil: none
	MaxRooms   int     // memberships one connection may hold; default 4
	EventRate  float64 // events per second one connection may send (token bucket); 0: unlimited
	EventBurst int     // bucket size of EventRate; default 2×EventRate
	// Authorize checks a join's room token and returns what it grants.
	// Nil: the server runs open, and a join without a room creates one with an unguessable id.
	Authorize func(token, room string, now time.Time) (Grant, *Error)
}

// Grant is what a valid room token allows.
type Grant struct {
	Role string // the only role the member may take; "" for either
	Sub  string // who the token is for; goes into the member's call events
	Meta []byte // the token's meta claim (a JSON object) or nil; goes into call events
}

// Metrics receives the hub's counts and timings (the server exports them to Prometheus).
// Methods must be safe for concurrent use and must not block.
type Metrics interface {
	Connected()              // a connection was registered
	Joined(role string)      // a join created a membership (a retried join does not count)
	Held()                   // an offer was held: its sender is alone in its room
	HandOff(d time.Duration) // a held offer went to a joining answerer: d from the join arriving to the offer and candidates emitted
	Expired()                // the store published "expired" (a held offer timed out) to a sender connected here
	Relayed(event string)    // a sequenced client message (offer, answer, candidate, hangup, leave) was applied
	Rejected(code Code)      // a client event got an error reply
	StoreError(op string)    // a store call failed for a reason that is not the client's
}

// NopMetrics discards everything.
type NopMetrics struct{}

func (NopMetrics) Connected()            {}
func (NopMetrics) Joined(string)         {}
func (NopMetrics) Held()                 {}
func (NopMetrics) HandOff(time.Duration) {}
func (NopMetrics) Expired()              {}
func (NopMetrics) Relayed(string)        {}
func (NopMetrics) Rejected(Code)         {}
func (NopMetrics) StoreError(string)     {}

func (c Config) withDefaults() Config {
	if c.ResendInterval <= 0 {
		c.ResendInterval = time.Second
	}
	if c.ReorderTimeout <= 0 {
		c.ReorderTimeout = 5 * time.Second
	}
	if c.MaxReorder <= 0 {
		c.MaxReorder = 256
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = time.Second
	}
	if c.RenewInterval <= 0 {
		c.RenewInterval = 10 * time.Second
	}
	if c.StoreTimeout <= 0 {
		c.StoreTimeout = 5 * time.Second
	}
	if c.Limits.MaxSDPBytes <= 0 {
		c.Limits.MaxSDPBytes = 64 << 10
	}
	if c.Limits.MaxCandidateBytes <= 0 {
		c.Limits.MaxCandidateBytes = 2048
	}
	if c.MaxRooms <= 0 {
		c.MaxRooms = 4
	}
	if c.Capacity <= 0 {
		c.Capacity = store.DefaultCapacity
	}
	if c.EventRate > 0 && c.EventBurst <= 0 {
		c.EventBurst = int(2 * c.EventRate)
	}
	if c.ICEServers == nil {
		c.ICEServers = func(string, time.Time) []ICEServer { return nil }
	}
	if c.Metrics == nil {
		c.Metrics = NopMetrics{}
	}
	return c
}

// Hub runs the protocol for the connections of one instance.
type Hub struct {
	cfg Config
	st  store.Store
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	clients map[string]*client // by Conn.ID
	members map[memberKey]*membership
	// joining holds the members joins here are creating, with the highest seq published to
	// each before it was attached: Deliver drops those, so the join's post-reply step must
	// cover them.
	joining map[memberKey]int64

	acks  ackWriter // acknowledgements not yet written to the store
	holds *holds    // timer sets whose timers must not fire yet
}

// client is one connection and its memberships. Fields are guarded by Hub.mu.
type client struct {
	conn    Conn
	rooms   map[string]*membership
	closed  bool
	limiter *rate.Limiter // events per second; nil: unlimited
}

type memberKey struct{ room, peer string }

// NewHub returns a hub on st. Call Run to start its background work.
func NewHub(cfg Config, st store.Store, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.Default()
	}
	return &Hub{
		cfg:     cfg.withDefaults(),
		st:      st,
		log:     log,
		now:     time.Now,
		clients: make(map[string]*client),
		members: make(map[memberKey]*membership),
		joining: make(map[memberKey]int64),
		acks:    newAckWriter(),
		holds:   newHolds(),
	}
}

// Connect registers a new connection.
func (h *Hub) Connect(c Conn) {
	h.mu.Lock()
	cl := &client{conn: c, rooms: make(map[string]*membership)}
	if h.cfg.EventRate > 0 {
		cl.limiter = rate.NewLimiter(rate.Limit(h.cfg.EventRate), h.cfg.EventBurst)
	}
	h.clients[c.ID()] = cl
	h.mu.Unlock()
	h.cfg.Metrics.Connected()
}

// Disconnect forgets a connection; its memberships stay resumable for the resume window.
func (h *Hub) Disconnect(c Conn) {
	h.mu.Lock()
	cl := h.clients[c.ID()]
	if cl == nil {
		h.mu.Unlock()
		return
	}
	delete(h.clients, c.ID())
	cl.closed = true
	ms := make([]*membership, 0, len(cl.rooms))
	for _, m := range cl.rooms {
		ms = append(ms, m)
		h.dropLocked(m)
	}
	h.mu.Unlock()
	for _, m := range ms {
		h.markAway(m, c.ID())
	}
}

func (h *Hub) markAway(m *membership, conn string) {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.StoreTimeout)
	defer cancel()
	// The client is likely to resume elsewhere: write what it acknowledged first, so the
	// instance it resumes on does not resend that.
	if seq, ok := h.acks.takeOne(m); ok {
		if err := h.st.Ack(ctx, m.room, m.peer, seq); err != nil && !errors.Is(err, store.ErrNotMember) {
			h.cfg.Metrics.StoreError("ack")
			h.log.Warn("write ack failed", "room", m.room, "peer", m.peer, "err", err)
		}
	}
	if err := h.st.Disconnect(ctx, m.room, m.peer, conn, h.now()); err != nil {
		h.cfg.Metrics.StoreError("disconnect")
		// The lease stops being renewed, so the member still times out.
		h.log.Warn("disconnect not recorded", "room", m.room, "peer", m.peer, "err", err)
	}
}

// Clients returns the number of connected clients.
func (h *Hub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// Rooms returns the number of rooms with a member connected here, and of those memberships.
func (h *Hub) Rooms() (rooms, members int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := make(map[string]struct{}, len(h.members))
	for k := range h.members {
		seen[k.room] = struct{}{}
	}
	return len(seen), len(h.members)
}

func (h *Hub) iceServers(peer string) []ICEServer {
	if s := h.cfg.ICEServers(peer, h.now()); s != nil {
		return s
	}
	return []ICEServer{}
}

// Handle runs one client event and returns its reply. payload is the event's argument as
// undecoded JSON (nil when the client sent none); the hub decodes it once into the event's type.
// When after is not nil the transport calls it once the reply is on its way (join and resume
// send queued messages then). It never panics: a bug becomes an "internal" reply.
func (h *Hub) Handle(ctx context.Context, c Conn, event string, payload json.RawMessage) (reply Reply, after func()) {
	defer func() {
		if e, ok := reply["error"].(*Error); ok {
			h.cfg.Metrics.Rejected(e.Code)
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			h.log.Error("handler panic", "event", event, "conn", c.ID(), "panic", fmt.Sprint(r))
			reply, after = errReply(errorf(CodeInternal, "internal error")), nil
		}
	}()
	h.mu.Lock()
	cl := h.clients[c.ID()]
	h.mu.Unlock()
	if cl == nil {
		return errReply(errorf(CodeNotJoined, "connection is closed")), nil
	}
	if cl.limiter != nil && !cl.limiter.Allow() {
		return errReply(errorf(CodeRateLimited, "more than %g events per second; slow down and retry", h.cfg.EventRate)), nil
	}
	switch event {
	case EvJoin, EvResume, EvOffer, EvAnswer, EvCandidate, EvHangup, EvLeave, EvAck:
	default:
		return errReply(errorf(CodeUnknownEvent, "unknown event %q", truncate(event, 64))), nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.StoreTimeout+h.cfg.ReorderTimeout)
	defer cancel()
	switch event {
	case EvJoin:
		var a joinArgs
		if e := decodeArgs(payload, &a, ""); e != nil {
			return errReply(e), nil
		}
		return h.join(ctx, cl, &a)
	case EvResume:
		var a resumeArgs
		if e := decodeArgs(payload, &a, ""); e != nil {
			return errReply(e), nil
		}
		return h.resume(ctx, cl, &a)
	}
	a, bodyErr, e := decodeMsg(payload)
	if e != nil {
		return errReply(e), nil
	}
	if event == EvAck {
		return h.ack(cl, &a), nil // it reads room and seq alone
	}
	return h.sequenced(ctx, cl, event, &a, bodyErr), nil
}

// Reject returns the reply refusing an event the transport will not hand over (binary data,
// ErrBinary), counted like every other refusal.
func (h *Hub) Reject(e *Error) Reply {
	h.cfg.Metrics.Rejected(e.Code)
	return errReply(e)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func (h *Hub) join(ctx context.Context, cl *client, a *joinArgs) (Reply, func()) {
	start := time.Now()
	room, e := optional("room", a.Room, roomRe)
	if e != nil {
		return errReply(e), nil
	}
	nonce, e := optional("nonce", a.Nonce, nonceRe)
	if e != nil {
		return errReply(e), nil
	}
	token, _ := optional("token", a.Token, nil)
	var grant Grant
	switch {
	case h.cfg.Authorize != nil:
		if room == "" {
			return errReply(errorf(CodeBadRequest, "room is required")), nil
		}
		if grant, e = h.cfg.Authorize(token, room, h.now()); e != nil {
			return errReply(e), nil
		}
	case room == "":
		// An open server names new rooms itself, so nobody can guess one.
		room, grant.Role = newRoomID(), store.RoleCaller
	}
	if m := h.membership(cl, room); m != nil && (nonce == "" || nonce != m.nonce) {
		return errReply(errorf(CodeBadRequest, "this connection is in room %s already", room)), nil
	}
	if h.roomCount(cl) >= h.cfg.MaxRooms && h.membership(cl, room) == nil {
		return errReply(errorf(CodeTooManyRooms, "a connection may be in at most %d rooms", h.cfg.MaxRooms)), nil
	}
	key := memberKey{room, newID(8)}
	h.mu.Lock()
	h.joining[key] = 0
	h.mu.Unlock()
	defer h.endJoin(key)
	ms, err := h.st.Join(ctx, store.JoinParams{
		Room: room, Peer: key.peer, Token: newToken(), Nonce: nonce, Role: grant.Role,
		Instance: h.cfg.Instance, Conn: cl.conn.ID(), Now: h.now(), Sub: grant.Sub, Meta: grant.Meta,
	})
	if err != nil {
		return errReply(h.storeError("join", room, err)), nil
	}
	m, _ := h.attach(cl, room, ms, nonce)
	missed := h.endJoin(key)
	h.log.Debug("joined", "room", room, "peer", ms.Peer, "role", ms.Role, "retried", ms.Retried)
	r := h.membershipReply(room, ms)
	r["token"] = ms.Token
	flush := h.flushFunc(m)
	if !ms.Retried {
		h.cfg.Metrics.Joined(ms.Role)
		// A new member's queue is empty unless the join handed it a held offer. When the join
		// returned all of it and nothing later was published before the member was attached,
		// it is emitted as is: reading it back would cost a store call.
		if flush != nil && ms.Last > 0 {
			if handedAll(ms) && missed <= ms.Last {
				return r, func() { h.emitAll(m, ms.Handed); h.cfg.Metrics.HandOff(time.Since(start)) }
			}
			return r, func() { flush(); h.cfg.Metrics.HandOff(time.Since(start)) }
		}
		if ms.Last == 0 && missed == 0 {
			return r, nil // nothing queued, nothing published before attach: no read needed
		}
	}
	return r, flush
}

// endJoin stops tracking a join's new member and returns the highest seq published to it
// before it was attached.
func (h *Hub) endJoin(key memberKey) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	top := h.joining[key]
	delete(h.joining, key)
	return top
}

// handedAll reports whether ms.Handed is the new member's whole queue, Acked+1 through Last.
func handedAll(ms store.Membership) bool {
	n := len(ms.Handed)
	return n > 0 && ms.Handed[0].Seq == ms.Acked+1 && ms.Handed[n-1].Seq == ms.Last &&
		int64(n) == ms.Last-ms.Acked
}

// emitAll emits msgs to m as flush would after reading them from the store. Whatever the
// store published meanwhile (these, or later ones) reaches Deliver too; the client drops a
// seq it has, and a gap marks m for a read of the store.
func (h *Hub) emitAll(m *membership, msgs []store.Message) {
	now := h.now()
	for _, msg := range msgs {
		m.emit(msg, now)
	}
}

func (h *Hub) resume(ctx context.Context, cl *client, a *resumeArgs) (Reply, func()) {
	room, e := required("room", a.Room, roomRe)
	if e != nil {
		return errReply(e), nil
	}
	peer, e := required("peer", a.Peer, idRe)
	if e != nil {
		return errReply(e), nil
	}
	token, e := required("token", a.Token, idRe)
	if e != nil {
		return errReply(e), nil
	}
	if m := h.membership(cl, room); m != nil && m.peer != peer {
		return errReply(errorf(CodeBadRequest, "this connection is in room %s as another peer", room)), nil
	}
	ms, err := h.st.Resume(ctx, store.ResumeParams{
		Room: room, Peer: peer, Token: token,
		Instance: h.cfg.Instance, Conn: cl.conn.ID(), Now: h.now(),
	})
	if err != nil {
		return errReply(h.storeError("resume", room, err)), nil
	}
	m, again := h.attach(cl, room, ms, "")
	h.log.Debug("resumed", "room", room, "peer", peer, "next", ms.Next, "acked", ms.Acked, "again", again)
	r := h.membershipReply(room, ms)
	r["acked"] = ms.Acked
	if again {
		// A resume sent again on the same connection (its reply was late or lost): the first
		// one's post-reply step sent the backlog on this connection already, and the resend
		// loop sends what is still unacknowledged. Sending all of it once more per retry is
		// what made a slow server slower.
		return r, nil
	}
	return r, h.flushFunc(m)
}

func (h *Hub) membershipReply(room string, ms store.Membership) Reply {
	peers := ms.Peers
	if peers == nil {
		peers = []store.Member{}
	}
	return Reply{
		"ok":             true,
		"room":           room,
		"peer":           ms.Peer,
		"role":           ms.Role,
		"peers":          peers,
		"next":           ms.Next,
		"limits":         h.cfg.Limits,
		"resumeWindowMs": h.cfg.ResumeWindow.Milliseconds(),
		"heldOfferTtlMs": h.cfg.HeldTTL.Milliseconds(),
		"capacity":       h.cfg.Capacity,
		"iceServers":     h.iceServers(ms.Peer),
	}
}

// flushFunc returns the post-reply step of join and resume: send what is queued.
func (h *Hub) flushFunc(m *membership) func() {
	if m == nil {
		return nil
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), h.cfg.StoreTimeout)
		defer cancel()
		h.flush(ctx, m)
	}
}

// attach makes ms this connection's membership of room, taking it from any other local
// connection that had it. It returns nil when the connection closed meanwhile, and again when
// this connection held the membership already (a join or resume sent again).
func (h *Hub) attach(cl *client, room string, ms store.Membership, nonce string) (m *membership, again bool) {
	key := memberKey{room, ms.Peer}
	h.mu.Lock()
	if cl.closed {
		h.mu.Unlock()
		// The connection went away while the store call ran: leave the member resumable.
		h.markAway(&membership{room: room, peer: ms.Peer}, cl.conn.ID())
		return nil, false
	}
	if old := h.members[key]; old != nil {
		if old.client == cl {
			old.gen = ms.Gen
			old.advance(ms.Next)
			h.mu.Unlock()
			return old, true
		}
		h.dropLocked(old)
	}
	m = newMembership(room, ms.Peer, cl, nonce, ms)
	cl.rooms[room] = m
	h.members[key] = m
	h.mu.Unlock()
	return m, false
}

// dropLocked forgets m locally. h.mu must be held.
func (h *Hub) dropLocked(m *membership) {
	if h.members[memberKey{m.room, m.peer}] == m {
		delete(h.members, memberKey{m.room, m.peer})
	}
	if m.client.rooms[m.room] == m {
		delete(m.client.rooms, m.room)
	}
}

func (h *Hub) drop(m *membership) {
	h.mu.Lock()
	h.dropLocked(m)
	h.mu.Unlock()
}

func (h *Hub) roomCount(cl *client) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(cl.rooms)
}

func (h *Hub) membership(cl *client, room string) *membership {
	h.mu.Lock()
	defer h.mu.Unlock()
	return cl.rooms[room]
}

func (h *Hub) ack(cl *client, a *msgArgs) Reply {
	room, e := required("room", a.Room, roomRe)
	if e != nil {
		return errReply(e)
	}
	seq, e := seqOf("seq", a.Seq)
	if e != nil {
		return errReply(e)
	}
	m := h.membership(cl, room)
	if m == nil {
		return errReply(errorf(CodeNotJoined, "not in room %s", room))
	}
	m.acked(seq)
	h.acks.note(m, seq) // written to the store by ackLoop
	return okReply()
}

// sequenced applies offer, answer, candidate, hangup and leave: once each, in client seq order.
// bodyErr, when not nil, rejects the message once its seq is in turn (a field of its body had
// the wrong type).
func (h *Hub) sequenced(ctx context.Context, cl *client, event string, a *msgArgs, bodyErr *Error) Reply {
	env, e := decodeEnvelope(a)
	if e != nil {
		return errReply(e)
	}
	m := h.membership(cl, env.Room)
	if m == nil {
		return errReply(errorf(CodeNotJoined, "not in room %s", env.Room))
	}
	p := store.SendParams{Room: env.Room, Peer: m.peer, Conn: cl.conn.ID(), Seq: env.Seq, Now: h.now()}
	verr := bodyErr
	if verr == nil {
		verr = h.decodeMessage(event, a, m.peer, &p)
	}
	if verr != nil {
		p.Kind, p.Body, p.To = store.KindSkip, nil, ""
	}
	it := &batchItem{p: p, done: make(chan struct{})}
	switch m.turnBatch(ctx, it, h.cfg.ReorderTimeout, h.cfg.MaxReorder) {
	case turnDuplicate:
		return Reply{"ok": true, "seq": env.Seq, "duplicate": true}
	case turnTimeout:
		return errReply(errorf(CodeOutOfOrder, "seq %d: earlier messages did not arrive in time", env.Seq))
	case turnCanceled:
		return errReply(errorf(CodeUnavailable, "seq %d: gave up waiting", env.Seq))
	case turnGo:
		// This goroutine holds the turn: it sends its message and every later one already
		// waiting, in order, in one store call, then hands the results out. The turn and the
		// waiters are released even if the store call panics. The transport may start the
		// connection's next event meanwhile: the membership keeps the order from here, and a
		// message that arrives during the store call goes in the next batch.
		release(ctx)
		batch := m.collect(it)
		next := env.Seq
		for _, b := range batch {
			b.err = errNotSent
		}
		func() {
			defer func() {
				for _, b := range batch[1:] {
					close(b.done)
				}
				m.done(next)
			}()
			h.sendBatch(ctx, batch)
			h.repairRollback(ctx, m, batch)
			for _, b := range batch {
				if b.err == nil {
					next = b.res.Next
				} else if store.Rejected(b.err) {
					next = b.p.Seq + 1
				} else {
					break
				}
			}
		}()
	}
	res, err := it.res, it.err
	switch {
	case err == nil:
	case store.Rejected(err):
		return errReply(h.storeError(event, env.Room, err))
	case errors.Is(err, store.ErrNotMember):
		h.drop(m)
		return errReply(h.storeError(event, env.Room, err))
	default:
		return errReply(h.storeError(event, env.Room, err))
	}
	if res.Duplicate {
		return Reply{"ok": true, "seq": env.Seq, "duplicate": true}
	}
	if res.Gap {
		return errReply(errorf(CodeOutOfOrder, "seq %d: the server expects %d first", env.Seq, res.Next))
	}
	if verr != nil {
		return errReply(verr)
	}
	h.cfg.Metrics.Relayed(event)
	if res.Held && p.Kind == store.KindOffer {
		h.cfg.Metrics.Held()
	}
	r := Reply{"ok": true, "seq": env.Seq}
	switch p.Kind {
	case store.KindOffer, store.KindCandidate:
		r["held"] = res.Held
		if res.Held && p.Kind == store.KindOffer {
			r["expiresInMs"] = res.HeldExpires.Sub(p.Now).Milliseconds()
		}
	case store.KindAnswer:
		r["held"] = false
	case store.KindLeave:
		h.drop(m)
	}
	return r
}

// decodeMessage validates a sequenced event into p. A non-nil error rejects the message.
func (h *Hub) decodeMessage(event string, a *msgArgs, from string, p *store.SendParams) *Error {
	var e *Error
	switch event {
	case EvOffer, EvAnswer:
		p.Kind = store.KindOffer
		if event == EvAnswer {
			p.Kind = store.KindAnswer
		}
		p.Body, e = decodeSDP(a.SDP, from, h.cfg.Limits)
	case EvCandidate:
		p.Kind = store.KindCandidate
		p.Body, e = decodeCandidate(a.Candidate, from, h.cfg.Limits)
	case EvHangup:
		p.Kind = store.KindHangup
	case EvLeave:
		p.Kind = store.KindLeave
	}
	if e != nil {
		return e
	}
	if p.Kind == store.KindOffer || p.Kind == store.KindAnswer || p.Kind == store.KindCandidate {
		p.To, e = optional("to", a.To, idRe)
	}
	return e
}

// storeCodes maps the store's sentinel errors to client codes.
var storeCodes = []struct {
	err  error
	code Code
}{
	{store.ErrRoomFull, CodeRoomFull},
	{store.ErrRole, CodeForbidden},
	{store.ErrResume, CodeResumeFailed},
	{store.ErrNotMember, CodeNotJoined},
	{store.ErrNoPeer, CodeNoPeer},
	{store.ErrTargetRequired, CodeTargetRequired},
	{store.ErrNoOffer, CodeNoOffer},
	{store.ErrTooManyCandidates, CodeTooManyCandidates},
	{store.ErrBacklogFull, CodeBacklogFull},
	{store.ErrTooManyHeld, CodeTooManyHeld},
}

// storeError maps a store error to a client error, logging what is not the client's doing.
func (h *Hub) storeError(op, room string, err error) *Error {
	for _, c := range storeCodes {
		if errors.Is(err, c.err) {
			return &Error{Code: c.code, Message: err.Error()}
		}
	}
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		h.log.Warn("store unavailable", "op", op, "room", room, "err", err)
		h.cfg.Metrics.StoreError(op)
		return errorf(CodeUnavailable, "the store cannot be reached; try again")
	}
	h.log.Error("store failed", "op", op, "room", room, "err", err)
	h.cfg.Metrics.StoreError(op)
	return errorf(CodeInternal, "internal error")
}

func newID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// newRoomID returns 128 random bits as a room id.
func newRoomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func newToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// errNotSent marks a batched message whose store call never returned (a bug: it panicked).
var errNotSent = errors.New("signaling: message not sent")

// batchSender is a store that applies several sequenced messages of one member in one call.
type batchSender interface {
	SendBatch(ctx context.Context, ps []store.SendParams) ([]store.SendResult, []error)
}

func (h *Hub) sendBatch(ctx context.Context, batch []*batchItem) {
	if bs, ok := h.st.(batchSender); ok && len(batch) > 1 {
		ps := make([]store.SendParams, len(batch))
		for i, b := range batch {
			ps[i] = b.p
		}
		res, errs := bs.SendBatch(ctx, ps)
		for i, b := range batch {
			b.res, b.err = res[i], errs[i]
		}
		return
	}
	for _, b := range batch {
		b.res, b.err = h.st.Send(ctx, b.p)
	}
}

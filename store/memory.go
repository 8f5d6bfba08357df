package store

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Memory is a Store held in this process, for a single instance and for tests. It follows the
// same rules as Redis, step for step; the Redis scripts in lua/ are its shared-state twin.
type Memory struct {
	opts Options

	mu        sync.Mutex                           // guards everything below
	rooms     map[string]*memRoom                  // room id → state; a room is gone once empty
	timers    map[string]int64                     // timer name (see leaseTimer) → due time, ms
	held      int                                  // rooms with a held offer
	listeners map[string]map[*memListener]struct{} // instance → handlers registered by Listen
	outbox    *MemoryOutbox                        // nil unless Options.OutboxMax > 0
}

var _ Store = (*Memory)(nil)

type memListener struct{ h Handler }

type memRoom struct {
	id      string
	order   []string // member ids in join order
	members map[string]*memMember
	nonces  map[string]string // join nonce → member id
	held    *memHeld          // nil when no offer is held
	heldGen int64             // names the held offer's timer; outlives the held offer
}

type memMember struct {
	role, token, nonce   string
	inst, conn           string // both empty while away
	gen, next, last, ack int64
	offers               map[string]bool // targets of its outstanding offers ("" : its held offer)
	away                 int64           // resume deadline (ms) while disconnected, else 0
	queue                map[int64]memEntry
	sub                  string // for call events (outbox on only)
	meta                 []byte
}

// addOffer records an outstanding offer to target.
func (mb *memMember) addOffer(target string) {
	if mb.offers == nil {
		mb.offers = make(map[string]bool)
	}
	mb.offers[target] = true
}

type memEntry struct {
	event string
	body  []byte
}

type memHeld struct {
	from    string
	entries []memEntry // the offer, then its candidates in order
	exp     int64
	at      int64 // when it was held (ms)
}

// NewMemory returns an empty in-process store.
func NewMemory(opts Options) *Memory {
	m := &Memory{
		opts:      opts.WithDefaults(),
		rooms:     make(map[string]*memRoom),
		timers:    make(map[string]int64),
		listeners: make(map[string]map[*memListener]struct{}),
	}
	if m.opts.OutboxMax > 0 {
		m.outbox = &MemoryOutbox{m: m, taken: make(map[string]Event), wake: make(chan struct{}, 1)}
	}
	return m
}

// memOp is one locked operation. It collects deliveries so that handlers run after the unlock:
// a handler may call the store again.
type memOp struct {
	m   *Memory
	out []memDelivery
	now int64 // ms, the time of call events
}

type memDelivery struct {
	inst string
	d    Delivery
}

func (m *Memory) begin(ctx context.Context, op string) (*memOp, error) {
	if err := ctxErr(ctx, op); err != nil {
		return nil, err
	}
	m.mu.Lock()
	return &memOp{m: m}, nil
}

// end unlocks and then hands the collected deliveries to the listeners of their instances.
func (o *memOp) end() {
	type call struct {
		h Handler
		d Delivery
	}
	var calls []call
	for _, d := range o.out {
		for l := range o.m.listeners[d.inst] {
			calls = append(calls, call{l.h, d.d})
		}
	}
	o.m.mu.Unlock()
	for _, c := range calls {
		c.h.Deliver(c.d)
	}
}

func (o *memOp) leaseDue(now int64) int64 {
	return now + (o.m.opts.ResumeWindow + o.m.opts.LeaseGrace).Milliseconds()
}

// queue appends a message to peer's queue and publishes it when peer is connected.
func (o *memOp) queue(r *memRoom, peer, event string, body []byte) {
	mb := r.members[peer]
	mb.last++
	mb.queue[mb.last] = memEntry{event: event, body: bytes.Clone(body)}
	if mb.inst != "" {
		msg := Message{Seq: mb.last, Event: event, Body: bytes.Clone(body)}
		o.out = append(o.out, memDelivery{inst: mb.inst, d: Delivery{Room: r.id, Peer: peer, Message: msg}})
	}
}

func (o *memOp) backlogFull(r *memRoom, peer string) bool {
	mb := r.members[peer]
	return mb.last-mb.ack >= int64(o.m.opts.MaxBacklog)
}

// dropHeld deletes the held offer and its timer and returns its sender ("" if none).
func (o *memOp) dropHeld(r *memRoom) string {
	if r.held == nil {
		return ""
	}
	from := r.held.from
	delete(o.m.timers, heldTimer(r.id, r.heldGen))
	r.held = nil
	o.m.held--
	return from
}

// expireHeld drops the held offer and tells its sender.
func (o *memOp) expireHeld(r *memRoom) {
	at := int64(0)
	if r.held != nil {
		at = r.held.at
	}
	from := o.dropHeld(r)
	if mb := r.members[from]; mb != nil {
		o.emit(r, Event{Type: EvOfferExpired, Peer: from, Held: time.Duration(o.now-at) * time.Millisecond})
		mb.offers = nil
		o.queue(r, from, EventExpired, expiredOfferBody)
	}
}

// removeMember deletes peer with everything it owns; the others get "peer-left".
func (o *memOp) removeMember(r *memRoom, peer, reason string) {
	if r.held != nil && r.held.from == peer {
		o.dropHeld(r)
	}
	o.emit(r, Event{Type: EvPeerLeft, Peer: peer, Reason: reason})
	mb := r.members[peer]
	delete(o.m.timers, leaseTimer(r.id, peer, mb.gen))
	if mb.nonce != "" {
		delete(r.nonces, mb.nonce)
	}
	delete(r.members, peer)
	r.order = slices.DeleteFunc(r.order, func(p string) bool { return p == peer })
	if len(r.order) == 0 {
		delete(o.m.rooms, r.id)
		return
	}
	body := peerLeftBody(peer, reason)
	for _, p := range r.order {
		delete(r.members[p].offers, peer)
		o.queue(r, p, EventPeerLeft, body)
	}
}

// evictExpired removes the members whose resume window has passed, without waiting for Sweep.
func (o *memOp) evictExpired(r *memRoom, now int64) {
	for _, p := range slices.Clone(r.order) {
		if mb := r.members[p]; mb.away != 0 && mb.away <= now {
			o.removeMember(r, p, reasonTimeout)
		}
	}
}

// takeover hands the membership to a new connection with a new lease.
func (o *memOp) takeover(r *memRoom, peer, inst, conn string, now int64) {
	mb := r.members[peer]
	delete(o.m.timers, leaseTimer(r.id, peer, mb.gen))
	mb.gen++
	mb.inst, mb.conn, mb.away = inst, conn, 0
	o.m.timers[leaseTimer(r.id, peer, mb.gen)] = o.leaseDue(now)
}

func memMembership(r *memRoom, peer string) Membership {
	mb := r.members[peer]
	peers := make([]Member, 0, len(r.order))
	for _, p := range r.order {
		if p != peer {
			peers = append(peers, Member{Peer: p, Role: r.members[p].role})
		}
	}
	return Membership{
		Peer: peer, Token: mb.token, Role: mb.role, Peers: peers,
		Gen: mb.gen, Next: mb.next, Acked: mb.ack, Last: mb.last,
	}
}

// Join implements Store.
func (m *Memory) Join(ctx context.Context, p JoinParams) (Membership, error) {
	if err := validateJoin(p); err != nil {
		return Membership{}, err
	}
	o, err := m.begin(ctx, "join")
	if err != nil {
		return Membership{}, err
	}
	defer o.end()
	now := ms(p.Now)
	o.now = now

	r := m.rooms[p.Room]
	if r != nil {
		o.evictExpired(r, now)
		r = m.rooms[p.Room]
	}
	if r != nil && p.Nonce != "" {
		if id, ok := r.nonces[p.Nonce]; ok {
			o.takeover(r, id, p.Instance, p.Conn, now)
			mem := memMembership(r, id)
			mem.Retried = true
			return mem, nil
		}
	}
	if r == nil {
		r = &memRoom{id: p.Room, members: make(map[string]*memMember), nonces: make(map[string]string)}
		m.rooms[p.Room] = r
	}
	if _, dup := r.members[p.Peer]; dup {
		return Membership{}, fmt.Errorf("store: join: peer id %q in use", p.Peer)
	}
	if len(r.order) >= m.opts.Capacity {
		return Membership{}, ErrRoomFull
	}
	role := RoleAnswerer
	if len(r.order) == 0 {
		role = RoleCaller
	}
	if p.Role != "" && p.Role != role {
		if len(r.order) == 0 {
			delete(m.rooms, p.Room) // created above for this join only
		}
		return Membership{}, ErrRole
	}
	r.members[p.Peer] = &memMember{
		role: role, token: p.Token, nonce: p.Nonce, inst: p.Instance, conn: p.Conn,
		gen: 1, next: 1, queue: make(map[int64]memEntry),
	}
	if m.outbox != nil {
		r.members[p.Peer].sub, r.members[p.Peer].meta = p.Sub, bytes.Clone(p.Meta)
	}
	r.order = append(r.order, p.Peer)
	if p.Nonce != "" {
		r.nonces[p.Nonce] = p.Peer
	}
	m.timers[leaseTimer(p.Room, p.Peer, 1)] = o.leaseDue(now)

	body := peerJoinedBody(p.Peer, role)
	for _, other := range r.order {
		if other != p.Peer {
			o.queue(r, other, EventPeerJoined, body)
		}
	}
	o.emit(r, Event{Type: EvPeerJoined, Peer: p.Peer, Role: role})
	var handed []Message
	if h := r.held; h != nil && h.from != p.Peer {
		if h.exp <= now {
			o.expireHeld(r)
		} else {
			o.emit(r, Event{Type: EvOfferAnswered, Peer: p.Peer, Caller: h.from, Held: time.Duration(now-h.at) * time.Millisecond})
			o.dropHeld(r)
			// The held offer is now an offer to the newcomer.
			if sender := r.members[h.from]; sender != nil {
				delete(sender.offers, "")
				sender.addOffer(p.Peer)
			}
			mb := r.members[p.Peer]
			handed = make([]Message, 0, len(h.entries))
			for _, e := range h.entries {
				o.queue(r, p.Peer, e.event, e.body)
				// The store keeps a copy; the held entry is gone, so its body is the caller's.
				handed = append(handed, Message{Seq: mb.last, Event: e.event, Body: e.body})
			}
		}
	}
	mem := memMembership(r, p.Peer)
	mem.Handed = handed
	return mem, nil
}

// Resume implements Store.
func (m *Memory) Resume(ctx context.Context, p ResumeParams) (Membership, error) {
	if err := validateResume(p); err != nil {
		return Membership{}, err
	}
	o, err := m.begin(ctx, "resume")
	if err != nil {
		return Membership{}, err
	}
	defer o.end()
	now := ms(p.Now)
	o.now = now

	r := m.rooms[p.Room]
	if r != nil {
		o.evictExpired(r, now)
		r = m.rooms[p.Room]
	}
	if r == nil || r.members[p.Peer] == nil || r.members[p.Peer].token != p.Token {
		return Membership{}, ErrResume
	}
	o.takeover(r, p.Peer, p.Instance, p.Conn, now)
	mem := memMembership(r, p.Peer)
	mem.Token = ""
	return mem, nil
}

// Send implements Store.
func (m *Memory) Send(ctx context.Context, p SendParams) (SendResult, error) {
	if err := validateSend(p); err != nil {
		return SendResult{}, err
	}
	o, err := m.begin(ctx, "send")
	if err != nil {
		return SendResult{}, err
	}
	defer o.end()
	o.now = ms(p.Now)

	r := m.rooms[p.Room]
	if r == nil || r.members[p.Peer] == nil || r.members[p.Peer].conn != p.Conn {
		return SendResult{}, ErrNotMember
	}
	mb := r.members[p.Peer]
	switch {
	case p.Seq < mb.next:
		return SendResult{Duplicate: true, Next: mb.next}, nil
	case p.Seq > mb.next:
		return SendResult{Gap: true, Next: mb.next}, nil
	}
	mb.next = p.Seq + 1
	res := SendResult{Next: mb.next}
	held, err := o.apply(r, p)
	if err != nil {
		return res, err
	}
	if held {
		res.Held, res.HeldExpires = true, time.UnixMilli(r.held.exp)
	}
	return res, nil
}

// apply carries out one in-sequence message. Checks come before changes: a rejection changes nothing.
func (o *memOp) apply(r *memRoom, p SendParams) (held bool, err error) {
	var others []string
	for _, id := range r.order {
		if id != p.Peer {
			others = append(others, id)
		}
	}
	switch p.Kind {
	case KindSkip:
		return false, nil
	case KindLeave:
		o.removeMember(r, p.Peer, reasonLeft)
		return false, nil
	case KindHangup:
		for _, id := range others {
			if o.backlogFull(r, id) {
				return false, ErrBacklogFull
			}
		}
		body := hangupBody(p.Peer)
		for _, id := range others {
			o.queue(r, id, EventHangup, body)
		}
		o.emit(r, Event{Type: EvCallHangup, Peer: p.Peer})
		// Offers between the sender and the others end; offers between two others go on.
		for _, id := range others {
			delete(r.members[id].offers, p.Peer)
		}
		r.members[p.Peer].offers = nil
		if r.held != nil && r.held.from == p.Peer {
			o.dropHeld(r)
		}
		return false, nil
	}

	target, err := resolveTarget(others, p.To)
	if err != nil {
		return false, err
	}
	sender := r.members[p.Peer]
	switch p.Kind {
	case KindOffer:
		if target == "" {
			if r.held == nil && o.m.held >= o.m.opts.MaxHeldOffers {
				return false, ErrTooManyHeld
			}
			o.dropHeld(r)
			o.m.held++
			r.heldGen++
			r.held = &memHeld{
				from:    p.Peer,
				entries: []memEntry{{event: EventOffer, body: bytes.Clone(p.Body)}},
				exp:     ms(p.Now) + o.m.opts.HeldTTL.Milliseconds(),
				at:      ms(p.Now),
			}
			o.emit(r, Event{Type: EvOfferHeld, Peer: p.Peer, Expires: time.UnixMilli(r.held.exp)})
			o.m.timers[heldTimer(r.id, r.heldGen)] = r.held.exp
			sender.offers = map[string]bool{"": true}
			return true, nil
		}
		if o.backlogFull(r, target) {
			return false, ErrBacklogFull
		}
		o.queue(r, target, EventOffer, p.Body)
		sender.addOffer(target)
	case KindAnswer:
		if target == "" || !r.members[target].offers[p.Peer] {
			return false, ErrNoOffer
		}
		if o.backlogFull(r, target) {
			return false, ErrBacklogFull
		}
		delete(r.members[target].offers, p.Peer)
		o.queue(r, target, EventAnswer, p.Body)
	case KindCandidate:
		if target == "" {
			if r.held == nil || r.held.from != p.Peer {
				return false, ErrNoOffer
			}
			if len(r.held.entries)-1 >= o.m.opts.MaxHeldCandidates {
				return false, ErrTooManyCandidates
			}
			r.held.entries = append(r.held.entries, memEntry{event: EventCandidate, body: bytes.Clone(p.Body)})
			return true, nil
		}
		if o.backlogFull(r, target) {
			return false, ErrBacklogFull
		}
		o.queue(r, target, EventCandidate, p.Body)
	}
	return false, nil
}

// resolveTarget picks the recipient of an offer, answer or candidate; "" means the sender is alone.
func resolveTarget(others []string, to string) (string, error) {
	switch {
	case to != "":
		if !slices.Contains(others, to) {
			return "", ErrNoPeer
		}
		return to, nil
	case len(others) == 1:
		return others[0], nil
	case len(others) > 1:
		return "", ErrTargetRequired
	}
	return "", nil
}

// Ack implements Store. An unknown member gets ErrNotMember.
func (m *Memory) Ack(ctx context.Context, room, peer string, seq int64) error {
	o, err := m.begin(ctx, "ack")
	if err != nil {
		return err
	}
	defer o.end()
	mb := m.member(room, peer)
	if mb == nil {
		return ErrNotMember
	}
	if seq <= mb.ack {
		return nil
	}
	if seq > mb.last {
		// As in ack.lua: the store went back in time; numbering goes on after seq.
		for s := mb.ack + 1; s <= mb.last; s++ {
			delete(mb.queue, s)
		}
		mb.ack, mb.last = seq, seq
		return nil
	}
	for s := mb.ack + 1; s <= seq; s++ {
		delete(mb.queue, s)
	}
	mb.ack = seq
	return nil
}

// Pending implements Store.
func (m *Memory) Pending(ctx context.Context, room, peer string, after int64) ([]Message, error) {
	o, err := m.begin(ctx, "pending")
	if err != nil {
		return nil, err
	}
	defer o.end()
	mb := m.member(room, peer)
	if mb == nil {
		return nil, ErrNotMember
	}
	var out []Message
	for s := max(after, mb.ack) + 1; s <= mb.last; s++ {
		e := mb.queue[s]
		out = append(out, Message{Seq: s, Event: e.event, Body: bytes.Clone(e.body)})
	}
	return out, nil
}

func (m *Memory) member(room, peer string) *memMember {
	if r := m.rooms[room]; r != nil {
		return r.members[peer]
	}
	return nil
}

// Disconnect implements Store.
func (m *Memory) Disconnect(ctx context.Context, room, peer, conn string, now time.Time) error {
	if err := checkNonEmpty("disconnect", "conn", conn); err != nil {
		return err
	}
	o, err := m.begin(ctx, "disconnect")
	if err != nil {
		return err
	}
	defer o.end()
	mb := m.member(room, peer)
	if mb == nil || mb.conn != conn {
		return nil
	}
	mb.inst, mb.conn = "", ""
	mb.away = ms(now) + m.opts.ResumeWindow.Milliseconds()
	m.timers[leaseTimer(room, peer, mb.gen)] = mb.away
	return nil
}

// Renew implements Store.
func (m *Memory) Renew(ctx context.Context, leases []Lease, now time.Time) error {
	o, err := m.begin(ctx, "renew")
	if err != nil {
		return err
	}
	defer o.end()
	due := o.leaseDue(ms(now))
	for _, l := range leases {
		name := leaseTimer(l.Room, l.Peer, l.Gen)
		if _, ok := m.timers[name]; ok {
			m.timers[name] = due
		}
	}
	return nil
}

// Sweep implements Store.
func (m *Memory) Sweep(ctx context.Context, now time.Time, limit int) (int, error) {
	o, err := m.begin(ctx, "sweep")
	if err != nil {
		return 0, err
	}
	defer o.end()
	t := ms(now)
	o.now = t
	type due struct {
		name string
		at   int64
	}
	var list []due
	for name, at := range m.timers {
		if at <= t {
			list = append(list, due{name, at})
		}
	}
	// Oldest first, as the Redis ZSET orders them.
	slices.SortFunc(list, func(a, b due) int {
		return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.name, b.name))
	})
	fired := 0
	for _, d := range list[:min(len(list), max(limit, 0))] {
		delete(m.timers, d.name)
		if o.fire(d.name, t) {
			fired++
		}
	}
	return fired, nil
}

// fire runs one due timer; a timer whose gen is no longer current does nothing.
func (o *memOp) fire(name string, now int64) bool {
	tm, ok := parseTimer(name)
	if !ok {
		return false
	}
	r := o.m.rooms[tm.room]
	if r == nil {
		return false
	}
	switch tm.kind {
	case 'L':
		if mb := r.members[tm.peer]; mb != nil && mb.gen == tm.gen {
			o.removeMember(r, tm.peer, reasonTimeout)
			return true
		}
	case 'H':
		if r.held != nil && r.heldGen == tm.gen && r.held.exp <= now {
			o.expireHeld(r)
			return true
		}
	}
	return false
}

// Listen implements Store.
func (m *Memory) Listen(ctx context.Context, instance string, h Handler) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l := &memListener{h: h}
	m.mu.Lock()
	if m.listeners[instance] == nil {
		m.listeners[instance] = make(map[*memListener]struct{})
	}
	m.listeners[instance][l] = struct{}{}
	m.mu.Unlock()

	h.Resync()
	<-ctx.Done()

	m.mu.Lock()
	delete(m.listeners[instance], l)
	if len(m.listeners[instance]) == 0 {
		delete(m.listeners, instance)
	}
	m.mu.Unlock()
	return ctx.Err()
}

// Ping implements Store.
func (m *Memory) Ping(ctx context.Context) error { return ctxErr(ctx, "ping") }

// Close implements Store. The memory store holds no connections.
func (m *Memory) Close() error { return nil }

// Package store keeps Switchboard's shared state: rooms and their members, held offers with
// their early candidates, each member's queue of unacknowledged messages, and resume tokens.
// It has two implementations with one contract: Memory (one process) and Redis (many instances).
package store

import (
	"context"
	"errors"
	"time"
)

// Store is what the signaling server needs from shared state. Every method honours ctx.
//
// Each method that changes a room does so atomically: concurrent calls on any instance see one
// order. Messages addressed to a member are appended to its queue with the next server
// sequence number and published to the instance the member is connected to (see Listen).
type Store interface {
	// Join adds a member to a room, or, when p.Nonce was seen before in this room, returns that
	// earlier membership (taking it over for p.Instance/p.Conn, like Resume).
	// A held offer waiting in the room (from another member, not expired) moves atomically into
	// the new member's queue: the offer first, then its candidates in order (Membership.Handed
	// returns them). Every other member gets a "peer-joined" message. Returns ErrRoomFull when
	// the room has Options.Capacity members.
	//
	// The first member of an empty room is the caller, every later one an answerer. A held offer
	// already past its TTL is dropped instead and its sender gets "expired". Members whose resume
	// window has passed are removed first (as Sweep would), so they do not count as members.
	Join(ctx context.Context, p JoinParams) (Membership, error)

	// Resume takes an existing membership over for a new connection. It returns ErrResume when the
	// room or member is unknown or the token does not match. A member whose resume window has
	// passed is removed (the others get "peer-left" with reason "timeout") and gets ErrResume,
	// even before Sweep got to it. The returned Membership has no Token.
	Resume(ctx context.Context, p ResumeParams) (Membership, error)

	// Send applies one sequenced client message exactly once, in sequence order (see SendParams.Seq).
	// It returns ErrNotMember when the member is gone or p.Conn no longer owns it; nothing changes.
	// A rejection (see Rejected) changes nothing but consumes the sequence number.
	//
	// Offer, answer and candidate go to p.To, or to the only other member (ErrTargetRequired if
	// there are several; ErrNoPeer if p.To is not another member). An offer while alone is held
	// (replacing the sender's earlier held offer); a candidate while alone joins the sender's
	// held offer (ErrNoOffer without one). An offer that would add a held offer while
	// Options.MaxHeldOffers are held gets ErrTooManyHeld. An answer needs an outstanding offer from its target.
	// Hangup goes to every other member and clears all outstanding offers and the sender's held
	// offer; it fails with ErrBacklogFull if any recipient is full. Leave always succeeds: the
	// member and everything it owns are removed and the others get "peer-left" ("left"); a
	// retried leave therefore gets ErrNotMember. Messages the store queues itself (peer-joined,
	// peer-left, expired, a held offer handed over) do not check the backlog.
	Send(ctx context.Context, p SendParams) (SendResult, error)

	// Ack drops the member's queued messages up to and including seq. Idempotent; a seq at or below
	// the last acknowledged one changes nothing. A seq above the last assigned one means the
	// store went back in time (a failover lost writes) after the member applied numbers up to
	// seq: the queue is dropped (the member has those numbers, or drops them as duplicates)
	// and both the acknowledged and the last assigned seq become seq, so the next message is
	// numbered after it. An unknown member gets ErrNotMember.
	Ack(ctx context.Context, room, peer string, seq int64) error

	// Pending returns the member's unacknowledged messages with Seq > after, in order.
	// An unknown member gets ErrNotMember.
	Pending(ctx context.Context, room, peer string, after int64) ([]Message, error)

	// Disconnect marks the member away when conn still owns it: it is removed (others get
	// "peer-left" with reason "timeout") unless it resumes within Options.ResumeWindow.
	// Otherwise (unknown member, another conn) it does nothing and returns nil.
	Disconnect(ctx context.Context, room, peer, conn string, now time.Time) error

	// Renew extends the lease of connected members to now+ResumeWindow+LeaseGrace, so a member
	// whose instance died without a Disconnect is removed a resume window after renewals stop.
	// It also refreshes the TTL of the members' rooms.
	Renew(ctx context.Context, leases []Lease, now time.Time) error

	// Sweep fires up to limit due timers: held offers past their TTL are dropped and their sender
	// gets "expired"; members whose lease ran out are removed and the others get "peer-left".
	// Any number of instances may sweep concurrently; each timer fires once. Returns how many fired.
	Sweep(ctx context.Context, now time.Time, limit int) (int, error)

	// Listen delivers, until ctx is done, every message queued for a member connected to instance,
	// as it is queued (at most once; the queue in the store is the truth). It calls h.Resync after
	// any interruption during which deliveries may have been missed (and once at the start), so the
	// caller can re-read Pending for its members. It returns ctx.Err() when ctx is done.
	Listen(ctx context.Context, instance string, h Handler) error

	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error

	// Close releases the store's connections.
	Close() error
}

// Handler receives deliveries from Listen. Its methods must not block for long.
type Handler interface {
	Deliver(d Delivery)
	Resync()
}

// Options are the limits and timings of a store. Zero values take the defaults below.
type Options struct {
	Prefix            string        // key prefix; default "switchboard:"
	Capacity          int           // members per room; default 2
	HeldTTL           time.Duration // how long a held offer waits for an answerer; default 5m
	ResumeWindow      time.Duration // how long a disconnected member keeps its place; default 30s
	LeaseGrace        time.Duration // how long a connected member outlives its last Renew beyond ResumeWindow; default 30s
	RoomTTL           time.Duration // TTL of a room's state after its last change or renewal; default 24h
	MaxHeldCandidates int           // early candidates held with one offer; default 64
	MaxBacklog        int           // unacknowledged messages queued for one member; default 256
	// MaxHeldOffers bounds the offers held at once under Prefix; default 100000. Redis counts
	// them on every offer once the count is near the bound (a cached count below it), so
	// concurrent offers from several instances may pass it by the number in flight.
	MaxHeldOffers int
	// OutboxMax bounds the call events recorded for webhooks and not yet sent (see Event); when
	// full, the oldest are dropped. 0: no events are recorded (the default).
	OutboxMax int
	// ClusterReload is how often a Redis Cluster client reads the slot map again; default 5s.
	// It also reads it at once after a node stops answering (see OpenRedis).
	ClusterReload time.Duration
	// WaitReplicas, when positive, makes Redis Send (and SendBatch) return only after that many
	// replicas acknowledged the write (Redis WAIT), within WaitTimeout; fewer in time gives
	// ErrUnavailable, the write being applied on the master (a retry is a duplicate and waits
	// again). Default 0: a Send returns once the master applied it.
	WaitReplicas int
	WaitTimeout  time.Duration // bound of one WAIT; default 100ms
}

// Defaults of Options.
const (
	DefaultPrefix            = "switchboard:"
	DefaultCapacity          = 2
	DefaultHeldTTL           = 5 * time.Minute
	DefaultResumeWindow      = 30 * time.Second
	DefaultLeaseGrace        = 30 * time.Second
	DefaultRoomTTL           = 24 * time.Hour
	DefaultMaxHeldCandidates = 64
	DefaultMaxBacklog        = 256
	DefaultMaxHeldOffers     = 100_000
	DefaultClusterReload     = 5 * time.Second
	DefaultWaitTimeout       = 100 * time.Millisecond
)

// WithDefaults returns o with every zero field set to its default.
func (o Options) WithDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Capacity <= 0 {
		o.Capacity = DefaultCapacity
	}
	if o.HeldTTL <= 0 {
		o.HeldTTL = DefaultHeldTTL
	}
	if o.ResumeWindow <= 0 {
		o.ResumeWindow = DefaultResumeWindow
	}
	if o.LeaseGrace <= 0 {
		o.LeaseGrace = DefaultLeaseGrace
	}
	if o.RoomTTL <= 0 {
		o.RoomTTL = DefaultRoomTTL
	}
	if o.MaxHeldCandidates <= 0 {
		o.MaxHeldCandidates = DefaultMaxHeldCandidates
	}
	if o.MaxBacklog <= 0 {
		o.MaxBacklog = DefaultMaxBacklog
	}
	if o.MaxHeldOffers <= 0 {
		o.MaxHeldOffers = DefaultMaxHeldOffers
	}
	if o.ClusterReload <= 0 {
		o.ClusterReload = DefaultClusterReload
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = DefaultWaitTimeout
	}
	return o
}

// Roles of a member.
const (
	RoleCaller   = "caller"   // the first member of a room
	RoleAnswerer = "answerer" // any later member
)

// Server event names the store queues itself; the others come from SendParams.
const (
	EventOffer      = "offer"
	EventAnswer     = "answer"
	EventCandidate  = "candidate"
	EventPeerJoined = "peer-joined"
	EventPeerLeft   = "peer-left"
	EventHangup     = "hangup"
	EventExpired    = "expired"
)

// JoinParams describe a join. Peer and Token are fresh random values chosen by the caller; the
// store uses them unless the nonce names an earlier membership.
type JoinParams struct {
	Room, Peer, Token string
	Nonce             string // may be empty: then the join is not idempotent
	// Role, when not empty, is the only role the member may take: RoleCaller needs an empty room,
	// RoleAnswerer a room with a member; otherwise Join returns ErrRole and changes nothing.
	Role           string
	Instance, Conn string // where the member is connected now
	Now            time.Time
	// Sub and Meta (a JSON object) come from the room token; they go into the member's call
	// events when the outbox is on, and are not stored otherwise.
	Sub  string
	Meta []byte
}

// ResumeParams describe a resume.
type ResumeParams struct {
	Room, Peer, Token string
	Instance, Conn    string
	Now               time.Time
}

// Membership is a member's view of its room after Join or Resume.
type Membership struct {
	Peer, Token, Role string
	Peers             []Member // the other members, oldest first
	Gen               int64    // increases on every Join-retry and Resume; names the lease
	Next              int64    // next client sequence number Send expects
	Acked             int64    // last server sequence number acknowledged
	Last              int64    // last server sequence number assigned
	Retried           bool     // Join found the nonce: this is the earlier membership
	// Handed is what Join moved into the new member's queue (a held offer, then its candidates)
	// in seq order, as Pending(after 0) would return it right after: the caller can emit it
	// without reading the queue back. Empty for a Join-retry and for Resume.
	Handed []Message
}

// Member is one member of a room as others see it.
type Member struct {
	Peer string `json:"peer"`
	Role string `json:"role"`
}

// Kind is the kind of a sequenced client message.
type Kind string

// Kinds of sequenced client messages.
const (
	KindOffer     Kind = "offer"
	KindAnswer    Kind = "answer"
	KindCandidate Kind = "candidate"
	KindHangup    Kind = "hangup"
	KindLeave     Kind = "leave"
	KindSkip      Kind = "skip" // consumes the sequence number only (the server rejected the message)
)

// AckParams name one acknowledgement: the member's messages up to and including Seq.
type AckParams struct {
	Room, Peer string
	Seq        int64
}

// SendParams describe one sequenced client message.
type SendParams struct {
	Room, Peer, Conn string
	// Seq is the client's sequence number. Seq below the expected one is a duplicate
	// (SendResult.Duplicate, nothing changes); above it, a gap (SendResult.Gap, nothing changes).
	Seq  int64
	Kind Kind
	To   string // target member; empty means "the only other member"
	// Body is the JSON object queued for the recipient (offer, answer, candidate), with "from"
	// already in it. The store adds nothing to it.
	Body []byte
	Now  time.Time
}

// SendResult is what Send did.
type SendResult struct {
	Duplicate   bool      // Seq was applied before; nothing changed
	Gap         bool      // Seq is ahead of Next; nothing changed
	Next        int64     // the next client sequence number expected after this call
	Held        bool      // the offer or candidate was held (the sender is alone)
	HeldExpires time.Time // when the held offer expires (Held only)
}

// Message is one queued server→client message. Body is a JSON object without room and seq.
type Message struct {
	Seq   int64
	Event string
	Body  []byte
}

// Delivery is a message for one member.
type Delivery struct {
	Room, Peer string
	Message
}

// Lease names a connected member's lease.
type Lease struct {
	Room, Peer string
	Gen        int64
}

// Errors callers check with errors.Is.
var (
	ErrRoomFull          = errors.New("room is full")
	ErrRole              = errors.New("role not available in this room")
	ErrResume            = errors.New("membership cannot be resumed")
	ErrNotMember         = errors.New("not a member of the room")
	ErrNoPeer            = errors.New("no such peer in the room")
	ErrTargetRequired    = errors.New("several peers: target required")
	ErrNoOffer           = errors.New("no offer outstanding")
	ErrTooManyCandidates = errors.New("too many held candidates")
	ErrBacklogFull       = errors.New("recipient backlog full")
	ErrTooManyHeld       = errors.New("too many offers held; try again later")
	ErrUnavailable       = errors.New("store unavailable")
)

// Rejected reports whether err is a Send rejection: the store consumed the sequence number and
// changed nothing else, so the client must not retry the message as it was.
func Rejected(err error) bool {
	for _, r := range []error{ErrNoPeer, ErrTargetRequired, ErrNoOffer, ErrTooManyCandidates, ErrBacklogFull, ErrTooManyHeld} {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

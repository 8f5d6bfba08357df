package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Store in Redis, shared by every instance. It works with a single server, a Sentinel
// set and a Cluster: each room script touches one room hash only (one slot), and the room's
// timer set (redis_timers.go, in the room's slot group) is changed with separate commands after it.
//
// Layout, all under Options.Prefix:
//
//	RoomKey          hash: all state of one room (fields below), TTL Options.RoomTTL
//	TimersKey        ZSET per slot group: due times (ms) of leases and held offers, TTL Options.RoomTTL
//	HeldKey          ZSET per slot group: the held offers' timers alone, to count them, TTL Options.RoomTTL
//	LegacyTimersKey, LegacyHeldKey: the first layout's single sets, swept and renewed only
//	InstanceChannel  pub/sub: deliveries for the members connected to one instance
//	OutboxKey        stream: call events for webhooks (Options.OutboxMax > 0 only), see outbox_redis.go
//
// Fields of the room hash (peer ids, nonces and room ids match idPattern, so the ':' and '|'
// separators below are unambiguous):
//
//	peers            member ids in join order, separated by spaces
//	m:<peer>:role    "caller" or "answerer"
//	m:<peer>:tok     resume token
//	m:<peer>:inst    instance it is connected to (absent while away)
//	m:<peer>:conn    connection that owns it (absent while away)
//	m:<peer>:gen     lease generation: 1 at join, +1 on every takeover
//	m:<peer>:next    next client seq Send expects
//	m:<peer>:last    last server seq assigned to it
//	m:<peer>:ack     last server seq it acknowledged
//	m:<peer>:offer   targets of its outstanding offers, " t1 t2 " ("*": its held offer)
//	m:<peer>:nonce   its join nonce, if any
//	m:<peer>:away    resume deadline (ms) while disconnected
//	q:<peer>:<seq>   queued message "<event>\n<body>", for ack < seq <= last
//	n:<nonce>        the member that joined with this nonce
//	h:from           sender of the held offer
//	h:n              held entries: the offer and its candidates
//	h:<i>            held entry i (1 is the offer), "<event>\n<body>"
//	h:exp            held offer expiry (ms)
//	h:gen            held offer generation, names its timer; outlives the held offer
//	h:at             when the offer was held (ms)
//	m:<peer>:sub     its room token's subject (call events on only)
//	m:<peer>:meta    its room token's meta claim (call events on only)
type Redis struct {
	client  redis.UniversalClient
	opts    Options
	log     *slog.Logger
	cluster bool // a pipeline's commands for several slots may run in any order

	heldMu    sync.Mutex
	heldCount int64     // last sum of the ZCARDs of the HeldKeys
	heldSince int64     // offers sent since, this one included
	heldAt    time.Time // when heldCount was read
}

var _ Store = (*Redis)(nil)

// RoomKey is the hash holding all state of a room. The hash tag puts each room in one Cluster
// slot, so a room script is atomic on any deployment.
func RoomKey(prefix, room string) string { return prefix + "room:{" + room + "}" }

// InstanceChannel is the pub/sub channel of one instance. Each payload is one delivery:
// "<room>\n<peer>\n<seq>\n<event>\n<body>" (the body is last, so it may hold anything).
func InstanceChannel(prefix, instance string) string { return prefix + "inst:" + instance }

//go:embed lua/*.lua
var luaFiles embed.FS

func luaSource(name string) string {
	b, err := luaFiles.ReadFile("lua/" + name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// roomScript is a room script with the shared helpers in front.
func roomScript(name string) *redis.Script {
	return redis.NewScript(luaSource("common.lua") + "\n" + luaSource(name))
}

var (
	scriptJoin       = roomScript("join.lua")
	scriptResume     = roomScript("resume.lua")
	scriptSend       = roomScript("send.lua")
	scriptAck        = roomScript("ack.lua")
	scriptPending    = roomScript("pending.lua")
	scriptDisconnect = roomScript("disconnect.lua")
	scriptFire       = roomScript("fire.lua")
	scriptClaim      = redis.NewScript(luaSource("claim.lua"))
)

// NewRedis returns a store on client. Close closes the client.
func NewRedis(client redis.UniversalClient, opts Options) *Redis {
	_, cluster := client.(*redis.ClusterClient)
	return &Redis{client: client, opts: opts.WithDefaults(), log: slog.Default(), cluster: cluster}
}

// SetLogger sets where Listen reports connection trouble (default slog.Default()).
// Call it before Listen.
func (r *Redis) SetLogger(l *slog.Logger) { r.log = l }

// scriptErrors maps the codes the scripts return to the contract's errors.
var scriptErrors = map[string]error{
	"room_full":           ErrRoomFull,
	"role":                ErrRole,
	"resume":              ErrResume,
	"not_member":          ErrNotMember,
	"no_peer":             ErrNoPeer,
	"target_required":     ErrTargetRequired,
	"no_offer":            ErrNoOffer,
	"too_many_candidates": ErrTooManyCandidates,
	"backlog_full":        ErrBacklogFull,
	"too_many_held":       ErrTooManyHeld,
}

func statusErr(op, status string) error {
	if status == "ok" {
		return nil
	}
	if err, ok := scriptErrors[status]; ok {
		return err
	}
	return fmt.Errorf("store: %s: unexpected script status %q", op, status)
}

// fail wraps a Redis error: ctx's own error stays visible, a script bug is reported as such,
// and anything else means Redis is unavailable.
func (r *Redis) fail(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("store: %s: %w", op, cerr)
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		if strings.Contains(msg, "user_script") || strings.Contains(msg, "Error running script") ||
			strings.HasPrefix(msg, "WRONGTYPE") {
			return fmt.Errorf("store: %s: %w", op, err)
		}
	}
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, op, err)
}

// run runs a room script and then applies the timer changes it asked for. It returns the
// script's status and data.
func (r *Redis) run(ctx context.Context, op string, s *redis.Script, room string, now int64, args ...any) (string, []any, error) {
	if err := ctxErr(ctx, op); err != nil {
		return "", nil, err
	}
	res, err := s.Run(ctx, r.client, r.roomKeys(room), r.scriptArgs(room, now, args...)...).Slice()
	if err != nil {
		return "", nil, r.fail(ctx, op, err)
	}
	return r.applyReply(ctx, op, res)
}

// scriptArgs returns the ARGV of a room script: the common ones, then args.
func (r *Redis) scriptArgs(room string, now int64, args ...any) []any {
	argv := append([]any{r.opts.Prefix, room, now, r.opts.RoomTTL.Milliseconds()}, args...)
	if r.opts.OutboxMax > 0 {
		argv = append(argv, newEventID(), r.opts.OutboxMax) // see roomKeys and common.lua
	}
	return argv
}

// applyReply applies the timer changes a room script's reply asks for, and extra adds (name,
// due) unless the script removes them. It returns the script's status and data.
func (r *Redis) applyReply(ctx context.Context, op string, res []any, extra ...any) (string, []any, error) {
	if len(res) < 3 {
		return "", nil, fmt.Errorf("store: %s: short script reply %v", op, res)
	}
	adds, _ := res[1].([]any)
	rems, _ := res[2].([]any)
	for i := 0; i+1 < len(extra); i += 2 {
		if !slices.Contains(rems, extra[i]) {
			adds = append(adds, extra[i], extra[i+1])
		}
	}
	if err := r.applyTimers(ctx, adds, rems); err != nil {
		return "", nil, r.fail(ctx, op, err)
	}
	return str(res[0]), res[3:], nil
}

func (r *Redis) leaseDue(now int64) int64 {
	return now + (r.opts.ResumeWindow + r.opts.LeaseGrace).Milliseconds()
}

// Join implements Store.
func (r *Redis) Join(ctx context.Context, p JoinParams) (Membership, error) {
	if err := validateJoin(p); err != nil {
		return Membership{}, err
	}
	if err := ctxErr(ctx, "join"); err != nil {
		return Membership{}, err
	}
	now := ms(p.Now)
	due := r.leaseDue(now)
	lease := leaseTimer(p.Room, p.Peer, 1)
	sub, meta := r.eventArgs(p)
	res, missing, err := r.joinScript(ctx, lease, due, p.Room, r.scriptArgs(p.Room, now,
		p.Peer, p.Token, p.Nonce, p.Instance, p.Conn, due, r.opts.Capacity, p.Role, sub, meta))
	if err != nil {
		return Membership{}, r.fail(ctx, "join", err)
	}
	status, data, err := r.applyReply(ctx, "join", res, missing...)
	if err != nil {
		return Membership{}, err
	}
	if status == "peer_exists" {
		return Membership{}, fmt.Errorf("store: join: peer id %q in use", p.Peer)
	}
	if err := statusErr("join", status); err != nil {
		return Membership{}, err
	}
	m, err := parseMembership(data)
	if err != nil {
		return Membership{}, err
	}
	m.Retried = len(data) > 1 && num(data[1]) == 1
	if len(data) > 2 {
		flat, _ := data[2].([]any)
		m.Handed = parseMessages(flat)
	}
	return m, nil
}

// joinScript runs the join script after adding the new member's lease timer (lease, due):
// should the reply be lost after the script ran, the member still times out. The script takes
// the timer back when the join does not add the member.
//
// Both go in one pipeline, which one connection runs in order. A Cluster client sends the
// commands of each node concurrently, so there the timer gets a round trip of its own first.
// Should the timer fail while the script succeeds, missing returns it for applyReply to add.
func (r *Redis) joinScript(ctx context.Context, lease string, due int64, room string, argv []any) (res, missing []any, err error) {
	keys := r.roomKeys(room)
	timers := RoomTimersKey(r.opts.Prefix, room)
	pipe := r.client.Pipeline()
	zadd := pipe.ZAdd(ctx, timers, redis.Z{Member: lease, Score: float64(due)})
	pipe.PExpire(ctx, timers, r.opts.RoomTTL)
	if r.cluster {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, nil, err
		}
		res, err := scriptJoin.Run(ctx, r.client, keys, argv...).Slice()
		return res, nil, err
	}
	join := scriptJoin.EvalSha(ctx, pipe, keys, argv...)
	_, _ = pipe.Exec(ctx)
	res, err = join.Slice()
	if isNoScript(err) {
		// The script did not run (Redis does not have it cached yet), so sending it whole
		// applies the join once; the timer is in already.
		if err := zadd.Err(); err != nil {
			return nil, nil, err
		}
		res, err = scriptJoin.Eval(ctx, r.client, keys, argv...).Slice()
	}
	if err != nil {
		return nil, nil, err
	}
	if zadd.Err() != nil {
		missing = []any{lease, due}
	}
	return res, missing, nil
}

// Resume implements Store.
func (r *Redis) Resume(ctx context.Context, p ResumeParams) (Membership, error) {
	if err := validateResume(p); err != nil {
		return Membership{}, err
	}
	now := ms(p.Now)
	status, data, err := r.run(ctx, "resume", scriptResume, p.Room, now,
		p.Peer, p.Token, p.Instance, p.Conn, r.leaseDue(now))
	if err != nil {
		return Membership{}, err
	}
	if err := statusErr("resume", status); err != nil {
		return Membership{}, err
	}
	m, err := parseMembership(data)
	m.Token = ""
	return m, err
}

func parseMembership(data []any) (Membership, error) {
	if len(data) == 0 {
		return Membership{}, errors.New("store: empty membership reply")
	}
	f, ok := data[0].([]any)
	if !ok || len(f) < 8 {
		return Membership{}, fmt.Errorf("store: bad membership reply %v", data[0])
	}
	m := Membership{
		Peer: str(f[0]), Token: str(f[1]), Role: str(f[2]),
		Gen: num(f[3]), Next: num(f[4]), Acked: num(f[5]), Last: num(f[6]),
	}
	others, _ := f[7].([]any)
	m.Peers = make([]Member, 0, len(others)/2)
	for i := 0; i+1 < len(others); i += 2 {
		m.Peers = append(m.Peers, Member{Peer: str(others[i]), Role: str(others[i+1])})
	}
	return m, nil
}

// Send implements Store. A relayed message costs one round trip: the script queues and publishes.
func (r *Redis) Send(ctx context.Context, p SendParams) (SendResult, error) {
	if err := validateSend(p); err != nil {
		return SendResult{}, err
	}
	full, err := r.heldFull(ctx, p.Kind == KindOffer)
	if err != nil {
		return SendResult{}, err
	}
	run := func() (string, []any, error) {
		return r.run(ctx, "send", scriptSend, p.Room, ms(p.Now), r.sendArgs(p, full)...)
	}
	if r.opts.WaitReplicas > 0 {
		run = func() (string, []any, error) { return r.sendDurable(ctx, p.Room, ms(p.Now), r.sendArgs(p, full)...) }
	}
	status, data, err := run()
	if err != nil {
		return SendResult{}, err
	}
	return parseSend(status, data)
}

func (r *Redis) sendArgs(p SendParams, heldFull bool) []any {
	now := ms(p.Now)
	full := 0
	if heldFull {
		full = 1
	}
	return []any{p.Peer, p.Conn, p.Seq, string(p.Kind), p.To, p.Body,
		now + r.opts.HeldTTL.Milliseconds(), r.opts.MaxHeldCandidates, r.opts.MaxBacklog, full}
}

func parseSend(status string, data []any) (SendResult, error) {
	if len(data) < 3 {
		return SendResult{}, fmt.Errorf("store: send: short reply %v", data)
	}
	res := SendResult{Next: num(data[0])}
	switch status {
	case "not_member":
		return SendResult{}, ErrNotMember
	case "dup":
		res.Duplicate = true
		return res, nil
	case "gap":
		res.Gap = true
		return res, nil
	}
	if num(data[1]) == 1 {
		res.Held, res.HeldExpires = true, time.UnixMilli(num(data[2]))
	}
	return res, statusErr("send", status)
}

// SendBatch applies consecutive messages of one member in one round trip: the scripts run in
// order in one pipeline, each atomic, exactly as the same Sends one after another would.
func (r *Redis) SendBatch(ctx context.Context, ps []SendParams) ([]SendResult, []error) {
	res := make([]SendResult, len(ps))
	errs := make([]error, len(ps))
	for _, p := range ps {
		if validateSend(p) != nil || r.opts.WaitReplicas > 0 { // each durable Send waits on its own
			for i, p := range ps {
				res[i], errs[i] = r.Send(ctx, p)
			}
			return res, errs
		}
	}
	offer := false
	for _, p := range ps {
		offer = offer || p.Kind == KindOffer
	}
	full, err := r.heldFull(ctx, offer)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return res, errs
	}
	rooms := make([]string, len(ps))
	argvs := make([][]any, len(ps))
	for i, p := range ps {
		rooms[i], argvs[i] = p.Room, r.scriptArgs(p.Room, ms(p.Now), r.sendArgs(p, full)...)
	}
	cmds := r.evalBatch(ctx, scriptSend, rooms, argvs)
	var adds, rems []any
	for i, c := range cmds {
		v, err := c.Slice()
		if err != nil {
			errs[i] = r.fail(ctx, "send", err)
			continue
		}
		if len(v) < 3 {
			errs[i] = fmt.Errorf("store: send: short script reply %v", v)
			continue
		}
		a, _ := v[1].([]any)
		rm, _ := v[2].([]any)
		adds, rems = append(adds, a...), append(rems, rm...)
		res[i], errs[i] = parseSend(str(v[0]), v[3:])
	}
	if err := r.applyTimers(ctx, adds, rems); err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = r.fail(ctx, "send", err)
			}
		}
	}
	return res, errs
}

// evalBatch runs s once per room, with that room's ARGV, in one pipeline (each script atomic
// and in order). A command answered NOSCRIPT did not run: the node serving its room lacks the
// script (a restarted server, a replica just promoted, which may be one node of several), so
// those commands are sent again whole, in their order, in a second pipeline.
func (r *Redis) evalBatch(ctx context.Context, s *redis.Script, rooms []string, argvs [][]any) []*redis.Cmd {
	pipe := r.client.Pipeline()
	cmds := make([]*redis.Cmd, len(rooms))
	for i, room := range rooms {
		cmds[i] = s.EvalSha(ctx, pipe, r.roomKeys(room), argvs[i]...)
	}
	_, _ = pipe.Exec(ctx)
	var again []int
	for i, c := range cmds {
		if isNoScript(c.Err()) {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return cmds
	}
	pipe = r.client.Pipeline()
	for _, i := range again {
		cmds[i] = s.Eval(ctx, pipe, r.roomKeys(rooms[i]), argvs[i]...)
	}
	_, _ = pipe.Exec(ctx)
	return cmds
}

// isNoScript reports Redis's answer to EVALSHA of a script it has not cached.
func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// Ack implements Store. An unknown member gets ErrNotMember.
func (r *Redis) Ack(ctx context.Context, room, peer string, seq int64) error {
	status, _, err := r.run(ctx, "ack", scriptAck, room, 0, peer, seq)
	if err != nil {
		return err
	}
	return statusErr("ack", status)
}

// AckBatch is Ack for several members in one round trip; errs[i] is acks[i]'s outcome. Each
// script stays atomic; together they are not (none needs the others).
func (r *Redis) AckBatch(ctx context.Context, acks []AckParams) []error {
	errs := make([]error, len(acks))
	if err := ctxErr(ctx, "ack"); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	rooms := make([]string, len(acks))
	argvs := make([][]any, len(acks))
	for i, a := range acks {
		rooms[i], argvs[i] = a.Room, r.scriptArgs(a.Room, 0, a.Peer, a.Seq)
	}
	cmds := r.evalBatch(ctx, scriptAck, rooms, argvs)
	for i, c := range cmds {
		v, err := c.Slice()
		switch {
		case err != nil:
			errs[i] = r.fail(ctx, "ack", err)
		case len(v) < 1:
			errs[i] = fmt.Errorf("store: ack: short script reply %v", v)
		default:
			errs[i] = statusErr("ack", str(v[0])) // ack.lua changes no timers
		}
	}
	return errs
}

// Pending implements Store.
func (r *Redis) Pending(ctx context.Context, room, peer string, after int64) ([]Message, error) {
	status, data, err := r.run(ctx, "pending", scriptPending, room, 0, peer, after)
	if err != nil {
		return nil, err
	}
	if err := statusErr("pending", status); err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, nil
	}
	flat, _ := data[0].([]any)
	return parseMessages(flat), nil
}

// parseMessages parses queued entries as the scripts return them: seq, "<event>\n<body>", ...
// No entries give nil.
func parseMessages(flat []any) []Message {
	var out []Message
	for i := 0; i+1 < len(flat); i += 2 {
		event, body, _ := strings.Cut(str(flat[i+1]), "\n")
		out = append(out, Message{Seq: num(flat[i]), Event: event, Body: []byte(body)})
	}
	return out
}

// Disconnect implements Store.
func (r *Redis) Disconnect(ctx context.Context, room, peer, conn string, now time.Time) error {
	if err := checkNonEmpty("disconnect", "conn", conn); err != nil {
		return err
	}
	t := ms(now)
	status, _, err := r.run(ctx, "disconnect", scriptDisconnect, room, t,
		peer, conn, t+r.opts.ResumeWindow.Milliseconds())
	if err != nil {
		return err
	}
	return statusErr("disconnect", status)
}

// Ping implements Store.
func (r *Redis) Ping(ctx context.Context) error {
	if err := ctxErr(ctx, "ping"); err != nil {
		return err
	}
	if err := r.client.Ping(ctx).Err(); err != nil {
		return r.fail(ctx, "ping", err)
	}
	return nil
}

// Close implements Store.
func (r *Redis) Close() error { return r.client.Close() }

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

func num(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

// isHeldTimer reports whether a timer name names a held offer ("H|<room>|<gen>").
func isHeldTimer(name string) bool { return strings.HasPrefix(name, "H|") }

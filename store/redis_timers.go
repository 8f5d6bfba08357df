package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Timers in Redis. The due times of leases and held offers live in one sorted set per slot
// group (slots.go): a room's timers go to the set of its own slot's group, whose hash tag puts
// it in that group too, so on a Cluster a set lives on the master of its rooms. A master that is
// down then holds up the timers of its own rooms only (and of the rooms of a group that
// straddles its slot range's edge), the hub holds back only the sets it could not sweep or
// renew, and no single key takes every join's write.

// TimersKey is the ZSET of due times (ms) of leases ("L|<room>|<peer>|<gen>") and held offers
// ("H|<room>|<gen>") of the rooms in slot group g (see TimerGroup). An entry whose gen is no
// longer current fires as a no-op.
func TimersKey(prefix string, g int) string { return prefix + "timers:{" + GroupTag(g) + "}" }

// HeldKey is the ZSET of held offers ("H|<room>|<gen>" by due time) of slot group g: the
// held-offer entries of TimersKey(g), kept beside it so ZCARDs count them for
// Options.MaxHeldOffers. Sweep trims entries past due, so a lost removal cannot keep counting.
func HeldKey(prefix string, g int) string { return prefix + "held:{" + GroupTag(g) + "}" }

// TimerGroup is the slot group of a room's timers: the group of its RoomKey's slot.
func TimerGroup(room string) int { return KeySlot(RoomKey("", room)) / (ClusterSlots / TimerGroups) }

// RoomTimersKey is TimersKey of room's slot group.
func RoomTimersKey(prefix, room string) string { return TimersKey(prefix, TimerGroup(room)) }

// The first layout. Sweep still fires the entries of its single sets and Renew still renews
// leases in them, so a rolling upgrade removes nobody; nothing adds to them, and they expire
// with their last entry's TTL.

// LegacyTimersKey and LegacyHeldKey are the single timer and held-offer sets of the first
// layout.
func LegacyTimersKey(prefix string) string { return prefix + "timers" }

// LegacyHeldKey: see LegacyTimersKey.
func LegacyHeldKey(prefix string) string { return prefix + "held" }

// SetsError is what Sweep and Renew return when they could not reach every timer set, or could
// not fire some timer: the other sets were swept or renewed. Sets names the timer sets (their
// TimersKey or an earlier layout's key) that could not be read or written; a timer whose room
// could not be reached fails the call without failing its set. Err is the first error.
type SetsError struct {
	Sets []string
	Err  error
}

func (e *SetsError) Error() string {
	return fmt.Sprintf("%v (%d timer sets unreachable)", e.Err, len(e.Sets))
}

func (e *SetsError) Unwrap() error { return e.Err }

// timerSet is one timers ZSET with its held-offer ZSET.
type timerSet struct{ timers, held string }

// timerSets returns every slot group's set, then the first layout's.
func (r *Redis) timerSets() []timerSet {
	p := r.opts.Prefix
	sets := make([]timerSet, 0, TimerGroups+1)
	for g := range TimerGroups {
		sets = append(sets, timerSet{TimersKey(p, g), HeldKey(p, g)})
	}
	return append(sets, timerSet{LegacyTimersKey(p), LegacyHeldKey(p)})
}

// groupOf returns the slot group of a timer name, or 0 for a name that does not parse.
func groupOf(name string) int {
	t, ok := parseTimer(name)
	if !ok {
		return 0
	}
	return TimerGroup(t.room)
}

// applyTimers removes and adds timers in one pipeline; a room script cannot, the sets being in
// other slots. Should this fail after the script succeeded, the worst outcome is a stale entry
// (a no-op when due) or a missing one (the room TTL still bounds the state).
func (r *Redis) applyTimers(ctx context.Context, adds, rems []any) error {
	if len(adds) == 0 && len(rems) == 0 {
		return nil
	}
	type change struct {
		rems, heldRems []any
		adds, heldAdds []redis.Z
	}
	byGroup := map[int]*change{}
	at := func(name string) *change {
		g := groupOf(name)
		if byGroup[g] == nil {
			byGroup[g] = &change{}
		}
		return byGroup[g]
	}
	for _, n := range rems {
		c := at(str(n))
		c.rems = append(c.rems, n)
		if isHeldTimer(str(n)) {
			c.heldRems = append(c.heldRems, n)
		}
	}
	for i := 0; i+1 < len(adds); i += 2 {
		name := str(adds[i])
		c := at(name)
		z := redis.Z{Member: name, Score: float64(num(adds[i+1]))}
		c.adds = append(c.adds, z)
		if isHeldTimer(name) {
			c.heldAdds = append(c.heldAdds, z)
		}
	}
	pipe := r.client.Pipeline()
	for g, c := range byGroup {
		key, heldKey := TimersKey(r.opts.Prefix, g), HeldKey(r.opts.Prefix, g)
		if len(c.rems) > 0 {
			pipe.ZRem(ctx, key, c.rems...)
		}
		if len(c.heldRems) > 0 {
			pipe.ZRem(ctx, heldKey, c.heldRems...)
		}
		if len(c.adds) > 0 {
			pipe.ZAdd(ctx, key, c.adds...)
		}
		if len(c.heldAdds) > 0 {
			pipe.ZAdd(ctx, heldKey, c.heldAdds...)
			pipe.PExpire(ctx, heldKey, r.opts.RoomTTL)
		}
		pipe.PExpire(ctx, key, r.opts.RoomTTL)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// heldFull reports whether Options.MaxHeldOffers offers are held, for an offer about to be sent.
// The counts live in other slots than the room, so the send script cannot read them: they are
// read here, at most once a second while far below the bound and on every offer near it. Sets
// that cannot be read (a master down) count as empty; only when none answers is it an error.
func (r *Redis) heldFull(ctx context.Context, offer bool) (bool, error) {
	if !offer {
		return false, nil
	}
	max := int64(r.opts.MaxHeldOffers)
	r.heldMu.Lock()
	r.heldSince++ // counted as held until the next read says otherwise
	fresh := time.Since(r.heldAt) < time.Second && r.heldCount+r.heldSince < max-max/10
	r.heldMu.Unlock()
	if fresh {
		return false, nil
	}
	pipe := r.client.Pipeline()
	sets := r.timerSets()
	cards := make([]*redis.IntCmd, len(sets))
	for i, s := range sets {
		cards[i] = pipe.ZCard(ctx, s.held)
	}
	_, _ = pipe.Exec(ctx)
	var n int64
	var err error
	read := 0
	for _, c := range cards {
		if c.Err() != nil {
			err = c.Err()
			continue
		}
		n += c.Val()
		read++
	}
	if read == 0 {
		return false, r.fail(ctx, "send", err)
	}
	r.heldMu.Lock()
	r.heldCount, r.heldSince, r.heldAt = n, 1, time.Now()
	r.heldMu.Unlock()
	return n >= max, nil
}

// Renew implements Store: one ZADD XX per slot group (a lease that already fired stays gone),
// the same in the earlier layouts' sets, and a TTL refresh of each room, pipelined. Sets that
// could not be written are named in a *SetsError; the others are renewed.
func (r *Redis) Renew(ctx context.Context, leases []Lease, now time.Time) error {
	if err := ctxErr(ctx, "renew"); err != nil {
		return err
	}
	if len(leases) == 0 {
		return nil
	}
	p := r.opts.Prefix
	due := float64(r.leaseDue(ms(now)))
	bySet := map[string][]redis.Z{}
	var order []string
	add := func(key string, z redis.Z) {
		if bySet[key] == nil {
			order = append(order, key)
		}
		bySet[key] = append(bySet[key], z)
	}
	rooms := make(map[string]bool)
	pipe := r.client.Pipeline()
	for _, l := range leases {
		z := redis.Z{Member: leaseTimer(l.Room, l.Peer, l.Gen), Score: due}
		add(RoomTimersKey(p, l.Room), z)
		add(LegacyTimersKey(p), z)
		if !rooms[l.Room] {
			rooms[l.Room] = true
			pipe.PExpire(ctx, RoomKey(p, l.Room), r.opts.RoomTTL)
		}
	}
	zadds := make([]*redis.IntCmd, len(order))
	for i, key := range order {
		zadds[i] = pipe.ZAddXX(ctx, key, bySet[key]...)
		if key != LegacyTimersKey(p) {
			pipe.PExpire(ctx, key, r.opts.RoomTTL)
		}
	}
	_, err := pipe.Exec(ctx)
	if err == nil {
		return nil
	}
	serr := &SetsError{Err: r.fail(ctx, "renew", err)}
	for i, c := range zadds {
		if c.Err() != nil {
			serr.Sets = append(serr.Sets, order[i])
		}
	}
	return serr
}

// Sweep implements Store: SweepSets with no set held.
func (r *Redis) Sweep(ctx context.Context, now time.Time, limit int) (int, error) {
	return r.SweepSets(ctx, now, limit, nil)
}

// SweepSets fires up to limit due timers, as Sweep does, except those of the sets for which held
// (if not nil) reports true: those are only read, which tells whether they can be reached. It
// reads the due timers of every set in one pipeline; each due timer is claimed first (removed
// only while still due), so of several sweepers exactly one fires it; the fire script checks the
// gen, so a stale timer changes nothing. Timers fire in due order across the sets. A set that
// cannot be read or claimed from is skipped, the others are swept, and a *SetsError names the
// skipped sets.
func (r *Redis) SweepSets(ctx context.Context, now time.Time, limit int, held func(set string) bool) (int, error) {
	if err := ctxErr(ctx, "sweep"); err != nil {
		return 0, err
	}
	if limit <= 0 {
		return 0, nil
	}
	t := ms(now)
	max := strconv.FormatInt(t, 10)
	sets := r.timerSets()
	due := make([]*redis.ZSliceCmd, len(sets))
	pipe := r.client.Pipeline()
	for i, s := range sets {
		// Held offers past due count no more, whether or not their timer has fired yet.
		pipe.ZRemRangeByScore(ctx, s.held, "-inf", max)
		due[i] = pipe.ZRangeByScoreWithScores(ctx, s.timers, &redis.ZRangeBy{Min: "-inf", Max: max, Count: int64(limit)})
	}
	_, _ = pipe.Exec(ctx)
	var serr *SetsError
	fail := func(set string, err error) {
		if serr == nil {
			serr = &SetsError{Err: err}
		}
		if set != "" {
			serr.Sets = append(serr.Sets, set)
		}
	}
	type timer struct {
		set  int
		name string
		due  float64
	}
	var timers []timer
	for i, s := range sets {
		zs, err := due[i].Result()
		if err != nil {
			fail(s.timers, r.fail(ctx, "sweep", err))
			continue
		}
		if held != nil && held(s.timers) {
			continue
		}
		for _, z := range zs {
			timers = append(timers, timer{i, str(z.Member), z.Score})
		}
	}
	slices.SortStableFunc(timers, func(a, b timer) int { return cmp.Compare(a.due, b.due) })
	fired := 0
	down := map[int]bool{}
	for _, tm := range timers[:min(len(timers), limit)] {
		if down[tm.set] {
			continue
		}
		key := sets[tm.set].timers
		ok, claimErr, err := r.fire(ctx, key, tm.name, t)
		if claimErr != nil {
			fail(key, claimErr)
			down[tm.set] = true // this set's master is unreachable
			continue
		}
		if err != nil {
			fail("", err) // the room's master: the other timers may still fire
			continue
		}
		if ok {
			fired++
		}
	}
	if serr != nil {
		return fired, serr
	}
	return fired, nil
}

// fire claims the timer name in key and runs it. It reports whether it fired, and the error of
// the claim (the set's master) apart from that of the fire script (the room's).
func (r *Redis) fire(ctx context.Context, key, name string, t int64) (ok bool, claimErr, err error) {
	claimed, err := scriptClaim.Run(ctx, r.client, []string{key}, name, t).Int()
	if err != nil {
		return false, r.fail(ctx, "sweep", err), nil
	}
	tm, parsed := parseTimer(name)
	if claimed == 0 || !parsed {
		return false, nil, nil
	}
	status, _, err := r.run(ctx, "sweep", scriptFire, tm.room, t, string(tm.kind), tm.peer, tm.gen)
	if err != nil {
		r.unclaim(ctx, key, name, t)
		return false, nil, err
	}
	return status == "ok", nil, nil
}

// unclaim puts back a claimed timer whose fire script may not have run, so a later sweep fires
// it; if it did run, the timer is stale by then and does nothing.
func (r *Redis) unclaim(ctx context.Context, key, name string, due int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	r.client.ZAddNX(ctx, key, redis.Z{Member: name, Score: float64(due)})
}

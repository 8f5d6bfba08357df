package store

import (
	"context"
	"hash/fnv"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Timers in Redis. The due times of leases and held offers live in TimerBuckets sorted sets,
// each with a hash tag of its own, so on a Cluster they spread over the masters: a master that
// is down holds up the timers of its buckets' rooms only (and, while a sweep fails, the hub
// holds back every sweep until it can renew leases), and no single key takes every join's
// write. A room's timers all go to one bucket, chosen by its id.

// TimerBuckets is how many timer sets (and held-offer sets) there are.
const TimerBuckets = 16

// TimersKey is the ZSET of due times (ms) of leases ("L|<room>|<peer>|<gen>") and held offers
// ("H|<room>|<gen>") of the rooms in bucket b (see TimerBucket). An entry whose gen is no
// longer current fires as a no-op.
func TimersKey(prefix string, b int) string { return prefix + "timers:{" + strconv.Itoa(b) + "}" }

// HeldKey is the ZSET of held offers ("H|<room>|<gen>" by due time) of bucket b: the held-offer
// entries of TimersKey(b), kept beside it so ZCARDs count them for Options.MaxHeldOffers.
// Sweep trims entries past due, so a lost removal cannot keep counting.
func HeldKey(prefix string, b int) string { return prefix + "held:{" + strconv.Itoa(b) + "}" }

// LegacyTimersKey and LegacyHeldKey are the single timer and held-offer sets of earlier
// versions. Sweep still fires their entries and Renew still renews leases in them, so a rolling
// upgrade removes nobody; nothing adds to them, and they expire with their last entry's TTL.
func LegacyTimersKey(prefix string) string { return prefix + "timers" }

// LegacyHeldKey: see LegacyTimersKey.
func LegacyHeldKey(prefix string) string { return prefix + "held" }

// TimerBucket is the bucket of a room's timers.
func TimerBucket(room string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(room))
	return int(h.Sum32() % TimerBuckets)
}

// RoomTimersKey is TimersKey of room's bucket.
func RoomTimersKey(prefix, room string) string { return TimersKey(prefix, TimerBucket(room)) }

// timerSet is one timers ZSET with its held-offer ZSET.
type timerSet struct{ timers, held string }

// timerSets returns every bucket, then the legacy set.
func (r *Redis) timerSets() []timerSet {
	p := r.opts.Prefix
	sets := make([]timerSet, 0, TimerBuckets+1)
	for b := range TimerBuckets {
		sets = append(sets, timerSet{TimersKey(p, b), HeldKey(p, b)})
	}
	return append(sets, timerSet{LegacyTimersKey(p), LegacyHeldKey(p)})
}

// bucketOf returns the bucket of a timer name, or -1 for a name that does not parse.
func bucketOf(name string) int {
	t, ok := parseTimer(name)
	if !ok {
		return -1
	}
	return TimerBucket(t.room)
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
	byBucket := map[int]*change{}
	at := func(name string) *change {
		b := max(bucketOf(name), 0)
		if byBucket[b] == nil {
			byBucket[b] = &change{}
		}
		return byBucket[b]
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
	for b, c := range byBucket {
		key, heldKey := TimersKey(r.opts.Prefix, b), HeldKey(r.opts.Prefix, b)
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

// Renew implements Store: one ZADD XX per bucket (a lease that already fired stays gone), the
// same in the legacy set, and a TTL refresh of each room, pipelined.
func (r *Redis) Renew(ctx context.Context, leases []Lease, now time.Time) error {
	if err := ctxErr(ctx, "renew"); err != nil {
		return err
	}
	if len(leases) == 0 {
		return nil
	}
	due := float64(r.leaseDue(ms(now)))
	byBucket := map[int][]redis.Z{}
	all := make([]redis.Z, 0, len(leases))
	rooms := make(map[string]bool)
	pipe := r.client.Pipeline()
	for _, l := range leases {
		z := redis.Z{Member: leaseTimer(l.Room, l.Peer, l.Gen), Score: due}
		b := TimerBucket(l.Room)
		byBucket[b] = append(byBucket[b], z)
		all = append(all, z)
		if !rooms[l.Room] {
			rooms[l.Room] = true
			pipe.PExpire(ctx, RoomKey(r.opts.Prefix, l.Room), r.opts.RoomTTL)
		}
	}
	for b, zs := range byBucket {
		key := TimersKey(r.opts.Prefix, b)
		pipe.ZAddXX(ctx, key, zs...)
		pipe.PExpire(ctx, key, r.opts.RoomTTL)
	}
	pipe.ZAddXX(ctx, LegacyTimersKey(r.opts.Prefix), all...)
	if _, err := pipe.Exec(ctx); err != nil {
		return r.fail(ctx, "renew", err)
	}
	return nil
}

// sweepStart rotates the set Sweep starts with, so a limit reached early does not always leave
// the same buckets for later.
var sweepStart atomic.Uint32

// Sweep implements Store. It reads the due timers of every set in one pipeline; each due timer
// is claimed first (removed only while still due), so of several sweepers exactly one fires
// it; the fire script checks the gen, so a stale timer changes nothing. A set that cannot be
// read or fired is skipped, the others are swept, and the first such error is returned.
func (r *Redis) Sweep(ctx context.Context, now time.Time, limit int) (int, error) {
	if err := ctxErr(ctx, "sweep"); err != nil {
		return 0, err
	}
	if limit <= 0 {
		return 0, nil
	}
	t := ms(now)
	max := strconv.FormatInt(t, 10)
	sets := r.timerSets()
	due := make([]*redis.StringSliceCmd, len(sets))
	pipe := r.client.Pipeline()
	for i, s := range sets {
		// Held offers past due count no more, whether or not their timer has fired yet.
		pipe.ZRemRangeByScore(ctx, s.held, "-inf", max)
		due[i] = pipe.ZRangeByScore(ctx, s.timers, &redis.ZRangeBy{Min: "-inf", Max: max, Count: int64(limit)})
	}
	_, _ = pipe.Exec(ctx)
	var firstErr error
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	fired, seen := 0, 0
	start := int(sweepStart.Add(1))
	for k := range sets {
		i := (start + k) % len(sets)
		names, err := due[i].Result()
		if err != nil {
			fail(r.fail(ctx, "sweep", err))
			continue
		}
		for _, name := range names {
			if seen >= limit {
				return fired, firstErr
			}
			seen++
			ok, err := r.fire(ctx, sets[i].timers, name, t)
			if err != nil {
				fail(err)
				break // this set's master is unreachable
			}
			if ok {
				fired++
			}
		}
	}
	return fired, firstErr
}

// fire claims the timer name in key and runs it. It reports whether it fired.
func (r *Redis) fire(ctx context.Context, key, name string, t int64) (bool, error) {
	claimed, err := scriptClaim.Run(ctx, r.client, []string{key}, name, t).Int()
	if err != nil {
		return false, r.fail(ctx, "sweep", err)
	}
	tm, ok := parseTimer(name)
	if claimed == 0 || !ok {
		return false, nil
	}
	status, _, err := r.run(ctx, "sweep", scriptFire, tm.room, t, string(tm.kind), tm.peer, tm.gen)
	if err != nil {
		r.unclaim(ctx, key, name, t)
		return false, err
	}
	return status == "ok", nil
}

// unclaim puts back a claimed timer whose fire script may not have run, so a later sweep fires
// it; if it did run, the timer is stale by then and does nothing.
func (r *Redis) unclaim(ctx context.Context, key, name string, due int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	r.client.ZAddNX(ctx, key, redis.Z{Member: name, Score: float64(due)})
}

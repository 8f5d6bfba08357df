package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// OutboxKey is the stream of call events (Options.OutboxMax > 0 only), written by the room
// scripts in the step that causes each event and read by every instance through the consumer
// group OutboxGroup. An entry is deleted once sent (or given up), so its length is the number of
// events not yet done; XADD MAXLEN keeps it at most Options.OutboxMax long. Fields of an entry:
//
//	id   event id            t   type            r   room        ts  time (ms)
//	p    peer                s   token subject   ro  role        m   token meta claim
//	why  peer.left reason    c   caller          h   held (ms)   e   held offer expiry (ms)
//
// The room scripts touch it beside the room hash, so it must live on the same server: a single
// Redis or a Sentinel set, not a Cluster (ErrOutboxCluster).
func OutboxKey(prefix string) string { return prefix + "webhooks" }

// OutboxDroppedKey counts the events the room scripts dropped from a full outbox; each instance
// takes the count (GETDEL) into its metrics.
func OutboxDroppedKey(prefix string) string { return prefix + "webhooks:dropped" }

// OutboxGroup is the consumer group of OutboxKey; each instance is a consumer named by its id.
const OutboxGroup = "senders"

// roomKeys are the KEYS of a room script: the room hash, then the outbox and its dropped
// counter when call events are on (common.lua).
func (r *Redis) roomKeys(room string) []string {
	if r.opts.OutboxMax > 0 {
		return []string{RoomKey(r.opts.Prefix, room), OutboxKey(r.opts.Prefix), OutboxDroppedKey(r.opts.Prefix)}
	}
	return []string{RoomKey(r.opts.Prefix, room)}
}

// eventArgs are the join script's ARGV[13] and [14], the token's subject and meta claim: sent
// only when call events are on, so that a join without webhooks carries no more.
func (r *Redis) eventArgs(p JoinParams) (sub string, meta []byte) {
	if r.opts.OutboxMax > 0 {
		return p.Sub, p.Meta
	}
	return "", nil
}

// RedisOutbox reads the call events of a Redis store as one consumer of OutboxGroup: each event
// goes to one consumer; one that stops calling Keep for its events for claimAfter (its instance
// died) loses them to the next consumer that claims.
type RedisOutbox struct {
	r          *Redis
	key        string
	consumer   string
	claimAfter time.Duration

	mu        sync.Mutex // guards the fields below (Claim is called by one goroutine, Stats by another)
	grouped   bool       // the group is known to exist
	resumed   bool       // this consumer's own pending entries (from before a restart) were read
	lastClaim time.Time
	cursor    string // XAUTOCLAIM's next start
}

// Outbox returns the outbox read as consumer; entries idle for claimAfter in another
// consumer's hands are taken over.
func (r *Redis) Outbox(consumer string, claimAfter time.Duration) (*RedisOutbox, error) {
	switch {
	case r.opts.OutboxMax <= 0:
		return nil, errors.New("store: outbox: call events are off (Options.OutboxMax is 0)")
	case r.cluster:
		return nil, ErrOutboxCluster
	case consumer == "" || claimAfter <= 0:
		return nil, errors.New("store: outbox: a consumer name and a positive claim time are required")
	}
	return &RedisOutbox{r: r, key: OutboxKey(r.opts.Prefix), consumer: consumer, claimAfter: claimAfter, cursor: "0-0"}, nil
}

func isNoGroup(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOGROUP") }

// group creates the consumer group when needed. It starts at the beginning of the stream:
// every entry in it is undelivered (a Redis that lost the group may still hold entries).
func (q *RedisOutbox) group(ctx context.Context) error {
	q.mu.Lock()
	ok := q.grouped
	q.mu.Unlock()
	if ok {
		return nil
	}
	err := q.r.client.XGroupCreateMkStream(ctx, q.key, OutboxGroup, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return q.r.fail(ctx, "outbox", err)
	}
	q.mu.Lock()
	q.grouped = true
	q.mu.Unlock()
	return nil
}

// lost notes that Redis forgot the group (restarted without its data, or the key expired).
func (q *RedisOutbox) lost(err error) {
	if isNoGroup(err) {
		q.mu.Lock()
		q.grouped = false
		q.mu.Unlock()
	}
}

// Claim returns up to n events for this consumer: entries another consumer left idle for the
// claim time first (checked every half claim time), then new ones, waiting up to wait.
func (q *RedisOutbox) Claim(ctx context.Context, n int, wait time.Duration) ([]Event, error) {
	if err := q.group(ctx); err != nil {
		return nil, err
	}
	q.mu.Lock()
	due := time.Since(q.lastClaim) >= q.claimAfter/2
	if due {
		q.lastClaim = time.Now()
	}
	start := q.cursor
	resume := !q.resumed
	q.resumed = true
	q.mu.Unlock()
	if resume {
		// A consumer restarted under the same name first takes back what it had not finished.
		if evs, err := q.read(ctx, n, "0", 0); err != nil || len(evs) > 0 {
			return evs, err
		}
	}
	if due {
		msgs, next, err := q.r.client.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: q.key, Group: OutboxGroup, Consumer: q.consumer,
			MinIdle: q.claimAfter, Start: start, Count: int64(n),
		}).Result()
		if err != nil {
			q.lost(err)
			return nil, q.r.fail(ctx, "outbox", err)
		}
		q.mu.Lock()
		q.cursor = next
		q.mu.Unlock()
		if evs := q.parse(ctx, msgs); len(evs) > 0 {
			return evs, nil
		}
	}
	return q.read(ctx, n, ">", max(wait, time.Millisecond))
}

// read reads the group from id: ">" for new entries (waiting up to block), "0" for this
// consumer's own pending ones.
func (q *RedisOutbox) read(ctx context.Context, n int, id string, block time.Duration) ([]Event, error) {
	args := &redis.XReadGroupArgs{Group: OutboxGroup, Consumer: q.consumer, Streams: []string{q.key, id}, Count: int64(n), Block: block}
	if block == 0 {
		args.Block = -1 // no BLOCK argument (0 would block forever)
	}
	res, err := q.r.client.XReadGroup(ctx, args).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		q.lost(err)
		return nil, q.r.fail(ctx, "outbox", err)
	}
	var evs []Event
	for _, s := range res {
		evs = append(evs, q.parse(ctx, s.Messages)...)
	}
	return evs, nil
}

// parse turns stream entries into events. An entry trimmed away meanwhile has no fields: it
// is acknowledged and skipped.
func (q *RedisOutbox) parse(ctx context.Context, msgs []redis.XMessage) []Event {
	out := make([]Event, 0, len(msgs))
	var gone []string
	for _, m := range msgs {
		if len(m.Values) == 0 {
			gone = append(gone, m.ID)
			continue
		}
		f := func(k string) string { s, _ := m.Values[k].(string); return s }
		e := Event{
			ID: f("id"), Ref: m.ID, Type: f("t"), Room: f("r"), Time: time.UnixMilli(num(f("ts"))),
			Peer: f("p"), Sub: f("s"), Role: f("ro"), Reason: f("why"), Caller: f("c"),
		}
		if m := f("m"); m != "" {
			e.Meta = []byte(m)
		}
		if h := f("h"); h != "" {
			e.Held = time.Duration(num(h)) * time.Millisecond
		}
		if x := f("e"); x != "" {
			e.Expires = time.UnixMilli(num(x))
		}
		out = append(out, e)
	}
	if len(gone) > 0 {
		_ = q.Done(ctx, gone)
	}
	return out
}

// Keep tells the other consumers that this one still works on refs (resets their idle time).
func (q *RedisOutbox) Keep(ctx context.Context, refs []string) error {
	if len(refs) == 0 {
		return nil
	}
	err := q.r.client.XClaimJustID(ctx, &redis.XClaimArgs{
		Stream: q.key, Group: OutboxGroup, Consumer: q.consumer, MinIdle: 0, Messages: refs,
	}).Err()
	if err != nil {
		q.lost(err)
		return q.r.fail(ctx, "outbox", err)
	}
	return nil
}

// Done removes events that were sent or given up.
func (q *RedisOutbox) Done(ctx context.Context, refs []string) error {
	if len(refs) == 0 {
		return nil
	}
	pipe := q.r.client.Pipeline()
	pipe.XAck(ctx, q.key, OutboxGroup, refs...)
	pipe.XDel(ctx, q.key, refs...)
	if _, err := pipe.Exec(ctx); err != nil {
		return q.r.fail(ctx, "outbox", fmt.Errorf("done: %w", err))
	}
	return nil
}

// Stats reports the outbox's length, its oldest entry, the events ever added, and the drops
// since the last call (of any instance: each takes its share of the counter).
func (q *RedisOutbox) Stats(ctx context.Context) (OutboxStats, error) {
	pipe := q.r.client.Pipeline()
	info := pipe.XInfoStream(ctx, q.key)
	dropped := pipe.GetDel(ctx, OutboxDroppedKey(q.r.opts.Prefix))
	_, _ = pipe.Exec(ctx)
	var s OutboxStats
	switch err := info.Err(); {
	case err == nil:
		v := info.Val()
		s.Depth, s.Recorded = int(v.Length), v.EntriesAdded
		if v.Length > 0 {
			ts, _ := v.FirstEntry.Values["ts"].(string)
			s.Oldest = time.UnixMilli(num(ts))
		}
	case !strings.Contains(err.Error(), "no such key"): // no stream yet: no events
		return OutboxStats{}, q.r.fail(ctx, "outbox", err)
	}
	if err := dropped.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return OutboxStats{}, q.r.fail(ctx, "outbox", err)
	}
	s.Dropped, _ = dropped.Int64()
	return s, nil
}

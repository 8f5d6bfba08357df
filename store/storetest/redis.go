package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-rtc/switchboard/store"
)

// RedisAddr is the Redis tests use: SWITCHBOARD_TEST_REDIS_ADDR, default 127.0.0.1:6379.
func RedisAddr() string {
	if a := os.Getenv("SWITCHBOARD_TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// RedisClient connects to addr and fails tb when it does not answer: tests never skip for
// want of Redis. The client is closed when tb ends.
func RedisClient(tb testing.TB, addr string) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		tb.Fatalf("redis at %s is unreachable (set SWITCHBOARD_TEST_REDIS_ADDR): %v", addr, err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Redis returns a Redis store on RedisAddr under a fresh key prefix (opts.Prefix is replaced),
// its client and the prefix. The prefix's keys are deleted when tb ends.
func Redis(tb testing.TB, opts store.Options) (*store.Redis, *redis.Client, string) {
	tb.Helper()
	client := RedisClient(tb, RedisAddr())
	opts.Prefix = fmt.Sprintf("sbtest:%016x:", rand.Uint64())
	s := store.NewRedis(client, opts)
	tb.Cleanup(func() { deleteKeys(tb, client, opts.Prefix) })
	return s, client, opts.Prefix
}

func deleteKeys(tb testing.TB, c *redis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		tb.Errorf("scan %s*: %v", prefix, err)
		return
	}
	for i := 0; i < len(keys); i += 500 {
		if err := c.Del(ctx, keys[i:min(i+500, len(keys))]...).Err(); err != nil {
			tb.Errorf("delete test keys: %v", err)
			return
		}
	}
}

// CountRoundTrips makes c count the commands and pipelines it sends, its round trips, in the
// returned counter.
func CountRoundTrips(c *redis.Client) *atomic.Int64 {
	n := new(atomic.Int64)
	c.AddHook(countHook{n})
	return n
}

type countHook struct{ n *atomic.Int64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

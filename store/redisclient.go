package store

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// newClient builds the client uo names. A Cluster client gets opts.ClusterReload as its slot
// map refresh interval and re-reads the map as soon as a node fails to answer: go-redis on its
// own refreshes only on MOVED/ASK/READONLY, which a dead master never sends, so the slots it
// served would stay unreachable until the next periodic refresh after their replica took over.
func newClient(uo *redis.UniversalOptions, opts Options) redis.UniversalClient {
	if !uo.IsClusterMode {
		return redis.NewUniversalClient(uo)
	}
	co := uo.Cluster()
	co.ClusterStateReloadInterval = opts.ClusterReload
	c := redis.NewClusterClient(co)
	c.AddHook(reloadHook{c})
	return c
}

// reloadHook asks a Cluster client for a new slot map after a command failed for want of a
// node (go-redis coalesces the requests: at most one reload runs, then one more 200 ms later).
type reloadHook struct{ c *redis.ClusterClient }

func (h reloadHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(ctx, err)
		return err
	}
}

func (h reloadHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err != nil {
			for _, c := range cmds {
				if nodeLost(ctx, c.Err()) {
					h.c.ReloadState(ctx)
					break
				}
			}
		}
		return err
	}
}

func (h reloadHook) check(ctx context.Context, err error) {
	if nodeLost(ctx, err) {
		h.c.ReloadState(ctx)
	}
}

// nodeLost reports whether err says a node did not answer (a connection error rather than a
// reply) or the cluster has no node for the slot yet.
func nodeLost(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		return strings.HasPrefix(msg, "CLUSTERDOWN") || strings.HasPrefix(msg, "TRYAGAIN")
	}
	return true
}

package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Durable sends (Options.WaitReplicas): the send script and a WAIT go in one pipeline on the
// connection of the room's master, since WAIT counts the replicas that acknowledged that
// connection's own writes.

// sendDurable runs the send script like run does, then waits for the replicas. The script's
// timer changes are applied either way; too few replicas in time give ErrUnavailable.
func (r *Redis) sendDurable(ctx context.Context, room string, now int64, args ...any) (string, []any, error) {
	if err := ctxErr(ctx, "send"); err != nil {
		return "", nil, err
	}
	keys := r.roomKeys(room)
	node, err := r.nodeFor(ctx, keys[0])
	if err != nil {
		return "", nil, r.fail(ctx, "send", err)
	}
	argv := r.scriptArgs(room, now, args...)
	for attempt := 0; ; attempt++ {
		pipe := node.Pipeline()
		var cmd *redis.Cmd
		if attempt == 0 {
			cmd = scriptSend.EvalSha(ctx, pipe, keys, argv...)
		} else {
			cmd = scriptSend.Eval(ctx, pipe, keys, argv...) // NOSCRIPT: the script did not run
		}
		wait := pipe.Do(ctx, "wait", r.opts.WaitReplicas, r.opts.WaitTimeout.Milliseconds())
		_, _ = pipe.Exec(ctx)
		res, err := cmd.Slice()
		if attempt == 0 && isNoScript(err) {
			continue
		}
		if err != nil {
			return "", nil, r.fail(ctx, "send", err)
		}
		status, data, err := r.applyReply(ctx, "send", res)
		if err != nil {
			return "", nil, err
		}
		if err := r.checkWait(ctx, wait); err != nil {
			return "", nil, err
		}
		return status, data, nil
	}
}

func (r *Redis) checkWait(ctx context.Context, wait *redis.Cmd) error {
	n, err := wait.Int64()
	if err != nil {
		return r.fail(ctx, "send: wait", err)
	}
	if n < int64(r.opts.WaitReplicas) {
		return fmt.Errorf("%w: send: %d of %d replicas acknowledged within %v", ErrUnavailable, n, r.opts.WaitReplicas, r.opts.WaitTimeout)
	}
	return nil
}

// nodeFor returns the client whose connections reach key's master: on a Cluster that node's
// own client, elsewhere the store's client (a Sentinel client talks to the master only).
func (r *Redis) nodeFor(ctx context.Context, key string) (redis.Cmdable, error) {
	if c, ok := r.client.(*redis.ClusterClient); ok {
		return c.MasterForKey(ctx, key)
	}
	return r.client, nil
}

package store

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Listen's retry timing. While Redis is unreachable every attempt fails at once, so without the
// backoff the loop would spin.
const (
	listenMinBackoff = 50 * time.Millisecond
	listenMaxBackoff = 2 * time.Second
	// After this long without traffic Listen pings; without any reply within another period it
	// replaces the connection. A half-open TCP connection would otherwise go unnoticed for minutes.
	listenHealthEvery = 15 * time.Second
	// While the subscription is down Listen calls Resync this often, so the caller reads its
	// members' queues instead: rooms whose data is reachable keep flowing, e.g. on a Cluster
	// while only the master serving the channel's slot is being failed over.
	listenPollEvery = time.Second
)

// Listen implements Store. It subscribes to the instance's channel and calls h.Resync after each
// subscription is confirmed (the first one and every one after a reconnect). The receive loop
// runs in one goroutine that Listen starts and waits for.
func (r *Redis) Listen(ctx context.Context, instance string, h Handler) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l := &listener{r: r, instance: instance, channel: InstanceChannel(r.opts.Prefix, instance), h: h}
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.loop(ctx)
	}()
	<-ctx.Done()
	// A blocked receive does not watch ctx: closing the subscription ends it.
	l.shutdown()
	<-done
	return ctx.Err()
}

type listener struct {
	r                 *Redis
	instance, channel string
	h                 Handler
	backoff           time.Duration // owned by the loop goroutine
	polled            time.Time     // last Resync while down; owned by the loop goroutine

	mu     sync.Mutex
	ps     *redis.PubSub // the current subscription
	closed bool          // set by shutdown; no new subscription after it
}

func (l *listener) loop(ctx context.Context) {
	for ctx.Err() == nil {
		ps := l.open(ctx)
		if ps == nil {
			return
		}
		l.session(ctx, ps)
		l.release(ps)
	}
}

// open creates a subscription object; it connects on first use, outside the lock.
func (l *listener) open(ctx context.Context) *redis.PubSub {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.ps = l.r.client.Subscribe(ctx)
	return l.ps
}

func (l *listener) release(ps *redis.PubSub) {
	l.mu.Lock()
	if l.ps == ps {
		l.ps = nil
	}
	l.mu.Unlock()
	_ = ps.Close()
}

func (l *listener) shutdown() {
	l.mu.Lock()
	l.closed = true
	ps := l.ps
	l.mu.Unlock()
	if ps != nil {
		_ = ps.Close()
	}
}

// session receives on ps until ctx is done or ps stops answering pings. Other errors (Redis down,
// connection reset) are retried on the same ps after a backoff: go-redis reconnects and
// subscribes again on the next receive.
func (l *listener) session(ctx context.Context, ps *redis.PubSub) {
	if err := ps.Subscribe(ctx, l.channel); err != nil && !l.pause(ctx, err) {
		return
	}
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, listenHealthEvery)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if isTimeout(err) {
				if pinged {
					l.r.log.Warn("store: listen: no reply to ping, reconnecting", "instance", l.instance)
					return
				}
				pinged = true
				if err = ps.Ping(ctx); err == nil {
					continue
				}
			}
			if !l.pause(ctx, err) {
				return
			}
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				if l.backoff > 0 {
					l.r.log.Info("store: listen: subscribed again", "instance", l.instance)
				}
				l.backoff = 0
				l.h.Resync()
			}
		case *redis.Message:
			if d, ok := parseDelivery(m.Payload); ok {
				l.h.Deliver(d)
			}
		}
	}
}

// pause waits before the next attempt: 50 ms doubling to 2 s, each wait drawn from [d/2, d].
// It returns false when ctx is done. On a Cluster it asks for a new slot map first: the
// channel's slot may have moved to a promoted replica. Meanwhile the caller polls (Resync).
func (l *listener) pause(ctx context.Context, err error) bool {
	if c, ok := l.r.client.(*redis.ClusterClient); ok {
		c.ReloadState(ctx)
	}
	if time.Since(l.polled) >= listenPollEvery {
		l.polled = time.Now()
		l.h.Resync()
	}
	l.backoff = min(max(2*l.backoff, listenMinBackoff), listenMaxBackoff)
	wait := l.backoff/2 + rand.N(l.backoff/2+1)
	l.r.log.Warn("store: listen: redis unavailable", "instance", l.instance, "err", err, "retry_in", wait)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// parseDelivery decodes an InstanceChannel payload.
func parseDelivery(payload string) (Delivery, bool) {
	f := strings.SplitN(payload, "\n", 5)
	if len(f) != 5 {
		return Delivery{}, false
	}
	seq, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return Delivery{}, false
	}
	return Delivery{Room: f[0], Peer: f[1], Message: Message{Seq: seq, Event: f[3], Body: []byte(f[4])}}, true
}

package server_test

// Calls through two instances on a real Redis Cluster and a real Sentinel set, with a master
// killed (SIGKILL) while candidates stream both ways.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/redistest"
	"github.com/switchboard-rtc/switchboard/internal/sioclient"
	"github.com/switchboard-rtc/switchboard/server"
	"github.com/switchboard-rtc/switchboard/store"
)

// redisDeployment is two instances, each with its own store opened from one REDIS_URL.
type redisDeployment struct {
	insts  []*instance
	prefix string
}

func startOnRedisURL(t *testing.T, url string) *redisDeployment {
	t.Helper()
	d := &redisDeployment{prefix: fmt.Sprintf("sbtest:%016x:", rand.Uint64())}
	t.Cleanup(redistest.WaitRedials) // the stores' clients are closed by then
	for _, id := range []string{"fo-a", "fo-b"} {
		cfg := server.DefaultConfig()
		cfg.RedisPrefix = d.prefix
		st, err := store.OpenRedis(url, cfg.StoreOptions())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() }) // after the instance stops (cleanups run last first)
		d.insts = append(d.insts, startInstances(t, st, 1, func(c *server.Config) { c.InstanceID = id })...)
	}
	return d
}

// side is one member of a streamed call: what it sent and what it got from the other side.
type side struct {
	peer *sioclient.Peer
	name string

	mu       sync.Mutex
	sent     int           // candidates acknowledged by the server, numbered 0, 1, ...
	got      []int         // candidate numbers received from the other side, in order
	left     []string      // peer-left events
	stall    time.Duration // longest time one candidate took to be acknowledged
	sendErr  error
	offers   chan struct{}
	answered chan struct{}
}

func (s *side) onEvent(event string, payload map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch event {
	case "offer":
		close(s.offers)
	case "answer":
		close(s.answered)
	case "peer-left":
		s.left = append(s.left, fmt.Sprint(payload["reason"]))
	case "candidate":
		c, _ := payload["candidate"].(map[string]any)
		_, n, _ := strings.Cut(fmt.Sprint(c["candidate"]), " n=")
		i, err := strconv.Atoi(n)
		if err != nil {
			i = -1
		}
		s.got = append(s.got, i)
	}
}

// stream sends a candidate every 50 ms until ctx is done, each one until acknowledged.
func (s *side) stream(ctx, sendCtx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		began := time.Now()
		_, err := s.peer.Send(sendCtx, "candidate", map[string]any{
			"candidate": map[string]any{"candidate": fmt.Sprintf("candidate:1 1 udp 1 127.0.0.1 9 typ host n=%d", i)}})
		s.mu.Lock()
		if err != nil {
			s.sendErr = fmt.Errorf("candidate %d: %w", i, err)
			s.mu.Unlock()
			return
		}
		s.sent = i + 1
		s.stall = max(s.stall, time.Since(began))
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *side) snapshot() (sent int, got []int, left []string, stall time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent, append([]int(nil), s.got...), append([]string(nil), s.left...), s.stall, s.sendErr
}

// startCall joins a caller on one instance and an answerer on the other and completes the
// offer/answer exchange.
func startCall(t *testing.T, ctx context.Context, callerURL, answererURL, room string) [2]*side {
	t.Helper()
	var sides [2]*side
	for i, u := range []string{callerURL, answererURL} {
		c, err := sioclient.Dial(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		s := &side{peer: sioclient.NewPeer(c), name: room + []string{"/caller", "/answerer"}[i],
			offers: make(chan struct{}), answered: make(chan struct{})}
		s.peer.SetRetryInterval(500 * time.Millisecond)
		s.peer.OnEvent(s.onEvent)
		sides[i] = s
	}
	caller, answerer := sides[0], sides[1]
	if _, err := caller.peer.Join(ctx, room); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.peer.Send(ctx, "offer", map[string]any{"sdp": "v=0\r\n" + room}); err != nil {
		t.Fatal(err)
	}
	jr, err := answerer.peer.Join(ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, ctx, answerer.offers, room+": held offer")
	if _, err := answerer.peer.Send(ctx, "answer", map[string]any{"sdp": "v=0\r\nanswer", "to": jr.Peers[0].Peer}); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, ctx, caller.answered, room+": answer")
	return sides
}

func waitClosed(t *testing.T, ctx context.Context, c chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-ctx.Done():
		t.Fatalf("%s never came", what)
	}
}

// failover streams candidates both ways in calls across the two instances, runs kill, and
// checks that every candidate arrives once and in order, nobody is removed, and every side
// sends again afterwards. With lossy (a failover that loses acknowledged writes) candidates may
// be missing, but none arrives twice or out of order, and the last one arrives. It returns how
// long the longest send stalled.
func failover(t *testing.T, d *redisDeployment, calls int, lossy bool, kill func()) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var sides []*side
	for i := range calls {
		a, b := d.insts[i%2].url, d.insts[(i+1)%2].url
		s := startCall(t, ctx, a, b, fmt.Sprintf("fo%d", i))
		sides = append(sides, s[0], s[1])
	}
	streamCtx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	var wg sync.WaitGroup
	for _, s := range sides {
		wg.Add(1)
		go func() { defer wg.Done(); s.stream(streamCtx, ctx) }()
	}
	time.Sleep(time.Second)
	sentAtKill := make([]int, len(sides))
	for i, s := range sides {
		sentAtKill[i], _, _, _, _ = s.snapshot()
	}
	killed := time.Now()
	kill()
	// Each side sends again: 20 more candidates acknowledged after the kill.
	for i, s := range sides {
		for {
			sent, _, _, _, err := s.snapshot()
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			if sent >= sentAtKill[i]+20 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s sent %d candidates in the %v after the kill", s.name, sent-sentAtKill[i], time.Since(killed))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	recovered := time.Since(killed)
	if lossy {
		// Numbers the store handed out again are dropped by their recipient as duplicates: wait
		// until each side receives candidates sent after the recovery.
		mark := make([]int, len(sides))
		for i, s := range sides {
			mark[i], _, _, _, _ = s.snapshot()
		}
		for i, s := range sides {
			for {
				_, got, _, _, _ := s.snapshot()
				if len(got) > 0 && got[len(got)-1] >= mark[i^1]+10 {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("%s receives nothing sent after the recovery (last %v)", s.name, got[max(0, len(got)-3):])
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	stopStreams()
	wg.Wait()
	var stall time.Duration
	lost := 0
	for i, s := range sides {
		other := sides[i^1]
		for {
			sent, _, _, _, err := other.snapshot()
			if err != nil {
				t.Fatalf("%s: %v", other.name, err)
			}
			_, got, left, st, _ := s.snapshot()
			stall = max(stall, st)
			if len(left) > 0 {
				t.Fatalf("%s got peer-left %v", s.name, left)
			}
			if lossy && (len(got) > 0 && got[len(got)-1] == sent-1 || ctx.Err() != nil) {
				lost += checkLossyStream(t, s.name, got, sent)
				break
			}
			if !lossy && (len(got) >= sent || ctx.Err() != nil) {
				checkStream(t, s.name, got, sent)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("%d calls, every side sending again %v after the kill; longest send stalled %v; %d candidates lost",
		calls, recovered.Round(10*time.Millisecond), stall.Round(10*time.Millisecond), lost)
	return stall
}

// checkStream wants exactly 0..sent-1: nothing lost, duplicated or out of order.
func checkStream(t *testing.T, name string, got []int, sent int) {
	t.Helper()
	for i, n := range got {
		if n != i {
			t.Fatalf("%s: candidate %d arrived as number %d (received %d of %d)", name, n, i, len(got), sent)
		}
	}
	if len(got) != sent {
		t.Fatalf("%s received %d candidates, the other side sent %d", name, len(got), sent)
	}
}

// checkLossyStream wants a strictly increasing sequence ending at sent-1; it returns how many
// candidates are missing.
func checkLossyStream(t *testing.T, name string, got []int, sent int) int {
	t.Helper()
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("%s: candidate %d arrived after %d", name, got[i], got[i-1])
		}
	}
	if len(got) == 0 || got[len(got)-1] != sent-1 {
		t.Fatalf("%s: the last of %d candidates never arrived (got %d)", name, sent, len(got))
	}
	return sent - len(got)
}

func TestClusterMasterKilled(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	d := startOnRedisURL(t, c.URL())
	victim := c.MasterFor(t, store.RoomKey(d.prefix, "fo0"))
	failover(t, d, 6, false, victim.Kill)
}

// The replica is a second behind when its master is killed: what the master acknowledged in
// that second is lost, yet every call goes on (client numbers the store forgot are skipped).
func TestClusterLaggingReplicaPromoted(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	d := startOnRedisURL(t, c.URL())
	victim := c.MasterFor(t, store.RoomKey(d.prefix, "fo0"))
	failover(t, d, 6, true, laggingKill(t, victim, c.ReplicaOf(t, victim)))
}

// laggingKill stops replica and cuts its link, so the next second of writes never reaches it,
// then kills master: the promoted replica lacks what master acknowledged in that second.
func laggingKill(t *testing.T, master, replica *redistest.Node) func() {
	return func() {
		replica.Freeze()
		if err := master.Client(t).ClientKillByFilter(context.Background(), "TYPE", "replica").Err(); err != nil {
			t.Errorf("cut the replica's link: %v", err)
		}
		time.Sleep(time.Second)
		master.Kill()
		replica.Thaw()
	}
}

func TestSentinelLaggingReplicaPromoted(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	d := startOnRedisURL(t, s.URL())
	master := s.Master(t)
	replica := s.Data[0]
	if replica == master {
		replica = s.Data[1]
	}
	failover(t, d, 6, true, laggingKill(t, master, replica))
}

func TestSentinelMasterKilled(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	d := startOnRedisURL(t, s.URL())
	failover(t, d, 6, false, s.Master(t).Kill)
}

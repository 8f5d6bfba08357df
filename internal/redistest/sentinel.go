package redistest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// MasterName is the name the sentinels monitor the master under.
const MasterName = "sbmaster"

// Sentinel is a running Sentinel set: Data[0] started as the master, Data[1] as its replica
// (a failover swaps the roles: ask Master), and three sentinels with a quorum of 2.
type Sentinel struct {
	Data      []*Node
	Sentinels []*Node
}

// StartSentinel starts the set and waits until the replica is in sync and every sentinel knows
// the replica and the other two sentinels. Every process is killed when tb ends.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	dir := tb.TempDir()
	master, replica := startPair(tb, dir)
	s := &Sentinel{Data: []*Node{master, replica}}
	for i := range 3 {
		conf := []string{
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2", MasterName, master.Port),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", MasterName, NodeTimeout.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s 10000", MasterName),
		}
		s.Sentinels = append(s.Sentinels, startNode(tb, dir, fmt.Sprintf("sentinel%d", i), freePort(tb, false), conf, "--sentinel"))
	}
	s.WaitSentinels(tb, 2)
	return s
}

// StartReplicated starts a master and one replica of it, without sentinels, and waits until
// the replica is in sync. Both are killed when tb ends.
func StartReplicated(tb testing.TB) (master, replica *Node) {
	tb.Helper()
	return startPair(tb, tb.TempDir())
}

func startPair(tb testing.TB, dir string) (master, replica *Node) {
	master = startNode(tb, dir, "master", freePort(tb, false), dataConf)
	replica = startNode(tb, dir, "replica", freePort(tb, false),
		append(dataConf, fmt.Sprintf("replicaof 127.0.0.1 %d", master.Port)))
	rc := replica.Client(tb)
	waitFor(tb, "the replica in sync", 20*time.Second, func(ctx context.Context) bool {
		r := info(ctx, rc, "replication")
		return r["master_link_status"] == "up" && r["master_sync_in_progress"] == "0"
	})
	return master, replica
}

// URL is the set's REDIS_URL.
func (s *Sentinel) URL() string {
	addrs := make([]string, len(s.Sentinels))
	for i, n := range s.Sentinels {
		addrs[i] = n.Addr
	}
	return "redis+sentinel://" + strings.Join(addrs, ",") + "/" + MasterName
}

// WaitSentinels waits until every live sentinel sees a master, at least one replica and
// others other sentinels.
func (s *Sentinel) WaitSentinels(tb testing.TB, others int) {
	tb.Helper()
	for _, n := range s.Sentinels {
		if !n.Alive() {
			continue
		}
		sc := redis.NewSentinelClient(&redis.Options{Addr: n.Addr, DialerRetries: 1, MaxRetries: -1})
		var last map[string]string
		var lastErr error
		tb.Cleanup(func() {
			if tb.Failed() {
				tb.Logf("%s last saw the master as %v (%v)", n.name, last, lastErr)
			}
		})
		waitFor(tb, n.name+" ready", 30*time.Second, func(ctx context.Context) bool {
			last, lastErr = sc.Master(ctx, MasterName).Result()
			m := last
			return lastErr == nil && m["flags"] == "master" && m["num-slaves"] != "0" &&
				m["num-other-sentinels"] == fmt.Sprint(others)
		})
		_ = sc.Close()
	}
}

// Master returns the data node the sentinels name as master now.
func (s *Sentinel) Master(tb testing.TB) *Node {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range s.Sentinels {
		if !n.Alive() {
			continue
		}
		sc := redis.NewSentinelClient(&redis.Options{Addr: n.Addr, DialerRetries: 1, MaxRetries: -1})
		addr, err := sc.GetMasterAddrByName(ctx, MasterName).Result()
		_ = sc.Close()
		if err != nil || len(addr) != 2 {
			continue
		}
		for _, d := range s.Data {
			if d.Addr == addr[0]+":"+addr[1] {
				return d
			}
		}
	}
	tb.Fatal("redistest: no sentinel names a master")
	return nil
}

package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// NodeTimeout is the data nodes' cluster-node-timeout and the sentinels' down-after-milliseconds:
// how long a silent master takes to be declared down. Short, so failover tests stay quick; long
// enough that a loaded test machine does not fail a master over by itself.
const NodeTimeout = 2 * time.Second

// dataConf is what every data node runs with: no persistence (a killed node comes back empty,
// as a node replaced by an orchestrator would).
var dataConf = []string{`save ""`, "appendonly no"}

// Cluster is a running Redis Cluster: Nodes[0:3] started as masters, Nodes[3:6] as replicas
// (failovers swap the roles: ask MasterFor).
type Cluster struct {
	Nodes []*Node
}

// StartCluster starts 3 masters and 3 replicas and waits until every slot is served and every
// replica is in sync. Every process is killed when tb ends.
//
// The nodes run with cluster-require-full-coverage no, as docs/deploy.md recommends: a master
// being failed over stalls only its own slots. cluster-replica-validity-factor 0 lets a replica
// take over however long ago it last heard from its master.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	dir := tb.TempDir()
	conf := append(dataConf, "cluster-enabled yes", "cluster-config-file nodes.conf",
		fmt.Sprintf("cluster-node-timeout %d", NodeTimeout.Milliseconds()),
		"cluster-replica-validity-factor 0", "cluster-require-full-coverage no")
	c := &Cluster{}
	for i := range 6 {
		port := freePort(tb, true)
		c.Nodes = append(c.Nodes, startNode(tb, dir, fmt.Sprintf("node%d", i), port, conf))
	}
	for _, n := range c.Nodes {
		cl := n.Client(tb)
		waitFor(tb, n.name+" up", 10*time.Second, func(ctx context.Context) bool { return cl.Ping(ctx).Err() == nil })
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.Nodes {
		args = append(args, n.Addr)
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		tb.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy(tb)
	return c
}

// URL is the cluster's REDIS_URL.
func (c *Cluster) URL() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return "redis+cluster://" + strings.Join(addrs, ",")
}

// WaitHealthy waits until every live node sees the whole cluster served (cluster_state ok), the
// masters are alive, and every live replica of a live master has finished its sync.
func (c *Cluster) WaitHealthy(tb testing.TB) {
	tb.Helper()
	waitFor(tb, "a healthy cluster", 60*time.Second, func(ctx context.Context) bool {
		for _, n := range c.Nodes {
			if !n.Alive() {
				continue
			}
			cl := redis.NewClient(&redis.Options{Addr: n.Addr, DialerRetries: 1, MaxRetries: -1})
			ok := c.nodeHealthy(ctx, cl)
			_ = cl.Close()
			if !ok {
				return false
			}
		}
		return true
	})
}

func (c *Cluster) nodeHealthy(ctx context.Context, cl *redis.Client) bool {
	ci, err := cl.ClusterInfo(ctx).Result()
	if err != nil || !strings.Contains(ci, "cluster_state:ok") || !strings.Contains(ci, "cluster_slots_ok:16384") {
		return false
	}
	repl := info(ctx, cl, "replication")
	if repl["role"] == "slave" {
		return repl["master_link_status"] == "up" && repl["master_sync_in_progress"] == "0"
	}
	// A master waits for its replica to be attached (the one started for it, unless dead).
	return repl["connected_slaves"] != "0" || !c.replicaAlive(ctx, cl)
}

// replicaAlive reports whether some live node names cl's node as its master.
func (c *Cluster) replicaAlive(ctx context.Context, cl *redis.Client) bool {
	id, err := cl.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		return true
	}
	nodes, err := cl.ClusterNodes(ctx).Result()
	if err != nil {
		return true
	}
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || f[3] != id || strings.Contains(f[2], "fail") {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		for _, n := range c.Nodes {
			if n.Addr == addr && n.Alive() {
				return true
			}
		}
	}
	return false
}

// MasterFor returns the node serving key's slot now, as a live node sees it.
func (c *Cluster) MasterFor(tb testing.TB, key string) *Node {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		if !n.Alive() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr, DialerRetries: 1, MaxRetries: -1})
		defer cl.Close()
		slot, err := cl.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			continue
		}
		slots, err := cl.ClusterSlots(ctx).Result()
		if err != nil {
			continue
		}
		for _, s := range slots {
			if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
				for _, node := range c.Nodes {
					if node.Addr == s.Nodes[0].Addr {
						return node
					}
				}
			}
		}
	}
	tb.Fatalf("redistest: no node serves %q", key)
	return nil
}

// ReplicaOf returns a live replica of master.
func (c *Cluster) ReplicaOf(tb testing.TB, master *Node) *Node {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		if n == master || !n.Alive() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr, DialerRetries: 1, MaxRetries: -1})
		repl := info(ctx, cl, "replication")
		_ = cl.Close()
		if repl["role"] == "slave" && repl["master_port"] == strconv.Itoa(master.Port) {
			return n
		}
	}
	tb.Fatalf("redistest: no live replica of %s", master.Addr)
	return nil
}

// Package redistest starts throwaway Redis deployments for tests, as an operator runs them: a
// Cluster (3 masters, 3 replicas) and a Sentinel set (a master, a replica, 3 sentinels) of
// redis-server processes on free loopback ports, stopped when the test ends.
package redistest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Node is one redis-server process (a data node or a sentinel).
type Node struct {
	Addr string // 127.0.0.1:port
	Port int
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// startNode runs redis-server with conf (one directive a line) in its own process group; the
// test's cleanup kills it and anything it forked (an RDB child during a full resync).
func startNode(tb testing.TB, dir, name string, port int, conf []string, args ...string) *Node {
	tb.Helper()
	nodeDir := filepath.Join(dir, name)
	if err := os.MkdirAll(nodeDir, 0o755); err != nil {
		tb.Fatal(err)
	}
	conf = append([]string{
		fmt.Sprintf("port %d", port), "bind 127.0.0.1", "dir " + nodeDir,
		"logfile " + filepath.Join(nodeDir, "redis.log"),
	}, conf...)
	confPath := filepath.Join(nodeDir, "redis.conf")
	if err := os.WriteFile(confPath, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(redisServer(tb), append([]string{confPath}, args...)...)
	cmd.Dir = nodeDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	n := &Node{Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port, name: name,
		log: filepath.Join(nodeDir, "redis.log"), cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(n.done) }()
	tb.Cleanup(func() {
		n.Kill()
		if tb.Failed() {
			tb.Logf("--- end of %s log:\n%s", name, Tail(n.log, 15))
		}
	})
	return n
}

// Kill ends the node with SIGKILL, as a crash would, and waits until it has exited.
func (n *Node) Kill() {
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.done
}

// Alive reports whether the process is still running.
func (n *Node) Alive() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Client returns a plain client of the node, closed when tb ends.
func (n *Node) Client(tb testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: n.Addr, DialerRetries: 1, MaxRetries: -1})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFor polls ok every 50 ms until it holds or timeout passes, then fails tb.
func waitFor(tb testing.TB, what string, timeout time.Duration, ok func(ctx context.Context) bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		done := ok(ctx)
		cancel()
		if done {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a loopback port nobody listens on; with bus, port+10000 (a cluster node's
// bus port) is free too.
func freePort(tb testing.TB, bus bool) int {
	tb.Helper()
	for range 200 {
		port := 0
		if bus {
			// A cluster node also listens on port+10000. Both are taken from below the kernel's
			// ephemeral range (32768 up), so that no outgoing connection can take the bus port
			// between this check and the node's bind.
			port = busPortLow + rand.IntN(busPortHigh-busPortLow)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		port = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !bus {
			return port
		}
		if lb, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+10000)); err == nil {
			_ = lb.Close()
			return port
		}
	}
	tb.Fatal("redistest: no free port")
	return 0
}

// Cluster nodes listen on a port in [busPortLow, busPortHigh) and on that port + 10000, both
// below the ephemeral range.
const (
	busPortLow  = 20000
	busPortHigh = 22700
)

func redisServer(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server not found (.ci/run installs it): %v", err)
	}
	return p
}

// Tail returns the last n lines of the file at path (of a process's log, for a failure
// message); "" when it cannot be read.
func Tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// info returns the fields of an INFO section.
func info(ctx context.Context, c *redis.Client, section string) map[string]string {
	s, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out
}

// WaitRedials waits (up to 3 s) until no go-redis redial probe is running. A client that lost a
// node probes it once a second until the client is closed, and notices the close only after
// its sleep: call this after closing the clients of a test that killed a node, before the
// package's leak check.
func WaitRedials() {
	deadline := time.Now().Add(3 * time.Second)
	buf := make([]byte, 1<<20)
	for time.Now().Before(deadline) {
		n := runtime.Stack(buf, true)
		if !bytes.Contains(buf[:n], []byte("pool.(*ConnPool).tryDial")) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// StartServer starts one standalone redis-server, killed when tb ends.
func StartServer(tb testing.TB) *Node {
	tb.Helper()
	n := startNode(tb, tb.TempDir(), "redis", freePort(tb, false), dataConf)
	c := n.Client(tb)
	waitFor(tb, "redis-server up", 10*time.Second, func(ctx context.Context) bool { return c.Ping(ctx).Err() == nil })
	return n
}

// Freeze stops the process (SIGSTOP) until Thaw: it answers nothing meanwhile, as a stalled
// host would; a frozen replica falls behind its master.
func (n *Node) Freeze() { _ = syscall.Kill(n.cmd.Process.Pid, syscall.SIGSTOP) }

// Thaw resumes a frozen process (SIGCONT).
func (n *Node) Thaw() { _ = syscall.Kill(n.cmd.Process.Pid, syscall.SIGCONT) }

package server_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/sioclient"
	"github.com/switchboard-rtc/switchboard/server"
	"github.com/switchboard-rtc/switchboard/store"
)

// freezer is a TCP proxy to one upstream whose connections can be frozen: it stops moving
// bytes both ways, as a client that hangs (or whose network died) would.
type freezer struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frozen chan struct{} // closed on freeze
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target, frozen: make(chan struct{})}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

func (f *freezer) url() string { return "http://" + f.ln.Addr().String() }

func (f *freezer) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", f.target)
		if err != nil {
			c.Close()
			continue
		}
		f.mu.Lock()
		f.conns = append(f.conns, c, up)
		f.mu.Unlock()
		f.wg.Add(2)
		go f.pipe(up, c)
		go f.pipe(c, up)
	}
}

// pipe copies src to dst until frozen; then it stops reading and leaves both ends open, so
// the other side's writes pile up in the kernel and then block.
func (f *freezer) pipe(dst, src net.Conn) {
	defer f.wg.Done()
	buf := make([]byte, 4096)
	for {
		if f.isFrozen() {
			return
		}
		_ = src.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := src.Read(buf)
		if n > 0 && !f.isFrozen() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil && !isTimeout(err) {
			return
		}
	}
}

func (f *freezer) isFrozen() bool {
	select {
	case <-f.frozen:
		return true
	default:
		return false
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (f *freezer) freeze() { close(f.frozen) }

func (f *freezer) close() {
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// A client that stops reading cannot stall anyone: its sender is told backlog_full instead of
// waiting, other calls go on, and the server drops it when its heartbeat stops.
func TestStuckClientStallsNoOne(t *testing.T) {
	inst := startInstances(t, store.NewMemory(store.Options{MaxBacklog: 32}), 1, func(c *server.Config) {
		// Short enough to drop the stuck client soon, long enough for healthy clients on a
		// machine loaded by the race detector to answer every ping.
		c.PingInterval = 500 * time.Millisecond
		c.PingTimeout = 1500 * time.Millisecond
		c.MaxBacklog = 32
	})[0]
	u, _ := url.Parse(inst.url)
	proxy := newFreezer(t, u.Host)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(base string) *sioclient.Peer {
		c, err := sioclient.Dial(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return sioclient.NewPeer(c)
	}

	stuck, sender := dial(proxy.url()), dial(inst.url)
	if _, err := stuck.Join(ctx, "stuck"); err != nil {
		t.Fatal(err)
	}
	if _, err := sender.Join(ctx, "stuck"); err != nil {
		t.Fatal(err)
	}
	x, y := dial(inst.url), dial(inst.url)
	got := make(chan string, 256)
	y.OnEvent(func(ev string, p map[string]any) {
		if ev == "candidate" {
			c, _ := p["candidate"].(map[string]any)
			got <- fmt.Sprint(c["candidate"])
		}
	})
	if _, err := x.Join(ctx, "fine"); err != nil {
		t.Fatal(err)
	}
	if _, err := y.Join(ctx, "fine"); err != nil {
		t.Fatal(err)
	}
	// A handshake the library left unanswered may linger until the connect timeout.
	waitClients(t, inst.srv, 4)

	proxy.freeze()
	// The sender learns the stuck peer's queue is full instead of blocking.
	sawFull := false
	for i := 0; i < 200 && !sawFull; i++ {
		_, err := sender.Send(ctx, "offer", map[string]any{"sdp": fmt.Sprintf("v=0 %d %0200d", i, 0)})
		var se *sioclient.Error
		if errors.As(err, &se) && se.Code == "backlog_full" {
			sawFull = true
		} else if err != nil {
			t.Fatalf("send to the stuck peer: %v", err)
		}
	}
	if !sawFull {
		t.Fatal("200 offers to a stuck peer never got backlog_full")
	}
	// Meanwhile another call goes on, complete and in order.
	if _, err := x.Send(ctx, "offer", map[string]any{"sdp": "v=0 fine"}); err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		if _, err := x.Send(ctx, "candidate", map[string]any{"candidate": map[string]any{"candidate": fmt.Sprintf("c%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case c := <-got:
			if c != fmt.Sprintf("c%d", i) {
				t.Fatalf("candidate %d is %s", i, c)
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d candidates arrived while a client was stuck", i, n)
		}
	}
	// The heartbeat ends the stuck connection.
	waitClients(t, inst.srv, 3)
}

func waitClients(t *testing.T, srv *server.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Clients() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d clients connected, want %d", srv.Clients(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

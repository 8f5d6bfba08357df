package engineio

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The websocket tests again, with every websocket read by a goroutine of its own (the way
// connections the poller cannot take are read).
func TestGoroutineReads(t *testing.T) {
	goroutineReads = true
	defer func() { goroutineReads = false }()
	for name, test := range map[string]func(*testing.T){
		"EchoAndHeartbeat": TestWebsocketEchoAndHeartbeat,
		"InvalidPacket":    TestWebsocketInvalidPacketCloses,
		"Oversize":         TestWebsocketOversizeCloses,
		"Upgrade":          TestUpgrade,
		"EarlyFrame":       TestWebsocketEarlyFrame,
		"LastWordsKept":    TestWebsocketLastMessageBeforeCloseKept,
		"PollAfterUpgrade": TestPollRightAfterUpgradePacketIsRefused,
	} {
		t.Run(name, test)
	}
}

// openWebsockets opens n websocket sessions on e and reads their open packets.
func openWebsockets(t *testing.T, url string, n int) []*websocket.Conn {
	t.Helper()
	cs := make([]*websocket.Conn, n)
	for i := range cs {
		cs[i] = dial(t, url+"&transport=websocket")
		read(t, cs[i])
	}
	return cs
}

// settledGoroutines is the goroutine count once it stops falling.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}

// An idle websocket read through the poller holds no goroutine; one read by a goroutine of its
// own holds one (so the measure can tell them apart).
func TestPollerIdleWebsocketHoldsNoGoroutine(t *testing.T) {
	const n = 50
	for _, c := range []struct {
		noPoller bool
		atLeast  int
		atMost   int
	}{{false, 0, 5}, {true, n, n + 5}} {
		e := newEchoServer(t, Options{NoPoller: c.noPoller})
		openWebsockets(t, e.url, 1) // the poller's own goroutines start with the first
		base := settledGoroutines()
		cs := openWebsockets(t, e.url, n)
		_ = cs[n-1].WriteMessage(websocket.TextMessage, []byte("4x")) // one burst, then idle
		read(t, cs[n-1])
		// The client side holds none here: gorilla's connections are read only when asked.
		if d := settledGoroutines() - base; d < c.atLeast || d > c.atMost {
			t.Errorf("NoPoller=%v: %d websockets added %d goroutines, want %d to %d", c.noPoller, n, d, c.atLeast, c.atMost)
		}
	}
}

// A listener that stops taking messages pauses reading that client only: its writes back up
// (TCP pushes back) while another client's messages go on; once it takes them again, every
// message arrives, in order.
func TestPollerPausesASlowListener(t *testing.T) {
	e := New(Options{})
	hs := httptest.NewServer(e)
	defer hs.Close()
	defer e.Close()
	gate := make(chan struct{})
	var mu sync.Mutex
	got := map[string][]string{}
	_ = e.On("connection", func(a ...any) {
		s := a[0].(*Socket)
		_ = s.On("data", func(d ...any) {
			m := d[0].(string)
			if strings.HasPrefix(m, "slow") {
				<-gate
			}
			mu.Lock()
			got[m[:4]] = append(got[m[:4]], m)
			mu.Unlock()
			if strings.HasPrefix(m, "fast") {
				s.WriteString(m)
			}
		})
	})
	url := hs.URL + "/engine.io/?EIO=4"
	cs := openWebsockets(t, url, 2)
	slow, fast := cs[0], cs[1]

	pad := strings.Repeat("p", 4<<10)
	sent := 0
	for ; sent < 100_000; sent++ {
		_ = slow.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		if err := slow.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("4slow|%d|%s", sent, pad))); err != nil {
			break
		}
	}
	if sent == 100_000 {
		t.Fatal("400 MB went to a listener that takes nothing: reading was not paused")
	}
	// The paused client holds up nobody else.
	for i := range 3 {
		_ = fast.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("4fast|%d", i)))
		if _, m := read(t, fast); m != fmt.Sprintf("4fast|%d", i) {
			t.Fatalf("fast client got %q", m)
		}
	}
	close(gate)
	// The write that timed out may have left part of a frame: what was whole before it arrives.
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got["slow"]) >= sent-1 })
	mu.Lock()
	defer mu.Unlock()
	for i, m := range got["slow"][:sent-1] {
		if !strings.HasPrefix(m, fmt.Sprintf("slow|%d|", i)) {
			t.Fatalf("message %d is %.20q", i, m)
		}
	}
	t.Logf("%d messages of 4 KB were taken before the client's writes blocked", sent)
}

// What a client sends right before it closes the connection is delivered before the close,
// even when the bytes and the end of the stream arrive in one readiness event.
func TestWebsocketLastMessageBeforeCloseKept(t *testing.T) {
	e := newEchoServer(t, Options{})
	addr := strings.TrimPrefix(strings.SplitN(e.url, "/engine.io", 2)[0], "http://")
	var mu sync.Mutex
	var last []string
	_ = e.eio.On("connection", func(a ...any) {
		s := a[0].(*Socket)
		_ = s.On("data", func(d ...any) {
			mu.Lock()
			last = append(last, d[0].(string))
			mu.Unlock()
		})
	})
	const rounds = 30
	for i := range rounds {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		req := "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
		if _, err := conn.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		time.Sleep(5 * time.Millisecond) // the session is open and attached
		_, _ = conn.Write(maskedFrame(true, opText, []byte(fmt.Sprintf("4bye%d", i))))
		_ = conn.Close()
	}
	waitFor(t, func() bool { return len(e.reasons()) == rounds })
	mu.Lock()
	defer mu.Unlock()
	if len(last) != rounds {
		t.Fatalf("%d of %d last messages delivered: %q", len(last), rounds, last)
	}
}

// A poll the client sends right after its upgrade packet finds the session upgraded (400), as
// the official suite checks; the websocket goes on.
func TestPollRightAfterUpgradePacketIsRefused(t *testing.T) {
	e := newEchoServer(t, Options{})
	for i := range 30 {
		sid := "&sid=" + openPolling(t, e)
		c := dial(t, e.url+"&transport=websocket"+sid)
		_ = c.WriteMessage(websocket.TextMessage, []byte("2probe"))
		if _, m := read(t, c); m != "3probe" {
			t.Fatalf("probe answer %q", m)
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte("5"))
		if code, body := do(t, "GET", e.url+"&transport=polling"+sid, ""); code != 400 {
			t.Fatalf("round %d: poll after the upgrade packet: %d %q", i, code, body)
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte("4hello"))
		if _, m := read(t, c); m != "4hello" {
			t.Fatalf("after upgrade %q", m)
		}
		c.Close()
	}
}

package engineio

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
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
		"ShutDownPaused":   TestPausedClientThatShutsDownLosesNothing,
		"EarlyPing":        TestEarlyPingIsAnswered,
		"LargeBurst":       TestLargeBurstThenIdle,
		"NoDataAfterClose": TestNoDataAfterClose,
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
	e, url := newServer(t, Options{})
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

// A client that sends more than fills the inbox and then shuts down its side loses nothing:
// the poller reads the rest before nbio closes the connection.
func TestPausedClientThatShutsDownLosesNothing(t *testing.T) {
	e := newEchoServer(t, Options{})
	var mu sync.Mutex
	got := 0
	_ = e.eio.On("connection", func(a ...any) {
		s := a[0].(*Socket)
		_ = s.On("data", func(d ...any) {
			time.Sleep(time.Millisecond) // slower than the client: reading pauses
			mu.Lock()
			got++
			mu.Unlock()
		})
	})
	addr := strings.TrimPrefix(strings.SplitN(e.url, "/engine.io", 2)[0], "http://")
	const n = 100
	for round := range 3 {
		mu.Lock()
		got = 0
		mu.Unlock()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		req := "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
		_, _ = conn.Write([]byte(req))
		if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != 101 {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		var all []byte
		for i := range n {
			all = append(all, maskedFrame(true, opText, []byte(fmt.Sprintf("4%03d%s", i, strings.Repeat("x", 4<<10))))...)
		}
		if _, err := conn.Write(all); err != nil {
			t.Fatal(err)
		}
		_ = conn.(*net.TCPConn).CloseWrite()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			g := got
			mu.Unlock()
			if g == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d of %d delivered", round, g, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		conn.Close()
		t.Logf("round %d: %d of %d delivered", round, n, n)
	}
}

// rawWebsocket opens a websocket session by hand, sending extra right behind the request.
func rawWebsocket(t *testing.T, e *echoServer, extra []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	addr := strings.TrimPrefix(strings.SplitN(e.url, "/engine.io", 2)[0], "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), extra...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return conn, br
}

// readFrame reads one unmasked server frame.
func readFrame(t *testing.T, br *bufio.Reader) (op byte, payload []byte) {
	t.Helper()
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		t.Fatal(err)
	}
	n := int(hdr[1] & 0x7F)
	switch n {
	case 126:
		var ext [2]byte
		_, _ = io.ReadFull(br, ext[:])
		n = int(ext[0])<<8 | int(ext[1])
	case 127:
		var ext [8]byte
		_, _ = io.ReadFull(br, ext[:])
		n = int(binary.BigEndian.Uint64(ext[:]))
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatal(err)
	}
	return hdr[0] & 0x0F, payload
}

// A ping sent right behind the upgrade request is answered (it is parsed before the poller
// has the connection).
func TestEarlyPingIsAnswered(t *testing.T) {
	e := newEchoServer(t, Options{})
	_, br := rawWebsocket(t, e, maskedFrame(true, opPing, []byte("hi")))
	got := map[byte]string{}
	for len(got) < 2 {
		op, p := readFrame(t, br)
		got[op] = string(p)
	}
	if got[opPong] != "hi" || !strings.HasPrefix(got[opText], "0{") {
		t.Fatalf("frames %q", got)
	}
}

// A burst larger than the socket's buffers reaches a client that reads it, and the connection
// then stays up past the write timeout while idle.
func TestLargeBurstThenIdle(t *testing.T) {
	e, url := newServer(t, Options{WriteTimeout: 300 * time.Millisecond, PingInterval: 10 * time.Second})
	conns := sessions(e)
	c := dial(t, url+"&transport=websocket")
	c.SetReadLimit(16 << 20)
	read(t, c)
	s := <-conns
	big := strings.Repeat("b", 6<<20)
	s.WriteString(big)
	if _, m := read(t, c); len(m) != len(big)+1 {
		t.Fatalf("burst of %d bytes arrived as %d", len(big)+1, len(m))
	}
	time.Sleep(800 * time.Millisecond)
	s.WriteString("still")
	if _, m := read(t, c); m != "4still" {
		t.Fatalf("after idle: %q", m)
	}
}

// Once a session is closed, nothing more of what its websocket had read is emitted.
func TestNoDataAfterClose(t *testing.T) {
	e, url := newServer(t, Options{})
	var mu sync.Mutex
	var log []string
	_ = e.On("connection", func(a ...any) {
		s := a[0].(*Socket)
		n := 0
		_ = s.On("data", func(d ...any) {
			mu.Lock()
			log = append(log, "data")
			mu.Unlock()
			if n++; n == 5 {
				s.Close(true)
			}
		})
		_ = s.On("close", func(...any) {
			mu.Lock()
			log = append(log, "close")
			mu.Unlock()
		})
	})
	c := dial(t, url+"&transport=websocket")
	read(t, c)
	var burst []byte
	for i := range 200 {
		burst = append(burst, maskedFrame(true, opText, []byte(fmt.Sprintf("4m%d", i)))...)
	}
	_ = c.UnderlyingConn().(*net.TCPConn).SetNoDelay(true)
	if _, err := c.UnderlyingConn().Write(burst); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return slices.Contains(log, "close") })
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if i := slices.Index(log, "close"); i != len(log)-1 || i != 5 {
		t.Fatalf("events %v: want 5 data, then close, then nothing", log)
	}
}

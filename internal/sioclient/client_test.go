package sioclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/v2/socket"
)

// testServer is a bare Socket.IO server on loopback. connected receives each server-side socket.
type testServer struct {
	url       string
	connected chan *socket.Socket
}

// newTestServer starts a Socket.IO server; setup, if not nil, registers handlers on each new socket.
func newTestServer(t *testing.T, opts *socket.ServerOptions, setup func(*socket.Socket)) *testServer {
	t.Helper()
	if opts == nil {
		opts = socket.DefaultServerOptions()
	}
	io := socket.NewServer(nil, opts)
	ts := &testServer{connected: make(chan *socket.Socket, 16)}
	// Handlers go on in a middleware: the library sends the CONNECT reply before it emits
	// "connection", so handlers registered there can miss the client's first packets.
	io.Use(func(s *socket.Socket, next func(*socket.ExtendedError)) {
		if setup != nil {
			setup(s)
		}
		next(nil)
	})
	io.On("connection", func(args ...any) {
		select {
		case ts.connected <- args[0].(*socket.Socket):
		default:
		}
	})
	hs := httptest.NewServer(io.ServeHandler(nil))
	ts.url = hs.URL
	t.Cleanup(func() {
		io.Close(nil)
		hs.Close()
	})
	return ts
}

// ackOf returns the acknowledgement callback of a handler's arguments, or nil.
func ackOf(args []any) socket.Ack {
	if len(args) == 0 {
		return nil
	}
	ack, _ := args[len(args)-1].(socket.Ack)
	return ack
}

func echo(s *socket.Socket) {
	s.On("echo", func(args ...any) {
		if ack := ackOf(args); ack != nil {
			ack([]any{map[string]any{"ok": true, "echo": args[0]}}, nil)
		}
	})
}

func dial(t *testing.T, url string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, url)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recvSocket returns the server's socket for c (skipping those of attempts Dial gave up on).
func recvSocket(t *testing.T, ts *testServer, c *Client) *socket.Socket {
	t.Helper()
	for {
		select {
		case s := <-ts.connected:
			if string(s.Id()) == c.SID() {
				return s
			}
		case <-time.After(5 * time.Second):
			t.Fatal("server saw no connection")
			return nil
		}
	}
}

func TestConnect(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	c := dial(t, ts.url)
	if c.SID() == "" {
		t.Fatal("no sid")
	}
	recvSocket(t, ts, c)
	if c.Err() != nil {
		t.Fatalf("Err on an open connection: %v", c.Err())
	}
}

func TestEmitWithAck(t *testing.T) {
	ts := newTestServer(t, nil, echo)
	c := dial(t, ts.url)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			raw, err := c.EmitWithAck(ctx, "echo", map[string]any{"n": i, "s": "a\"b"})
			if err != nil {
				t.Errorf("EmitWithAck %d: %v", i, err)
				return
			}
			var r struct {
				OK   bool `json:"ok"`
				Echo struct {
					N int    `json:"n"`
					S string `json:"s"`
				} `json:"echo"`
			}
			if err := json.Unmarshal(raw, &r); err != nil || !r.OK || r.Echo.N != i || r.Echo.S != "a\"b" {
				t.Errorf("reply %d: %s (%v)", i, raw, err)
			}
		})
	}
	wg.Wait()
}

func TestEmitWithAckTimeout(t *testing.T) {
	ts := newTestServer(t, nil, nil) // no handler: no reply
	c := dial(t, ts.url)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.EmitWithAck(ctx, "nobody", map[string]any{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v (%v), want deadline exceeded", err, c.Err())
	}
}

func TestEmit(t *testing.T) {
	got := make(chan any, 1)
	ts := newTestServer(t, nil, func(s *socket.Socket) {
		s.On("note", func(args ...any) {
			if ackOf(args) != nil {
				t.Error("Emit sent an ack id")
			}
			got <- args[0]
		})
	})
	c := dial(t, ts.url)
	if err := c.Emit("note", map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if m, ok := v.(map[string]any); !ok || m["x"] != float64(1) {
			t.Fatalf("server got %#v", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server got nothing")
	}
}

func TestServerEvents(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	c := dial(t, ts.url)
	const n = 50
	seen := make(chan int, n)
	c.On("tick", func(raw json.RawMessage) {
		var v struct{ N int }
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Errorf("tick %s: %v", raw, err)
		}
		seen <- v.N
	})
	anyCount := 0
	c.OnAny(func(event string, raw json.RawMessage) {
		if event == "tick" {
			anyCount++ // dispatch goroutine only
		}
	})
	s := recvSocket(t, ts, c)
	for i := range n {
		s.Emit("tick", map[string]any{"N": i})
	}
	// The v2 server may reorder its own emits; check that each arrives once.
	got := make(map[int]bool)
	for range n {
		select {
		case i := <-seen:
			if got[i] {
				t.Fatalf("tick %d twice", i)
			}
			got[i] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d of %d ticks", len(got), n)
		}
	}
	c.Close()
	if anyCount != n {
		t.Fatalf("OnAny saw %d ticks, want %d", anyCount, n)
	}
}

func TestServerEmitWithAck(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	c := dial(t, ts.url)
	s := recvSocket(t, ts, c)
	acked := make(chan error, 1)
	s.Timeout(5*time.Second).EmitWithAck("ask", map[string]any{})(func(_ []any, err error) {
		acked <- err
	})
	select {
	case err := <-acked:
		if err != nil {
			t.Fatalf("server ack: %v", err)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("no ack")
	}
	_ = c
}

func TestPingPong(t *testing.T) {
	opts := socket.DefaultServerOptions()
	// Without pongs the server would close the connection after interval+timeout (0.6 s); the
	// timeout leaves room for a machine loaded by the race detector.
	opts.SetPingInterval(100 * time.Millisecond)
	opts.SetPingTimeout(500 * time.Millisecond)
	ts := newTestServer(t, opts, echo)
	c := dial(t, ts.url)
	time.Sleep(1500 * time.Millisecond) // many ping intervals, more than interval+timeout
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.EmitWithAck(ctx, "echo", 1); err != nil {
		t.Fatalf("after pings: %v", err)
	}
}

func TestServerDisconnect(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	c := dial(t, ts.url)
	s := recvSocket(t, ts, c)
	s.Disconnect(true)
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the server disconnected")
	}
	if c.Err() == nil || errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("Err = %v, want a remote reason", c.Err())
	}
	if err := c.Emit("x", 1); err == nil {
		t.Fatal("Emit on a closed connection succeeded")
	}
}

func TestClose(t *testing.T) {
	// Reasons by socket id: a first handshake the library left unanswered (Dial then redials)
	// is closed by the server too, with another reason.
	type closed struct {
		sid    string
		reason any
	}
	reasons := make(chan closed, 8)
	ts := newTestServer(t, nil, func(s *socket.Socket) {
		s.On("disconnect", func(args ...any) { reasons <- closed{string(s.Id()), args[0]} })
	})
	c := dial(t, ts.url)
	recvSocket(t, ts, c)
	c.Close()
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("Err = %v", c.Err())
	}
	if _, err := c.EmitWithAck(context.Background(), "echo", 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("EmitWithAck after Close: %v", err)
	}
	deadline := time.After(5 * time.Second)
	for done := false; !done; {
		select {
		case r := <-reasons:
			if r.sid != c.SID() {
				continue
			}
			// The library handles packets concurrently, so the transport close may win over "41".
			if r.reason != "client namespace disconnect" && r.reason != "transport close" {
				t.Fatalf("server disconnect reason %v", r.reason)
			}
			done = true
		case <-deadline:
			t.Fatal("server saw no disconnect")
		}
	}
	c.Close() // idempotent
}

func TestCloseUnblocksEmitWithAck(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	c := dial(t, ts.url)
	errc := make(chan error, 1)
	go func() {
		_, err := c.EmitWithAck(context.Background(), "nobody", 1)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}

func TestDialErrors(t *testing.T) {
	// Not a Socket.IO endpoint: fails at once, without retries.
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusNotFound)
	}))
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := Dial(ctx, hs.URL); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("Dial to a non-Socket.IO server: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("Dial retried a failure that was not a timeout")
	}
	if _, err := Dial(ctx, "ftp://x"); err == nil {
		t.Fatal("Dial with ftp scheme succeeded")
	}
}

func TestParsePackets(t *testing.T) {
	c := &Client{acks: map[uint64]chan []json.RawMessage{}, handlers: map[string][]func(json.RawMessage){},
		wake: make(chan struct{}, 1), probed: make(chan struct{})}
	ch := make(chan []json.RawMessage, 1)
	c.acks[7] = ch
	for _, p := range []string{`3/other,7["x"]`, `2/other,["ev",1]`, `37[{"ok":true},2]`, `2["ev",{"a":1}]`, `2["bare"]`, `51-["bin",{"_placeholder":true,"num":0}]`} {
		if err := c.handlePacket([]byte(p)); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	select {
	case args := <-ch:
		if len(args) != 2 || string(args[0]) != `{"ok":true}` {
			t.Fatalf("ack args %q", args)
		}
	default:
		t.Fatal("ack 7 not delivered")
	}
	if len(c.queue) != 2 || c.queue[0].name != "ev" || string(c.queue[0].arg) != `{"a":1}` || c.queue[1].arg != nil {
		t.Fatalf("queue %+v", c.queue)
	}
	for _, p := range []string{`2`, `2{}`, `2[1]`, `3x[]`} {
		if err := c.handlePacket([]byte(p)); err == nil {
			t.Fatalf("%s: no error", p)
		}
	}
}

// fakeEngine serves the websocket handshake by hand; conn(n, ws, msg) handles each message of
// the n-th connection after the OPEN packet and returns false to close it.
func fakeEngine(t *testing.T, conn func(n int, ws *websocket.Conn, msg string) bool) (url string, conns func() int) {
	var mu sync.Mutex
	count := 0
	up := websocket.Upgrader{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		mu.Lock()
		count++
		n := count
		mu.Unlock()
		ws.WriteMessage(websocket.TextMessage, []byte(`0{"sid":"e1","pingInterval":25000,"pingTimeout":20000}`))
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil || !conn(n, ws, string(msg)) {
				return
			}
		}
	}))
	t.Cleanup(hs.Close)
	return hs.URL, func() int {
		mu.Lock()
		defer mu.Unlock()
		return count
	}
}

// answer replies to CONNECT and to the probe like a Socket.IO server.
func answer(ws *websocket.Conn, msg, sid string) {
	switch msg {
	case "40":
		ws.WriteMessage(websocket.TextMessage, []byte(`40{"sid":"`+sid+`"}`))
	case "40" + probeNsp + ",":
		ws.WriteMessage(websocket.TextMessage, []byte(`44`+probeNsp+`,{"message":"Invalid namespace"}`))
	}
}

func TestDialRetriesUnansweredConnect(t *testing.T) {
	// The first connection never answers CONNECT (as when the library drops it); the second does.
	url, conns := fakeEngine(t, func(n int, ws *websocket.Conn, msg string) bool {
		if n > 1 {
			answer(ws, msg, "s2")
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, url, WithAttemptTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.SID() != "s2" || conns() != 2 {
		t.Fatalf("sid %q after %d connections", c.SID(), conns())
	}
}

func TestDialRetriesDroppedConnection(t *testing.T) {
	// The first connection is closed when the first packet after CONNECT arrives, as the library
	// does when that packet beats its own bookkeeping; the second one works.
	url, conns := fakeEngine(t, func(n int, ws *websocket.Conn, msg string) bool {
		if n == 1 && msg != "40" {
			return false
		}
		answer(ws, msg, "s"+strconv.Itoa(n))
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.SID() != "s2" || conns() != 2 {
		t.Fatalf("sid %q after %d connections", c.SID(), conns())
	}
}

func TestDialProbeNamespaceServed(t *testing.T) {
	// A server that serves every namespace accepts the probe's; the client leaves it again.
	left := make(chan struct{})
	url, _ := fakeEngine(t, func(n int, ws *websocket.Conn, msg string) bool {
		switch msg {
		case "40" + probeNsp + ",":
			ws.WriteMessage(websocket.TextMessage, []byte(`40`+probeNsp+`,{"sid":"p"}`))
		case "41" + probeNsp + ",":
			close(left)
		default:
			answer(ws, msg, "s")
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-left:
	case <-ctx.Done():
		t.Fatal("probe namespace not left")
	}
}

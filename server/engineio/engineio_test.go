package engineio

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// echoServer is an Engine.IO server that echoes every message, on a loopback HTTP server.
type echoServer struct {
	eio    *Server
	url    string
	mu     sync.Mutex
	closed []string // close reasons, in order
}

// goroutineReads makes newEchoServer read websockets on goroutines of their own
// (Options.NoPoller), for TestGoroutineReads.
var goroutineReads bool

// newServer serves a server of opts on a loopback HTTP server until the test ends; url is its
// Engine.IO path with EIO=4, for a "&transport=…" to follow.
func newServer(t *testing.T, opts Options) (e *Server, url string) {
	t.Helper()
	opts.NoPoller = opts.NoPoller || goroutineReads
	e = New(opts)
	hs := httptest.NewServer(e)
	t.Cleanup(func() { e.Close(); hs.Close() })
	return e, hs.URL + "/engine.io/?EIO=4"
}

// sessions passes on each session e opens.
func sessions(e *Server) <-chan *Socket {
	conns := make(chan *Socket, 1)
	_ = e.On("connection", func(a ...any) { conns <- a[0].(*Socket) })
	return conns
}

func newEchoServer(t *testing.T, opts Options) *echoServer {
	t.Helper()
	e := &echoServer{}
	e.eio, e.url = newServer(t, opts)
	_ = e.eio.On("connection", func(a ...any) {
		s := a[0].(*Socket)
		_ = s.On("data", func(d ...any) {
			switch v := d[0].(type) {
			case string:
				s.WriteString(v)
			case []byte:
				s.WriteBinary(v)
			}
		})
		_ = s.On("close", func(r ...any) {
			e.mu.Lock()
			e.closed = append(e.closed, r[0].(string))
			e.mu.Unlock()
		})
	})
	return e
}

func (e *echoServer) reasons() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.closed...)
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type handshake struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int      `json:"pingInterval"`
	PingTimeout  int      `json:"pingTimeout"`
	MaxPayload   int      `json:"maxPayload"`
}

func openPolling(t *testing.T, e *echoServer) string {
	t.Helper()
	code, body := do(t, "GET", e.url+"&transport=polling", "")
	if code != 200 || !strings.HasPrefix(body, "0") {
		t.Fatalf("handshake: %d %q", code, body)
	}
	var h handshake
	if err := json.Unmarshal([]byte(body[1:]), &h); err != nil {
		t.Fatal(err)
	}
	return h.SID
}

func TestPollingHandshakeAndEcho(t *testing.T) {
	e := newEchoServer(t, Options{PingInterval: 300 * time.Millisecond, PingTimeout: 200 * time.Millisecond, MaxPayload: 1000})
	code, body := do(t, "GET", e.url+"&transport=polling", "")
	var h handshake
	if code != 200 || json.Unmarshal([]byte(body[1:]), &h) != nil {
		t.Fatalf("handshake: %d %q", code, body)
	}
	if len(h.SID) != 20 || len(h.Upgrades) != 1 || h.Upgrades[0] != "websocket" ||
		h.PingInterval != 300 || h.PingTimeout != 200 || h.MaxPayload != 1000 {
		t.Fatalf("handshake %+v", h)
	}
	sid := "&transport=polling&sid=" + h.SID
	if code, body := do(t, "POST", e.url+sid, "4hello\x1ebAQIDBA==\x1e4wörld"); code != 200 || body != "ok" {
		t.Fatalf("post: %d %q", code, body)
	}
	if code, body := do(t, "GET", e.url+sid, ""); code != 200 || body != "4hello\x1ebAQIDBA==\x1e4wörld" {
		t.Fatalf("poll: %d %q", code, body)
	}
}

func TestErrors(t *testing.T) {
	e := newEchoServer(t, Options{})
	for _, c := range []struct {
		method, query string
		code          int
		body          string
	}{
		{"GET", "&transport=polling&sid=nope", 400, `{"code":1,"message":"Session ID unknown"}`},
		{"GET", "&transport=carrier-pigeon", 400, `{"code":0,"message":"Transport unknown"}`},
		{"POST", "&transport=polling", 400, `{"code":2,"message":"Bad handshake method"}`},
		{"GET", "&transport=websocket", 400, `{"code":3,"message":"Bad request"}`},
	} {
		if code, body := do(t, c.method, e.url+c.query, ""); code != c.code || body != c.body {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.query, code, body, c.code, c.body)
		}
	}
	if code, body := do(t, "GET", strings.Replace(e.url, "EIO=4", "EIO=3", 1)+"&transport=polling", ""); code != 400 || !strings.Contains(body, `"code":5`) {
		t.Errorf("EIO=3: %d %s", code, body)
	}
}

// An undecodable payload closes the session and delivers nothing of it.
func TestUndecodablePostClosesSession(t *testing.T) {
	for _, payload := range []string{"abc", "4ok\x1e", "4ok\x1ebnot base64!", "", "4\xff"} {
		e := newEchoServer(t, Options{})
		sid := "&transport=polling&sid=" + openPolling(t, e)
		if code, _ := do(t, "POST", e.url+sid, payload); code != 400 {
			t.Errorf("%q: post %d, want 400", payload, code)
		}
		if code, body := do(t, "GET", e.url+sid, ""); code != 400 || !strings.Contains(body, `"code":1`) {
			t.Errorf("%q: next poll %d %s, want 400 unknown sid", payload, code, body)
		}
		if r := e.reasons(); len(r) != 1 || r[0] != "parse error" {
			t.Errorf("%q: close reasons %v", payload, r)
		}
	}
}

func TestOversizePostClosesSession(t *testing.T) {
	e := newEchoServer(t, Options{MaxPayload: 100})
	sid := "&transport=polling&sid=" + openPolling(t, e)
	if code, _ := do(t, "POST", e.url+sid, "4"+strings.Repeat("x", 100)); code != 413 {
		t.Fatalf("post %d, want 413", code)
	}
	if code, _ := do(t, "GET", e.url+sid, ""); code != 400 {
		t.Fatalf("next poll %d, want 400", code)
	}
}

func TestPollingHeartbeat(t *testing.T) {
	e := newEchoServer(t, Options{PingInterval: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond})
	sid := "&transport=polling&sid=" + openPolling(t, e)
	for range 3 {
		if code, body := do(t, "GET", e.url+sid, ""); code != 200 || body != "2" {
			t.Fatalf("poll: %d %q, want a ping", code, body)
		}
		if code, _ := do(t, "POST", e.url+sid, "3"); code != 200 {
			t.Fatalf("pong: %d", code)
		}
	}
	time.Sleep(250 * time.Millisecond) // a ping goes out and is not answered
	if code, _ := do(t, "GET", e.url+sid, ""); code != 400 {
		t.Fatalf("poll after missed pong: %d, want 400", code)
	}
	if r := e.reasons(); len(r) != 1 || r[0] != "ping timeout" {
		t.Fatalf("close reasons %v", r)
	}
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return c
}

func read(t *testing.T, c *websocket.Conn) (int, string) {
	t.Helper()
	typ, b, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	return typ, string(b)
}

func TestWebsocketEchoAndHeartbeat(t *testing.T) {
	e := newEchoServer(t, Options{PingInterval: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond})
	c := dial(t, e.url+"&transport=websocket")
	_, open := read(t, c)
	var h handshake
	if !strings.HasPrefix(open, "0") || json.Unmarshal([]byte(open[1:]), &h) != nil || len(h.Upgrades) != 0 {
		t.Fatalf("open %q", open)
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte("4héllo"))
	_ = c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	got := map[string]bool{}
	for len(got) < 2 {
		typ, m := read(t, c)
		switch {
		case typ == websocket.TextMessage && m == "2":
			_ = c.WriteMessage(websocket.TextMessage, []byte("3"))
		case typ == websocket.TextMessage && m == "4héllo", typ == websocket.BinaryMessage && m == "\x01\x02\x03":
			got[m] = true
		default:
			t.Fatalf("unexpected %d %q", typ, m)
		}
	}
	// Stop answering pings: the server closes the connection.
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
	}
	waitFor(t, func() bool { r := e.reasons(); return len(r) == 1 && r[0] == "ping timeout" })
}

func TestWebsocketInvalidPacketCloses(t *testing.T) {
	e := newEchoServer(t, Options{})
	c := dial(t, e.url+"&transport=websocket")
	read(t, c)
	_ = c.WriteMessage(websocket.TextMessage, []byte("abc"))
	if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, closeInvalidData) {
		t.Fatalf("read after invalid packet: %v", err)
	}
	waitFor(t, func() bool { return len(e.reasons()) == 1 })
}

func TestWebsocketOversizeCloses(t *testing.T) {
	e := newEchoServer(t, Options{MaxPayload: 100})
	c := dial(t, e.url+"&transport=websocket")
	read(t, c)
	_ = c.WriteMessage(websocket.TextMessage, []byte("4"+strings.Repeat("x", 100)))
	if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, closeMessageTooBig) {
		t.Fatalf("read after oversize message: %v", err)
	}
}

func TestUpgrade(t *testing.T) {
	e := newEchoServer(t, Options{})
	id := openPolling(t, e)
	sid := "&sid=" + id
	// Something written before the upgrade completes goes out on the websocket after it.
	if code, _ := do(t, "POST", e.url+"&transport=polling"+sid, "4early"); code != 200 {
		t.Fatal(code)
	}
	c := dial(t, e.url+"&transport=websocket"+sid)
	_ = c.WriteMessage(websocket.TextMessage, []byte("2probe"))
	if _, m := read(t, c); m != "3probe" {
		t.Fatalf("probe answer %q", m)
	}
	// The buffered message is polled; then the next poll gets the noop that ends polling.
	if code, body := do(t, "GET", e.url+"&transport=polling"+sid, ""); code != 200 || body != "4early" {
		t.Fatalf("poll: %d %q", code, body)
	}
	if code, body := do(t, "GET", e.url+"&transport=polling"+sid, ""); code != 200 || body != "6" {
		t.Fatalf("poll: %d %q, want noop", code, body)
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte("5"))
	_ = c.WriteMessage(websocket.TextMessage, []byte("4late"))
	if _, m := read(t, c); m != "4late" {
		t.Fatalf("after upgrade %q", m)
	}
	if code, _ := do(t, "GET", e.url+"&transport=polling"+sid, ""); code != 400 {
		t.Fatalf("poll after upgrade: %d", code)
	}
	// A second websocket for the session is opened and closed; the first goes on.
	c2 := dial(t, e.url+"&transport=websocket"+sid)
	if _, _, err := c2.ReadMessage(); err == nil {
		t.Fatal("second websocket was kept")
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte("4still"))
	if _, m := read(t, c); m != "4still" {
		t.Fatalf("after second websocket %q", m)
	}
}

func TestCORS(t *testing.T) {
	for _, c := range []struct {
		cors          CORS
		origin, allow string
		creds         bool
	}{
		{CORS{AnyOrigin: true}, "https://a.example", "*", false},
		{CORS{Origins: []string{"https://a.example"}, Credentials: true}, "https://a.example", "https://a.example", true},
		{CORS{Origins: []string{"https://a.example"}, Credentials: true}, "https://b.example", "false", true},
	} {
		e := newEchoServer(t, Options{CORS: c.cors})
		req, _ := http.NewRequest("OPTIONS", e.url+"&transport=polling", nil)
		req.Header.Set("Origin", c.origin)
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != c.allow ||
			(h.Get("Access-Control-Allow-Credentials") == "true") != c.creds ||
			h.Get("Access-Control-Allow-Headers") != "content-type" {
			t.Errorf("%+v from %s: %d %v", c.cors, c.origin, resp.StatusCode, h)
		}
	}
}

// Writes that arrive while one is under way leave together; every message arrives, in order.
func TestWebsocketWritesInOrder(t *testing.T) {
	e, url := newServer(t, Options{})
	conns := sessions(e)
	c := dial(t, url+"&transport=websocket")
	read(t, c)
	s := <-conns
	const n = 2000
	go func() {
		for i := range n {
			s.WriteString(strings.Repeat("x", i%50) + "|" + itoa(i))
		}
	}()
	for i := range n {
		_, m := read(t, c)
		if want := "4" + strings.Repeat("x", i%50) + "|" + itoa(i); m != want {
			t.Fatalf("message %d: %q, want %q", i, m, want)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A session keeps of its handshake the URL, the peer and Origin, not the other headers.
func TestHandshakeHeadersNotKept(t *testing.T) {
	e, url := newServer(t, Options{})
	conns := sessions(e)
	req, _ := http.NewRequest("GET", url+"&transport=polling&x=1", nil)
	req.Header.Set("Origin", "https://a.example")
	req.Header.Set("Cookie", "session=secret")
	req.Header.Set("User-Agent", strings.Repeat("u", 500))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s := <-conns
	ctx := s.Request()
	if h := ctx.Headers().All(); len(h) != 1 || ctx.Headers().Peek("Origin") != "https://a.example" {
		t.Fatalf("kept headers %v", h)
	}
	if ctx.Query().Peek("x") != "1" || !strings.HasPrefix(ctx.Request().RequestURI, "/engine.io/?") {
		t.Fatalf("query %v, uri %q", ctx.Query().All(), ctx.Request().RequestURI)
	}
	if s.RemoteAddress() == "" || s.Request().Query().Peek("x") != "1" {
		t.Fatal("remote address or request not kept")
	}
}

// Bytes a client sends right behind its upgrade request, before the answer, are not lost.
func TestWebsocketEarlyFrame(t *testing.T) {
	e := newEchoServer(t, Options{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(strings.SplitN(e.url, "/engine.io", 2)[0], "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), maskedFrame(true, opText, []byte("4early"))...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Sec-Websocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	var got []string
	for len(got) < 2 {
		hdr := make([]byte, 2)
		if _, err := io.ReadFull(br, hdr); err != nil {
			t.Fatal(err)
		}
		n := int(hdr[1] & 0x7F)
		if n == 126 {
			ext := make([]byte, 2)
			_, _ = io.ReadFull(br, ext)
			n = int(ext[0])<<8 | int(ext[1])
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatal(err)
		}
		got = append(got, string(p))
	}
	if !strings.HasPrefix(got[0], "0{") || got[1] != "4early" {
		t.Fatalf("frames %q", got)
	}
}

package main

// A lean Socket.IO v4 client over websocket: default namespace, JSON text packets only. One
// reader goroutine per connection runs every callback (acknowledgement replies and events) in
// receive order; writes are serialised by a mutex. It keeps no per-emit goroutine and decodes
// nothing it does not need, so one load generator process can drive thousands of connections.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

var errClosed = errors.New("connection closed")

// sioConn is one Socket.IO connection.
type sioConn struct {
	ws  *websocket.Conn
	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	nextID  uint64
	acks    map[uint64]func(reply []byte) // waiting acknowledgements by id
	onEvent func(name string, payload []byte)
	err     error

	sent, recv counter // Socket.IO packets, for the report
	closed     chan struct{}
	closeOnce  sync.Once
	readerDone chan struct{}
}

// counter is a pointer to a shared counter, or nil.
type counter = *atomicCount

// The probe sends an acknowledgement nobody asked for, then a CONNECT to a namespace no server
// serves. zishang520/socket.io v2.5.0 sends the CONNECT reply before it records the namespace as
// connected and closes the whole connection when a packet arrives in between; it handles one
// connection's packets in order, so once the probe's CONNECT is answered, everything after it
// gets through. Node's server answers the probe at once and ignores the stray ack.
const (
	probeAckID = "9007199254740991"
	probeNsp   = "/lg-probe"
)

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (linux/in.h): with a source address bound,
// the kernel then picks the source port at connect time, per destination, instead of at bind
// time from one pool shared by every source address.
const ipBindAddressNoPort = 24

// dialer makes websocket dialers bound to source addresses, in turn.
type dialer struct {
	mu      sync.Mutex
	i       int
	dialers []*websocket.Dialer
	header  http.Header // sent with every handshake
}

// browserHeader is what Chromium sends with a websocket handshake from a page, beside the
// websocket headers themselves: servers keep a connection's handshake request, so its size is
// part of the memory an idle connection costs.
func browserHeader() http.Header {
	return http.Header{
		"Origin":          {"http://127.0.0.1:8080"},
		"Pragma":          {"no-cache"},
		"Cache-Control":   {"no-cache"},
		"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"},
		"Accept-Encoding": {"gzip, deflate, br, zstd"},
		"Accept-Language": {"en-US,en;q=0.9"},
		"Cookie":          {"app_session=6f1d2c3b4a5e6f708192a3b4c5d6e7f8; theme=dark; consent=1"},
	}
}

func newDialer(sources []string, browserHeaders bool) (*dialer, error) {
	d := &dialer{}
	if browserHeaders {
		d.header = browserHeader()
	}
	if len(sources) == 0 {
		sources = []string{""}
	}
	for _, s := range sources {
		nd := &net.Dialer{Timeout: 10 * time.Second}
		if s != "" {
			ip := net.ParseIP(s)
			if ip == nil || !ip.IsLoopback() {
				return nil, fmt.Errorf("source address %q: must be a loopback address (127.0.0.0/8)", s)
			}
			nd.LocalAddr = &net.TCPAddr{IP: ip}
			nd.Control = func(_, _ string, c syscall.RawConn) error {
				var serr error
				err := c.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
				})
				if err != nil {
					return err
				}
				return serr
			}
		}
		d.dialers = append(d.dialers, &websocket.Dialer{
			NetDialContext:   nd.DialContext,
			HandshakeTimeout: 10 * time.Second,
			ReadBufferSize:   2048,
			WriteBufferSize:  2048,
		})
	}
	return d, nil
}

func (d *dialer) next() *websocket.Dialer {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.dialers[d.i%len(d.dialers)]
	d.i++
	return w
}

// wsURL turns "127.0.0.1:8080" or "http://127.0.0.1:8080" into the websocket endpoint URL, and
// refuses anything that is not on the loopback range.
func wsURL(addr string) (string, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", err
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", fmt.Errorf("instance %q: only loopback addresses are allowed", addr)
	}
	u.Scheme = "ws"
	u.Path = "/socket.io/"
	u.RawQuery = "EIO=4&transport=websocket"
	return u.String(), nil
}

// maxDialAttempts bounds the handshakes dial tries for one connection.
const maxDialAttempts = 10

// dial connects to the default namespace and probes it (see probeNsp), trying a new websocket
// when an attempt is not answered within attempt (at most maxDialAttempts times, and until ctx
// ends). It returns how many attempts it took.
func dial(ctx context.Context, d *dialer, u string, attempt time.Duration, sent, recv counter) (*sioConn, int, error) {
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(ctx, attempt)
		c, err := dialOnce(actx, d.next(), d.header, u, sent, recv)
		cancel()
		if err == nil {
			return c, n, nil
		}
		if ctx.Err() != nil {
			return nil, n, fmt.Errorf("dial %s: %w (last attempt: %v)", u, ctx.Err(), err)
		}
		if n >= maxDialAttempts {
			return nil, n, fmt.Errorf("dial %s: %d attempts failed, the last: %w", u, n, err)
		}
		var ne *net.OpError
		if errors.As(err, &ne) && ne.Op == "dial" {
			return nil, n, err // refused, no ports left, ...: retrying at once does not help
		}
	}
}

func dialOnce(ctx context.Context, wd *websocket.Dialer, header http.Header, u string, sent, recv counter) (*sioConn, error) {
	ws, resp, err := wd.DialContext(ctx, u, header)
	if err != nil {
		if resp != nil { // refused before the upgrade, e.g. 429 from a connection rate limit
			err = fmt.Errorf("%w: HTTP %s", err, resp.Status)
		}
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer stop()
	// Engine.IO OPEN, then our CONNECT and its reply.
	_, msg, err := ws.ReadMessage()
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("read open: %w", err)
	}
	if len(msg) == 0 || msg[0] != '0' {
		ws.Close()
		return nil, fmt.Errorf("expected engine.io open, got %q", msg)
	}
	c := &sioConn{
		ws:         ws,
		acks:       make(map[uint64]func([]byte)),
		sent:       sent,
		recv:       recv,
		closed:     make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	if err := c.write("40"); err != nil {
		ws.Close()
		return nil, err
	}
	for connected := false; !connected; {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			ws.Close()
			return nil, fmt.Errorf("read connect reply: %w", err)
		}
		s := string(msg)
		switch {
		case s == "2":
			if err := c.write("3"); err != nil {
				ws.Close()
				return nil, err
			}
		case strings.HasPrefix(s, "40"):
			connected = true
		case strings.HasPrefix(s, "44"), strings.HasPrefix(s, "1"):
			ws.Close()
			return nil, fmt.Errorf("connect refused: %q", s)
		}
	}
	if err := c.write("43" + probeAckID + "[]"); err != nil {
		ws.Close()
		return nil, err
	}
	if err := c.write("40" + probeNsp + ","); err != nil {
		ws.Close()
		return nil, err
	}
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			ws.Close()
			return nil, fmt.Errorf("read probe reply: %w", err)
		}
		s := string(msg)
		if s == "2" {
			if err := c.write("3"); err != nil {
				ws.Close()
				return nil, err
			}
			continue
		}
		if strings.HasPrefix(s, "44"+probeNsp) {
			break
		}
		if strings.HasPrefix(s, "40"+probeNsp) { // served after all: leave it
			if err := c.write("41" + probeNsp + ","); err != nil {
				ws.Close()
				return nil, err
			}
			break
		}
	}
	if !stop() {
		ws.Close()
		return nil, ctx.Err()
	}
	go c.read()
	return c, nil
}

// setOnEvent sets the handler of server events; it runs on the reader goroutine and must not block.
func (c *sioConn) setOnEvent(h func(name string, payload []byte)) {
	c.mu.Lock()
	c.onEvent = h
	c.mu.Unlock()
}

// emit sends event with payload (a JSON object) and an acknowledgement id; cb gets the reply's
// first argument on the reader goroutine. It returns the id, for forget.
func (c *sioConn) emit(event string, payload []byte, cb func(reply []byte)) (uint64, error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return 0, errClosed
	}
	c.nextID++
	id := c.nextID
	if cb != nil {
		c.acks[id] = cb
	}
	c.mu.Unlock()
	b := make([]byte, 0, len(event)+len(payload)+32)
	b = append(b, "42"...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `["`...)
	b = append(b, event...)
	b = append(b, `",`...)
	b = append(b, payload...)
	b = append(b, ']')
	if err := c.writeBytes(b); err != nil {
		c.forget(id)
		return 0, err
	}
	return id, nil
}

// forget drops a waiting acknowledgement.
func (c *sioConn) forget(id uint64) {
	c.mu.Lock()
	delete(c.acks, id)
	c.mu.Unlock()
}

func (c *sioConn) write(s string) error { return c.writeBytes([]byte(s)) }

func (c *sioConn) writeBytes(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.shutdown(fmt.Errorf("write: %w", err))
		return err
	}
	c.sent.add(1)
	return nil
}

// close disconnects and waits for the reader.
func (c *sioConn) close() {
	c.wmu.Lock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.ws.WriteMessage(websocket.TextMessage, []byte("41"))
	c.wmu.Unlock()
	c.shutdown(errClosed)
	<-c.readerDone
}

func (c *sioConn) shutdown(err error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		c.acks = map[uint64]func([]byte){}
		c.mu.Unlock()
		close(c.closed)
		c.ws.Close()
	})
}

// failure returns why the connection ended, nil while it is open.
func (c *sioConn) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *sioConn) read() {
	defer close(c.readerDone)
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			c.shutdown(fmt.Errorf("read: %w", err))
			return
		}
		c.recv.add(1)
		if err := c.handle(msg); err != nil {
			c.shutdown(err)
			return
		}
	}
}

func (c *sioConn) handle(msg []byte) error {
	if len(msg) == 0 {
		return nil
	}
	switch msg[0] {
	case '1':
		return errors.New("server closed the connection")
	case '2':
		return c.write("3")
	case '4':
	default:
		return nil
	}
	p := msg[1:]
	if len(p) < 1 {
		return nil
	}
	typ, rest := p[0], p[1:]
	if len(rest) > 0 && rest[0] == '/' {
		return nil // another namespace (a late probe reply)
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	idStr, data := rest[:i], rest[i:]
	switch typ {
	case '1':
		return errors.New("disconnected by server")
	case '2': // EVENT ["name", payload]
		name, payload, ok := splitEvent(data)
		if !ok {
			return fmt.Errorf("bad event packet %.200q", p)
		}
		c.mu.Lock()
		h := c.onEvent
		c.mu.Unlock()
		if h != nil {
			h(name, payload)
		}
		if len(idStr) > 0 {
			return c.write("43" + string(idStr) + "[]")
		}
	case '3': // ACK [reply]
		id, err := strconv.ParseUint(string(idStr), 10, 64)
		if err != nil {
			return fmt.Errorf("bad ack packet %.200q", p)
		}
		c.mu.Lock()
		cb := c.acks[id]
		delete(c.acks, id)
		c.mu.Unlock()
		if cb != nil {
			cb(firstArg(data))
		}
	}
	return nil
}

// splitEvent splits `["name",payload]` without decoding the payload.
func splitEvent(data []byte) (name string, payload []byte, ok bool) {
	if len(data) < 4 || data[0] != '[' || data[1] != '"' || data[len(data)-1] != ']' {
		return "", nil, false
	}
	end := 2
	for end < len(data) && data[end] != '"' {
		if data[end] == '\\' { // not one of ours: decode properly
			var args []json.RawMessage
			if json.Unmarshal(data, &args) != nil || len(args) == 0 || json.Unmarshal(args[0], &name) != nil {
				return "", nil, false
			}
			if len(args) > 1 {
				payload = args[1]
			}
			return name, payload, true
		}
		end++
	}
	if end >= len(data) {
		return "", nil, false
	}
	name = string(data[2:end])
	rest := data[end+1 : len(data)-1]
	if len(rest) > 0 && rest[0] == ',' {
		payload = rest[1:]
	}
	return name, payload, true
}

// firstArg returns the first element of a JSON array `[x, ...]`, or nil.
func firstArg(data []byte) []byte {
	var args []json.RawMessage
	if json.Unmarshal(data, &args) != nil || len(args) == 0 {
		return nil
	}
	return args[0]
}

// Package sioclient is a minimal Socket.IO v4 client over websocket (default namespace, JSON
// only), for tests and the load generator; Peer adds Switchboard's delivery protocol on top.
package sioclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// ErrClosed is returned by calls on a client whose connection has ended.
var ErrClosed = errors.New("sioclient: connection closed")

// Option configures Dial.
type Option func(*options)

type options struct {
	header         http.Header
	writeTimeout   time.Duration
	attemptTimeout time.Duration
	dialer         *websocket.Dialer
}

// WithHeader adds HTTP headers to the websocket handshake request.
func WithHeader(h http.Header) Option { return func(o *options) { o.header = h } }

// WithWriteTimeout bounds each websocket write; default 10s. A write that times out ends the
// connection.
func WithWriteTimeout(d time.Duration) Option { return func(o *options) { o.writeTimeout = d } }

// WithAttemptTimeout bounds one handshake attempt; default 2s. Dial opens a new websocket when
// an attempt times out: the server library (zishang520/socket.io v2.5.0) starts reading the
// websocket before it listens for Socket.IO packets, so it sometimes drops the CONNECT packet
// and never answers it, and sending CONNECT again on the same connection is not safe.
func WithAttemptTimeout(d time.Duration) Option { return func(o *options) { o.attemptTimeout = d } }

// WithDialer replaces the websocket dialer (default: websocket.DefaultDialer).
func WithDialer(d *websocket.Dialer) Option { return func(o *options) { o.dialer = d } }

// Client is one Socket.IO connection to the default namespace.
//
// It runs two goroutines: a reader, which answers pings, completes acknowledgements and queues
// events, and a dispatcher, which runs the event handlers one at a time in receive order.
// Writes are serialised by a mutex. Both goroutines stop when the connection ends.
type Client struct {
	ws           *websocket.Conn
	sid          string // Socket.IO session id from the CONNECT reply
	readTimeout  time.Duration
	writeTimeout time.Duration

	wmu sync.Mutex // serialises writes to ws

	mu       sync.Mutex
	nextID   uint64
	acks     map[uint64]chan []json.RawMessage // waiting EmitWithAck calls, by ack id
	handlers map[string][]func(json.RawMessage)
	anys     []func(string, json.RawMessage)
	queue    []event       // events read but not yet dispatched
	err      error         // why the connection ended; set once
	closing  chan struct{} // closed when the connection starts shutting down
	wake     chan struct{} // cap 1: the dispatcher has work

	probed     chan struct{} // closed by the reader when the probe is answered (see dialOnce)
	probeSeen  bool          // owned by the reader
	closeOnce  sync.Once
	readerDone chan struct{}
	done       chan struct{} // closed when reader and dispatcher have both returned
}

type event struct {
	name string
	arg  json.RawMessage
}

// Dial opens a websocket to baseURL (e.g. "http://127.0.0.1:8080"), path /socket.io/, and
// connects to the default namespace, trying again on a new websocket when an attempt gets no
// answer within the attempt timeout (see WithAttemptTimeout). ctx bounds the handshake only.
func Dial(ctx context.Context, baseURL string, opts ...Option) (*Client, error) {
	o := options{writeTimeout: 10 * time.Second, attemptTimeout: 2 * time.Second, dialer: websocket.DefaultDialer}
	for _, f := range opts {
		f(&o)
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("sioclient: parse url: %w", err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("sioclient: unsupported scheme %q", u.Scheme)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/socket.io/"
	u.RawQuery = "EIO=4&transport=websocket"

	for {
		actx, cancel := context.WithTimeout(ctx, o.attemptTimeout)
		c, err := dialOnce(actx, u.String(), &o)
		timedOut := errors.Is(actx.Err(), context.DeadlineExceeded)
		cancel()
		switch {
		case err == nil:
			return c, nil
		case ctx.Err() != nil:
			return nil, fmt.Errorf("sioclient: dial: %w (last attempt: %v)", ctx.Err(), err)
		case !timedOut && !errors.Is(err, errDropped):
			return nil, err
		}
	}
}

// errDropped reports that the server closed the connection right after connecting it.
var errDropped = errors.New("sioclient: server closed the connection during the handshake")

// The probe (see dialOnce) sends an acknowledgement no server asked for, on the default
// namespace, then a CONNECT to a namespace no server serves.
const (
	probeAckID = "9007199254740991"
	probeNsp   = "/sioclient-probe"
)

// dialOnce opens a websocket, connects to the default namespace and probes it, within ctx.
//
// The probe works around a race in zishang520/socket.io v2.5.0: it sends the CONNECT reply
// before it records the namespace as connected, and closes the whole connection when a packet
// for the namespace comes in between. The server handles one connection's packets in order, so
// once it answers the probe's CONNECT, the harmless acknowledgement sent before it got through,
// and so will everything after it. If the server closes the connection instead, Dial tries again.
func dialOnce(ctx context.Context, u string, o *options) (*Client, error) {
	ws, resp, err := o.dialer.DialContext(ctx, u, o.header)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("sioclient: dial %s: %w (HTTP %s)", u, err, resp.Status)
		}
		return nil, fmt.Errorf("sioclient: dial %s: %w", u, err)
	}
	// Close the socket if ctx ends during the handshake; that unblocks the reads below.
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	c, err := handshake(ws, o.writeTimeout)
	if !stop() || err != nil {
		ws.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("sioclient: handshake: %w", ctx.Err())
		}
		return nil, err
	}
	go c.read()
	go c.dispatch()

	if c.write("43"+probeAckID+"[]") == nil {
		c.write("40" + probeNsp + ",")
	}
	select {
	case <-c.probed:
		return c, nil
	case <-c.closing:
		c.Close()
		return nil, fmt.Errorf("%w: %v", errDropped, c.Err())
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("sioclient: handshake: %w", ctx.Err())
	}
}

// handshake reads the Engine.IO OPEN packet, sends the Socket.IO CONNECT and waits for its reply.
func handshake(ws *websocket.Conn, writeTimeout time.Duration) (*Client, error) {
	_, msg, err := ws.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("sioclient: read open: %w", err)
	}
	if len(msg) == 0 || msg[0] != '0' {
		return nil, fmt.Errorf("sioclient: expected engine.io open, got %q", msg)
	}
	var open struct {
		SID          string `json:"sid"`
		PingInterval int64  `json:"pingInterval"`
		PingTimeout  int64  `json:"pingTimeout"`
	}
	if err := json.Unmarshal(msg[1:], &open); err != nil {
		return nil, fmt.Errorf("sioclient: bad open packet %q: %w", msg, err)
	}
	c := &Client{
		ws:           ws,
		writeTimeout: writeTimeout,
		acks:         make(map[uint64]chan []json.RawMessage),
		handlers:     make(map[string][]func(json.RawMessage)),
		closing:      make(chan struct{}),
		wake:         make(chan struct{}, 1),
		probed:       make(chan struct{}),
		readerDone:   make(chan struct{}),
		done:         make(chan struct{}),
	}
	if open.PingInterval > 0 && open.PingTimeout > 0 {
		// The server pings every PingInterval; silence for longer than both means it is gone.
		c.readTimeout = time.Duration(open.PingInterval+open.PingTimeout) * time.Millisecond
	}
	if err := c.write("40"); err != nil {
		return nil, err
	}
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return nil, fmt.Errorf("sioclient: read connect reply: %w", err)
		}
		switch s := string(msg); {
		case s == "2":
			if err := c.write("3"); err != nil {
				return nil, err
			}
		case strings.HasPrefix(s, "40"):
			var ok struct {
				SID string `json:"sid"`
			}
			if err := json.Unmarshal(msg[2:], &ok); err != nil || ok.SID == "" {
				return nil, fmt.Errorf("sioclient: bad connect reply %q", msg)
			}
			c.sid = ok.SID
			return c, nil
		case strings.HasPrefix(s, "44"):
			return nil, fmt.Errorf("sioclient: connect refused: %s", msg[2:])
		case strings.HasPrefix(s, "1"):
			return nil, errors.New("sioclient: server closed during handshake")
		}
	}
}

// SID returns the Socket.IO session id.
func (c *Client) SID() string { return c.sid }

// On registers h for event. Handlers get the event's first argument (nil if it has none) and
// run on the dispatch goroutine, one at a time, in receive order. Several handlers may be
// registered for one event; they run in registration order. Events that come before a handler
// for them is registered are dropped. A handler must not call Close.
func (c *Client) On(event string, h func(json.RawMessage)) {
	c.mu.Lock()
	c.handlers[event] = append(c.handlers[event], h)
	c.mu.Unlock()
}

// OnAny registers h for every event, after the event's own handlers.
func (c *Client) OnAny(h func(event string, arg json.RawMessage)) {
	c.mu.Lock()
	c.anys = append(c.anys, h)
	c.mu.Unlock()
}

// Emit sends an event without an acknowledgement callback.
func (c *Client) Emit(event string, payload any) error {
	msg, err := encodeEvent("42", event, payload)
	if err != nil {
		return err
	}
	return c.write(msg)
}

// EmitWithAck sends an event with an acknowledgement callback and waits for the reply; it
// returns the reply's first argument (nil if it has none).
func (c *Client) EmitWithAck(ctx context.Context, event string, payload any) (json.RawMessage, error) {
	ch := make(chan []json.RawMessage, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.nextID++
	id := c.nextID
	c.acks[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.acks, id)
		c.mu.Unlock()
	}()

	msg, err := encodeEvent("42"+strconv.FormatUint(id, 10), event, payload)
	if err != nil {
		return nil, err
	}
	if err := c.write(msg); err != nil {
		return nil, err
	}
	select {
	case args := <-ch:
		if len(args) == 0 {
			return nil, nil
		}
		return args[0], nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.closing:
		return nil, ErrClosed
	}
}

// emitNoWait sends an event with an acknowledgement id whose reply is ignored: for events the
// server wants acknowledged but whose replies do not matter.
func (c *Client) emitNoWait(event string, payload any) error {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.mu.Unlock()
	msg, err := encodeEvent("42"+strconv.FormatUint(id, 10), event, payload)
	if err != nil {
		return err
	}
	return c.write(msg)
}

// Done is closed when the connection has ended and the client's goroutines have returned.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err reports why the connection ended: nil while it is open, ErrClosed after Close.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close disconnects from the namespace, closes the websocket and waits for the client's
// goroutines to return. It must not be called from a handler (use go c.Close() there).
func (c *Client) Close() error {
	c.wmu.Lock()
	if c.Err() == nil {
		c.ws.SetWriteDeadline(time.Now().Add(time.Second))
		c.ws.WriteMessage(websocket.TextMessage, []byte("41")) // best effort
	}
	c.wmu.Unlock()
	c.shutdown(ErrClosed)
	<-c.done
	return nil
}

// shutdown records why the connection ended (the first reason wins) and closes it.
func (c *Client) shutdown(err error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.closing)
		c.ws.Close()
	})
}

func (c *Client) write(msg string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.writeTimeout > 0 {
		c.ws.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		select {
		case <-c.closing:
			return ErrClosed
		default:
		}
		err = fmt.Errorf("sioclient: write: %w", err)
		c.shutdown(err)
		return err
	}
	return nil
}

// read is the reader goroutine: it owns reads from ws until the connection ends.
func (c *Client) read() {
	defer func() {
		close(c.readerDone)
		c.signal()
	}()
	for {
		if c.readTimeout > 0 {
			c.ws.SetReadDeadline(time.Now().Add(c.readTimeout))
		}
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			c.shutdown(fmt.Errorf("sioclient: read: %w", err))
			return
		}
		if err := c.handle(msg); err != nil {
			c.shutdown(err)
			return
		}
	}
}

// handle processes one Engine.IO packet.
func (c *Client) handle(msg []byte) error {
	if len(msg) == 0 {
		return nil
	}
	switch msg[0] {
	case '1': // close
		return errors.New("sioclient: server closed the connection")
	case '2': // ping
		return c.write("3")
	case '4': // message: a Socket.IO packet
		return c.handlePacket(msg[1:])
	}
	return nil // noop and anything else
}

// handlePacket processes one Socket.IO packet of the default namespace.
func (c *Client) handlePacket(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	typ, rest := p[0], p[1:]
	if len(rest) > 0 && rest[0] == '/' { // another namespace: only the probe's matters
		nsp, _, _ := strings.Cut(string(rest), ",")
		if nsp == probeNsp && (typ == '0' || typ == '4') && !c.probeSeen {
			c.probeSeen = true
			close(c.probed)
			if typ == '0' { // served after all: leave it
				return c.write("41" + probeNsp + ",")
			}
		}
		return nil
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	idStr, data := rest[:i], rest[i:]
	switch typ {
	case '1': // DISCONNECT
		return errors.New("sioclient: disconnected by server")
	case '2': // EVENT
		var args []json.RawMessage
		if err := json.Unmarshal(data, &args); err != nil || len(args) == 0 {
			return fmt.Errorf("sioclient: bad event packet %q", p)
		}
		var name string
		if err := json.Unmarshal(args[0], &name); err != nil {
			return fmt.Errorf("sioclient: bad event name in %q", p)
		}
		var arg json.RawMessage
		if len(args) > 1 {
			arg = args[1]
		}
		c.mu.Lock()
		c.queue = append(c.queue, event{name: name, arg: arg})
		c.mu.Unlock()
		c.signal()
		if len(idStr) > 0 { // the server asked for an acknowledgement: give an empty one
			return c.write("43" + string(idStr) + "[]")
		}
	case '3': // ACK
		id, err := strconv.ParseUint(string(idStr), 10, 64)
		if err != nil {
			return fmt.Errorf("sioclient: bad ack packet %q", p)
		}
		var args []json.RawMessage
		if err := json.Unmarshal(data, &args); err != nil {
			return fmt.Errorf("sioclient: bad ack packet %q", p)
		}
		c.mu.Lock()
		ch := c.acks[id]
		delete(c.acks, id)
		c.mu.Unlock()
		if ch != nil {
			ch <- args // buffered; each id is answered at most once
		}
	}
	return nil // CONNECT repeats, binary packets and unknown types are ignored
}

func (c *Client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// dispatch is the dispatcher goroutine: it runs handlers for queued events in order, and
// returns once the reader has returned, dropping what is left.
func (c *Client) dispatch() {
	defer close(c.done)
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.mu.Unlock()
			select {
			case <-c.wake:
				continue
			case <-c.readerDone:
				return
			}
		}
		ev := c.queue[0]
		c.queue[0] = event{}
		c.queue = c.queue[1:]
		hs := c.handlers[ev.name]
		anys := c.anys
		closed := c.err == ErrClosed
		c.mu.Unlock()
		if closed {
			continue // after Close, drop what is left without running handlers
		}
		for _, h := range hs {
			h(ev.arg)
		}
		for _, h := range anys {
			h(ev.name, ev.arg)
		}
	}
}

func encodeEvent(prefix, event string, payload any) (string, error) {
	b, err := json.Marshal([]any{event, payload})
	if err != nil {
		return "", fmt.Errorf("sioclient: encode %s: %w", event, err)
	}
	return prefix + string(b), nil
}

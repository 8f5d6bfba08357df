package engineio

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// wsConn is a hijacked websocket connection. All writes go through mu, each as one write of
// whole frames; an idle connection holds no write buffer. Reading is readiness-driven when the
// server's poller took the connection (see poller.go): no goroutine and no buffer while the
// client sends nothing. Otherwise a goroutine of its own reads it (readLoop).
type wsConn struct {
	conn    net.Conn // a *nbio.Conn once the poller has it
	timeout time.Duration
	sock    *Socket
	early   []byte // bytes the client sent before the handshake's answer; read first

	mu     sync.Mutex
	closed bool
	polled bool // the poller has conn

	// Reading through the poller (poller.go), under rmu.
	rmu        sync.Mutex
	parser     frameParser
	inbox      []wsMessage // parsed, not yet delivered; nil when empty
	stash      []byte      // read while paused from a client that shut down its side; not parsed yet
	delivering bool        // a goroutine is delivering the inbox
	paused     bool        // the inbox is full: reading waits for the deliverer
	ended      bool        // nothing more is read
	endErr     error       // why, once the inbox is delivered
	endDone    bool        // the end has been handled
}

// wsMessage is a data message as parsed.
type wsMessage struct {
	op  byte
	msg []byte
}

// wsReadBuffer is the read buffer of a websocket read by a goroutine of its own.
const wsReadBuffer = 1024

var frameBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// acceptWebsocket completes the opening handshake; on failure it has answered the request.
func acceptWebsocket(w http.ResponseWriter, r *http.Request, timeout time.Duration) (*wsConn, error) {
	accept, err := acceptKey(r)
	if err != nil {
		writeError(w, codeBadRequest)
		return nil, err
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "websocket needs a hijackable connection", http.StatusInternalServerError)
		return nil, errors.New("engineio: response cannot be hijacked")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{}) // the server's read and write timeouts end here
	// net/http's reader (and with it the request's state) is dropped; bytes already buffered
	// there (sent before our answer) are read first.
	c := &wsConn{conn: conn, timeout: timeout}
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		c.early = bytes.Clone(early)
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + accept + "\r\n\r\n"
	if err := c.write([]byte(resp)); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *wsConn) write(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeLocked(b)
}

func (c *wsConn) writeLocked(b []byte) error {
	if c.closed {
		return net.ErrClosed
	}
	if !c.polled { // nbio's writes do not block (see maxUnsent)
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	}
	_, err := c.conn.Write(b)
	if err != nil {
		c.closed = true
		_ = c.conn.Close()
	}
	return err
}

// writePackets writes each packet as one websocket message, all in one write.
func (c *wsConn) writePackets(pkts []packet) error {
	bp := frameBufs.Get().(*[]byte)
	b := (*bp)[:0]
	for _, p := range pkts {
		b = appendPacketFrame(b, p)
	}
	err := c.write(b)
	if cap(b) <= 64<<10 { // a large SDP burst may grow one; those are not kept
		*bp = b[:0]
		frameBufs.Put(bp)
	}
	return err
}

// writeFrame writes one frame (a pong, a probe answer).
func (c *wsConn) writeFrame(op byte, payload []byte) error {
	return c.write(appendFrame(make([]byte, 0, 14+len(payload)), op, payload))
}

// closeWith sends a close frame with code (best effort) and closes the connection.
func (c *wsConn) closeWith(code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	_ = c.writeLocked(appendFrame(nil, opClose, closePayload(code)))
	c.closed = true
	_ = c.conn.Close()
}

// serveUpgrade takes a websocket for a polling session; once it has probed and sent the
// upgrade packet, the session moves to it.
func (s *Socket) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	ws, err := acceptWebsocket(w, r, s.srv.opts.WriteTimeout)
	if err != nil {
		return
	}
	// A second websocket for a session that has one (or is getting one) is opened and closed
	// at once, as the reference server does; the session goes on.
	s.mu.Lock()
	if s.state != stateOpen || s.transport != "polling" || s.upgrading != nil {
		s.mu.Unlock()
		ws.closeWith(closeNormal)
		return
	}
	s.upgrading = ws
	s.noop, s.noopSent = false, false
	s.upgradeDeadline = time.Now().Add(s.srv.opts.UpgradeTimeout)
	// Counted while the session is open: Close ends every session before it waits for the
	// read loops.
	s.srv.readers.Add(1)
	s.mu.Unlock()
	s.startReading(ws)
}

// startReading starts reading ws for s. The server counted one reader for it in s.srv.readers
// (under its lock, so that Close waits for it); that count is either handed to readLoop or,
// when the poller takes the connection, given back, the poller counting each of its own
// reading goroutines.
func (s *Socket) startReading(ws *wsConn) {
	ws.sock = s
	if p := s.srv.wsPoller(); p != nil && p.attach(ws) {
		s.srv.readers.Done()
		return
	}
	go s.readLoop(ws)
}

// readLoop reads ws on a goroutine of its own until it ends, for connections the poller does
// not take. It runs on a goroutine of its own, counted in s.srv.readers by the caller, so that
// the HTTP handler returns and net/http drops what it held for the request.
func (s *Socket) readLoop(ws *wsConn) {
	defer s.srv.readers.Done()
	ws.parser = s.newParser(ws)
	emit := s.onMessage(ws)
	if len(ws.early) > 0 {
		early := ws.early
		ws.early = nil
		if err := ws.parser.feed(early, emit); err != nil {
			s.wsReadEnded(ws, err)
			return
		}
	}
	buf := make([]byte, wsReadBuffer)
	for {
		n, err := ws.conn.Read(buf)
		if n > 0 {
			if perr := ws.parser.feed(buf[:n], emit); perr != nil {
				s.wsReadEnded(ws, perr)
				return
			}
		}
		if err != nil {
			s.wsReadEnded(ws, err)
			return
		}
	}
}

// newParser is the frame parser of ws: pings are answered at once.
func (s *Socket) newParser(ws *wsConn) frameParser {
	return frameParser{limit: s.srv.opts.MaxPayload, ping: func(p []byte) {
		_ = ws.writeFrame(opPong, p)
	}}
}

// onMessage returns the handler of ws's data messages, called in arrival order; it returns
// false once the message ended the websocket (the parse stops there).
func (s *Socket) onMessage(ws *wsConn) func(op byte, msg []byte) bool {
	return func(op byte, msg []byte) bool {
		var p packet
		if op == opBinary {
			p = packet{typ: typeMessage, binary: true, data: msg}
		} else {
			var err error
			if p, err = decodeText(msg); err != nil {
				ws.closeWith(closeInvalidData)
				s.wsEnded(ws, true)
				return false
			}
		}
		s.mu.Lock()
		probing, current := s.upgrading == ws, s.ws == ws && s.state != stateClosed
		s.mu.Unlock()
		if !probing && !current {
			return false // the session ended or moved on: what is left of this websocket is dropped
		}
		if probing {
			if !s.onProbePacket(ws, p) {
				ws.closeWith(closeProtocol)
				s.wsEnded(ws, false)
				return false
			}
			return true
		}
		s.onPacket(p)
		return true
	}
}

// wsReadEnded ends ws after its reading ended with err: a protocol error is answered with its
// close code; a message that ended the websocket (errStopped) has done so already.
func (s *Socket) wsReadEnded(ws *wsConn, err error) {
	if errors.Is(err, errStopped) {
		return
	}
	var we *wsError
	if errors.As(err, &we) {
		ws.closeWith(we.code)
	} else {
		ws.closeWith(closeNormal)
	}
	s.wsEnded(ws, we != nil)
}

// wsEnded is called when ws's read loop ends: the session ends with it if it is the session's
// websocket; a failed probe only ends the upgrade.
func (s *Socket) wsEnded(ws *wsConn, protocolError bool) {
	s.mu.Lock()
	if s.upgrading == ws {
		s.upgrading = nil
		s.noop, s.noopSent = false, false
		s.mu.Unlock()
		return
	}
	active := s.ws == ws
	s.mu.Unlock()
	if !active {
		return
	}
	if protocolError {
		s.finish("parse error", typeClose)
	} else {
		s.finish("transport close", typeClose)
	}
}

// onProbePacket handles a packet on a websocket that is upgrading: "2probe" is answered with
// "3probe" and the parked poll, if any, is ended with a noop; "5" completes the upgrade.
// Anything else fails it (false).
func (s *Socket) onProbePacket(ws *wsConn, p packet) bool {
	switch {
	case p.typ == typePing && string(p.data) == "probe":
		// Polling is wound down before the answer leaves: a poll the client sends once it has
		// the answer must find the session upgrading.
		s.mu.Lock()
		if w := s.poll; w != nil {
			s.poll = nil
			w.body = []byte{typeNoop}
			close(w.ch)
			s.noopSent = true
		} else {
			s.noop = true
		}
		s.mu.Unlock()
		return ws.writePackets([]packet{{typ: typePong, data: p.data}}) == nil
	case p.typ == typeUpgrade:
		s.mu.Lock()
		if s.upgrading != ws || s.state == stateClosed {
			s.mu.Unlock()
			return false
		}
		s.upgrading, s.noop, s.noopSent = nil, false, false
		s.transport, s.ws, s.upgraded = "websocket", ws, true
		if w := s.poll; w != nil {
			s.poll = nil
			if w.afterProbe {
				w.refused = true
			} else {
				w.body = []byte{typeNoop}
			}
			close(w.ch)
		}
		s.mu.Unlock()
		s.Emit("upgrade")
		s.flushWebsocket()
		return true
	case p.typ == typeNoop:
		return true
	}
	return false
}

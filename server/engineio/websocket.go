package engineio

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// wsConn is a hijacked websocket connection. All writes go through mu, each as one write of
// whole frames; an idle connection holds no write buffer.
type wsConn struct {
	conn    net.Conn
	br      *bufio.Reader
	timeout time.Duration

	mu     sync.Mutex
	closed bool
}

// wsReadBuffer is the read buffer of a websocket: frame headers and small messages are read
// through it, larger payloads straight into the message.
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
	// A reader of our own, smaller than net/http's 4 KB one, which would keep net/http's
	// connection state alive; bytes already buffered there (sent before our answer) come first.
	var src io.Reader = conn
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		src = io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn)
	}
	c := &wsConn{conn: conn, br: bufio.NewReaderSize(src, wsReadBuffer), timeout: timeout}
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
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
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
	s.upgradeDeadline = time.Now().Add(s.srv.opts.UpgradeTimeout)
	// Counted while the session is open: Close ends every session before it waits for the
	// read loops.
	s.srv.readers.Add(1)
	s.mu.Unlock()
	go s.readLoop(ws)
}

// readLoop reads ws until it ends. Data events are emitted from here, in order. It runs on a
// goroutine of its own, counted in s.srv.readers by the caller, so that the HTTP handler
// returns and net/http drops what it held for the request.
func (s *Socket) readLoop(ws *wsConn) {
	defer s.srv.readers.Done()
	fr := frameReader{r: ws.br, limit: s.srv.opts.MaxPayload, ping: func(p []byte) {
		_ = ws.writeFrame(opPong, p)
	}}
	for {
		op, msg, err := fr.readMessage()
		if err != nil {
			var we *wsError
			switch {
			case errors.As(err, &we):
				ws.closeWith(we.code)
			case errors.Is(err, errPeerClosed):
				ws.closeWith(closeNormal)
			default:
				ws.closeWith(closeNormal)
			}
			s.wsEnded(ws, we != nil)
			return
		}
		var p packet
		if op == opBinary {
			p = packet{typ: typeMessage, binary: true, data: msg}
		} else if p, err = decodeText(msg); err != nil {
			ws.closeWith(closeInvalidData)
			s.wsEnded(ws, true)
			return
		}
		s.mu.Lock()
		probing := s.upgrading == ws
		s.mu.Unlock()
		if probing {
			if !s.onProbePacket(ws, p) {
				ws.closeWith(closeProtocol)
				s.wsEnded(ws, false)
				return
			}
			continue
		}
		s.onPacket(p)
	}
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
		if err := ws.writePackets([]packet{{typ: typePong, data: p.data}}); err != nil {
			return false
		}
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
		return true
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
			w.body = []byte{typeNoop}
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

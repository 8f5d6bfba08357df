package engineio

// Readiness-driven websocket reads. An idle websocket is the common case for a signaling
// server (a client waits for its peer), so none holds a goroutine or a read buffer: after the
// opening handshake the connection goes to an nbio poller (one epoll set, edge-triggered). When
// a connection has bytes, the poller's goroutine reads them into its one shared buffer and
// parses whole frames into the connection's inbox; a goroutine started for the burst delivers
// the inbox in arrival order and ends when it is empty. A full inbox pauses reading that
// connection until its deliverer takes the inbox: the rest waits in the kernel's buffer and TCP
// pushes back on that client only.

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"
	"golang.org/x/sys/unix"
)

// inboxMax is how many parsed messages a websocket may have waiting for delivery before
// reading it pauses. Together with the Socket.IO layer's own queue it bounds what one client
// can have in flight.
const inboxMax = 32

// poller reads websockets as they become readable.
type poller struct {
	srv *Server
	eng *nbio.Engine

	// The poller's connections. Looked up under mu rather than kept as nbio's session: the
	// lock orders what attach set up before the poller's first event for the connection.
	mu    sync.Mutex
	conns map[*nbio.Conn]*wsConn
}

// conn returns the websocket of c, and forgets it when forget is set.
func (p *poller) conn(c *nbio.Conn, forget bool) *wsConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	ws := p.conns[c]
	if forget {
		delete(p.conns, c)
	}
	return ws
}

// maxUnsent is how much a websocket read through the poller may leave unsent, when its client
// reads slower than the server writes, before the connection is closed. nbio checks it before
// it tries to write, so it must hold the largest burst a healthy client is sent at once (a
// resume's backlog). A client that stops reading stops answering pings too, and the ping
// timeout ends it; nbio's write deadline is not used (it stays armed after its data left).
func maxUnsent(maxPayload int) int { return max(16<<20, 16*maxPayload) }

var nbioSetup sync.Once

func newPoller(srv *Server) (*poller, error) {
	nbioSetup.Do(func() {
		logging.SetLogger(nbioLogger{})
		// nbio indexes connections by descriptor in a table of this size, allocated at start.
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur > 0 &&
			lim.Cur < uint64(nbio.MaxOpenFiles) {
			nbio.MaxOpenFiles = int(lim.Cur)
		}
	})
	eng := nbio.NewEngine(nbio.Config{
		Name:               "engineio",
		NPoller:            1,
		MaxWriteBufferSize: maxUnsent(srv.opts.MaxPayload),
		// Edge-triggered: a paused connection is not reported again until more arrives, and
		// the deliverer reads what is left when it resumes.
		EpollMod: nbio.EPOLLET,
	})
	p := &poller{srv: srv, eng: eng, conns: make(map[*nbio.Conn]*wsConn)}
	eng.OnRead(func(c *nbio.Conn) {
		if ws := p.conn(c, false); ws != nil {
			p.fill(ws, eng.PollerBuffer(c))
		}
	})
	eng.OnClose(func(c *nbio.Conn, err error) {
		if ws := p.conn(c, true); ws != nil {
			p.end(ws, err)
		}
	})
	if err := eng.Start(); err != nil {
		return nil, err
	}
	return p, nil
}

// attach gives ws to the poller; false leaves ws as it was (a TLS connection, say), to be read
// by a goroutine of its own. Once attach has taken the connection (true), a failure ends the
// websocket.
func (p *poller) attach(ws *wsConn) bool {
	switch ws.conn.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return false
	}
	ws.rmu.Lock()
	defer ws.rmu.Unlock()
	// Writes wait under mu until the poller has the connection: nbio's connection cannot be
	// written to before AddConn.
	ws.mu.Lock()
	if ws.closed {
		ws.mu.Unlock()
		return false // readLoop finds it closed
	}
	nc, err := nbio.NBConn(ws.conn) // a duplicate descriptor; the original is closed
	if err != nil {
		ws.mu.Unlock()
		return false
	}
	ws.parser = ws.sock.newParser(ws)
	p.mu.Lock()
	p.conns[nc] = ws
	p.mu.Unlock()
	if _, err := p.eng.AddConn(nc); err != nil {
		// The original descriptor is gone: the websocket ends.
		p.conn(nc, true)
		_ = nc.Close()
		ws.closed = true
		ws.mu.Unlock()
		p.endLocked(ws, err)
		p.deliverLocked(ws)
		return true
	}
	ws.conn, ws.polled = nc, true
	ws.mu.Unlock()
	// What the client sent before the handshake's answer comes first: the poller's first
	// event waits for rmu.
	if early := ws.early; early != nil {
		ws.early = nil
		p.parseLocked(ws, early)
	}
	return true
}

// fill reads what ws has into its inbox, on the poller's goroutine (buf is the poller's) or,
// after a pause, on the deliverer's.
func (p *poller) fill(ws *wsConn, buf []byte) {
	ws.rmu.Lock()
	defer ws.rmu.Unlock()
	if !ws.paused {
		p.readLocked(ws, buf, func(b []byte) bool { p.parseLocked(ws, b); return !ws.paused })
	}
	if ws.paused && !ws.ended && peerShutDown(ws.conn) {
		// nbio closes a connection whose client has shut down its side right after this
		// event: what the client sent is read now, to its end, or it would be lost. It is at
		// most what the kernel holds (the client sends nothing more); the deliverer parses it
		// after the inbox.
		p.readLocked(ws, buf, func(b []byte) bool { ws.stash = append(ws.stash, b...); return true })
	}
	p.deliverLocked(ws)
}

// readLocked reads ws into buf, passing each chunk to take, until the socket has nothing more
// (EAGAIN), reading ended, or take returned false; the end of the stream ends reading.
func (p *poller) readLocked(ws *wsConn, buf []byte, take func([]byte) bool) {
	for !ws.ended {
		n, err := ws.conn.Read(buf)
		if n > 0 && !take(buf[:n]) {
			return
		}
		switch {
		case errors.Is(err, syscall.EINTR):
		case errors.Is(err, syscall.EAGAIN):
			return
		case err != nil || n == 0: // n == 0: the client closed its side, after what it sent
			p.endLocked(ws, err)
		}
	}
}

// peerShutDown says whether the client of c has shut down its side (POLLRDHUP).
func peerShutDown(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var down bool
	_ = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
			down = fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP) != 0
		}
	})
	return down
}

// parseLocked parses b into ws's inbox; a protocol error ends reading.
func (p *poller) parseLocked(ws *wsConn, b []byte) {
	err := ws.parser.feed(b, func(op byte, msg []byte) bool {
		ws.inbox = append(ws.inbox, wsMessage{op, msg})
		if len(ws.inbox) >= inboxMax {
			ws.paused = true
		}
		return true
	})
	if err != nil {
		p.endLocked(ws, err)
	}
	p.deliverLocked(ws)
}

// end ends reading ws (its connection is closed).
func (p *poller) end(ws *wsConn, err error) {
	ws.rmu.Lock()
	defer ws.rmu.Unlock()
	p.endLocked(ws, err)
	p.deliverLocked(ws)
}

func (p *poller) endLocked(ws *wsConn, err error) {
	if ws.ended {
		return
	}
	ws.ended = true
	ws.endErr = err
	ws.paused = false
}

// deliverLocked starts a deliverer for ws if it has anything to deliver and none runs; the
// goroutine is counted in the server's readers, and none starts once the server is closing
// (its sessions have been ended).
func (p *poller) deliverLocked(ws *wsConn) {
	if ws.delivering || (len(ws.inbox) == 0 && (!ws.ended || ws.endDone)) {
		return
	}
	p.srv.mu.RLock()
	if p.srv.closed {
		p.srv.mu.RUnlock()
		ws.inbox, ws.endDone = nil, true
		return
	}
	p.srv.readers.Add(1)
	p.srv.mu.RUnlock()
	ws.delivering = true
	go p.deliver(ws)
}

// deliver hands ws's messages to its session in arrival order until the inbox is empty, then
// the end of reading, if it came. While it runs, ws.delivering keeps any other from starting.
func (p *poller) deliver(ws *wsConn) {
	defer p.srv.readers.Done()
	emit := ws.sock.onMessage(ws)
	var bp *[]byte
	defer func() {
		if bp != nil {
			readBufs.Put(bp)
		}
	}()
	for {
		ws.rmu.Lock()
		if stash := ws.stash; stash != nil {
			ws.stash = nil
			p.parseLocked(ws, stash)
		}
		batch, resume := ws.inbox, ws.paused
		ws.inbox, ws.paused = nil, false
		if len(batch) == 0 {
			end := ws.ended && !ws.endDone
			ws.endDone = ws.endDone || ws.ended
			ws.delivering = false
			err := ws.endErr
			ws.rmu.Unlock()
			if end {
				ws.sock.wsReadEnded(ws, err)
			}
			return
		}
		ws.rmu.Unlock()
		if resume { // no event comes for what arrived while paused: read it now
			if bp == nil {
				bp = readBufs.Get().(*[]byte)
			}
			p.fill(ws, *bp)
		}
		for i, m := range batch {
			if !emit(m.op, m.msg) { // the message ended the websocket
				ws.rmu.Lock()
				ws.ended, ws.endDone, ws.inbox, ws.paused, ws.delivering = true, true, nil, false, false
				ws.rmu.Unlock()
				return
			}
			batch[i] = wsMessage{}
		}
	}
}

var readBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// stop closes the poller's remaining connections and stops it.
func (p *poller) stop() { p.eng.Stop() }

// nbioLogger passes nbio's warnings and errors to the default slog logger.
type nbioLogger struct{}

func (nbioLogger) Debug(string, ...any) {}
func (nbioLogger) Info(string, ...any)  {}
func (nbioLogger) Warn(format string, v ...any) {
	slog.Warn("websocket poller", "msg", fmt.Sprintf(format, v...))
}
func (nbioLogger) Error(format string, v ...any) {
	slog.Error("websocket poller", "msg", fmt.Sprintf(format, v...))
}

package server

// Websocket write batching. The library writes every Engine.IO packet of a batch as its own
// websocket message, and its websocket library flushes each message (each frame of a large one)
// with a write system call of its own: under load those writes were the largest single share of
// an instance's CPU. Here the connection holds back what is written while the library sends a
// batch and writes it out in one call when the batch is done (the transport's "drain").

import (
	"net"
	"sync"

	"github.com/zishang520/engine.io-go-parser/packet"
	"github.com/zishang520/engine.io/v2/transports"
	"github.com/zishang520/engine.io/v2/types"
)

// corkConn is a hijacked connection that can hold back writes. Held bytes keep their order with
// every other write (control frames included), because all of them go through mu.
type corkConn struct {
	net.Conn
	mu      sync.Mutex
	holding bool
	buf     *[]byte // held bytes; nil while nothing is held, so an idle connection has no buffer
}

var corkBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holding {
		if c.buf == nil {
			c.buf = corkBufs.Get().(*[]byte)
		}
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// hold starts holding writes back.
func (c *corkConn) hold() {
	c.mu.Lock()
	c.holding = true
	c.mu.Unlock()
}

// release writes what was held in one call and stops holding. A failed write closes the
// connection: the websocket layer believed those bytes sent, so the stream is no longer whole,
// and its read loop then reports the close as for any broken connection.
func (c *corkConn) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding = false
	if c.buf == nil {
		return
	}
	b := c.buf
	c.buf = nil
	_, err := c.Conn.Write(*b)
	if cap(*b) <= 64<<10 { // an SDP burst may grow one; don't keep those
		*b = (*b)[:0]
		corkBufs.Put(b)
	}
	if err != nil {
		_ = c.Conn.Close()
	}
}

// Close writes anything held (a close frame, typically), then closes.
func (c *corkConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// batchingWebSocket is the library's websocket transport, holding writes during each batch.
type batchingWebSocket struct {
	transports.Websocket
	conn *corkConn
}

func (w *batchingWebSocket) Send(packets []*packet.Packet) {
	w.conn.hold()
	w.Websocket.Send(packets) // writes on a goroutine of its own, then emits "drain"
}

// batchingBuilder makes the library's websocket transports, batching when the connection is a
// corkConn (see hijackRelease).
type batchingBuilder struct{ transports.WebSocketBuilder }

func (b *batchingBuilder) New(ctx *types.HttpContext) transports.Transport {
	t := transports.NewWebSocket(ctx)
	if ctx.Websocket == nil || ctx.Websocket.Conn == nil {
		return t
	}
	cc, ok := ctx.Websocket.NetConn().(*corkConn)
	if !ok {
		return t
	}
	// Registered before the engine's own "drain" listener, which may start the next batch.
	t.On("drain", func(...any) { cc.release() })
	return &batchingWebSocket{Websocket: t, conn: cc}
}

// The library keeps its transports in one package-level table, read while it serves: replace
// the websocket one before anything can serve.
func init() {
	transports.Transports()[transports.WEBSOCKET] = &batchingBuilder{}
}

package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/engine.io-go-parser/packet"
	"github.com/zishang520/engine.io/v2/events"
	"github.com/zishang520/engine.io/v2/types"
)

// recConn records the writes that reach the connection.
type recConn struct {
	net.Conn
	writes []string
	err    error
	closed bool
}

func (c *recConn) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

func (c *recConn) Close() error { c.closed = true; return nil }

func TestCorkConnHoldsUntilRelease(t *testing.T) {
	rc := &recConn{}
	c := &corkConn{Conn: rc}
	_, _ = c.Write([]byte("a"))
	c.hold()
	for _, s := range []string{"b", "c", "d"} {
		if n, err := c.Write([]byte(s)); n != 1 || err != nil {
			t.Fatalf("held write: %d, %v", n, err)
		}
	}
	if len(rc.writes) != 1 {
		t.Fatalf("writes while holding reached the connection: %q", rc.writes)
	}
	c.release()
	c.release() // nothing held: no write
	_, _ = c.Write([]byte("e"))
	if got := strings.Join(rc.writes, "|"); got != "a|bcd|e" {
		t.Fatalf("writes %q, want a|bcd|e", got)
	}
	if c.buf != nil {
		t.Fatal("an idle connection keeps its buffer")
	}

	c.hold()
	_, _ = c.Write([]byte("close frame"))
	_ = c.Close()
	if !rc.closed || rc.writes[len(rc.writes)-1] != "close frame" {
		t.Fatalf("Close did not write the held bytes first: %q closed=%v", rc.writes, rc.closed)
	}
}

func TestCorkConnFailedReleaseCloses(t *testing.T) {
	rc := &recConn{err: errors.New("broken pipe")}
	c := &corkConn{Conn: rc}
	c.hold()
	_, _ = c.Write([]byte("x"))
	c.release()
	if !rc.closed {
		t.Fatal("a failed write of held bytes left the connection open")
	}
}

// countingListener counts the writes on the connections it accepts.
type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestBatchingWebSocketOneWritePerBatch sends a batch through the library's websocket transport
// on a real connection: it must arrive whole and in order, in one write.
func TestBatchingWebSocketOneWritePerBatch(t *testing.T) {
	const n = 12
	sent := make(chan error, 1)
	var writes atomic.Int64
	srv := httptest.NewUnstartedServer(releaseAfterHijack(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			sent <- err
			return
		}
		ctx := types.NewHttpContext(w, r)
		ctx.Websocket = &types.WebSocketConn{EventEmitter: events.New(), Conn: conn}
		tr := (&batchingBuilder{}).New(ctx)
		if _, ok := tr.(*batchingWebSocket); !ok {
			sent <- fmt.Errorf("transport %T does not batch", tr)
			return
		}
		drained := make(chan struct{})
		tr.Once("drain", func(...any) { close(drained) })
		packets := make([]*packet.Packet, n)
		for i := range packets {
			// Large enough for the websocket layer to split some into two frames.
			body := fmt.Sprintf("%02d", i) + strings.Repeat("x", 100*i)
			packets[i] = &packet.Packet{Type: packet.MESSAGE, Data: strings.NewReader(body)}
		}
		before := writes.Load()
		tr.Send(packets)
		<-drained
		if w := writes.Load() - before; w != 1 {
			sent <- fmt.Errorf("%d packets took %d writes, want 1", n, w)
			return
		}
		sent <- nil
	})))
	srv.Listener = countingListener{srv.Listener, &writes}
	srv.Start()
	defer srv.Close()

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range n {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		// Engine.IO "4" = message, then the body.
		if want := "4" + fmt.Sprintf("%02d", i) + strings.Repeat("x", 100*i); string(msg) != want {
			t.Fatalf("message %d: got %.20q…, want %.20q…", i, msg, want)
		}
	}
}

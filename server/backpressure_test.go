package server_test

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchboard-rtc/switchboard/server"
	"github.com/switchboard-rtc/switchboard/store"
)

// slowStore takes delay over every Send: a server whose store is slower than its clients.
type slowStore struct {
	store.Store
	delay time.Duration
	sends atomic.Int64
}

func (s *slowStore) Send(ctx context.Context, p store.SendParams) (store.SendResult, error) {
	s.sends.Add(1)
	time.Sleep(s.delay)
	return s.Store.Send(ctx, p)
}

// A connection that sends events faster than the server handles them is read no further once
// its queue is full: the server's goroutines stay bounded, and TCP pushes back on the client,
// whose writes stall. (The library alone starts a goroutine for every event it reads.)
func TestFloodOfEventsIsPushedBack(t *testing.T) {
	const queue = 16
	st := &slowStore{Store: store.NewMemory(store.Options{MaxBacklog: 1 << 20}), delay: 20 * time.Millisecond}
	t.Cleanup(func() { _ = st.Store.Close() })
	inst := startInstances(t, st, 1, func(c *server.Config) {
		c.EventQueue = queue
		c.EventRate, c.EventBurst = 1_000_000, 1_000_000
	})[0]
	u := "ws" + strings.TrimPrefix(inst.url, "http") + "/socket.io/?EIO=4&transport=websocket"
	// The library now and then closes a connection right after its CONNECT (1–3 in 300 here,
	// with or without this server's parser): dial again then.
	var ws *websocket.Conn
	for attempt := 0; ws == nil; attempt++ {
		if attempt == 5 {
			t.Fatal("no Socket.IO session in 5 attempts")
		}
		ws = floodSession(t, u)
	}
	defer ws.Close()
	// Replies are not read from here on, so the server's writes cannot be what stops it.
	time.Sleep(100 * time.Millisecond)
	base := runtime.NumGoroutine()

	const total = 5000
	pad := strings.Repeat("x", 8<<10)
	var sent atomic.Int64
	flooded := make(chan error, 1)
	go func() {
		for i := 1; i <= total; i++ {
			_ = ws.SetWriteDeadline(time.Now().Add(2 * time.Second))
			msg := fmt.Sprintf(`42["candidate",{"room":"flood","seq":%d,"candidate":null,"pad":%q}]`, i, pad)
			if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				flooded <- err
				return
			}
			sent.Add(1)
		}
		flooded <- nil
	}()
	peak := 0
	var floodErr error
	for waiting := true; waiting; {
		select {
		case floodErr = <-flooded:
			waiting = false
		case <-time.After(5 * time.Millisecond):
			peak = max(peak, runtime.NumGoroutine()-base)
		}
	}
	handled := st.sends.Load()
	t.Logf("client wrote %d of %d events (%v); the server handled %d; goroutines above the start: at most %d",
		sent.Load(), total, floodErr, handled, peak)
	if floodErr == nil {
		t.Fatalf("all %d events (%d MB) were taken in while the server handled %d: nothing pushed back",
			total, total*len(pad)>>20, handled)
	}
	// The bound: the queued events' goroutines, and a few of the library's per reply and per
	// write. Without it, every event read is a goroutine.
	if limit := 2*queue + 20; peak > limit {
		t.Fatalf("%d goroutines above the start during the flood, more than %d", peak, limit)
	}
}

func TestEventQueueSetting(t *testing.T) {
	if server.DefaultConfig().EventQueue != 64 {
		t.Fatalf("default %d", server.DefaultConfig().EventQueue)
	}
	cfg, err := server.LoadConfig([]string{"-event-queue", "8"}, func(string) string { return "" }, io.Discard)
	if err != nil || cfg.EventQueue != 8 {
		t.Fatalf("flag: %d %v", cfg.EventQueue, err)
	}
	env := map[string]string{"SWITCHBOARD_EVENT_QUEUE": "0"}
	if _, err := server.LoadConfig(nil, func(k string) string { return env[k] }, io.Discard); err == nil {
		t.Fatal("an event queue of 0 was accepted")
	}
}

// floodSession opens a Socket.IO session over websocket and joins room "flood"; nil when the
// server closed the connection during the handshake.
func floodSession(t *testing.T, u string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	read := func(prefix string) bool {
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				t.Logf("waiting for %q: %v", prefix, err)
				return false
			}
			if strings.HasPrefix(string(msg), prefix) {
				return true
			}
		}
	}
	ok := read("0{") && // Engine.IO OPEN
		ws.WriteMessage(websocket.TextMessage, []byte("40")) == nil && read("40{") && // Socket.IO CONNECT
		ws.WriteMessage(websocket.TextMessage, []byte(`420["join",{"room":"flood"}]`)) == nil && read(`430[{`)
	if !ok {
		_ = ws.Close()
		return nil
	}
	return ws
}

package sioclient

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zishang520/socket.io/v2/socket"
)

// fakeSwitchboard answers the client events of docs/protocol.md just enough to exercise Peer's
// retries, and records what it received.
type fakeSwitchboard struct {
	mu      sync.Mutex
	joins   []string             // nonces, one per join attempt
	sends   map[string][]float64 // event -> seq of each attempt
	maxAck  float64
	ackSeen chan struct{} // closed once an ack for seq 3 arrived
	sock    *socket.Socket
}

func newFakeSwitchboard(t *testing.T) (*fakeSwitchboard, *testServer) {
	f := &fakeSwitchboard{sends: map[string][]float64{}, ackSeen: make(chan struct{})}
	ts := newTestServer(t, nil, func(s *socket.Socket) {
		f.mu.Lock()
		f.sock = s
		f.mu.Unlock()
		s.On("join", func(args ...any) { f.join(s, args) })
		for _, ev := range []string{"offer", "candidate", "hangup"} {
			s.On(ev, func(args ...any) { f.send(ev, args) })
		}
		s.On("ack", func(args ...any) {
			m := args[0].(map[string]any)
			f.mu.Lock()
			defer f.mu.Unlock()
			if m["room"] == "r1" && m["seq"].(float64) > f.maxAck {
				f.maxAck = m["seq"].(float64)
				if f.maxAck == 3 {
					close(f.ackSeen)
				}
			}
			if ack := ackOf(args); ack != nil {
				ack([]any{map[string]any{"ok": true}}, nil)
			}
		})
	})
	return f, ts
}

func (f *fakeSwitchboard) join(s *socket.Socket, args []any) {
	m := args[0].(map[string]any)
	f.mu.Lock()
	f.joins = append(f.joins, m["nonce"].(string))
	first := len(f.joins) == 1
	f.mu.Unlock()
	if first {
		return // the reply is "lost": the client must retry
	}
	ackOf(args)([]any{map[string]any{
		"ok": true, "room": m["room"], "peer": "p2", "token": "tok", "role": "answerer",
		"peers": []any{map[string]any{"peer": "p1", "role": "caller"}}, "next": 1,
		"iceServers": []any{},
	}}, nil)
	// The server's messages for this member, disordered and with a duplicate.
	for _, seq := range []int{2, 1, 3, 1, 2} {
		ev := map[int]string{1: "offer", 2: "candidate", 3: "hangup"}[seq]
		s.Emit(ev, map[string]any{"room": "r1", "seq": seq, "from": "p1"})
	}
	s.Emit("offer", map[string]any{"room": "other", "seq": 4}) // another room: not this peer's
}

func (f *fakeSwitchboard) send(ev string, args []any) {
	m := args[0].(map[string]any)
	seq := m["seq"].(float64)
	f.mu.Lock()
	f.sends[ev] = append(f.sends[ev], seq)
	attempt := len(f.sends[ev])
	f.mu.Unlock()
	ack := ackOf(args)
	switch {
	case ev == "offer" && attempt == 1:
		return // lost reply
	case ev == "candidate" && attempt == 1:
		ack([]any{map[string]any{"ok": false, "error": map[string]any{"code": "out_of_order", "message": "wait"}}}, nil)
	case ev == "hangup":
		ack([]any{map[string]any{"ok": false, "error": map[string]any{"code": "no_peer", "message": "gone"}}}, nil)
	default:
		ack([]any{map[string]any{"ok": true, "seq": seq, "held": true}}, nil)
	}
}

func TestPeer(t *testing.T) {
	f, ts := newFakeSwitchboard(t)
	c := dial(t, ts.url)
	p := NewPeer(c)
	p.SetRetryInterval(100 * time.Millisecond)

	var mu sync.Mutex
	var got []string
	p.OnEvent(func(event string, payload map[string]any) {
		mu.Lock()
		got = append(got, event)
		mu.Unlock()
		if payload["room"] != "r1" {
			t.Errorf("event %s for room %v", event, payload["room"])
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if p.Joined() != nil {
		t.Fatal("Joined before Join")
	}
	jr, err := p.Join(ctx, "r1")
	if err != nil {
		t.Fatalf("Join: %v (%v)", err, c.Err())
	}
	if jr.Peer != "p2" || jr.Role != "answerer" || jr.Next != 1 || len(jr.Peers) != 1 || p.Joined() != jr {
		t.Fatalf("join reply %+v", jr)
	}
	if _, err := p.Join(ctx, "r2"); err == nil {
		t.Fatal("second Join succeeded")
	}

	reply, err := p.Send(ctx, "offer", map[string]any{"sdp": "v=0"})
	if err != nil || reply["held"] != true || reply["seq"] != float64(1) {
		t.Fatalf("offer: %v %v", reply, err)
	}
	reply, err = p.Send(ctx, "candidate", map[string]any{"candidate": nil})
	if err != nil || reply["seq"] != float64(2) {
		t.Fatalf("candidate: %v %v", reply, err)
	}
	_, err = p.Send(ctx, "hangup", nil)
	var perr *Error
	if !errors.As(err, &perr) || perr.Code != "no_peer" {
		t.Fatalf("hangup: %v", err)
	}
	// A rejection consumes its seq: the next message gets 4.
	if reply, err = p.Send(ctx, "candidate", map[string]any{"candidate": nil}); err != nil || reply["seq"] != float64(4) {
		t.Fatalf("candidate after rejection: %v %v", reply, err)
	}

	select {
	case <-f.ackSeen:
	case <-ctx.Done():
		t.Fatal("no ack for seq 3")
	}
	c.Close()

	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.joins) != 2 || f.joins[0] != f.joins[1] || len(f.joins[0]) < 8 {
		t.Errorf("join nonces %q: want one retry with the same nonce", f.joins)
	}
	if !slices.Equal(f.sends["offer"], []float64{1, 1}) || !slices.Equal(f.sends["candidate"], []float64{2, 2, 4}) ||
		!slices.Equal(f.sends["hangup"], []float64{3}) {
		t.Errorf("seqs sent: %v", f.sends)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []string{"offer", "candidate", "hangup"}) {
		t.Errorf("events applied: %v, want offer, candidate, hangup", got)
	}
}

func TestPeerSendBeforeJoin(t *testing.T) {
	_, ts := newFakeSwitchboard(t)
	p := NewPeer(dial(t, ts.url))
	if _, err := p.Send(context.Background(), "offer", nil); err == nil {
		t.Fatal("Send before Join succeeded")
	}
}

func TestPeerSendCancelled(t *testing.T) {
	ts := newTestServer(t, nil, nil) // never replies
	p := NewPeer(dial(t, ts.url))
	p.joined = &JoinReply{Next: 1}
	p.room = "r1"
	close(p.joinDone)
	p.SetRetryInterval(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.Send(ctx, "offer", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
}

func TestPeerEventsBeforeJoinReply(t *testing.T) {
	// The held offer overtakes the join reply; answering it from the handler waits for Join.
	ts := newTestServer(t, nil, func(s *socket.Socket) {
		s.On("join", func(args ...any) {
			s.Emit("offer", map[string]any{"room": "r1", "seq": 1, "from": "p1", "sdp": "v=0"})
			time.Sleep(100 * time.Millisecond)
			ackOf(args)([]any{map[string]any{"ok": true, "room": "r1", "peer": "p2", "role": "answerer", "next": 1}}, nil)
		})
		s.On("answer", func(args ...any) {
			m := args[0].(map[string]any)
			ackOf(args)([]any{map[string]any{"ok": true, "seq": m["seq"], "to": m["to"]}}, nil)
		})
		s.On("ack", func(args ...any) { ackOf(args)([]any{map[string]any{"ok": true}}, nil) })
	})
	c := dial(t, ts.url)
	p := NewPeer(c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	replies := make(chan map[string]any, 1)
	p.OnEvent(func(event string, payload map[string]any) {
		rep, err := p.Send(ctx, "answer", map[string]any{"sdp": "v=0", "to": payload["from"]})
		if err != nil {
			t.Errorf("answer: %v", err)
		}
		replies <- rep
	})
	if _, err := p.Join(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	select {
	case rep := <-replies:
		if rep["seq"] != float64(1) || rep["to"] != "p1" {
			t.Fatalf("answer reply %v", rep)
		}
	case <-ctx.Done():
		t.Fatal("no answer")
	}
}

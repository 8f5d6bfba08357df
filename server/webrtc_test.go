package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/sioclient"
	"github.com/switchboard-rtc/switchboard/store"
	"github.com/switchboard-rtc/switchboard/store/storetest"
)

// TestWebRTCAcrossInstances opens a real WebRTC call between two pion peers signalled through
// two instances sharing one Redis: the caller, alone on instance A, trickles its offer and
// candidates (held); the answerer joins on instance B later, gets them, answers and trickles
// back; both connect and exchange a DataChannel message each way.
func TestWebRTCAcrossInstances(t *testing.T) {
	inst := startInstances(t, sharedRedisStore(t), 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	room := fmt.Sprintf("webrtc-%016x", rand.Uint64())

	caller := newRTCSide(t, ctx, "caller", inst[0].url)
	answerer := newRTCSide(t, ctx, "answerer", inst[1].url)

	// The caller joins alone, offers and trickles its candidates: all held.
	if jr, err := caller.peer.Join(ctx, room); err != nil || jr.Role != "caller" || len(jr.Peers) != 0 {
		t.Fatalf("caller join: %+v, %v", jr, err)
	}
	dc, err := caller.pc.CreateDataChannel("chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	dc.OnOpen(func() { sendText(t, dc, "ping from caller") })
	dc.OnMessage(func(m webrtc.DataChannelMessage) { caller.received <- string(m.Data) })
	offer, err := caller.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := caller.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	// offer.SDP was created before gathering started: it carries no candidates.
	if rep, err := caller.peer.Send(ctx, "offer", map[string]any{"sdp": offer.SDP}); err != nil || rep["held"] != true {
		t.Fatalf("offer: %v, %v", rep, err)
	}
	close(caller.trickleStart)
	waitFor(t, ctx, caller.trickleDone, "caller's candidates sent")
	callerCands := caller.sent()
	if len(callerCands) < 2 || slices.Contains(callerCands, false) {
		t.Fatalf("caller's candidate replies (held?) %v: want a host candidate and end-of-candidates, all held", callerCands)
	}

	// After a while the answerer joins on the other instance and gets the offer and candidates.
	time.Sleep(300 * time.Millisecond)
	answerer.pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnOpen(func() { sendText(t, dc, "pong from answerer") })
		dc.OnMessage(func(m webrtc.DataChannelMessage) { answerer.received <- string(m.Data) })
	})
	joined := time.Now()
	jr, err := answerer.peer.Join(ctx, room)
	if err != nil || jr.Role != "answerer" || len(jr.Peers) != 1 || jr.Peers[0].Role != "caller" {
		t.Fatalf("answerer join: %+v, %v", jr, err)
	}

	waitFor(t, ctx, caller.connected, "caller connected")
	waitFor(t, ctx, answerer.connected, "answerer connected")
	t.Logf("answerer join to both connected: %v", time.Since(joined))
	for _, c := range []struct {
		side *rtcSide
		want string
	}{{answerer, "ping from caller"}, {caller, "pong from answerer"}} {
		select {
		case got := <-c.side.received:
			if got != c.want {
				t.Errorf("%s received %q, want %q", c.side.name, got, c.want)
			}
		case <-ctx.Done():
			t.Fatalf("%s received no DataChannel message", c.side.name)
		}
	}

	// Every signaling message arrived once, in order, on the other instance.
	waitFor(t, ctx, answerer.trickleDone, "answerer's candidates sent")
	answererCands := answerer.sent()
	if slices.Contains(answererCands, true) {
		t.Errorf("answerer's candidate replies (held?) %v: want none held", answererCands)
	}
	want := map[*rtcSide][]string{
		answerer: append([]string{"offer"}, repeat("candidate", len(callerCands))...),
		caller:   append([]string{"peer-joined", "answer"}, repeat("candidate", len(answererCands))...),
	}
	for side, w := range want {
		deadline := time.Now().Add(5 * time.Second)
		for !slices.Equal(side.seen(), w) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := side.seen(); !slices.Equal(got, w) {
			t.Errorf("%s got events %v, want %v", side.name, got, w)
		}
	}

	// Hang up the way a client does: leave, so no membership waits out its resume window.
	for _, side := range []*rtcSide{answerer, caller} {
		if rep, err := side.peer.Send(ctx, "leave", nil); err != nil || rep["ok"] != true {
			t.Errorf("%s: leave: %v, %v", side.name, rep, err)
		}
	}
}

// rtcSide is one pion peer and its signaling: a Peer on its own Socket.IO client, a goroutine
// applying server events to the PeerConnection, and one sending local candidates once
// trickleStart is closed. Both goroutines end when the test does.
type rtcSide struct {
	name         string
	pc           *webrtc.PeerConnection
	peer         *sioclient.Peer
	events       chan sideEvent
	candidates   chan *webrtc.ICECandidate // nil: gathering is complete
	trickleStart chan struct{}             // closed once this side's SDP was sent
	trickleDone  chan struct{}             // closed once every candidate was sent
	connected    chan struct{}
	received     chan string // DataChannel messages

	mu        sync.Mutex
	eventLog  []string // server event names, in the order applied
	heldFlags []bool   // the "held" flag of each candidate reply
}

type sideEvent struct {
	name    string
	payload map[string]any
}

func newRTCSide(t *testing.T, ctx context.Context, name, url string) *rtcSide {
	t.Helper()
	client, err := sioclient.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	s := &rtcSide{
		name:         name,
		pc:           newPionPeer(t),
		peer:         sioclient.NewPeer(client),
		events:       make(chan sideEvent, 256),
		candidates:   make(chan *webrtc.ICECandidate, 64),
		trickleStart: make(chan struct{}),
		trickleDone:  make(chan struct{}),
		connected:    make(chan struct{}),
		received:     make(chan string, 4),
	}
	var once sync.Once
	s.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(s.connected) })
		}
	})
	s.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		select {
		case s.candidates <- c:
		default:
			t.Errorf("%s: too many candidates", name)
		}
	})
	s.peer.OnEvent(func(event string, payload map[string]any) {
		select {
		case s.events <- sideEvent{event, payload}:
		default:
			t.Errorf("%s: event buffer full", name)
		}
	})

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.applyEvents(t, ctx) })
	wg.Go(func() { s.trickle(t, ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err := s.pc.GracefulClose(); err != nil {
			t.Errorf("%s: close peer connection: %v", name, err)
		}
		_ = client.Close()
	})
	return s
}

// newPionPeer returns a PeerConnection that gathers only UDP4 loopback host candidates.
func newPionPeer(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// applyEvents applies server events to the PeerConnection, in the order the Peer delivers them.
func (s *rtcSide) applyEvents(t *testing.T, ctx context.Context) {
	for {
		var ev sideEvent
		select {
		case ev = <-s.events:
		case <-ctx.Done():
			return
		}
		s.mu.Lock()
		s.eventLog = append(s.eventLog, ev.name)
		s.mu.Unlock()
		sdp, _ := ev.payload["sdp"].(string)
		switch ev.name {
		case "offer":
			if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
				t.Errorf("%s: set offer: %v", s.name, err)
				return
			}
			answer, err := s.pc.CreateAnswer(nil)
			if err == nil {
				err = s.pc.SetLocalDescription(answer)
			}
			if err != nil {
				t.Errorf("%s: answer: %v", s.name, err)
				return
			}
			rep, err := s.peer.Send(ctx, "answer", map[string]any{"sdp": answer.SDP, "to": ev.payload["from"]})
			if err != nil || rep["ok"] != true {
				t.Errorf("%s: send answer: %v, %v", s.name, rep, err)
				return
			}
			close(s.trickleStart)
		case "answer":
			if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
				t.Errorf("%s: set answer: %v", s.name, err)
			}
		case "candidate":
			if ev.payload["candidate"] == nil {
				continue // end of candidates
			}
			var init webrtc.ICECandidateInit
			b, _ := json.Marshal(ev.payload["candidate"])
			if err := json.Unmarshal(b, &init); err != nil {
				t.Errorf("%s: candidate %s: %v", s.name, b, err)
				continue
			}
			if err := s.pc.AddICECandidate(init); err != nil {
				t.Errorf("%s: add candidate %s: %v", s.name, b, err)
			}
		}
	}
}

// trickle sends each local candidate, and then end-of-candidates, once trickleStart is closed.
func (s *rtcSide) trickle(t *testing.T, ctx context.Context) {
	select {
	case <-s.trickleStart:
	case <-ctx.Done():
		return
	}
	for {
		var c *webrtc.ICECandidate
		select {
		case c = <-s.candidates:
		case <-ctx.Done():
			return
		}
		var cand any // nil: end of candidates
		if c != nil {
			cand = c.ToJSON()
		}
		rep, err := s.peer.Send(ctx, "candidate", map[string]any{"candidate": cand})
		if err != nil || rep["ok"] != true {
			if ctx.Err() == nil {
				t.Errorf("%s: send candidate: %v, %v", s.name, rep, err)
			}
			return
		}
		s.mu.Lock()
		s.heldFlags = append(s.heldFlags, rep["held"] == true)
		s.mu.Unlock()
		if c == nil {
			close(s.trickleDone)
			return
		}
	}
}

func (s *rtcSide) sent() []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.heldFlags)
}

func (s *rtcSide) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.eventLog)
}

func sendText(t *testing.T, dc *webrtc.DataChannel, msg string) {
	if err := dc.SendText(msg); err != nil {
		t.Errorf("send %q: %v", msg, err)
	}
}

func waitFor(t *testing.T, ctx context.Context, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatalf("timed out waiting for: %s", what)
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// sharedRedisStore returns a Redis store under a fresh key prefix, deleted when the test ends.
func sharedRedisStore(t *testing.T) store.Store {
	st, _, _ := storetest.Redis(t, store.Options{})
	return st
}

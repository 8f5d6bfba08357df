package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/sioclient"
	"github.com/switchboard-rtc/switchboard/server"
)

type iceServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username"`
	Credential string   `json:"credential"`
}

// relaySide is one pion peer, relay-only, signalled over a websocket through the load balancer.
type relaySide struct {
	name      string
	client    *sioclient.Client
	peer      *sioclient.Peer
	pc        *webrtc.PeerConnection
	join      *sioclient.JoinReply
	ice       []iceServer
	events    chan relayEvent
	connected chan struct{}
	received  chan string
}

type relayEvent struct {
	name    string
	payload map[string]any
}

func newRelaySide(t *testing.T, ctx context.Context, c *cluster, name, room string) *relaySide {
	t.Helper()
	client, err := sioclient.Dial(ctx, c.lbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(); <-client.Done() })
	s := &relaySide{
		name: name, client: client, peer: sioclient.NewPeer(client),
		events: make(chan relayEvent, 64), connected: make(chan struct{}), received: make(chan string, 4),
	}
	s.peer.OnEvent(func(ev string, payload map[string]any) { s.events <- relayEvent{ev, payload} })
	if s.join, err = s.peer.Join(ctx, room); err != nil {
		t.Fatalf("%s: join: %v", name, err)
	}
	if err := json.Unmarshal(s.join.ICEServers, &s.ice); err != nil {
		t.Fatalf("%s: iceServers %s: %v", name, s.join.ICEServers, err)
	}

	// Loopback only, UDP only, and nothing but relay candidates.
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// pion waits 2 s before it accepts a relay pair, in case a better one turns up; with relay
	// candidates only, none will.
	se.SetRelayAcceptanceMinWait(0)
	cfg := webrtc.Configuration{ICETransportPolicy: webrtc.ICETransportPolicyRelay}
	for _, is := range s.ice {
		cfg.ICEServers = append(cfg.ICEServers, webrtc.ICEServer{URLs: is.URLs, Username: is.Username, Credential: is.Credential})
	}
	if s.pc, err = webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.pc.GracefulClose(); err != nil {
			t.Errorf("%s: close: %v", name, err)
		}
	})
	var once sync.Once
	s.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(s.connected) })
		}
	})
	return s
}

// localDescription sets desc and returns the SDP once every candidate is in it.
func (s *relaySide) localDescription(t *testing.T, ctx context.Context, desc webrtc.SessionDescription) string {
	t.Helper()
	gathered := webrtc.GatheringCompletePromise(s.pc)
	if err := s.pc.SetLocalDescription(desc); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		t.Fatalf("%s: ICE gathering did not complete", s.name)
	}
	sdp := s.pc.LocalDescription().SDP
	if !strings.Contains(sdp, "typ relay") || strings.Contains(sdp, "typ host") || strings.Contains(sdp, "typ srflx") {
		t.Fatalf("%s: want relay candidates only in\n%s", s.name, sdp)
	}
	return sdp
}

func (s *relaySide) next(t *testing.T, ctx context.Context, want string) map[string]any {
	t.Helper()
	for {
		select {
		case ev := <-s.events:
			if ev.name == want {
				return ev.payload
			}
		case <-ctx.Done():
			t.Fatalf("%s: no %s event", s.name, want)
		}
	}
}

func (s *relaySide) send(t *testing.T, ctx context.Context, event string, payload map[string]any) {
	t.Helper()
	if rep, err := s.peer.Send(ctx, event, payload); err != nil || rep["ok"] != true {
		t.Fatalf("%s: %s: %v %v", s.name, event, rep, err)
	}
}

// relayCall: two pion peers that may use relay candidates only connect through coturn with the
// credentials from their join replies, and exchange a DataChannel message each way.
func relayCall(t *testing.T, c *cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	room := "relay-" + randomHex(6)
	caller := newRelaySide(t, ctx, c, "caller", room)

	// The TURN entry is minted for this peer and checks out against the secret.
	if len(caller.ice) != 2 || !strings.HasPrefix(caller.ice[1].URLs[0], "turn:") {
		t.Fatalf("caller's iceServers %+v", caller.ice)
	}
	exp, peer, _ := strings.Cut(caller.ice[1].Username, ":")
	expiry, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || peer != caller.join.Peer {
		t.Fatalf("TURN username %q for peer %s", caller.ice[1].Username, caller.join.Peer)
	}
	if ttl := time.Until(time.Unix(expiry, 0)); ttl < 59*time.Minute || ttl > time.Hour+time.Minute {
		t.Errorf("TURN credential valid for %v, want the default 1h", ttl)
	}
	if _, cred := server.TURNCredential(c.secret, peer, time.Unix(expiry, 0)); cred != caller.ice[1].Credential {
		t.Errorf("TURN credential does not match the shared secret")
	}

	dc, err := caller.pc.CreateDataChannel("chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	dc.OnOpen(func() { _ = dc.SendText("hello through the relay") })
	dc.OnMessage(func(m webrtc.DataChannelMessage) { caller.received <- string(m.Data) })
	offer, err := caller.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gatherStart := time.Now()
	offerSDP := caller.localDescription(t, ctx, offer)
	t.Logf("relay candidates gathered in %v", time.Since(gatherStart).Round(time.Millisecond))
	caller.send(t, ctx, "offer", map[string]any{"sdp": offerSDP}) // held: the caller is alone

	began := time.Now()
	answerer := newRelaySide(t, ctx, c, "answerer", room)
	answerer.pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			answerer.received <- string(m.Data)
			_ = dc.SendText("hello back")
		})
	})
	got := answerer.next(t, ctx, "offer")
	t.Logf("answerer dialled, joined and got the held offer in %v", time.Since(began).Round(time.Millisecond))
	began = time.Now()
	if err := answerer.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: got["sdp"].(string)}); err != nil {
		t.Fatal(err)
	}
	answer, err := answerer.pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	answerer.send(t, ctx, "answer", map[string]any{"sdp": answerer.localDescription(t, ctx, answer), "to": caller.join.Peer})
	got = caller.next(t, ctx, "answer")
	if err := caller.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: got["sdp"].(string)}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*relaySide{caller, answerer} {
		select {
		case <-s.connected:
		case <-ctx.Done():
			t.Fatalf("%s did not connect through the relay", s.name)
		}
	}
	connected := time.Since(began)
	for _, x := range []struct {
		s    *relaySide
		want string
	}{{answerer, "hello through the relay"}, {caller, "hello back"}} {
		select {
		case m := <-x.s.received:
			if m != x.want {
				t.Errorf("%s received %q, want %q", x.s.name, m, x.want)
			}
		case <-ctx.Done():
			t.Fatalf("%s received no DataChannel message", x.s.name)
		}
	}
	t.Logf("relay-only call: from the answerer getting the offer to both connected %v, to both messages %v",
		connected.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))

	// Both ends of the selected pair are coturn relays on loopback.
	for _, s := range []*relaySide{caller, answerer} {
		pair, err := s.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil {
			t.Fatalf("%s: selected pair: %v", s.name, err)
		}
		for _, cand := range []*webrtc.ICECandidate{pair.Local, pair.Remote} {
			if cand.Typ != webrtc.ICECandidateTypeRelay || cand.Address != "127.0.0.1" ||
				int(cand.Port) < c.relayPorts[0] || int(cand.Port) > c.relayPorts[1] {
				t.Errorf("%s: selected candidate %s is not a coturn relay (ports %d-%d)", s.name, cand, c.relayPorts[0], c.relayPorts[1])
			}
		}
	}
	for _, s := range []*relaySide{answerer, caller} {
		s.send(t, ctx, "leave", nil)
	}
}

// allocate asks coturn for a UDP relay with username and password.
func allocate(turnAddr, username, password string) error {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer conn.Close()
	client, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: turnAddr, TURNServerAddr: turnAddr,
		Username: username, Password: password, Realm: "switchboard",
		Conn: conn, RTO: 200 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	defer client.Close()
	if err := client.Listen(); err != nil {
		return err
	}
	relay, err := client.Allocate()
	if err != nil {
		return err
	}
	return relay.Close()
}

// stunBinding reports whether a STUN server answers at addr.
func stunBinding(addr string) error {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer conn.Close()
	client, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: addr, Conn: conn, RTO: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	defer client.Close()
	if err := client.Listen(); err != nil {
		return err
	}
	_, err = client.SendBindingRequest()
	return err
}

// turnCredentials: coturn grants an allocation for the credentials of a join reply, and refuses
// a wrong secret, a username changed after signing, and an expired credential.
func turnCredentials(t *testing.T, c *cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client, err := sioclient.Dial(ctx, c.lbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Close(); <-client.Done() }()
	p := sioclient.NewPeer(client)
	jr, err := p.Join(ctx, "creds-"+randomHex(6))
	if err != nil {
		t.Fatal(err)
	}
	var ice []iceServer
	if err := json.Unmarshal(jr.ICEServers, &ice); err != nil || len(ice) != 2 {
		t.Fatalf("iceServers %s: %v", jr.ICEServers, err)
	}
	valid := ice[1]
	exp, _, _ := strings.Cut(valid.Username, ":")
	expiry, _ := strconv.ParseInt(exp, 10, 64)
	_, otherSecret := server.TURNCredential("not-the-secret", jr.Peer, time.Unix(expiry, 0))
	expiredUser, expiredCred := server.TURNCredential(c.secret, jr.Peer, time.Now().Add(-time.Minute))

	began := time.Now()
	if err := allocate(c.turnAddr, valid.Username, valid.Credential); err != nil {
		t.Fatalf("allocation with the join reply's credentials: %v", err)
	}
	t.Logf("TURN allocation with minted credentials: %v", time.Since(began).Round(time.Millisecond))
	for _, bad := range []struct{ what, user, pass string }{
		{"signed with another secret", valid.Username, otherSecret},
		{"username changed after signing", fmt.Sprintf("%d:someone-else", expiry), valid.Credential},
		{"expired a minute ago", expiredUser, expiredCred},
	} {
		err := allocate(c.turnAddr, bad.user, bad.pass)
		if err == nil {
			t.Errorf("coturn granted an allocation to a credential %s", bad.what)
		} else if !strings.Contains(err.Error(), "401") {
			t.Errorf("credential %s: %v, want 401 Unauthorized", bad.what, err)
		}
	}
	if _, err := p.Send(ctx, "leave", nil); err != nil {
		t.Error(err)
	}
}

package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/sioclient"
	"github.com/switchboard-rtc/switchboard/server"
	"github.com/switchboard-rtc/switchboard/store"
)

// Vectors computed with OpenSSL:
// printf '%s' USERNAME | openssl dgst -sha1 -hmac SECRET -binary | base64
func TestTURNCredential(t *testing.T) {
	for _, tc := range []struct {
		secret, peer string
		expiry       int64
		user, cred   string
	}{
		{"north-secret", "5f0c2b9e8a7d6c41", 1700000000, "1700000000:5f0c2b9e8a7d6c41", "s2Za3zFfXl2RPy7t9rZIUimQXvc="},
		{"correct horse battery staple", "alice", 1700003600, "1700003600:alice", "+jQq5TE9ZBTrqo8k1biU9LDudNQ="},
	} {
		user, cred := server.TURNCredential(tc.secret, tc.peer, time.Unix(tc.expiry, 0))
		if user != tc.user || cred != tc.cred {
			t.Errorf("TURNCredential(%q, %q, %d) = %q, %q; want %q, %q", tc.secret, tc.peer, tc.expiry, user, cred, tc.user, tc.cred)
		}
	}
}

func TestTURNSettings(t *testing.T) {
	env := map[string]string{
		"SWITCHBOARD_STUN_URLS":   "stun:stun.example.org:3478",
		"SWITCHBOARD_TURN_URLS":   "turn:turn.example.org:3478?transport=udp, turns:turn.example.org:5349",
		"SWITCHBOARD_TURN_SECRET": "s3cret-value",
		"SWITCHBOARD_TURN_TTL":    "10m",
	}
	var usage bytes.Buffer
	cfg, err := server.LoadConfig(nil, func(k string) string { return env[k] }, &usage)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.TURNURLs) != 2 || cfg.TURNSecret != "s3cret-value" || cfg.TURNTTL != 10*time.Minute {
		t.Fatalf("config %+v", cfg)
	}
	if def := server.DefaultConfig(); def.TURNTTL != time.Hour || def.TURNSecret != "" || def.TURNURLs != nil {
		t.Fatalf("defaults: ttl %v secret %q urls %v", def.TURNTTL, def.TURNSecret, def.TURNURLs)
	}
	// -h lists the setting but never prints the secret it was given.
	if _, err := server.LoadConfig([]string{"-h"}, func(k string) string { return env[k] }, &usage); err == nil {
		t.Fatal("-h: no error")
	}
	if !strings.Contains(usage.String(), "SWITCHBOARD_TURN_SECRET") || strings.Contains(usage.String(), "s3cret-value") {
		t.Fatalf("usage text:\n%s", usage.String())
	}
	for _, bad := range []map[string]string{
		{"SWITCHBOARD_TURN_URLS": "turn:t.example.org"},                                                   // no secret
		{"SWITCHBOARD_TURN_SECRET": "x"},                                                                  // no URLs
		{"SWITCHBOARD_TURN_URLS": "stun:t.example.org", "SWITCHBOARD_TURN_SECRET": "x"},                   // wrong scheme
		{"SWITCHBOARD_STUN_URLS": "turn:t.example.org"},                                                   // wrong scheme
		{"SWITCHBOARD_TURN_URLS": "turn:t", "SWITCHBOARD_TURN_SECRET": "x", "SWITCHBOARD_TURN_TTL": "0s"}, // no lifetime
	} {
		if _, err := server.LoadConfig(nil, func(k string) string { return bad[k] }, &usage); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

type iceServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username"`
	Credential string   `json:"credential"`
}

// The join and resume replies carry STUN, then TURN with credentials minted for the peer.
func TestJoinReplyICEServers(t *testing.T) {
	const secret = "join-reply-secret"
	inst := startInstances(t, store.NewMemory(store.Options{}), 1, func(c *server.Config) {
		c.STUNURLs = []string{"stun:127.0.0.1:3478"}
		c.TURNURLs = []string{"turn:127.0.0.1:3478?transport=udp"}
		c.TURNSecret = secret
		c.TURNTTL = 20 * time.Minute
	})[0]
	noTURN := startInstances(t, store.NewMemory(store.Options{}), 1, func(c *server.Config) {
		c.STUNURLs = []string{"stun:127.0.0.1:3478"}
	})[0]
	bare := startInstances(t, store.NewMemory(store.Options{}), 1, nil)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	join := func(url string) (*sioclient.JoinReply, []iceServer) {
		t.Helper()
		c, err := sioclient.Dial(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		jr, err := sioclient.NewPeer(c).Join(ctx, "ice")
		if err != nil {
			t.Fatal(err)
		}
		var ice []iceServer
		if err := json.Unmarshal(jr.ICEServers, &ice); err != nil {
			t.Fatalf("iceServers %s: %v", jr.ICEServers, err)
		}
		return jr, ice
	}

	before := time.Now()
	jr, ice := join(inst.url)
	if len(ice) != 2 || len(ice[0].URLs) != 1 || ice[0].URLs[0] != "stun:127.0.0.1:3478" || ice[0].Username != "" {
		t.Fatalf("iceServers %+v", ice)
	}
	turn := ice[1]
	if len(turn.URLs) != 1 || turn.URLs[0] != "turn:127.0.0.1:3478?transport=udp" {
		t.Fatalf("TURN entry %+v", turn)
	}
	exp, peer, ok := strings.Cut(turn.Username, ":")
	expiry, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil || peer != jr.Peer {
		t.Fatalf("TURN username %q: want <expiry>:%s", turn.Username, jr.Peer)
	}
	if lo, hi := before.Add(20*time.Minute).Unix(), time.Now().Add(20*time.Minute).Unix(); expiry < lo || expiry > hi {
		t.Fatalf("expiry %d not in [%d, %d]", expiry, lo, hi)
	}
	if _, want := server.TURNCredential(secret, jr.Peer, time.Unix(expiry, 0)); turn.Credential != want {
		t.Fatalf("credential %q, want %q", turn.Credential, want)
	}

	// Resume mints credentials for the same peer.
	c, err := sioclient.Dial(ctx, inst.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.EmitWithAck(ctx, "resume", map[string]any{"room": "ice", "peer": jr.Peer, "token": jr.Token})
	if err != nil {
		t.Fatal(err)
	}
	var rr struct {
		OK         bool        `json:"ok"`
		ICEServers []iceServer `json:"iceServers"`
	}
	if err := json.Unmarshal(raw, &rr); err != nil || !rr.OK || len(rr.ICEServers) != 2 ||
		!strings.HasSuffix(rr.ICEServers[1].Username, ":"+jr.Peer) {
		t.Fatalf("resume reply %s (%v)", raw, err)
	}

	// No secret: STUN only. Nothing configured: an empty list.
	if _, ice := join(noTURN.url); len(ice) != 1 || ice[0].Username != "" {
		t.Fatalf("without a TURN secret: %+v", ice)
	}
	if jr, ice := join(bare.url); len(ice) != 0 || string(jr.ICEServers) != "[]" {
		t.Fatalf("without ICE servers: %s", jr.ICEServers)
	}
}

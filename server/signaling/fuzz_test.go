package signaling

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/store"
)

// Fuzz targets for everything that turns client input into values. `go test` runs their seed
// corpus (below and in testdata/fuzz); `make fuzz` runs each for a while.

// knownCodes are the codes a reply may carry.
var knownCodes = map[Code]bool{
	CodeBadRequest: true, CodeTooLarge: true, CodeUnknownEvent: true, CodeNotJoined: true,
	CodeRoomFull: true, CodeUnauthorized: true, CodeForbidden: true, CodeResumeFailed: true, CodeNoPeer: true, CodeTargetRequired: true,
	CodeNoOffer: true, CodeRateLimited: true, CodeTooManyRooms: true, CodeTooManyCandidates: true, CodeBacklogFull: true, CodeOutOfOrder: true,
	CodeUnavailable: true, CodeInternal: true,
}

// checkReply fails unless r is {ok: true, ...} or {ok: false, error} with a known code.
func checkReply(t *testing.T, r Reply) {
	t.Helper()
	switch r["ok"] {
	case true:
	case false:
		e, ok := r["error"].(*Error)
		if !ok || !knownCodes[e.Code] || e.Message == "" {
			t.Fatalf("bad error reply %#v", r)
		}
		if e.Code == CodeInternal {
			t.Fatalf("client input caused an internal error: %v", e)
		}
	default:
		t.Fatalf("reply without ok: %#v", r)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatalf("reply does not encode: %v", err)
	}
}

func FuzzDecodeCandidate(f *testing.F) {
	for _, s := range []string{
		`{"candidate":{"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"u"}}`,
		`{"candidate":null}`,
		`{"candidate":{"candidate":"","sdpMLineIndex":65535}}`,
		`{"candidate":{"candidate":"x","sdpMLineIndex":-1}}`,
		`{"candidate":{"candidate":"x","sdpMLineIndex":1e300}}`,
		`{"candidate":{"candidate":"x","sdpMid":7}}`,
		`{"candidate":"str"}`, `{}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxSDPBytes: 1024, MaxCandidateBytes: 256}
	f.Fuzz(func(t *testing.T, data []byte) {
		var a msgArgs
		if decodeArgs(data, &a, "") != nil {
			return
		}
		body, e := decodeCandidate(a.Candidate, "p1", lim)
		if e != nil {
			if !knownCodes[e.Code] {
				t.Fatalf("unknown code %q", e.Code)
			}
			return
		}
		var out struct {
			From      string         `json:"from"`
			Candidate *candidateInit `json:"candidate"`
		}
		if err := json.Unmarshal(body, &out); err != nil || out.From != "p1" {
			t.Fatalf("body %q: %v", body, err)
		}
		if out.Candidate != nil && len(out.Candidate.Candidate) > lim.MaxCandidateBytes {
			t.Fatalf("accepted a candidate over the limit: %d bytes", len(out.Candidate.Candidate))
		}
	})
}

func FuzzDecodeSDP(f *testing.F) {
	for _, s := range []string{`{"sdp":"v=0\r\n"}`, `{"sdp":""}`, `{"sdp":5}`, `{"sdp":null}`, `{}`} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxSDPBytes: 64, MaxCandidateBytes: 64}
	f.Fuzz(func(t *testing.T, data []byte) {
		var a msgArgs
		if decodeArgs(data, &a, "") != nil {
			return
		}
		body, e := decodeSDP(a.SDP, "p1", lim)
		if e != nil {
			if !knownCodes[e.Code] {
				t.Fatalf("unknown code %q", e.Code)
			}
			return
		}
		var out sdpBody
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		if out.SDP == "" || len(out.SDP) > lim.MaxSDPBytes {
			t.Fatalf("accepted sdp of %d bytes", len(out.SDP))
		}
	})
}

func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"room":"r1","seq":1}`, `{"room":"r1","seq":9007199254740991}`, `{"room":"r1","seq":9007199254740992}`,
		`{"room":"a{b}","seq":1}`, `{"room":"","seq":1}`, `{"room":"r","seq":1.5}`, `{"room":"r","seq":"1"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var a msgArgs
		if decodeArgs(data, &a, "") != nil {
			return
		}
		env, e := decodeEnvelope(&a)
		if e != nil {
			return
		}
		if !roomRe.MatchString(env.Room) || env.Seq < 1 || env.Seq > maxSeq {
			t.Fatalf("accepted %+v", env)
		}
		// Accepted rooms are safe in Redis keys (no hash-tag braces) and in hand-built JSON.
		if strings.ContainsAny(env.Room, "{}\"\\") {
			t.Fatalf("room %q", env.Room)
		}
		var out map[string]any
		if err := json.Unmarshal(serverEvent(env.Room, env.Seq, []byte(`{"x":1}`)), &out); err != nil || out["room"] != env.Room {
			t.Fatalf("server event for room %q: %v", env.Room, err)
		}
	})
}

// FuzzHandle sends arbitrary events and payloads through a hub on the memory store: every reply
// is well formed, nothing panics, and no client input produces an internal error.
func FuzzHandle(f *testing.F) {
	for _, s := range []struct{ ev, payload string }{
		{"join", `{"room":"r","nonce":"abcdefgh"}`},
		{"offer", `{"room":"r","seq":1,"sdp":"v=0"}`},
		{"candidate", `{"room":"r","seq":2,"candidate":{"candidate":"c","sdpMLineIndex":0}}`},
		{"answer", `{"room":"r","seq":3,"sdp":"v=0","to":"x"}`},
		{"resume", `{"room":"r","peer":"p","token":"t"}`},
		{"ack", `{"room":"r","seq":1}`},
		{"hangup", `{"room":"r","seq":4}`},
		{"leave", `{"room":"r","seq":5}`},
		{"nope", `{}`},
		{"join", `"r"`},
	} {
		f.Add(s.ev, []byte(s.payload))
	}
	st := store.NewMemory(store.Options{})
	h := NewHub(Config{Instance: "fuzz", ReorderTimeout: time.Millisecond, Limits: Limits{MaxSDPBytes: 512, MaxCandidateBytes: 128}}, st, slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, ev string, data []byte) {
		c := newConn("c")
		h.Connect(c)
		defer h.Disconnect(c)
		// A join first, so sequenced events reach the store too. The payload goes as it is:
		// the transport hands over only valid JSON, but the hub must not trust that either.
		checkReply(t, mustHandle(h, c, EvJoin, json.RawMessage(`{"room":"r"}`)))
		checkReply(t, mustHandle(h, c, ev, data))
	})
}

func mustHandle(h *Hub, c Conn, ev string, payload json.RawMessage) Reply {
	r, after := h.Handle(context.Background(), c, ev, payload)
	if after != nil {
		after()
	}
	return r
}

// FuzzFastDecode: whatever the fast path takes, it decodes as encoding/json does.
func FuzzFastDecode(f *testing.F) {
	for _, s := range []string{
		`{"room":"r1","seq":1,"candidate":{"candidate":"candidate:1 1 udp 2122260223 10.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":null}}`,
		`{"room":"r1","seq":2,"sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n","to":"p1"}`,
		`{"room":"r1","seq":3,"candidate":null}`, ` { "room" : "r" , "seq" : 1.5e3 } `, `{"room":"\u00e9","seq":1}`,
		`{"Room":"r","seq":1}`, `{"room":"r","room":"s"}`, `{"seq":-0.0}`, `{"seq":1e400}`, `{"to":null,"sdp":"\/\t"}`,
		`{"candidate":{"sdpMLineIndex":null,"x":[1,{"a":"}"}]}}`, `{}`, `{"room":"r",}`, `{"room":"é"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast msgArgs
		if fastMsg(data, &fast) {
			var slow msgArgs
			if err := json.Unmarshal(data, &slow); err != nil {
				t.Fatalf("fast path took %q, encoding/json: %v", data, err)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%q: fast %+v, encoding/json %+v", data, fast, slow)
			}
		}
		var fc candidateArgs
		if fastCandidate(data, &fc) {
			var slow candidateArgs
			if err := json.Unmarshal(data, &slow); err != nil {
				t.Fatalf("fast path took candidate %q, encoding/json: %v", data, err)
			}
			if !reflect.DeepEqual(fc, slow) {
				t.Fatalf("candidate %q: fast %+v, encoding/json %+v", data, fc, slow)
			}
		}
	})
}

package signaling

import (
	"bytes"
	"encoding/json"
	"testing"
)

// marshalPlain is encoding/json without HTML escaping: what appendJSONString must equal.
func marshalPlain(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

var jsonStringCases = []string{
	"", "plain", `quote " and backslash \`, "tab\tcr\rlf\n", "\x00\x01\x1f\x7f", "\b\f",
	"<script>&amp;</script>", "é ü 日本 🎉", "line\u2028para\u2029", "bad \xff utf8 \xc3",
	"candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host generation 0",
	"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\n",
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonStringCases {
		got := appendJSONString(nil, s)
		if want := marshalPlain(t, s); !bytes.Equal(got, want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}

func TestEncodedBodiesMatchEncodingJSON(t *testing.T) {
	mid, frag, idx := "0", "uf\"rag", 3
	for _, c := range []*candidateInit{
		nil,
		{Candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host"},
		{Candidate: "x\n", SDPMid: &mid, SDPMLineIndex: &idx, UsernameFragment: &frag},
	} {
		got := encodeCandidate("p\u2028", c)
		if want := marshalPlain(t, candidateBody{From: "p\u2028", Candidate: c}); !bytes.Equal(got, want) {
			t.Errorf("candidate %+v: got %s, want %s", c, got, want)
		}
	}
	body, e := decodeSDP("v=0\r\n\"<>", "p1", Limits{MaxSDPBytes: 100})
	if e != nil {
		t.Fatal(e)
	}
	if want := marshalPlain(t, sdpBody{From: "p1", SDP: "v=0\r\n\"<>"}); !bytes.Equal(body, want) {
		t.Errorf("sdp: got %s, want %s", body, want)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonStringCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendJSONString(nil, s)
		if want := marshalPlain(t, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}

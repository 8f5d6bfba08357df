package signaling

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// Payloads decode straight into the event's type; a wrong type names its field.
func TestDecodeErrorsNameTheField(t *testing.T) {
	lim := Limits{MaxSDPBytes: 100, MaxCandidateBytes: 100}
	for _, c := range []struct {
		payload, want string // want: "" accepted, else a substring of the error
	}{
		{`{"room":"r","seq":1,"candidate":null}`, ""},
		{`{"room":"r","seq":1,"candidate":{"candidate":"c","sdpMid":null,"sdpMLineIndex":2}}`, ""},
		{`{"room":"r","seq":1}`, "candidate is required"},
		{`{"room":"r","seq":1,"candidate":"c"}`, "candidate must be an object or null, got string"},
		{`{"room":"r","seq":1,"candidate":{"candidate":"c","sdpMid":7}}`, "candidate.sdpMid must be a string, got number"},
		{`{"room":"r","seq":1,"candidate":{"sdpMid":"0"}}`, "candidate.candidate must be a string"},
		{`{"room":"r","seq":1,"candidate":{"candidate":"c","sdpMLineIndex":1.5}}`, "sdpMLineIndex must be an integer"},
		{`{"room":5,"seq":1,"candidate":null}`, "room must be a string, got number"},
		{`{"room":"r","seq":"1","candidate":null}`, "seq must be a number, got string"},
		{`{"room":"r","candidate":null}`, "seq is required"},
		{`{"room":"r","seq":0,"candidate":null}`, "seq must be an integer"},
		{`{"room":"a b","seq":1,"candidate":null}`, "room is not valid"},
		{`["r"]`, "payload must be an object, got array"},
		{``, "payload must be an object, got null"},
		{`{"room":`, "payload is not valid JSON"},
	} {
		var a msgArgs
		e := decodeArgs([]byte(c.payload), &a, "")
		if e == nil {
			_, e = decodeEnvelope(&a)
		}
		if e == nil {
			_, e = decodeCandidate(a.Candidate, "p", lim)
		}
		switch {
		case c.want == "" && e != nil:
			t.Errorf("%s: %v", c.payload, e)
		case c.want != "" && (e == nil || e.Code != CodeBadRequest || !strings.Contains(e.Message, c.want)):
			t.Errorf("%s: got %v, want bad_request %q", c.payload, e, c.want)
		}
	}
}

// An optional field may be absent or null, but not empty.
func TestOptionalFieldsTellAbsentFromEmpty(t *testing.T) {
	for payload, ok := range map[string]bool{`{}`: true, `{"room":null}`: true, `{"room":""}`: false, `{"room":"r"}`: true} {
		var a joinArgs
		if e := decodeArgs([]byte(payload), &a, ""); e != nil {
			t.Fatal(e)
		}
		if _, e := optional("room", a.Room, roomRe); (e == nil) != ok {
			t.Errorf("%s: %v", payload, e)
		}
	}
}

// Reply.AppendJSON writes what encoding/json writes, key for key (strings may keep <, > and &
// unescaped, which decodes the same).
func TestReplyAppendJSON(t *testing.T) {
	for _, r := range []Reply{
		okReply(),
		{"ok": true, "seq": int64(12), "duplicate": true},
		{"ok": true, "seq": int64(1), "held": true, "expiresInMs": int64(29999)},
		errReply(errorf(CodeBadRequest, `field "sdp": <bad> & "quoted" \ é \u2028`)),
		{"ok": true, "token": "abc", "acked": int64(0), "n": 3, "none": nil, "err": (*Error)(nil)},
		{"ok": true, "room": "r", "peers": []string{"a"}, "limits": Limits{1, 2, 3}, "x": 1.5},
	} {
		got := r.AppendJSON(nil)
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		_ = json.Unmarshal(want, &w)
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("AppendJSON %s\nencoding/json %s", got, want)
		}
		if !bytes.ContainsAny(want, `\`) && !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON %s\nencoding/json %s", got, want)
		}
	}
}

// The byte-table patterns match what the regular expressions they stand for match.
func TestPatternsMatchTheirRegexps(t *testing.T) {
	for _, p := range []*pattern{roomRe, nonceRe, idRe} {
		re := regexp.MustCompile(p.String())
		cases := []string{"", "a", "abcdefgh", "a.b", "a~b", "a-b_c", "a b", "é", "a{b}", "A9", strings.Repeat("x", 64),
			strings.Repeat("x", 65), strings.Repeat("y", 128), strings.Repeat("y", 129), "ab\n", "\x00", "abc/def"}
		for c := 0; c < 256; c++ {
			cases = append(cases, strings.Repeat(string(rune(c)), 8), "abcdefg"+string([]byte{byte(c)}))
		}
		for _, s := range cases {
			if p.MatchString(s) != re.MatchString(s) {
				t.Errorf("%s on %q: %v, regexp %v", p, s, p.MatchString(s), re.MatchString(s))
			}
		}
	}
}

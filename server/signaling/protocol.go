package signaling

// The wire protocol: event names, payload decoding and validation, replies and error codes.
// docs/protocol.md is the contract; this file and decode.go are its Go form. Payloads arrive as
// undecoded JSON and are never trusted: decode.go decodes each into its event's type once and
// validates every field, so no client input can panic the server.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Client events.
const (
	EvJoin      = "join"
	EvResume    = "resume"
	EvOffer     = "offer"
	EvAnswer    = "answer"
	EvCandidate = "candidate"
	EvHangup    = "hangup"
	EvLeave     = "leave"
	EvAck       = "ack"
)

// Code is a stable error code sent to clients.
type Code string

// Error codes; docs/protocol.md lists when each is used.
const (
	CodeBadRequest        Code = "bad_request"
	CodeTooLarge          Code = "too_large"
	CodeUnknownEvent      Code = "unknown_event"
	CodeNotJoined         Code = "not_joined"
	CodeRoomFull          Code = "room_full"
	CodeUnauthorized      Code = "unauthorized"
	CodeForbidden         Code = "forbidden"
	CodeResumeFailed      Code = "resume_failed"
	CodeNoPeer            Code = "no_peer"
	CodeTargetRequired    Code = "target_required"
	CodeNoOffer           Code = "no_offer"
	CodeTooManyCandidates Code = "too_many_candidates"
	CodeBacklogFull       Code = "backlog_full"
	CodeTooManyHeld       Code = "too_many_held"
	CodeOutOfOrder        Code = "out_of_order"
	CodeRateLimited       Code = "rate_limited"
	CodeTooManyRooms      Code = "too_many_rooms"
	CodeUnavailable       Code = "unavailable"
	CodeInternal          Code = "internal"
)

// Error is a client-visible failure.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	field   string // the payload field of the wrong type, if that is the error
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Reply is the acknowledgement of a client event: {ok: true, ...} or {ok: false, error}.
type Reply map[string]any

func okReply() Reply { return Reply{"ok": true} }

// AppendJSON appends r as encoding/json would write it (keys sorted), without reflection for
// the values of the frequent replies (booleans, integers, strings, errors): every event is
// acknowledged, so this runs as often as events arrive.
func (r Reply) AppendJSON(b []byte) []byte {
	var arr [16]string
	keys := arr[:0]
	for k := range r {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		switch v := r[k].(type) {
		case nil:
			b = append(b, "null"...)
		case bool:
			b = strconv.AppendBool(b, v)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case string:
			b = appendJSONString(b, v)
		case *Error:
			if v == nil {
				b = append(b, "null"...)
				break
			}
			b = append(b, `{"code":`...)
			b = appendJSONString(b, string(v.Code))
			b = append(b, `,"message":`...)
			b = appendJSONString(b, v.Message)
			b = append(b, '}')
		default:
			j, err := json.Marshal(v)
			if err != nil {
				j = []byte("null") // none of the hub's values fails; a reply is never left unsent
			}
			b = append(b, j...)
		}
	}
	return append(b, '}')
}

func errReply(e *Error) Reply { return Reply{"ok": false, "error": e} }

var (
	roomRe  = newPattern("._~-", 1, 128) // ^[A-Za-z0-9._~-]{1,128}$
	nonceRe = newPattern("_-", 8, 64)    // ^[A-Za-z0-9_-]{8,64}$
	idRe    = newPattern("_-", 1, 64)    // ^[A-Za-z0-9_-]{1,64}$
)

// pattern is a regular expression of the form ^[A-Za-z0-9<extra>]{min,max}$, checked with a
// byte table: room, nonce and id checks run on every event.
type pattern struct {
	src      string
	allowed  [256]bool
	min, max int
}

func newPattern(extra string, min, max int) *pattern {
	p := &pattern{min: min, max: max}
	cls := "A-Za-z0-9" + extra
	p.src = "^[" + cls + "]{" + strconv.Itoa(min) + "," + strconv.Itoa(max) + "}$"
	for c := 0; c < 256; c++ {
		p.allowed[c] = c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			strings.IndexByte(extra, byte(c)) >= 0
	}
	return p
}

// MatchString says whether s matches p.
func (p *pattern) MatchString(s string) bool {
	if len(s) < p.min || len(s) > p.max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !p.allowed[s[i]] {
			return false
		}
	}
	return true
}

// String is the regular expression p checks.
func (p *pattern) String() string { return p.src }

// maxSeq keeps sequence numbers exact in JSON numbers (float64).
const maxSeq = 1<<53 - 1

// Limits bound what a client may send. Join and resume replies announce them, so that a client
// refuses an oversized message itself instead of sending it.
type Limits struct {
	MaxSDPBytes       int `json:"maxSdpBytes"`
	MaxCandidateBytes int `json:"maxCandidateBytes"`
	// MaxMessageBytes is the largest Socket.IO message; the transport enforces it (by closing
	// the connection), the hub only announces it.
	MaxMessageBytes int `json:"maxMessageBytes"`
}

// Bodies queued for recipients. decodeSDP and encodeCandidate write them out by hand; their
// output equals encoding/json's of these types (jsonstr_test.go).
type sdpBody struct {
	From string `json:"from"`
	SDP  string `json:"sdp"`
}

type candidateInit struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid"`
	SDPMLineIndex    *int    `json:"sdpMLineIndex"`
	UsernameFragment *string `json:"usernameFragment"`
}

type candidateBody struct {
	From      string         `json:"from"`
	Candidate *candidateInit `json:"candidate"`
}

// encodeCandidate is json.Marshal(candidateBody{from, c}) written out: candidates are most of
// the relayed messages, and reflection was a measurable share of the server's CPU.
func encodeCandidate(from string, c *candidateInit) []byte {
	if c == nil {
		b := make([]byte, 0, len(from)+32)
		b = append(b, `{"from":`...)
		b = appendJSONString(b, from)
		return append(b, `,"candidate":null}`...)
	}
	b := make([]byte, 0, len(from)+len(c.Candidate)+128)
	b = append(b, `{"from":`...)
	b = appendJSONString(b, from)
	b = append(b, `,"candidate":{"candidate":`...)
	b = appendJSONString(b, c.Candidate)
	b = append(b, `,"sdpMid":`...)
	b = appendNullableString(b, c.SDPMid)
	b = append(b, `,"sdpMLineIndex":`...)
	if c.SDPMLineIndex == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(*c.SDPMLineIndex), 10)
	}
	b = append(b, `,"usernameFragment":`...)
	b = appendNullableString(b, c.UsernameFragment)
	return append(b, "}}"...)
}

func appendNullableString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendJSONString(b, *s)
}

// appendJSONString appends s as a JSON string. Like encoding/json it escapes control
// characters, U+2028 and U+2029 (which some JavaScript parsers reject in strings) and replaces
// invalid UTF-8 with U+FFFD; unlike it, it leaves <, > and & alone (nothing embeds these
// bodies in HTML).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// serverEvent builds the payload of a server→client event: the queued body with room and seq
// prepended. Bodies are JSON objects; room names are validated, so they need no escaping.
func serverEvent(room string, seq int64, body []byte) json.RawMessage {
	var b strings.Builder
	b.Grow(len(body) + len(room) + 32)
	b.WriteString(`{"room":"`)
	b.WriteString(room)
	b.WriteString(`","seq":`)
	b.WriteString(strconv.FormatInt(seq, 10))
	inner := strings.TrimSpace(string(body))
	inner = strings.TrimPrefix(inner, "{")
	if strings.TrimSpace(inner) != "}" && inner != "" {
		b.WriteByte(',')
	}
	if inner == "" {
		inner = "}"
	}
	b.WriteString(inner)
	return json.RawMessage(b.String())
}

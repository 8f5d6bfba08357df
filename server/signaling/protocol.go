package signaling

// The wire protocol: event names, payload decoding and validation, replies and error codes.
// docs/protocol.md is the contract; this file is its Go form. Payloads arrive as decoded JSON
// values (map[string]any, []any, float64, string, bool, nil) and are never trusted: every
// accessor checks types, so no client input can panic the server.

import (
	"encoding/json"
	"fmt"
	"regexp"
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
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Reply is the acknowledgement of a client event: {ok: true, ...} or {ok: false, error}.
type Reply map[string]any

func okReply() Reply { return Reply{"ok": true} }

func errReply(e *Error) Reply { return Reply{"ok": false, "error": e} }

var (
	roomRe  = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)
	nonceRe = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)
	idRe    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// maxSeq keeps sequence numbers exact in JSON numbers (float64).
const maxSeq = 1<<53 - 1

// fields wraps a decoded payload object.
type fields map[string]any

func asObject(payload any) (fields, *Error) {
	m, ok := payload.(map[string]any)
	if !ok {
		return nil, errorf(CodeBadRequest, "payload must be an object, got %s", typeName(payload))
	}
	return fields(m), nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case float64, int, int64:
		return "number"
	case bool:
		return "boolean"
	default:
		return "binary or unsupported value"
	}
}

// plainJSON reports whether v holds decoded JSON values only, at any depth. Anything else is a
// binary attachment (or a value no JSON decoder makes): the protocol refuses those wherever they
// sit, including in fields it does not read, so that nothing it would not relay is stored.
func plainJSON(v any) bool {
	switch x := v.(type) {
	case nil, string, float64, int, int64, bool:
		return true
	case map[string]any:
		for _, e := range x {
			if !plainJSON(e) {
				return false
			}
		}
		return true
	case []any:
		for _, e := range x {
			if !plainJSON(e) {
				return false
			}
		}
		return true
	}
	return false
}

// str returns a required string field matching re.
func (f fields) str(key string, re *regexp.Regexp) (string, *Error) {
	v, ok := f[key]
	if !ok || v == nil {
		return "", errorf(CodeBadRequest, "%s is required", key)
	}
	s, ok := v.(string)
	if !ok {
		return "", errorf(CodeBadRequest, "%s must be a string, got %s", key, typeName(v))
	}
	if re != nil && !re.MatchString(s) {
		return "", errorf(CodeBadRequest, "%s is not valid (%s)", key, re.String())
	}
	return s, nil
}

// optStr returns an optional string field ("" when absent or null).
func (f fields) optStr(key string, re *regexp.Regexp) (string, *Error) {
	if v, ok := f[key]; !ok || v == nil {
		return "", nil
	}
	return f.str(key, re)
}

// seq returns a required positive integer field.
func (f fields) seq(key string) (int64, *Error) {
	v, ok := f[key]
	if !ok || v == nil {
		return 0, errorf(CodeBadRequest, "%s is required", key)
	}
	n, ok := v.(float64)
	if !ok {
		return 0, errorf(CodeBadRequest, "%s must be a number, got %s", key, typeName(v))
	}
	if n < 1 || n > maxSeq || n != float64(int64(n)) {
		return 0, errorf(CodeBadRequest, "%s must be an integer from 1 to %d", key, int64(maxSeq))
	}
	return int64(n), nil
}

// envelope is what every sequenced event carries.
type envelope struct {
	Room string
	Seq  int64
}

func decodeEnvelope(f fields) (envelope, *Error) {
	room, err := f.str("room", roomRe)
	if err != nil {
		return envelope{}, err
	}
	seq, err := f.seq("seq")
	if err != nil {
		return envelope{}, err
	}
	return envelope{Room: room, Seq: seq}, nil
}

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

// decodeSDP validates an offer or answer and returns the recipient's body.
func decodeSDP(f fields, from string, lim Limits) ([]byte, *Error) {
	sdp, err := f.str("sdp", nil)
	if err != nil {
		return nil, err
	}
	if sdp == "" {
		return nil, errorf(CodeBadRequest, "sdp must not be empty")
	}
	if len(sdp) > lim.MaxSDPBytes {
		return nil, errorf(CodeTooLarge, "sdp is %d bytes, the limit is %d", len(sdp), lim.MaxSDPBytes)
	}
	b := make([]byte, 0, len(sdp)+len(from)+64)
	b = append(b, `{"from":`...)
	b = appendJSONString(b, from)
	b = append(b, `,"sdp":`...)
	b = appendJSONString(b, sdp)
	return append(b, '}'), nil
}

// decodeCandidate validates an RTCIceCandidateInit (or null) and returns the recipient's body.
func decodeCandidate(f fields, from string, lim Limits) ([]byte, *Error) {
	v, present := f["candidate"]
	if !present {
		return nil, errorf(CodeBadRequest, "candidate is required (null for end-of-candidates)")
	}
	if v == nil {
		return encodeCandidate(from, nil), nil
	}
	c, ok := v.(map[string]any)
	if !ok {
		return nil, errorf(CodeBadRequest, "candidate must be an object or null, got %s", typeName(v))
	}
	cf := fields(c)
	s, ok := cf["candidate"].(string)
	if !ok {
		return nil, errorf(CodeBadRequest, "candidate.candidate must be a string")
	}
	if len(s) > lim.MaxCandidateBytes {
		return nil, errorf(CodeTooLarge, "candidate is %d bytes, the limit is %d", len(s), lim.MaxCandidateBytes)
	}
	init := &candidateInit{Candidate: s}
	var err *Error
	if init.SDPMid, err = cf.nullableStr("sdpMid", 64); err != nil {
		return nil, err
	}
	if init.UsernameFragment, err = cf.nullableStr("usernameFragment", 256); err != nil {
		return nil, err
	}
	if v, ok := cf["sdpMLineIndex"]; ok && v != nil {
		n, isNum := v.(float64)
		if !isNum || n < 0 || n > 65535 || n != float64(int(n)) {
			return nil, errorf(CodeBadRequest, "candidate.sdpMLineIndex must be an integer from 0 to 65535 or null")
		}
		i := int(n)
		init.SDPMLineIndex = &i
	}
	return encodeCandidate(from, init), nil
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

func (f fields) nullableStr(key string, max int) (*string, *Error) {
	v, ok := f[key]
	if !ok || v == nil {
		return nil, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return nil, errorf(CodeBadRequest, "candidate.%s must be a string or null", key)
	}
	if len(s) > max {
		return nil, errorf(CodeTooLarge, "candidate.%s is longer than %d bytes", key, max)
	}
	return &s, nil
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

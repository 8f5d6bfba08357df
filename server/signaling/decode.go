package signaling

// Decoding of client payloads: each event's JSON goes once, with encoding/json, into the
// struct of its event below, and the fields are then validated. A type mismatch becomes a
// bad_request naming the field.

import (
	"encoding/json"
	"errors"
	"reflect"
)

// joinArgs is the payload of join.
type joinArgs struct {
	Room  *string `json:"room"` // optional fields: absent or null is not ""
	Nonce *string `json:"nonce"`
	Token *string `json:"token"`
}

// resumeArgs is the payload of resume.
type resumeArgs struct {
	Room  string `json:"room"`
	Peer  string `json:"peer"`
	Token string `json:"token"`
}

// msgArgs is the payload of ack and of the sequenced events; each uses the fields it needs.
type msgArgs struct {
	Room      string          `json:"room"`
	Seq       *float64        `json:"seq"`
	To        *string         `json:"to"`
	SDP       string          `json:"sdp"`
	Candidate json.RawMessage `json:"candidate"` // absent: nil; null: "null"
}

// candidateArgs is an RTCIceCandidateInit as sent.
type candidateArgs struct {
	Candidate        *string  `json:"candidate"`
	SDPMid           *string  `json:"sdpMid"`
	SDPMLineIndex    *float64 `json:"sdpMLineIndex"`
	UsernameFragment *string  `json:"usernameFragment"`
}

// ErrBinary refuses an event that came with binary attachments: the protocol is JSON only.
var ErrBinary = &Error{Code: CodeBadRequest, Message: "binary data is not accepted; send JSON"}

// decodeArgs decodes a payload object into v, a pointer to one of the structs above. Field
// names match as encoding/json matches them (exact first, else case-insensitively).
func decodeArgs(payload json.RawMessage, v any, prefix string) *Error {
	if k := jsonKind(payload); k != "object" {
		if prefix != "" {
			return errorf(CodeBadRequest, "%s must be an object or null, got %s", prefix, k)
		}
		return errorf(CodeBadRequest, "payload must be an object, got %s", k)
	}
	if err := json.Unmarshal(payload, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			field := te.Field
			if prefix != "" {
				field = prefix + "." + field
			}
			e := errorf(CodeBadRequest, "%s must be %s, got %s", field, expected(te.Type), te.Value)
			e.field = te.Field
			return e
		}
		return errorf(CodeBadRequest, "payload is not valid JSON")
	}
	return nil
}

// decodeMsg decodes the payload of ack or of a sequenced event. A field of the wrong type
// other than room and seq comes back as bodyErr, after the rest was decoded: the message's seq
// is then consumed with that error, as for any other invalid body.
func decodeMsg(payload json.RawMessage) (a msgArgs, bodyErr, err *Error) {
	if fastMsg(payload, &a) {
		return a, nil, nil
	}
	a = msgArgs{} // what the fast path took before it gave up
	if e := decodeArgs(payload, &a, ""); e != nil {
		if e.field == "" || e.field == "room" || e.field == "seq" {
			return a, nil, e
		}
		return a, e, nil
	}
	return a, nil, nil
}

// jsonKind names the JSON type of b from its first byte.
func jsonKind(b []byte) string {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return "object"
		case '[':
			return "array"
		case '"':
			return "string"
		case 't', 'f':
			return "boolean"
		case 'n':
			return "null"
		default:
			return "number"
		}
	}
	return "null" // no argument at all
}

// expected names the JSON type a field of Go type t takes (encoding/json reports a pointer
// field's element type).
func expected(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Float64:
		return "a number"
	default:
		return "an object"
	}
}

// required checks a required string field against re (nil: any non-empty string).
func required(key, s string, re *pattern) (string, *Error) {
	if s == "" {
		return "", errorf(CodeBadRequest, "%s is required", key)
	}
	return optional(key, &s, re)
}

// optional checks an optional string field against re; absent or null gives "".
func optional(key string, s *string, re *pattern) (string, *Error) {
	if s == nil {
		return "", nil
	}
	if re != nil && !re.MatchString(*s) {
		return "", errorf(CodeBadRequest, "%s is not valid (%s)", key, re.String())
	}
	return *s, nil
}

// seqOf checks a required sequence number: an integer from 1 to maxSeq.
func seqOf(key string, n *float64) (int64, *Error) {
	if n == nil {
		return 0, errorf(CodeBadRequest, "%s is required", key)
	}
	if *n < 1 || *n > maxSeq || *n != float64(int64(*n)) {
		return 0, errorf(CodeBadRequest, "%s must be an integer from 1 to %d", key, int64(maxSeq))
	}
	return int64(*n), nil
}

// envelope is what every sequenced event carries.
type envelope struct {
	Room string
	Seq  int64
}

func decodeEnvelope(a *msgArgs) (envelope, *Error) {
	room, err := required("room", a.Room, roomRe)
	if err != nil {
		return envelope{}, err
	}
	seq, err := seqOf("seq", a.Seq)
	if err != nil {
		return envelope{}, err
	}
	return envelope{Room: room, Seq: seq}, nil
}

// decodeSDP validates an offer's or answer's sdp and returns the recipient's body.
func decodeSDP(sdp, from string, lim Limits) ([]byte, *Error) {
	if sdp == "" {
		return nil, errorf(CodeBadRequest, "sdp is required and must not be empty")
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

// decodeCandidate validates a candidate field (an RTCIceCandidateInit, or null for
// end-of-candidates) and returns the recipient's body.
func decodeCandidate(raw json.RawMessage, from string, lim Limits) ([]byte, *Error) {
	if raw == nil {
		return nil, errorf(CodeBadRequest, "candidate is required (null for end-of-candidates)")
	}
	if jsonKind(raw) == "null" {
		return encodeCandidate(from, nil), nil
	}
	var c candidateArgs
	if !fastCandidate(raw, &c) {
		c = candidateArgs{}
		if e := decodeArgs(raw, &c, "candidate"); e != nil {
			return nil, e
		}
	}
	if c.Candidate == nil {
		return nil, errorf(CodeBadRequest, "candidate.candidate must be a string")
	}
	if len(*c.Candidate) > lim.MaxCandidateBytes {
		return nil, errorf(CodeTooLarge, "candidate is %d bytes, the limit is %d", len(*c.Candidate), lim.MaxCandidateBytes)
	}
	init := &candidateInit{Candidate: *c.Candidate, SDPMid: c.SDPMid, UsernameFragment: c.UsernameFragment}
	if c.SDPMid != nil && len(*c.SDPMid) > 64 {
		return nil, errorf(CodeTooLarge, "candidate.sdpMid is longer than 64 bytes")
	}
	if c.UsernameFragment != nil && len(*c.UsernameFragment) > 256 {
		return nil, errorf(CodeTooLarge, "candidate.usernameFragment is longer than 256 bytes")
	}
	if n := c.SDPMLineIndex; n != nil {
		if *n < 0 || *n > 65535 || *n != float64(int(*n)) {
			return nil, errorf(CodeBadRequest, "candidate.sdpMLineIndex must be an integer from 0 to 65535 or null")
		}
		i := int(*n)
		init.SDPMLineIndex = &i
	}
	return encodeCandidate(from, init), nil
}

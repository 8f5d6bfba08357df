package signaling

// A fast path for the payloads that make up most of the traffic (candidates, SDPs, acks): one
// scan of the object straight into msgArgs or candidateArgs, no reflection. It takes only
// what it is sure of (the exact field names, strings, numbers, null, a nested object for the
// candidate) and gives up on anything else (an unknown or repeated key, a \u escape, a type
// the field does not take), leaving the payload to encoding/json, which then decodes it or
// names the error. FuzzFastDecode checks that whatever it takes, it decodes as encoding/json
// does.

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// The fields each fast path takes, by their index in these lists.
var (
	msgFields       = []string{"room", "seq", "to", "sdp", "candidate"}
	candidateFields = []string{"candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"}
)

// fastMsg decodes payload into a; false: use encoding/json.
func fastMsg(payload []byte, a *msgArgs) bool {
	return scanFields(payload, msgFields, func(field int, val []byte) (ok bool) {
		switch field {
		case 0:
			a.Room, ok = fastString(val)
		case 1:
			a.Seq, ok = fastNumber(val)
		case 2:
			a.To, ok = fastOptString(val)
		case 3:
			a.SDP, ok = fastString(val)
		case 4:
			if val[0] != '{' && !bytes.Equal(val, []byte("null")) {
				return false
			}
			a.Candidate, ok = json.RawMessage(val), true
		}
		return ok
	})
}

// fastCandidate decodes a candidate object into c; false: use encoding/json.
func fastCandidate(payload []byte, c *candidateArgs) bool {
	return scanFields(payload, candidateFields, func(field int, val []byte) (ok bool) {
		switch field {
		case 0:
			c.Candidate, ok = fastOptString(val)
		case 1:
			c.SDPMid, ok = fastOptString(val)
		case 2:
			if bytes.Equal(val, []byte("null")) {
				return true
			}
			c.SDPMLineIndex, ok = fastNumber(val)
		case 3:
			c.UsernameFragment, ok = fastOptString(val)
		}
		return ok
	})
}

// scanFields is scanObject for an object of the named fields only, each at most once (encoding/json
// would match other spellings, and take the last of a repeated key): set is called with the
// field's index in names.
func scanFields(b []byte, names []string, set func(field int, val []byte) bool) bool {
	var seen uint32
	return scanObject(b, func(key, val []byte) bool {
		for i, name := range names {
			if string(key) == name {
				if seen&(1<<i) != 0 {
					return false
				}
				seen |= 1 << i
				return set(i, val)
			}
		}
		return false
	})
}

// scanObject calls member for each key and raw value of the object b (whitespace around it
// allowed); false when b is not an object it can scan, or member returned false.
func scanObject(b []byte, member func(key, val []byte) bool) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipWS(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		end := bytes.IndexByte(b[i+1:], '"')
		if end < 0 {
			return false
		}
		key := b[i+1 : i+1+end]
		if bytes.IndexByte(key, '\\') >= 0 {
			return false
		}
		i = skipWS(b, i+2+end)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipWS(b, i+1)
		n := valueEnd(b, i)
		if n < 0 || !member(key, b[i:n]) {
			return false
		}
		i = skipWS(b, n)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return skipWS(b, i+1) == len(b)
		default:
			return false
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the end of the value starting at b[i]: a string, an object or array
// (nested values are only delimited here; a nested object is checked with json.Valid), or a
// literal; -1 when it does not end.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := stringEnd(b, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					if !json.Valid(b[i : j+1]) {
						return -1
					}
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// stringEnd returns the index after the closing quote of the string at b[i].
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// fastString decodes a JSON string with the escapes \" \\ \/ \b \f \n \r \t; false for
// anything else (null, \u escapes, control characters, invalid UTF-8).
func fastString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	v = v[1 : len(v)-1]
	esc := false
	for _, c := range v {
		if c < 0x20 {
			return "", false
		}
		if c == '\\' {
			esc = true
		}
	}
	if !utf8.Valid(v) {
		return "", false
	}
	if !esc {
		return string(v), true
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(v) {
			return "", false
		}
		switch v[i] {
		case '"', '\\', '/':
			out = append(out, v[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		default:
			return "", false
		}
	}
	return string(out), true
}

// fastOptString is fastString for a *string field: null leaves it nil.
func fastOptString(v []byte) (*string, bool) {
	if bytes.Equal(v, []byte("null")) {
		return nil, true
	}
	s, ok := fastString(v)
	if !ok {
		return nil, false
	}
	return &s, true
}

// fastNumber decodes a JSON number (its grammar checked: strconv takes more); null gives nil.
func fastNumber(v []byte) (*float64, bool) {
	if bytes.Equal(v, []byte("null")) {
		return nil, true
	}
	i := 0
	if i < len(v) && v[i] == '-' {
		i++
	}
	switch {
	case i < len(v) && v[i] == '0':
		i++
	case i < len(v) && v[i] >= '1' && v[i] <= '9':
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(v) && v[i] == '.' {
		i++
		if i >= len(v) || v[i] < '0' || v[i] > '9' {
			return nil, false
		}
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		if i >= len(v) || v[i] < '0' || v[i] > '9' {
			return nil, false
		}
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
	}
	if i != len(v) {
		return nil, false
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return nil, false // out of range: encoding/json names the error
	}
	return &f, true
}

package sioparser

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/zishang520/engine.io/v2/types"
	"github.com/zishang520/socket.io-go-parser/v2/parser"
)

// encoder writes events and acknowledgements whose arguments are strings, pre-encoded JSON
// (json.RawMessage, written as is) or values without binary data (encoding/json). Everything
// else (the handshake's packets, binary data) goes to the library's encoder.
type encoder struct {
	fallback parser.Encoder
}

func (e *encoder) Encode(p *parser.Packet) []types.BufferInterface {
	if p.Type == parser.EVENT || p.Type == parser.ACK {
		if args, ok := p.Data.([]any); ok {
			if b, ok := appendPacket(nil, p, args); ok {
				return []types.BufferInterface{types.NewStringBuffer(b)}
			}
		}
	}
	return e.fallback.Encode(p)
}

// appendPacket appends <type>[<nsp>,][<id>][args...]; false when an argument needs the
// library's encoder.
func appendPacket(b []byte, p *parser.Packet, args []any) ([]byte, bool) {
	size := 16 + len(p.Nsp)
	for _, a := range args {
		switch v := a.(type) {
		case json.RawMessage:
			size += len(v) + 1
		case string:
			size += len(v) + 3
		default:
			size += 64
		}
	}
	if b == nil {
		b = make([]byte, 0, size)
	}
	b = append(b, byte(p.Type))
	if p.Nsp != "" && p.Nsp != "/" {
		b = append(b, p.Nsp...)
		b = append(b, ',')
	}
	if p.Id != nil {
		b = strconv.AppendUint(b, *p.Id, 10)
	}
	b = append(b, '[')
	for i, a := range args {
		if i > 0 {
			b = append(b, ',')
		}
		switch v := a.(type) {
		case json.RawMessage:
			if len(v) == 0 {
				b = append(b, "null"...)
			} else {
				b = append(b, v...)
			}
		case string:
			b = appendString(b, v)
		default:
			if parser.HasBinary(v) {
				return nil, false
			}
			j, err := json.Marshal(v)
			if err != nil {
				return nil, false
			}
			b = append(b, j...)
		}
	}
	return append(b, ']'), true
}

// appendString appends s as a JSON string; one that needs escaping goes through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			j, _ := json.Marshal(s) // a string always encodes
			return append(b, j...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

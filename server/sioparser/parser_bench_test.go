package sioparser

// The parser alone against the library's: decoding a candidate event's text frame, and encoding
// the pre-encoded body the server relays.
//
//	go test -run '^$' -bench . -benchmem ./server/sioparser/

import (
	"encoding/json"
	"testing"

	"github.com/zishang520/socket.io-go-parser/v2/parser"
)

const benchFrame = `217["candidate",{"room":"r1","seq":17,"candidate":{"candidate":"candidate:7 1 udp 2122260223 127.0.0.1 50007 typ host generation 0","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}]`

var benchBody = json.RawMessage(`{"room":"r1","seq":17,"from":"4cc57e1202b6fc2d","candidate":{"candidate":"candidate:7 1 udp 2122260223 127.0.0.1 50007 typ host generation 0","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}`)

func benchParsers() map[string]parser.Parser {
	return map[string]parser.Parser{"sioparser": &Parser{}, "library": parser.NewParser()}
}

func BenchmarkDecodeCandidate(b *testing.B) {
	for name, p := range benchParsers() {
		b.Run(name, func(b *testing.B) {
			d := p.NewDecoder()
			defer d.Destroy()
			_ = d.On("decoded", func(args ...any) {
				if ev, ok := args[0].(*parser.Packet).Data.([]any)[1].(*Event); ok {
					ev.Done()
				}
			})
			b.ReportAllocs()
			for b.Loop() {
				if err := d.Add(benchFrame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeRelayed(b *testing.B) {
	for name, p := range benchParsers() {
		b.Run(name, func(b *testing.B) {
			e := p.NewEncoder()
			b.ReportAllocs()
			for b.Loop() {
				_ = e.Encode(&parser.Packet{Type: parser.EVENT, Nsp: "/", Data: []any{"candidate", benchBody}})
			}
		})
	}
}

package sioparser

import (
	"encoding/json"
	"testing"

	"github.com/zishang520/socket.io-go-parser/v2/parser"
)

// FuzzDecodePacket feeds arbitrary text packets to a decoder: it never panics, and whatever it
// hands on is what the library and the hub expect (an event's name and arguments, each valid
// JSON).
func FuzzDecodePacket(f *testing.F) {
	for _, s := range []string{
		`2["join",{"room":"r"}]`, `217["candidate",{"room":"r","seq":1,"candidate":null}]`,
		`2/admin,3["a",1,"x",[{}]]`, `0{"token":"t"}`, `1`, `3[]`, `51-["a",{"_placeholder":true,"num":0}]`,
		`2["a\"]",{"b":"]"}]`, `2[ "a" , 1e5 , true ]`, `2`, `2[`, `9`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := (&Parser{MaxPending: 1 << 20}).NewDecoder().(*Decoder)
		defer d.Destroy()
		_ = d.On("decoded", func(args ...any) {
			p := args[0].(*parser.Packet)
			if p.Type != parser.EVENT && p.Type != parser.BINARY_EVENT {
				return
			}
			data := p.Data.([]any)
			if _, ok := data[0].(string); !ok || len(data) != 2 {
				t.Fatalf("%q: data %#v", s, data)
			}
			ev := data[1].(*Event)
			for _, a := range ev.Args {
				if !json.Valid(a) {
					t.Fatalf("%q: argument %q is not JSON", s, a)
				}
			}
			ev.Done()
		})
		_ = d.Add(s)
	})
}

package engineio

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"unicode/utf8"
)

// FuzzDecodePayload: any polling body either fails to decode or decodes to packets that encode
// back to a payload decoding to the same packets.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{"4hello", "4a\x1e4b\x1ebAQIDBA==", "3", "1", "abc", "", "b", "b====", "4\xff", "\x1e", "6\x1e6"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var pkts []packet
		err := decodePayload(body, func(p packet) { pkts = append(pkts, p) })
		if err != nil {
			if len(pkts) != 0 {
				t.Fatalf("undecodable payload delivered %d packets", len(pkts))
			}
			if !errors.Is(err, ErrBadPacket) {
				t.Fatalf("error %v is not ErrBadPacket", err)
			}
			return
		}
		if len(pkts) == 0 {
			t.Fatal("decoded payload has no packets")
		}
		enc := appendPayload(nil, pkts)
		var again []packet
		if err := decodePayload(enc, func(p packet) { again = append(again, p) }); err != nil {
			t.Fatalf("re-encoded payload %q: %v", enc, err)
		}
		if len(again) != len(pkts) {
			t.Fatalf("%d packets, then %d", len(pkts), len(again))
		}
		for i := range pkts {
			if pkts[i].typ != again[i].typ || pkts[i].binary != again[i].binary || !bytes.Equal(pkts[i].data, again[i].data) {
				t.Fatalf("packet %d: %+v, then %+v", i, pkts[i], again[i])
			}
		}
	})
}

// maskedFrame is a client frame: masked, as RFC 6455 requires.
func maskedFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	hdr := appendHeader(nil, op, len(payload))
	hdr[0] = b0
	hdr[1] |= 0x80
	mask := [4]byte{1, 2, 3, 4}
	out := append(hdr, mask[:]...)
	start := len(out)
	out = append(out, payload...)
	unmask(out[start:], mask)
	return out
}

// parseAll feeds in to a fresh parser in chunks of the given sizes (cycled; the rest in one
// when sizes is empty) and returns the messages, pings and error.
func parseAll(in []byte, limit int, sizes []byte) (msgs []wsMessage, pings int, err error) {
	p := frameParser{limit: limit, ping: func([]byte) { pings++ }}
	emit := func(op byte, msg []byte) bool { msgs = append(msgs, wsMessage{op, msg}); return true }
	for i := 0; len(in) > 0; i++ {
		n := len(in)
		if len(sizes) > 0 {
			n = min(n, int(sizes[i%len(sizes)])+1)
		}
		chunk := bytes.Clone(in[:n]) // the parser must not keep what it was fed
		in = in[n:]
		if err = p.feed(chunk, emit); err != nil {
			return msgs, pings, err
		}
		for j := range chunk {
			chunk[j] = 0xEE
		}
	}
	return msgs, pings, nil
}

// FuzzReadMessage: the frame parser never panics, never returns a message over the limit, and
// returns text only when it is UTF-8; whatever the chunks the bytes arrive in, it returns the
// same messages, pings and error as when they arrive at once.
func FuzzReadMessage(f *testing.F) {
	f.Add(maskedFrame(true, opText, []byte("4hello")), []byte{0})
	f.Add(append(maskedFrame(false, opText, []byte("4he")), maskedFrame(true, opContinuation, []byte("llo"))...), []byte{2, 5})
	f.Add(append(maskedFrame(true, opPing, []byte("x")), maskedFrame(true, opBinary, []byte{1, 2})...), []byte{})
	f.Add(maskedFrame(true, opClose, closePayload(1000)), []byte{1})
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}, []byte{3}) // unmasked
	f.Add([]byte{0x81, 0xFF, 0, 0, 0, 0, 0xFF, 0, 0, 0}, []byte{0})
	f.Add(maskedFrame(true, opText, bytes.Repeat([]byte("4"), 60)), []byte{7, 0, 30})
	const limit = 64
	f.Fuzz(func(t *testing.T, in, sizes []byte) {
		whole, wholePings, wholeErr := parseAll(in, limit, nil)
		if wholeErr != nil {
			var we *wsError
			if !errors.As(wholeErr, &we) && !errors.Is(wholeErr, errPeerClosed) {
				t.Fatalf("unexpected error %v", wholeErr)
			}
		}
		for _, m := range whole {
			if len(m.msg) > limit {
				t.Fatalf("message of %d bytes over the limit", len(m.msg))
			}
			if m.op != opText && m.op != opBinary {
				t.Fatalf("op %d", m.op)
			}
			if m.op == opText && !utf8.Valid(m.msg) {
				t.Fatalf("text message %q is not UTF-8", m.msg)
			}
		}
		chunked, chunkedPings, chunkedErr := parseAll(in, limit, sizes)
		if fmt.Sprint(wholeErr) != fmt.Sprint(chunkedErr) || wholePings != chunkedPings || len(whole) != len(chunked) {
			t.Fatalf("at once: %d messages, %d pings, %v; in chunks %v: %d, %d, %v",
				len(whole), wholePings, wholeErr, sizes, len(chunked), chunkedPings, chunkedErr)
		}
		for i := range whole {
			if whole[i].op != chunked[i].op || !bytes.Equal(whole[i].msg, chunked[i].msg) {
				t.Fatalf("message %d: %d %q at once, %d %q in chunks", i, whole[i].op, whole[i].msg, chunked[i].op, chunked[i].msg)
			}
		}
	})
}

// Frames written by the server read back (unmasked frames are refused by the parser, so the
// round trip goes through a masking copy), whole and a byte at a time.
func TestFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 70000} {
		p := packet{typ: typeMessage, data: bytes.Repeat([]byte("y"), n)}
		out := appendPacketFrame(nil, p)
		in := maskedFrame(true, opText, out[len(out)-n-1:])
		for _, sizes := range [][]byte{nil, {0}} {
			msgs, _, err := parseAll(in, 1<<20, sizes)
			if err != nil || len(msgs) != 1 || msgs[0].op != opText || len(msgs[0].msg) != n+1 || msgs[0].msg[0] != typeMessage {
				t.Fatalf("n=%d sizes=%v: %d messages, err %v", n, sizes, len(msgs), err)
			}
		}
		m := n + 1 // the type byte
		if hdr := len(out) - m; (m <= 125 && hdr != 2) || (m > 125 && m <= 65535 && hdr != 4) || (m > 65535 && hdr != 10) {
			t.Fatalf("n=%d: header of %d bytes", n, hdr)
		}
	}
}

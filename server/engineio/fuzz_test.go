package engineio

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
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

// FuzzReadMessage: the frame reader never panics, never returns a message over the limit,
// and returns text only when it is UTF-8; well-formed frames round-trip.
func FuzzReadMessage(f *testing.F) {
	f.Add(maskedFrame(true, opText, []byte("4hello")))
	f.Add(append(maskedFrame(false, opText, []byte("4he")), maskedFrame(true, opContinuation, []byte("llo"))...))
	f.Add(append(maskedFrame(true, opPing, []byte("x")), maskedFrame(true, opBinary, []byte{1, 2})...))
	f.Add(maskedFrame(true, opClose, closePayload(1000)))
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}) // unmasked
	f.Add([]byte{0x81, 0xFF, 0, 0, 0, 0, 0xFF, 0, 0, 0})
	const limit = 64
	f.Fuzz(func(t *testing.T, in []byte) {
		pings := 0
		fr := frameReader{r: bufio.NewReader(bytes.NewReader(in)), limit: limit, ping: func([]byte) { pings++ }}
		for {
			op, msg, err := fr.readMessage()
			if err != nil {
				var we *wsError
				if !errors.As(err, &we) && !errors.Is(err, errPeerClosed) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(msg) > limit {
				t.Fatalf("message of %d bytes over the limit", len(msg))
			}
			if op != opText && op != opBinary {
				t.Fatalf("op %d", op)
			}
		}
	})
}

// Frames written by the server read back (unmasked frames are refused by the reader, so the
// round trip goes through a masking copy).
func TestFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 70000} {
		p := packet{typ: typeMessage, data: bytes.Repeat([]byte("y"), n)}
		out := appendPacketFrame(nil, p)
		in := maskedFrame(true, opText, out[len(out)-n-1:])
		fr := frameReader{r: bufio.NewReader(bytes.NewReader(in)), limit: 1 << 20}
		op, msg, err := fr.readMessage()
		if err != nil || op != opText || len(msg) != n+1 || msg[0] != typeMessage {
			t.Fatalf("n=%d: op %d len %d err %v", n, op, len(msg), err)
		}
		m := n + 1 // the type byte
		if hdr := len(out) - m; (m <= 125 && hdr != 2) || (m > 125 && m <= 65535 && hdr != 4) || (m > 65535 && hdr != 10) {
			t.Fatalf("n=%d: header of %d bytes", n, hdr)
		}
	}
}

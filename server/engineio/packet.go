package engineio

// Engine.IO v4 packets and the polling payload format. A packet is one type byte followed by
// its data; a binary message travels as a websocket binary frame, or in a polling payload as
// "b" + base64. Packets of a payload are separated by the record separator 0x1e.

import (
	"encoding/base64"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Packet types (the first byte of a text packet).
const (
	typeOpen    byte = '0'
	typeClose   byte = '1'
	typePing    byte = '2'
	typePong    byte = '3'
	typeMessage byte = '4'
	typeUpgrade byte = '5'
	typeNoop    byte = '6'
)

// separator ends each packet of a polling payload but the last.
const separator = 0x1e

// ErrBadPacket is what decoding returns for bytes that are no Engine.IO packet.
var ErrBadPacket = errors.New("engineio: invalid packet")

// packet is one Engine.IO packet. data aliases the buffer it was decoded from.
type packet struct {
	typ    byte
	binary bool // a binary message: data is raw bytes
	data   []byte
}

// decodeText reads one text packet (a websocket text frame, or one record of a payload).
func decodeText(b []byte) (packet, error) {
	if len(b) == 0 || b[0] < typeOpen || b[0] > typeNoop {
		return packet{}, ErrBadPacket
	}
	if !utf8.Valid(b) {
		return packet{}, fmt.Errorf("%w: not UTF-8", ErrBadPacket)
	}
	return packet{typ: b[0], data: b[1:]}, nil
}

// decodePayload splits a polling POST body into packets and calls fn with each, in order. It
// checks the whole payload before the first call, so an undecodable payload delivers nothing.
func decodePayload(body []byte, fn func(packet)) error {
	var pkts []packet
	for start := 0; start <= len(body); {
		end := start
		for end < len(body) && body[end] != separator {
			end++
		}
		rec := body[start:end]
		var p packet
		if len(rec) > 0 && rec[0] == 'b' {
			raw := make([]byte, base64.StdEncoding.DecodedLen(len(rec)-1))
			n, err := base64.StdEncoding.Decode(raw, rec[1:])
			if err != nil {
				return fmt.Errorf("%w: base64: %v", ErrBadPacket, err)
			}
			p = packet{typ: typeMessage, binary: true, data: raw[:n]}
		} else {
			var err error
			if p, err = decodeText(rec); err != nil {
				return err
			}
		}
		pkts = append(pkts, p)
		start = end + 1
	}
	for _, p := range pkts {
		fn(p)
	}
	return nil
}

// appendPayload appends pkts as one polling payload.
func appendPayload(dst []byte, pkts []packet) []byte {
	for i, p := range pkts {
		if i > 0 {
			dst = append(dst, separator)
		}
		if p.binary {
			dst = append(dst, 'b')
			dst = base64.StdEncoding.AppendEncode(dst, p.data)
			continue
		}
		dst = append(dst, p.typ)
		dst = append(dst, p.data...)
	}
	return dst
}

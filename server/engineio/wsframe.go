package engineio

// The websocket protocol (RFC 6455), server side, as far as Engine.IO needs it: the opening
// handshake, reading masked client frames (fragments, control frames in between), and writing
// unmasked frames. Written here rather than taken from a websocket library so that every write
// of a connection, data and control frames alike, goes through one lock and one buffer, and a
// batch of packets leaves in one write system call.

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Frame opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Close codes sent to the peer.
const (
	closeNormal        = 1000
	closeProtocol      = 1002
	closeInvalidData   = 1007
	closeMessageTooBig = 1009
)

// wsError is a protocol violation; code is what the close frame tells the peer.
type wsError struct {
	code int
	msg  string
}

func (e *wsError) Error() string { return fmt.Sprintf("websocket: %s (close %d)", e.msg, e.code) }

// errPeerClosed is returned by readMessage when the peer sent a close frame.
var errPeerClosed = errors.New("websocket: closed by peer")

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// isWebsocketUpgrade says whether r asks for a websocket.
func isWebsocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// acceptKey checks the client's opening handshake and returns Sec-WebSocket-Accept.
func acceptKey(r *http.Request) (string, error) {
	if r.Method != http.MethodGet {
		return "", errors.New("websocket handshake must be GET")
	}
	if r.Header.Get("Sec-Websocket-Version") != "13" {
		return "", errors.New("unsupported websocket version")
	}
	key := r.Header.Get("Sec-Websocket-Key")
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
		return "", errors.New("invalid Sec-WebSocket-Key")
	}
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:]), nil
}

// appendHeader appends the header of an unmasked, final frame of n payload bytes.
func appendHeader(dst []byte, op byte, n int) []byte {
	dst = append(dst, 0x80|op)
	switch {
	case n <= 125:
		return append(dst, byte(n))
	case n <= 0xFFFF:
		return append(dst, 126, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 127), uint64(n))
	}
}

// appendFrame appends one unmasked, final frame.
func appendFrame(dst []byte, op byte, payload []byte) []byte {
	return append(appendHeader(dst, op, len(payload)), payload...)
}

// appendPacketFrame appends p as one websocket message: binary messages as binary frames,
// everything else as a text frame with the type byte first.
func appendPacketFrame(dst []byte, p packet) []byte {
	if p.binary {
		return appendFrame(dst, opBinary, p.data)
	}
	dst = appendHeader(dst, opText, 1+len(p.data))
	dst = append(dst, p.typ)
	return append(dst, p.data...)
}

// closePayload is the body of a close frame.
func closePayload(code int) []byte { return []byte{byte(code >> 8), byte(code)} }

// frameParser parses client frames from bytes as they arrive, in chunks of any size. Between
// chunks it keeps only the bytes of a frame not yet complete and the message being assembled
// from fragments: a connection between messages holds nothing.
type frameParser struct {
	limit int                  // bounds a whole message
	ping  func(payload []byte) // called for each ping (the caller answers with a pong)

	part []byte // an incomplete frame so far; nil between frames
	op   byte   // opcode of a fragmented message under way; 0 when none
	msg  []byte // that message's payload so far
}

// feed parses b, which it does not keep, and passes each complete data message (opText or
// opBinary; msg is the callee's) to emit; emit returning false stops the parse (errStopped).
// A frame breaking RFC 6455 or the limit returns a *wsError, a close frame errPeerClosed; the
// parser is then spent.
func (p *frameParser) feed(b []byte, emit func(op byte, msg []byte) bool) error {
	data := b
	if p.part != nil {
		p.part = append(p.part, b...)
		data = p.part
	}
	for len(data) > 0 {
		n, err := p.frame(data, emit)
		if err != nil {
			p.part, p.msg = nil, nil
			return err
		}
		if n == 0 {
			break
		}
		data = data[n:]
	}
	switch {
	case len(data) == 0:
		p.part = nil
	case p.part == nil:
		p.part = append(make([]byte, 0, len(data)+512), data...)
	case len(data) < len(p.part): // whole frames were taken off the front
		p.part = append(p.part[:0], data...)
	}
	return nil
}

// errStopped is returned by feed when emit asked it to stop.
var errStopped = errors.New("websocket: parse stopped")

// frame parses the frame at the start of data and returns its length, or 0 when data holds
// only part of it (a header over the limit is refused before its payload arrives).
func (p *frameParser) frame(data []byte, emit func(op byte, msg []byte) bool) (int, error) {
	if len(data) < 2 {
		return 0, nil
	}
	fin := data[0]&0x80 != 0
	if data[0]&0x70 != 0 {
		return 0, &wsError{closeProtocol, "reserved bits set"}
	}
	fop := data[0] & 0x0F
	if data[1]&0x80 == 0 {
		return 0, &wsError{closeProtocol, "unmasked client frame"}
	}
	n, hdr := uint64(data[1]&0x7F), 2
	switch n {
	case 126:
		if len(data) < 4 {
			return 0, nil
		}
		n, hdr = uint64(binary.BigEndian.Uint16(data[2:4])), 4
	case 127:
		if len(data) < 10 {
			return 0, nil
		}
		n, hdr = binary.BigEndian.Uint64(data[2:10]), 10
	}
	control := fop >= opClose
	switch {
	case control && (!fin || n > 125):
		return 0, &wsError{closeProtocol, "invalid control frame"}
	case control && fop != opClose && fop != opPing && fop != opPong:
		return 0, &wsError{closeProtocol, "unknown opcode"}
	case control:
	case fop == opContinuation && p.op == 0:
		return 0, &wsError{closeProtocol, "continuation without a message"}
	case fop != opContinuation && p.op != 0:
		return 0, &wsError{closeProtocol, "new message inside a fragmented one"}
	case fop != opContinuation && fop != opText && fop != opBinary:
		return 0, &wsError{closeProtocol, "unknown opcode"}
	case n > uint64(p.limit-len(p.msg)):
		return 0, &wsError{closeMessageTooBig, "message too big"}
	}
	end := hdr + 4 + int(n) // n is at most the limit here
	if len(data) < end {
		return 0, nil
	}
	mask := [4]byte(data[hdr : hdr+4])
	payload := data[hdr+4 : end]
	if control {
		var buf [125]byte
		c := buf[:n]
		unmaskTo(c, payload, mask)
		switch fop {
		case opClose:
			return 0, errPeerClosed
		case opPing:
			if p.ping != nil {
				p.ping(c)
			}
		}
		return end, nil
	}
	if fop != opContinuation {
		p.op = fop
	}
	start := len(p.msg)
	if fin && start == 0 {
		p.msg = make([]byte, n) // the common case: a whole message in one frame, sized exactly
	} else {
		p.msg = append(p.msg, make([]byte, n)...)
	}
	unmaskTo(p.msg[start:], payload, mask)
	if !fin {
		return end, nil
	}
	op, msg := p.op, p.msg
	p.op, p.msg = 0, nil
	if op == opText && !utf8.Valid(msg) {
		return 0, &wsError{closeInvalidData, "text message is not UTF-8"}
	}
	if !emit(op, msg) {
		return 0, errStopped
	}
	return end, nil
}

// unmaskTo writes src unmasked into dst (of the same length).
func unmaskTo(dst, src []byte, mask [4]byte) {
	for i := range src {
		dst[i] = src[i] ^ mask[i&3]
	}
}

func unmask(b []byte, mask [4]byte) {
	for i := range b {
		b[i] ^= mask[i&3]
	}
}

package engineio

// The websocket protocol (RFC 6455), server side, as far as Engine.IO needs it: the opening
// handshake, reading masked client frames (fragments, control frames in between), and writing
// unmasked frames. Written here rather than taken from a websocket library so that every write
// of a connection, data and control frames alike, goes through one lock and one buffer, and a
// batch of packets leaves in one write system call.

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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

// frameReader reads client frames. control is called for each ping (the caller answers with
// a pong); limit bounds a whole message.
type frameReader struct {
	r     *bufio.Reader
	limit int
	ping  func(payload []byte)
}

// readMessage returns the next complete data message (opText or opBinary). The returned
// slice is the caller's.
func (fr *frameReader) readMessage() (op byte, msg []byte, err error) {
	var hdr [14]byte
	op = 0
	for {
		if _, err = io.ReadFull(fr.r, hdr[:2]); err != nil {
			return 0, nil, err
		}
		fin := hdr[0]&0x80 != 0
		if hdr[0]&0x70 != 0 {
			return 0, nil, &wsError{closeProtocol, "reserved bits set"}
		}
		fop := hdr[0] & 0x0F
		if hdr[1]&0x80 == 0 {
			return 0, nil, &wsError{closeProtocol, "unmasked client frame"}
		}
		n := uint64(hdr[1] & 0x7F)
		switch n {
		case 126:
			if _, err = io.ReadFull(fr.r, hdr[2:4]); err != nil {
				return 0, nil, err
			}
			n = uint64(binary.BigEndian.Uint16(hdr[2:4]))
		case 127:
			if _, err = io.ReadFull(fr.r, hdr[2:10]); err != nil {
				return 0, nil, err
			}
			n = binary.BigEndian.Uint64(hdr[2:10])
		}
		var mask [4]byte
		if _, err = io.ReadFull(fr.r, mask[:]); err != nil {
			return 0, nil, err
		}
		if fop >= opClose { // control frame
			if !fin || n > 125 {
				return 0, nil, &wsError{closeProtocol, "invalid control frame"}
			}
			var buf [125]byte
			p := buf[:n]
			if _, err = io.ReadFull(fr.r, p); err != nil {
				return 0, nil, err
			}
			unmask(p, mask)
			switch fop {
			case opClose:
				return 0, nil, errPeerClosed
			case opPing:
				if fr.ping != nil {
					fr.ping(p)
				}
			case opPong:
			default:
				return 0, nil, &wsError{closeProtocol, "unknown opcode"}
			}
			continue
		}
		switch {
		case fop == opContinuation && op == 0:
			return 0, nil, &wsError{closeProtocol, "continuation without a message"}
		case fop != opContinuation && op != 0:
			return 0, nil, &wsError{closeProtocol, "new message inside a fragmented one"}
		case fop != opContinuation && fop != opText && fop != opBinary:
			return 0, nil, &wsError{closeProtocol, "unknown opcode"}
		}
		if fop != opContinuation {
			op = fop
		}
		if n > uint64(fr.limit-len(msg)) {
			return 0, nil, &wsError{closeMessageTooBig, "message too big"}
		}
		start := len(msg)
		msg = append(msg, make([]byte, n)...)
		if _, err = io.ReadFull(fr.r, msg[start:]); err != nil {
			return 0, nil, err
		}
		unmask(msg[start:], mask)
		if fin {
			if op == opText && !utf8.Valid(msg) {
				return 0, nil, &wsError{closeInvalidData, "text message is not UTF-8"}
			}
			return op, msg, nil
		}
	}
}

func unmask(b []byte, mask [4]byte) {
	for i := range b {
		b[i] ^= mask[i&3]
	}
}

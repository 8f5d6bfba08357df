// Package sioparser is Switchboard's Socket.IO v5 packet parser for the Socket.IO server library
// (set with ServerOptions.SetParser). It leaves event arguments as undecoded JSON for the
// protocol to decode once into its own types, writes pre-encoded JSON out as is, and runs the
// events of one connection in arrival order through a bounded queue.
package sioparser

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/switchboard-rtc/switchboard/internal/emitter"
	"github.com/zishang520/engine.io/v2/types"
	"github.com/zishang520/socket.io-go-parser/v2/parser"
)

// DefaultMaxPending is the default bound of a connection's queue.
const DefaultMaxPending = 64

// Parser makes the encoder and the per-connection decoders.
type Parser struct {
	// MaxPending bounds the events of one connection decoded and not yet handled; when it is
	// reached the connection is not read until one is done. Zero: DefaultMaxPending.
	MaxPending int
}

var _ parser.Parser = (*Parser)(nil)

// NewEncoder returns the encoder shared by all connections.
func (p *Parser) NewEncoder() parser.Encoder { return &encoder{fallback: parser.NewEncoder()} }

// NewDecoder returns a decoder for one connection.
func (p *Parser) NewDecoder() parser.Decoder {
	limit := p.MaxPending
	if limit <= 0 {
		limit = DefaultMaxPending
	}
	return &Decoder{q: newQueue(limit)}
}

// Event is what the decoder puts after the event name in an EVENT packet's data
// ([]any{name, *Event}); the library hands both to the socket's listeners, followed by the
// acknowledgement callback when the client asked for one. The listener hands its work to Run,
// or calls Done if it has none: until then the event holds its place in the connection's queue,
// and the events after it wait.
type Event struct {
	Args   []json.RawMessage // the arguments after the name, undecoded
	Binary bool              // the packet was a binary event: its attachments were read and dropped
	turn   *turn
}

// Run runs fn once every event decoded before this one on its connection is done, then ends
// this event's turn. It may return before fn ran: fn then runs on the goroutine that finishes
// the previous event. Once the connection closed, fn runs at once.
func (e *Event) Run(fn func()) {
	if e.turn == nil {
		fn()
		return
	}
	e.turn.run(fn)
}

// Done ends the event's turn, also from inside its fn: the next event of the connection may
// then run, concurrently with what is left of this one. Calling it again does nothing.
func (e *Event) Done() {
	if e.turn != nil {
		e.turn.end()
	}
}

// Decoder decodes one connection's packets. The connection's reader calls Add; Add blocks
// while the connection's queue is full.
type Decoder struct {
	emitter.Emitter // "decoded", to the Socket.IO layer
	q               *queue

	mu        sync.Mutex
	binary    *parser.Packet // a binary packet waiting for its attachments
	remaining uint64         // attachments still to come for binary
}

var _ parser.Decoder = (*Decoder)(nil)

// Errors of Add; the library closes the connection on any of them.
var (
	ErrInvalidPacket = errors.New("sioparser: invalid packet")
	errUnexpected    = errors.New("sioparser: unexpected data")
)

// Add decodes one Engine.IO message: a Socket.IO packet in text, or an attachment of a binary
// packet.
func (d *Decoder) Add(data any) error {
	switch v := data.(type) {
	case string:
		return d.addText([]byte(v))
	case *types.StringBuffer:
		// Copied: the arguments keep slices of it past this call.
		return d.addText(bytes.Clone(v.Bytes()))
	case *strings.Reader:
		b, err := io.ReadAll(v)
		if err != nil {
			return err
		}
		return d.addText(b)
	case []byte, io.Reader:
		return d.addAttachment()
	default:
		return fmt.Errorf("%w: unknown data type %T", errUnexpected, data)
	}
}

func (d *Decoder) addText(b []byte) error {
	d.mu.Lock()
	if d.binary != nil {
		d.mu.Unlock()
		return fmt.Errorf("%w: text while attachments were expected", errUnexpected)
	}
	p, attachments, err := decodePacket(b)
	if err != nil {
		d.mu.Unlock()
		return err
	}
	if attachments > 0 {
		d.binary, d.remaining = p, attachments
		d.mu.Unlock()
		return nil
	}
	d.mu.Unlock()
	return d.emit(p)
}

// addAttachment counts an attachment of the waiting binary packet. Its bytes are not kept:
// the protocol carries no binary data.
func (d *Decoder) addAttachment() error {
	d.mu.Lock()
	if d.binary == nil {
		d.mu.Unlock()
		return fmt.Errorf("%w: an attachment without a binary packet", errUnexpected)
	}
	d.remaining--
	if d.remaining > 0 {
		d.mu.Unlock()
		return nil
	}
	p := d.binary
	d.binary = nil
	d.mu.Unlock()
	return d.emit(p)
}

// emit hands a packet to the library. An event first takes its turn: this is where the
// connection's reader waits when the queue is full.
func (d *Decoder) emit(p *parser.Packet) error {
	if p.Type == parser.EVENT || p.Type == parser.BINARY_EVENT {
		t, err := d.q.take()
		if err != nil {
			return err
		}
		p.Data.([]any)[1].(*Event).turn = t
	}
	d.Emit("decoded", p)
	return nil
}

// Destroy ends the decoder's waits: called by the library when the connection closes.
func (d *Decoder) Destroy() {
	d.q.close()
	d.mu.Lock()
	d.binary = nil
	d.mu.Unlock()
}

// Pending returns the events of this connection decoded and not yet done.
func (d *Decoder) Pending() int { return d.q.pending() }

// reserved are event names the library gives a meaning of its own: a client may not send them.
var reserved = map[string]bool{"connect": true, "connect_error": true, "disconnect": true, "disconnecting": true}

// decodePacket parses <type>[<attachments>-][<nsp>,][<id>][<json>] and returns the packet and
// the number of attachments to follow.
func decodePacket(b []byte) (*parser.Packet, uint64, error) {
	if len(b) == 0 {
		return nil, 0, fmt.Errorf("%w: empty", ErrInvalidPacket)
	}
	p := &parser.Packet{Type: parser.PacketType(b[0]), Nsp: "/"}
	if !p.Type.Valid() {
		return nil, 0, fmt.Errorf("%w: unknown type %q", ErrInvalidPacket, b[0])
	}
	i := 1
	var attachments uint64
	binary := p.Type == parser.BINARY_EVENT || p.Type == parser.BINARY_ACK
	if binary {
		j := bytes.IndexByte(b[i:], '-')
		if j < 1 {
			return nil, 0, fmt.Errorf("%w: attachments", ErrInvalidPacket)
		}
		n, err := strconv.ParseUint(string(b[i:i+j]), 10, 32)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: attachments", ErrInvalidPacket)
		}
		attachments = n
		p.Attachments = &attachments
		i += j + 1
	}
	if i < len(b) && b[i] == '/' {
		j := bytes.IndexByte(b[i:], ',')
		if j < 0 {
			p.Nsp, i = string(b[i:]), len(b)
		} else {
			p.Nsp, i = string(b[i:i+j]), i+j+1
		}
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i > start {
		id, err := strconv.ParseUint(string(b[start:i]), 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: id", ErrInvalidPacket)
		}
		p.Id = &id
	}
	payload := b[i:]
	if err := decodeData(p, payload, binary); err != nil {
		return nil, 0, err
	}
	return p, attachments, nil
}

// decodeData sets p.Data from the packet's JSON as the library expects it per type: the
// handshake's auth object for CONNECT, []any{name, *Event} for events, []any of raw arguments
// for acknowledgements.
func decodeData(p *parser.Packet, payload []byte, binary bool) error {
	if len(payload) > 0 && !json.Valid(payload) {
		return fmt.Errorf("%w: payload is not JSON", ErrInvalidPacket)
	}
	switch p.Type {
	case parser.CONNECT:
		if len(payload) == 0 {
			return nil
		}
		var auth map[string]any
		if json.Unmarshal(payload, &auth) != nil || auth == nil {
			return fmt.Errorf("%w: CONNECT payload must be an object", ErrInvalidPacket)
		}
		p.Data = auth
	case parser.DISCONNECT:
		if len(payload) > 0 {
			return fmt.Errorf("%w: DISCONNECT has no payload", ErrInvalidPacket)
		}
	case parser.CONNECT_ERROR:
		var v any
		if len(payload) > 0 {
			_ = json.Unmarshal(payload, &v) // valid, checked above
		}
		switch v.(type) {
		case map[string]any, string:
			p.Data = v
		default:
			return fmt.Errorf("%w: CONNECT_ERROR payload", ErrInvalidPacket)
		}
	case parser.EVENT, parser.BINARY_EVENT:
		elems, ok := splitArray(payload)
		if !ok || len(elems) == 0 {
			return fmt.Errorf("%w: an event is a non-empty array", ErrInvalidPacket)
		}
		var name string
		if json.Unmarshal(elems[0], &name) != nil || reserved[name] {
			return fmt.Errorf("%w: event name", ErrInvalidPacket)
		}
		p.Data = []any{name, &Event{Args: elems[1:], Binary: binary}}
	case parser.ACK, parser.BINARY_ACK:
		elems, ok := splitArray(payload)
		if !ok {
			return fmt.Errorf("%w: an acknowledgement is an array", ErrInvalidPacket)
		}
		args := make([]any, len(elems))
		for i, e := range elems {
			args[i] = e
		}
		p.Data = args
	}
	return nil
}

// splitArray returns the elements of a JSON array; b must be valid JSON.
func splitArray(b []byte) ([]json.RawMessage, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	var elems []json.RawMessage
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return []json.RawMessage{}, true
	}
	for i < len(b) {
		end := skipValue(b, i)
		elems = append(elems, json.RawMessage(b[i:end:end]))
		i = skipSpace(b, end)
		if i >= len(b) {
			return nil, false
		}
		if b[i] == ']' {
			return elems, true
		}
		i = skipSpace(b, i+1) // the comma
	}
	return nil, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value starting at b[i]; b must be valid JSON.
func skipValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}

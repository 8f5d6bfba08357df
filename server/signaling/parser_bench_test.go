package signaling_test

// What a relayed candidate costs from the Socket.IO text frame to the encoded packets: decode
// the frame, handle the event, encode its acknowledgement and the recipient's event. With
// Switchboard's parser (sioparser) the argument stays JSON until the hub decodes it into its
// type, and the pre-encoded body goes out as is. With the library's parser the argument is a
// map[string]any; the hub takes JSON, so "library" also pays a json.Marshal of the map that
// the former map-based hub did not (docs/benchmarks.md gives that hub's figures).
//
//	go test -run '^$' -bench DecodeHandle -benchmem ./server/signaling/

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zishang520/socket.io-go-parser/v2/parser"

	"github.com/switchboard-rtc/switchboard/server/signaling"
	"github.com/switchboard-rtc/switchboard/server/sioparser"
)

// encConn encodes what the hub emits as the server would send it.
type encConn struct {
	id      string
	enc     parser.Encoder
	emitted atomic.Int64
}

func (c *encConn) ID() string { return c.id }

func (c *encConn) Emit(event string, payload json.RawMessage) {
	_ = c.enc.Encode(&parser.Packet{Type: parser.EVENT, Nsp: "/", Data: []any{event, payload}})
	c.emitted.Add(1)
}

func BenchmarkDecodeHandleCandidate(b *testing.B) {
	for _, name := range []string{"sioparser", "library"} {
		b.Run(name, func(b *testing.B) {
			var p parser.Parser = &sioparser.Parser{}
			if name == "library" {
				p = parser.NewParser()
			}
			enc := p.NewEncoder()
			r := newBenchRig(b)
			caller, answerer := &encConn{id: "c", enc: enc}, &encConn{id: "a", enc: enc}
			r.hubs[0].Connect(caller)
			r.hubs[1].Connect(answerer)
			r.do(b, 0, caller, "join", map[string]any{"room": "r1"})
			r.do(b, 1, answerer, "join", map[string]any{"room": "r1"})
			dec := p.NewDecoder()
			defer dec.Destroy()
			var packet *parser.Packet
			_ = dec.On("decoded", func(args ...any) { packet = args[0].(*parser.Packet) })
			ctx := context.Background()
			frames := make([]string, 1024)
			seq := 1
			b.ReportAllocs()
			for b.Loop() {
				i := seq % len(frames)
				if frames[i] == "" || seq >= len(frames) {
					f, _ := json.Marshal([]any{"candidate", candidatePayload("r1", seq, seq%10)})
					frames[i] = fmt.Sprintf("2%d%s", seq, f)
				}
				if err := dec.Add(frames[i]); err != nil {
					b.Fatal(err)
				}
				var payload json.RawMessage
				switch arg := packet.Data.([]any)[1].(type) {
				case *sioparser.Event:
					payload = arg.Args[0]
					arg.Done()
				default:
					payload, _ = json.Marshal(arg)
				}
				reply, after := r.hubs[0].Handle(ctx, caller, "candidate", payload)
				if reply["ok"] != true {
					b.Fatalf("candidate: %v", reply)
				}
				_ = enc.Encode(&parser.Packet{Type: parser.ACK, Nsp: "/", Id: packet.Id, Data: []any{reply}})
				if after != nil {
					after()
				}
				if n := answerer.emitted.Load(); seq%16 == 0 && n > 0 { // deliveries are asynchronous
					r.do(b, 1, answerer, "ack", map[string]any{"room": "r1", "seq": float64(n)})
				}
				seq++
			}
			// Deliveries are asynchronous: give the last ones a moment.
			for deadline := time.Now().Add(5 * time.Second); answerer.emitted.Load() < int64(seq-1) && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			if got := answerer.emitted.Load(); got < int64(seq-1) {
				b.Fatalf("answerer got %d of %d candidates", got, seq-1)
			}
		})
	}
}

var _ signaling.Conn = (*encConn)(nil)

package sioparser

import (
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zishang520/engine.io/v2/types"
	"github.com/zishang520/socket.io-go-parser/v2/parser"
)

// decodeOne feeds messages to a fresh decoder and returns what it emitted.
func decodeOne(t *testing.T, msgs ...any) ([]*parser.Packet, error) {
	t.Helper()
	d := (&Parser{}).NewDecoder().(*Decoder)
	defer d.Destroy()
	var got []*parser.Packet
	_ = d.On("decoded", func(args ...any) { got = append(got, args[0].(*parser.Packet)) })
	for _, m := range msgs {
		if err := d.Add(m); err != nil {
			return got, err
		}
	}
	return got, nil
}

func TestDecodeEvent(t *testing.T) {
	ps, err := decodeOne(t, types.NewStringBufferString(`2/chat,17["candidate",{"room":"r","seq":2},[1, "a]"] , null]`))
	if err != nil || len(ps) != 1 {
		t.Fatalf("%v %v", ps, err)
	}
	p := ps[0]
	if p.Type != parser.EVENT || p.Nsp != "/chat" || p.Id == nil || *p.Id != 17 {
		t.Fatalf("packet %+v", p)
	}
	data := p.Data.([]any)
	ev := data[1].(*Event)
	if data[0] != "candidate" || ev.Binary || len(ev.Args) != 3 {
		t.Fatalf("data %v %+v", data, ev)
	}
	for i, want := range []string{`{"room":"r","seq":2}`, `[1, "a]"]`, `null`} {
		if string(ev.Args[i]) != want {
			t.Errorf("arg %d: %s, want %s", i, ev.Args[i], want)
		}
	}
}

func TestDecodeOtherPackets(t *testing.T) {
	for _, c := range []struct {
		in   string
		typ  parser.PacketType
		data any
	}{
		{`0`, parser.CONNECT, nil},
		{`0{"token":"x"}`, parser.CONNECT, map[string]any{"token": "x"}},
		{`0/admin,`, parser.CONNECT, nil},
		{`1`, parser.DISCONNECT, nil},
		{`35[{"ok":true}]`, parser.ACK, []any{json.RawMessage(`{"ok":true}`)}},
		{`2["a\"b"]`, parser.EVENT, nil},
		{`2[ "x" ]`, parser.EVENT, nil},
	} {
		ps, err := decodeOne(t, c.in)
		if err != nil || len(ps) != 1 || ps[0].Type != c.typ {
			t.Errorf("%s: %v %v", c.in, ps, err)
			continue
		}
		if c.typ != parser.EVENT && !reflect.DeepEqual(ps[0].Data, c.data) {
			t.Errorf("%s: data %#v, want %#v", c.in, ps[0].Data, c.data)
		}
	}
}

func TestDecodeRefusesMalformedPackets(t *testing.T) {
	for _, in := range []string{
		``, `7`, `2`, `2[]`, `2{}`, `2[1]`, `2["a"`, `2["a",]`, `2["disconnect"]`, `2["connect"]`,
		`0[]`, `0"x"`, `1{}`, `3{}`, `5-["a"]`, `5x-["a"]`, `599999999999-["a"]`, `2 ["a"]x`,
		`299999999999999999999["a"]`, "2[\"a\"]\x00",
	} {
		if ps, err := decodeOne(t, in); err == nil {
			t.Errorf("%q: decoded %+v", in, ps)
		}
	}
}

// Attachments are read and dropped; the event is flagged so the handler refuses it.
func TestBinaryEventIsFlagged(t *testing.T) {
	ps, err := decodeOne(t, `52-["offer",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`,
		types.NewBytesBuffer([]byte{1, 2}), []byte{3})
	if err != nil || len(ps) != 1 {
		t.Fatalf("%v %v", ps, err)
	}
	ev := ps[0].Data.([]any)[1].(*Event)
	if !ev.Binary || ps[0].Type != parser.BINARY_EVENT {
		t.Fatalf("not flagged: %+v", ev)
	}
	// Text where an attachment belongs, and an attachment nobody announced, are errors.
	if _, err := decodeOne(t, `51-["a",{"_placeholder":true,"num":0}]`, `2["b"]`); err == nil {
		t.Error("text during attachments accepted")
	}
	if _, err := decodeOne(t, []byte{1}); err == nil {
		t.Error("stray attachment accepted")
	}
	// Nothing is emitted before the last attachment.
	if ps, err := decodeOne(t, `52-["a",{"_placeholder":true,"num":0}]`, []byte{1}); err != nil || len(ps) != 0 {
		t.Errorf("emitted early: %v %v", ps, err)
	}
}

// What the encoder writes, the library's own decoder reads back the same.
func TestEncoderRoundTrip(t *testing.T) {
	id := uint64(5)
	for _, p := range []*parser.Packet{
		{Type: parser.EVENT, Nsp: "/", Data: []any{"candidate", json.RawMessage(`{"room":"r","seq":1,"x":"\u2028<"}`)}},
		{Type: parser.EVENT, Nsp: "/x", Data: []any{"é\"\n", json.RawMessage(nil), 3}},
		{Type: parser.ACK, Nsp: "/", Id: &id, Data: []any{map[string]any{"ok": false, "error": map[string]any{"code": "bad_request"}}}},
		{Type: parser.CONNECT, Nsp: "/", Data: map[string]any{"sid": "abc"}},
	} {
		bufs := (&Parser{}).NewEncoder().Encode(p)
		if len(bufs) != 1 {
			t.Fatalf("%+v: %d buffers", p, len(bufs))
		}
		lib := parser.NewDecoder()
		var got *parser.Packet
		_ = lib.On("decoded", func(args ...any) { got = args[0].(*parser.Packet) })
		if err := lib.Add(bufs[0].String()); err != nil || got == nil {
			t.Fatalf("%s: %v", bufs[0], err)
		}
		want, _ := json.Marshal(p.Data)
		have, _ := json.Marshal(got.Data)
		if got.Type != p.Type || got.Nsp != p.Nsp || !reflect.DeepEqual(got.Id, p.Id) || !jsonEqual(t, want, have) {
			t.Errorf("sent %+v (%s), read %+v (%s)", p, want, got, have)
		}
	}
	// Binary data goes through the library's encoder: a placeholder and an attachment.
	bufs := (&Parser{}).NewEncoder().Encode(&parser.Packet{Type: parser.EVENT, Nsp: "/", Data: []any{"b", []byte{1}}})
	if len(bufs) != 2 {
		t.Fatalf("binary: %d buffers", len(bufs))
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		t.Fatalf("not JSON: %s / %s", a, b)
	}
	return reflect.DeepEqual(x, y)
}

// decodeN decodes n numbered events on d and returns them in arrival order.
func decodeN(t *testing.T, d *Decoder, n int) []*Event {
	t.Helper()
	var out []*Event
	var mu sync.Mutex
	_ = d.On("decoded", func(args ...any) {
		mu.Lock()
		out = append(out, args[0].(*parser.Packet).Data.([]any)[1].(*Event))
		mu.Unlock()
	})
	for i := range n {
		b, _ := json.Marshal([]any{"e", i})
		if err := d.Add("2" + string(b)); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Handlers handed over in any order run in arrival order, one at a time.
func TestEventsRunInArrivalOrder(t *testing.T) {
	d := (&Parser{MaxPending: 1000}).NewDecoder().(*Decoder)
	defer d.Destroy()
	evs := decodeN(t, d, 500)
	var (
		ran     []int
		running atomic.Int32
		wg      sync.WaitGroup
	)
	wg.Add(len(evs))
	for i := len(evs) - 1; i >= 0; i-- { // handed over last to first
		go evs[i].Run(func() {
			defer wg.Done()
			if running.Add(1) != 1 {
				t.Error("two handlers at once")
			}
			ran = append(ran, i) // no lock: the queue runs one handler at a time (-race checks)
			running.Add(-1)
		})
	}
	wg.Wait()
	for i, n := range ran {
		if n != i {
			t.Fatalf("position %d ran event %d", i, n)
		}
	}
	waitIdle(t, d)
}

// Done from inside a handler lets the next event run while the handler goes on.
func TestDoneLetsTheNextEventRun(t *testing.T) {
	d := (&Parser{}).NewDecoder().(*Decoder)
	defer d.Destroy()
	evs := decodeN(t, d, 3)
	second := make(chan struct{})
	third := make(chan struct{})
	evs[1].Run(func() { close(second) }) // parked behind 0
	evs[2].Run(func() { close(third) })
	evs[0].Run(func() {
		select {
		case <-second:
			t.Error("event 1 ran before 0 let it")
		default:
		}
		evs[0].Done()
		<-second // would deadlock if 1 waited for this handler to return
		<-third
	})
	waitIdle(t, d)
}

// A full queue blocks Add until an event finishes; Destroy ends the wait.
func TestFullQueueBlocksAdd(t *testing.T) {
	d := (&Parser{MaxPending: 3}).NewDecoder().(*Decoder)
	evs := decodeN(t, d, 3)
	later := make(chan *Event, 3)
	_ = d.On("decoded", func(args ...any) { later <- args[0].(*parser.Packet).Data.([]any)[1].(*Event) })
	added := make(chan error, 1)
	go func() { added <- d.Add(`2["e",3]`) }()
	select {
	case err := <-added:
		t.Fatalf("a fourth event was decoded with three pending: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	evs[1].Done() // nothing to run: finished, though it keeps its place behind 0
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	ran2 := make(chan struct{})
	evs[2].Run(func() { close(ran2) }) // parked: 0 is not done
	select {
	case <-ran2:
		t.Fatal("event 2 ran before event 0 was done")
	case <-time.After(50 * time.Millisecond):
	}
	evs[0].Done() // 0 and 1 leave the line; 2 runs
	<-ran2
	waitPending(t, d, 1) // event 3
	for _, m := range []string{`2["e",4]`, `2["e",5]`} {
		if err := d.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	go func() { added <- d.Add(`2["e",6]`) }()
	select {
	case err := <-added:
		t.Fatalf("decoded past the bound: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	d.Destroy()
	if err := <-added; !errors.Is(err, ErrClosed) {
		t.Fatalf("after Destroy: %v", err)
	}
	// Once the connection is gone, handlers run at once, whatever is before them.
	ran := make(chan struct{})
	(<-later).Run(func() { close(ran) })
	<-ran
}

// A handler that ends its turn early stays counted until it returns: the bound is on events
// not finished.
func TestEndedHandlerStillCounts(t *testing.T) {
	d := (&Parser{MaxPending: 2}).NewDecoder().(*Decoder)
	defer d.Destroy()
	evs := decodeN(t, d, 2)
	release, hold := make(chan struct{}), make(chan struct{})
	go evs[0].Run(func() {
		evs[0].Done()
		close(release)
		<-hold
	})
	<-release
	ran1 := make(chan struct{})
	evs[1].Run(func() { close(ran1) }) // due: 0 ended its turn
	<-ran1
	added := make(chan error, 1)
	go func() { added <- d.Add(`2["e",2]`) }()
	go func() { added <- d.Add(`2["e",3]`) }()
	if err := <-added; err != nil { // 1 finished: room for one
		t.Fatal(err)
	}
	select {
	case err := <-added:
		t.Fatalf("decoded past the bound while 0 still ran: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(hold)
	if err := <-added; err != nil {
		t.Fatal(err)
	}
}

// waitIdle waits until no turn is pending: the last one ends right after its handler returns.
func waitIdle(t *testing.T, d *Decoder) { t.Helper(); waitPending(t, d, 0) }

func waitPending(t *testing.T, d *Decoder, n int) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); d.Pending() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pending %d", d.Pending())
		}
	}
}

package emitter

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zishang520/engine.io/v2/types"
)

type recv struct{ got []string }

func (r *recv) data(a ...any)  { r.got = append(r.got, "data:"+a[0].(string)) }
func (r *recv) close(a ...any) { r.got = append(r.got, "close:"+a[0].(string)) }

// The emitter behaves as the library's does for what the Socket.IO layer does with
// it: listeners in order, Once once, removal by method value.
func TestEmitter(t *testing.T) {
	var e Emitter
	r1, r2 := &recv{}, &recv{}
	_ = e.On("data", r1.data)
	_ = e.On("data", r2.data)
	_ = e.Once("close", r1.close)
	e.Emit("data", "a")
	e.Emit("close", "x")
	e.Emit("close", "y")
	if len(r1.got) != 2 || r1.got[0] != "data:a" || r1.got[1] != "close:x" || len(r2.got) != 1 {
		t.Fatalf("r1 %v, r2 %v", r1.got, r2.got)
	}
	if e.ListenerCount("data") != 2 || e.ListenerCount("close") != 0 || e.Len() != 1 {
		t.Fatalf("counts %d %d %d", e.ListenerCount("data"), e.ListenerCount("close"), e.Len())
	}
	// As in the library, a method value matches by its code: the first such listener goes.
	if !e.RemoveListener("data", r2.data) || e.ListenerCount("data") != 1 {
		t.Fatal("RemoveListener")
	}
	e.Emit("data", "b")
	if len(r2.got) != 2 || r2.got[1] != "data:b" {
		t.Fatalf("r2 %v: the first listener should have been removed", r2.got)
	}
	if !e.RemoveAllListeners("data") || e.Len() != 0 || e.RemoveListener("data", r1.data) {
		t.Fatal("RemoveAllListeners")
	}
	// A listener may add and remove listeners while it runs.
	var n int
	var again types.Listener
	again = func(...any) { n++; _ = e.Once("x", again) }
	_ = e.Once("x", again)
	e.Emit("x")
	e.Emit("x")
	if n != 2 {
		t.Fatalf("re-added Once ran %d times", n)
	}
	// Once fires once under concurrent emits.
	var fired atomic.Int32
	_ = e.Once("c", func(...any) { fired.Add(1) })
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); e.Emit("c") }()
	}
	wg.Wait()
	if fired.Load() != 1 {
		t.Fatalf("Once fired %d times", fired.Load())
	}
	e.Clear()
	if e.Len() != 0 || len(e.EventNames()) != 0 {
		t.Fatal("Clear")
	}
}

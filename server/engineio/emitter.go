package engineio

import (
	"reflect"
	"slices"
	"sync"

	"github.com/zishang520/engine.io/v2/types"
)

// emitter is a session's event emitter (types.EventEmitter). The Socket.IO layer adds three
// listeners to each session ("data", "error", "close") and removes them when it lets the
// session go; they live in one small slice here, where the library's emitter keeps a
// concurrent map and a slice per event: about 1 KB per idle connection.
type emitter struct {
	mu sync.Mutex
	ls []listener
}

type listener struct {
	evt  types.EventName
	fn   types.Listener
	ptr  uintptr // the function's code pointer: RemoveListener matches on it, as the library's emitter does
	once bool
}

func (e *emitter) add(evt types.EventName, once bool, fns []types.Listener) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, fn := range fns {
		if fn != nil {
			e.ls = append(e.ls, listener{evt, fn, reflect.ValueOf(fn).Pointer(), once})
		}
	}
}

// AddListener adds fns for evt; On is the same.
func (e *emitter) AddListener(evt types.EventName, fns ...types.Listener) error {
	e.add(evt, false, fns)
	return nil
}

func (e *emitter) On(evt types.EventName, fns ...types.Listener) error {
	e.add(evt, false, fns)
	return nil
}

// Once adds fns for evt, each removed before its first call.
func (e *emitter) Once(evt types.EventName, fns ...types.Listener) error {
	e.add(evt, true, fns)
	return nil
}

// Emit calls evt's listeners in the order they were added, outside the lock (a listener may
// add or remove listeners).
func (e *emitter) Emit(evt types.EventName, args ...any) {
	var buf [4]types.Listener
	fns := buf[:0]
	e.mu.Lock()
	kept := e.ls[:0]
	for _, l := range e.ls {
		if l.evt == evt {
			fns = append(fns, l.fn)
			if l.once {
				continue
			}
		}
		kept = append(kept, l)
	}
	clear(e.ls[len(kept):])
	e.ls = kept
	e.mu.Unlock()
	for _, fn := range fns {
		fn(args...)
	}
}

// EventNames lists the events that have listeners.
func (e *emitter) EventNames() []types.EventName {
	e.mu.Lock()
	defer e.mu.Unlock()
	var names []types.EventName
	for _, l := range e.ls {
		if !slices.Contains(names, l.evt) {
			names = append(names, l.evt)
		}
	}
	return names
}

// ListenerCount is the number of evt's listeners.
func (e *emitter) ListenerCount(evt types.EventName) int {
	return len(e.Listeners(evt))
}

// Listeners returns evt's listeners.
func (e *emitter) Listeners(evt types.EventName) []types.Listener {
	e.mu.Lock()
	defer e.mu.Unlock()
	var fns []types.Listener
	for _, l := range e.ls {
		if l.evt == evt {
			fns = append(fns, l.fn)
		}
	}
	return fns
}

// RemoveListener removes the first of evt's listeners with fn's code.
func (e *emitter) RemoveListener(evt types.EventName, fn types.Listener) bool {
	if fn == nil {
		return false
	}
	ptr := reflect.ValueOf(fn).Pointer()
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, l := range e.ls {
		if l.evt == evt && l.ptr == ptr {
			e.ls = slices.Delete(e.ls, i, i+1)
			return true
		}
	}
	return false
}

// RemoveAllListeners removes evt's listeners.
func (e *emitter) RemoveAllListeners(evt types.EventName) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := len(e.ls)
	e.ls = slices.DeleteFunc(e.ls, func(l listener) bool { return l.evt == evt })
	return len(e.ls) < n
}

// Clear removes every listener.
func (e *emitter) Clear() {
	e.mu.Lock()
	e.ls = nil
	e.mu.Unlock()
}

// Len is the number of events that have listeners.
func (e *emitter) Len() int { return len(e.EventNames()) }

// GetMaxListeners and SetMaxListeners are part of types.EventEmitter; there is no limit.
func (e *emitter) GetMaxListeners() uint { return 0 }
func (e *emitter) SetMaxListeners(uint)  {}

var _ types.EventEmitter = (*emitter)(nil)

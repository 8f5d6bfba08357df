// Package emitter is a small event emitter for the Socket.IO layer's per-connection objects
// (an Engine.IO session, a packet decoder). The layer adds a few listeners to each and removes
// them when it lets the connection go; they live in one slice here, where the library's
// emitter (types.EventEmitter) keeps a concurrent map and a slice per event: about 1 KB per
// idle connection each.
package emitter

import (
	"reflect"
	"slices"
	"sync"

	"github.com/zishang520/engine.io/v2/types"
)

// Emitter is a types.EventEmitter with the library's semantics for what the Socket.IO layer
// does with one: listeners in the order added, Once removed before its call, a listener removed
// by its function's code (so a method value matches). The zero value is ready to use.
type Emitter struct {
	mu sync.Mutex
	ls []listener
}

type listener struct {
	evt  types.EventName
	fn   types.Listener
	ptr  uintptr // the function's code pointer: RemoveListener matches on it, as the library's emitter does
	once bool
}

func (e *Emitter) add(evt types.EventName, once bool, fns []types.Listener) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, fn := range fns {
		if fn != nil {
			e.ls = append(e.ls, listener{evt, fn, reflect.ValueOf(fn).Pointer(), once})
		}
	}
}

// AddListener adds fns for evt; On is the same.
func (e *Emitter) AddListener(evt types.EventName, fns ...types.Listener) error {
	e.add(evt, false, fns)
	return nil
}

func (e *Emitter) On(evt types.EventName, fns ...types.Listener) error {
	e.add(evt, false, fns)
	return nil
}

// Once adds fns for evt, each removed before its first call.
func (e *Emitter) Once(evt types.EventName, fns ...types.Listener) error {
	e.add(evt, true, fns)
	return nil
}

// Emit calls evt's listeners in the order they were added, outside the lock (a listener may
// add or remove listeners).
func (e *Emitter) Emit(evt types.EventName, args ...any) {
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
func (e *Emitter) EventNames() []types.EventName {
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
func (e *Emitter) ListenerCount(evt types.EventName) int {
	return len(e.Listeners(evt))
}

// Listeners returns evt's listeners.
func (e *Emitter) Listeners(evt types.EventName) []types.Listener {
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
func (e *Emitter) RemoveListener(evt types.EventName, fn types.Listener) bool {
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
func (e *Emitter) RemoveAllListeners(evt types.EventName) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := len(e.ls)
	e.ls = slices.DeleteFunc(e.ls, func(l listener) bool { return l.evt == evt })
	return len(e.ls) < n
}

// Clear removes every listener.
func (e *Emitter) Clear() {
	e.mu.Lock()
	e.ls = nil
	e.mu.Unlock()
}

// Len is the number of events that have listeners.
func (e *Emitter) Len() int { return len(e.EventNames()) }

// GetMaxListeners and SetMaxListeners are part of types.EventEmitter; there is no limit.
func (e *Emitter) GetMaxListeners() uint { return 0 }
func (e *Emitter) SetMaxListeners(uint)  {}

var _ types.EventEmitter = (*Emitter)(nil)

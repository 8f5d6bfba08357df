package signaling

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/store"
)

// setSweeper is a store whose timers are in sets that can fail apart (store.Redis on a Cluster):
// the hub holds back only the sets it could not sweep or renew.
type setSweeper interface {
	SweepSets(ctx context.Context, now time.Time, limit int, held func(set string) bool) (int, error)
}

// allSets stands for every timer set: a store error that names no set (or a store without
// sets) holds them all.
const allSets = ""

const (
	sweepFailed = 1 << iota
	renewFailed
)

// holds tracks the timer sets whose timers must not fire yet: a set the store could not sweep or
// renew leases in is held while it fails, and then for renewHold, so every instance that could
// not renew its members' leases in it renews them before they fire.
type holds struct {
	mu     sync.Mutex
	failed map[string]int       // set → sweepFailed|renewFailed
	until  map[string]time.Time // set reachable again → when its timers may fire
}

func newHolds() *holds {
	return &holds{failed: map[string]int{}, until: map[string]time.Time{}}
}

// held reports whether set's timers are held back at now.
func (h *holds) held(set string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range []string{allSets, set} {
		if h.failed[s] != 0 || now.Before(h.until[s]) {
			return true
		}
	}
	return false
}

// report records the outcome of a sweep or renewal (flag sweepFailed or renewFailed): the sets
// err names failed (every set, if it names none), the others that had failed this way are
// reachable again. A set that no longer fails either way is held until now+hold. It returns how
// many sets began to fail and how many stopped.
func (h *holds) report(flag int, err error, now time.Time, hold time.Duration) (failing, recovered int) {
	failed := map[string]bool{}
	var serr *store.SetsError
	switch {
	case err == nil:
	case errors.As(err, &serr):
		for _, s := range serr.Sets {
			failed[s] = true
		}
	default:
		failed[allSets] = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range failed {
		if h.failed[s] == 0 {
			failing++
		}
		h.failed[s] |= flag
		delete(h.until, s)
	}
	for s, f := range h.failed {
		if failed[s] || f&flag == 0 {
			continue
		}
		if f &^= flag; f != 0 {
			h.failed[s] = f
			continue
		}
		delete(h.failed, s)
		h.until[s] = now.Add(hold)
		recovered++
	}
	return failing, recovered
}

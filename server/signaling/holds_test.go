package signaling

import (
	"errors"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/store"
)

// A set that could not be swept or renewed is held alone, until both work again and then for
// the hold; an error naming no set holds them all.
func TestHoldsPerSet(t *testing.T) {
	h := newHolds()
	t0 := time.Unix(1000, 0)
	hold := time.Second
	down := &store.SetsError{Sets: []string{"a"}, Err: errors.New("down")}
	check := func(at time.Time, want map[string]bool) {
		t.Helper()
		for set, held := range want {
			if got := h.held(set, at); got != held {
				t.Fatalf("at %v: held(%s) = %v, want %v", at.Sub(t0), set, got, held)
			}
		}
	}
	if failing, _ := h.report(sweepFailed, down, t0, hold); failing != 1 {
		t.Fatalf("%d sets began to fail, want 1", failing)
	}
	if failing, _ := h.report(renewFailed, down, t0, hold); failing != 0 {
		t.Fatalf("%d sets began to fail again, want 0", failing)
	}
	check(t0, map[string]bool{"a": true, "b": false})
	h.report(sweepFailed, nil, t0.Add(time.Second), hold) // a readable again, its leases not yet renewed
	check(t0.Add(5*time.Second), map[string]bool{"a": true, "b": false})
	if _, recovered := h.report(renewFailed, nil, t0.Add(6*time.Second), hold); recovered != 1 {
		t.Fatalf("%d sets recovered, want 1", recovered)
	}
	check(t0.Add(6*time.Second+hold/2), map[string]bool{"a": true, "b": false})
	check(t0.Add(6*time.Second+hold), map[string]bool{"a": false, "b": false})

	h.report(sweepFailed, errors.New("no set named"), t0.Add(10*time.Second), hold)
	check(t0.Add(10*time.Second), map[string]bool{"a": true, "b": true})
	h.report(sweepFailed, &store.SetsError{Sets: []string{"b"}, Err: errors.New("b down")}, t0.Add(11*time.Second), hold)
	check(t0.Add(11*time.Second+hold), map[string]bool{"a": false, "b": true})
}

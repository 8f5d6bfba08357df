package main

import (
	"testing"
	"time"
)

func TestRetryWait(t *testing.T) {
	bases := []time.Duration{1, 2, 4, 8, 8, 8} // seconds, per resend
	for n, base := range bases {
		base *= time.Second
		lo, hi := base, time.Duration(0)
		for range 2000 {
			w := retryWait(n+1, time.Second, 8*time.Second)
			lo, hi = min(lo, w), max(hi, w)
		}
		if lo < base/2 || hi > base {
			t.Errorf("resend %d: waits %v..%v, want within %v..%v", n+1, lo, hi, base/2, base)
		}
		if hi-lo < base/4 {
			t.Errorf("resend %d: waits %v..%v hardly vary", n+1, lo, hi)
		}
	}
}

func TestRetriedLeaveAnsweredNotJoinedSucceeds(t *testing.T) {
	for _, c := range []struct {
		event  string
		resent int
		ok     bool
	}{{"leave", 1, true}, {"leave", 0, false}, {"offer", 1, false}} {
		r := &request{s: &side{g: &gen{}}, event: c.event, resent: c.resent, doneCh: make(chan struct{})}
		r.onReply([]byte(`{"ok":false,"error":{"code":"not_joined","message":"not in room r"}}`))
		<-r.doneCh
		if r.reply.OK != c.ok {
			t.Errorf("%s resent %d times, answered not_joined: ok=%v, want %v", c.event, c.resent, r.reply.OK, c.ok)
		}
	}
}

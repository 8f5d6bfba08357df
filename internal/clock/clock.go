// Package clock holds the waiting the background loops share.
package clock

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx is done; false when ctx ended the wait.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

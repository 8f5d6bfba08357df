package server_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The Socket.IO library (zishang520/socket.io v2.5.0) starts a connect timer in
		// Client.setup after it starts reading packets; when a CONNECT is handled in between,
		// the timer is never cleared and its goroutine waits it out, then does nothing. It is
		// the library's, bounded by SWITCHBOARD_CONNECT_TIMEOUT, and not ours to stop.
		goleak.IgnoreTopFunction("github.com/zishang520/engine.io/v2/utils.SetTimeout.func1"),
	)
}

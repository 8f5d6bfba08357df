package sioclient

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// zishang520/socket.io v2.5.0 starts a 45 s connect timer (engine.io utils.SetTimeout) in
		// Client.setup after it starts listening for packets; when the client's CONNECT is
		// handled in between, the timer is never cleared, and its goroutine waits out the 45 s
		// and then does nothing. It belongs to the server library under test, not to this package.
		goleak.IgnoreTopFunction("github.com/zishang520/engine.io/v2/utils.SetTimeout.func1"),
	)
}

package store_test

import (
	"testing"

	"github.com/switchboard-rtc/switchboard/store"
	"github.com/switchboard-rtc/switchboard/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T, opts store.Options) store.Store {
		s := store.NewMemory(opts)
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestMemoryOutbox(t *testing.T) {
	storetest.RunOutbox(t, func(t *testing.T, opts store.Options) (store.Store, storetest.Outbox) {
		s := store.NewMemory(opts)
		return s, s.Outbox()
	})
}

package store_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/redistest"
	"github.com/switchboard-rtc/switchboard/store"
	"github.com/switchboard-rtc/switchboard/store/storetest"
)

// openURL opens a store on url under a fresh prefix, closed when t ends.
func openURL(t *testing.T, url string, opts store.Options) *store.Redis {
	t.Helper()
	opts.Prefix = fmt.Sprintf("sbtest:%016x:", rand.Uint64())
	s, err := store.OpenRedis(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestRedisDeployments runs the contract suite on a real Cluster (3 masters, 3 replicas) and a
// real Sentinel set (master, replica, 3 sentinels), each opened from its REDIS_URL.
func TestRedisDeployments(t *testing.T) {
	t.Parallel()
	for _, d := range []struct {
		name  string
		start func(testing.TB) string
	}{
		{"cluster", func(tb testing.TB) string { return redistest.StartCluster(tb).URL() }},
		{"sentinel", func(tb testing.TB) string { return redistest.StartSentinel(tb).URL() }},
	} {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			url := d.start(t)
			storetest.Run(t, func(t *testing.T, opts store.Options) store.Store {
				return openURL(t, url, opts)
			})
		})
	}
}

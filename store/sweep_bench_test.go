package store_test

// The cost of one idle sweep (nothing due) and of one lease renewal of 100 members, on the
// shared Redis and on a Cluster of 3 masters (started by the benchmark). Every instance sweeps
// once per SWITCHBOARD_SWEEP_INTERVAL.
//
//	go test -run '^$' -bench 'Sweep|Renew' -benchtime 200x ./store/

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/redistest"
	"github.com/switchboard-rtc/switchboard/store"
	"github.com/switchboard-rtc/switchboard/store/storetest"
)

func BenchmarkSweepAndRenew(b *testing.B) {
	single, _, _ := storetest.Redis(b, store.Options{})
	c := redistest.StartCluster(b)
	b.Cleanup(redistest.WaitRedials)
	cluster, err := store.OpenRedis(c.URL(), store.Options{Prefix: fmt.Sprintf("sbbench:%016x:", rand.Uint64())})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cluster.Close() })
	ctx := context.Background()
	leases := make([]store.Lease, 100)
	for i := range leases {
		leases[i] = store.Lease{Room: fmt.Sprintf("r%d", i), Peer: "p", Gen: 1}
	}
	for _, d := range []struct {
		name string
		st   *store.Redis
	}{{"single", single}, {"cluster", cluster}} {
		b.Run("sweep/"+d.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := d.st.Sweep(ctx, time.UnixMilli(1), 100); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("renew100/"+d.name, func(b *testing.B) {
			for b.Loop() {
				if err := d.st.Renew(ctx, leases, time.UnixMilli(1)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package store_test

// The cost of Options.WaitReplicas: a relayed candidate on a master with one replica (both
// started by the benchmark), without WAIT and with WAIT 1.
//
//	go test -run '^$' -bench SendWait -benchtime 2000x ./store/

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/redistest"
	"github.com/switchboard-rtc/switchboard/store"
)

func BenchmarkSendWait(b *testing.B) {
	master, _ := redistest.StartReplicated(b)
	for _, n := range []int{0, 1} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			st, err := store.OpenRedis("redis://"+master.Addr, store.Options{
				Prefix: fmt.Sprintf("sbbench:%016x:", rand.Uint64()), WaitReplicas: n})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = st.Close() })
			p := newPair(b, st)
			body := benchCandidate(p.caller, 1)
			b.ReportAllocs()
			for b.Loop() {
				p.relay(b, st, body)
			}
		})
	}
}

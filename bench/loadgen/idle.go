package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"text/tabwriter"
	"time"
)

// idlePoint is one measurement of the server with some connections open.
type idlePoint struct {
	Conns      int   `json:"conns"`
	RSS        int64 `json:"rss_bytes"`
	Heap       int64 `json:"heap_bytes"`
	Goroutines int64 `json:"goroutines,omitempty"`
}

type idleReport struct {
	Mode          string           `json:"mode"`
	Label         string           `json:"label,omitempty"`
	Phase         string           `json:"phase,omitempty"`
	Addr          string           `json:"addr"`
	Points        []idlePoint      `json:"points"`
	RSSPerConn    float64          `json:"rss_per_conn_bytes"`  // least-squares slope over the steps
	HeapPerConn   float64          `json:"heap_per_conn_bytes"` // same, for the runtime's heap
	GoroutinesPer float64          `json:"goroutines_per_conn,omitempty"`
	RSSAt100k     float64          `json:"rss_projected_100k_bytes"`
	RestCPUPct    float64          `json:"rest_cpu_pct"` // server CPU with every connection idle
	RestS         float64          `json:"rest_s"`
	ConnectS      float64          `json:"connect_s"`
	ConnectPerS   float64          `json:"connects_per_s"`
	DialRetries   int64            `json:"dial_retries"`
	HeapSource    string           `json:"heap_source,omitempty"`
	Errors        map[string]int64 `json:"errors,omitempty"`
}

func (g *gen) runIdle(ctx context.Context) (*idleReport, error) {
	cfg := g.cfg
	if len(cfg.serverPids) == 0 {
		return nil, errors.New("idle mode needs -server-pids (the first one is measured)")
	}
	pid := cfg.serverPids[0]
	rep := &idleReport{Mode: "idle", Label: cfg.label, Phase: cfg.phase, Addr: cfg.addrs[0]}
	measure := func(n int) error {
		if !sleepUntil(ctx, time.Now().Add(cfg.settle)) {
			return ctx.Err()
		}
		rs, err := readRuntime(ctx, g.bases[0])
		if err != nil {
			g.errs.add("runtime stats: " + shortErr(err))
		}
		rep.HeapSource = rs.Source
		p, err := readProc(pid)
		if err != nil {
			return fmt.Errorf("server pid %d: %w", pid, err)
		}
		pt := idlePoint{Conns: n, RSS: p.RSS, Heap: rs.Heap, Goroutines: rs.Goroutines}
		rep.Points = append(rep.Points, pt)
		fmt.Fprintf(os.Stderr, "loadgen: %s: %6d connections: RSS %7.1f MiB, heap %7.1f MiB, goroutines %d\n",
			cfg.label, n, float64(pt.RSS)/(1<<20), float64(pt.Heap)/(1<<20), pt.Goroutines)
		return nil
	}

	var mu sync.Mutex
	var sides []*side
	defer func() {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 256)
		for _, s := range sides {
			sem <- struct{}{}
			wg.Add(1)
			go func() { defer func() { <-sem; wg.Done() }(); s.conn.close() }()
		}
		wg.Wait()
	}()
	if err := measure(0); err != nil {
		return nil, err
	}
	var connectTime time.Duration
	for _, step := range cfg.idleSteps {
		t := time.Now()
		sem := make(chan struct{}, cfg.dialPar)
		var wg sync.WaitGroup
		var first error
		for i := len(sides); i < step; i++ {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				s, err := g.idleConn(ctx, i)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if first == nil {
						first = err
					}
					return
				}
				sides = append(sides, s)
			}()
			mu.Lock()
			stop := first != nil
			mu.Unlock()
			if stop || ctx.Err() != nil {
				break
			}
		}
		wg.Wait()
		connectTime += time.Since(t)
		if first != nil {
			return rep, fmt.Errorf("opening connection %d: %w", len(sides)+1, first)
		}
		if err := measure(len(sides)); err != nil {
			return rep, err
		}
	}
	rep.ConnectS = connectTime.Seconds()
	if rep.ConnectS > 0 {
		rep.ConnectPerS = float64(len(sides)) / rep.ConnectS
	}
	// CPU at rest: every connection open and idle (heartbeats and lease renewals only).
	m := startCPU([]int{pid})
	if !sleepUntil(ctx, time.Now().Add(cfg.idleRest)) {
		return rep, ctx.Err()
	}
	per, wall := m.stop()
	rep.RestCPUPct, rep.RestS = 100*per[0]/wall.Seconds(), wall.Seconds()

	var xs, rss, heap, gor []float64
	for _, p := range rep.Points[1:] {
		xs = append(xs, float64(p.Conns))
		rss = append(rss, float64(p.RSS))
		heap = append(heap, float64(p.Heap))
		gor = append(gor, float64(p.Goroutines))
	}
	if len(xs) == 1 { // one step: measure against the empty server
		p0 := rep.Points[0]
		xs = append(xs, 0)
		rss = append(rss, float64(p0.RSS))
		heap = append(heap, float64(p0.Heap))
		gor = append(gor, float64(p0.Goroutines))
	}
	var b float64
	rep.RSSPerConn, b = linearFit(xs, rss)
	rep.RSSAt100k = b + rep.RSSPerConn*100000
	rep.HeapPerConn, _ = linearFit(xs, heap)
	rep.GoroutinesPer, _ = linearFit(xs, gor)
	rep.DialRetries = g.dialRetries.load()
	rep.Errors = g.errs.snapshot()
	rep.print(os.Stderr)
	return rep, nil
}

// idleConn opens one connection on the first instance and joins a room of its own.
func (g *gen) idleConn(ctx context.Context, i int) (*side, error) {
	dctx, cancel := context.WithTimeout(ctx, g.cfg.callTimeout)
	defer cancel()
	c, attempts, err := dial(dctx, g.dialer, g.urls[0], g.cfg.attempt, nil, nil)
	g.dialRetries.add(int64(attempts - 1))
	if err != nil {
		return nil, err
	}
	s := newSide(g, c, 0)
	s.reset(fmt.Sprintf("%s-idle-%d", g.runID, i))
	if _, err := s.join(dctx); err != nil {
		c.close()
		return nil, fmt.Errorf("join: %w", err)
	}
	return s, nil
}

func (r *idleReport) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "== %s: idle websocket connections on %s (each joined a room)\n", r.Label, r.Addr)
	fmt.Fprintf(tw, "conns\tRSS MiB\theap MiB\tgoroutines\t\n")
	for _, p := range r.Points {
		fmt.Fprintf(tw, "%d\t%.1f\t%.1f\t%d\t\n", p.Conns, float64(p.RSS)/(1<<20), float64(p.Heap)/(1<<20), p.Goroutines)
	}
	tw.Flush()
	fmt.Fprintf(w, "per connection: RSS %.1f KB, heap %.1f KB, goroutines %.2f; RSS projected at 100k: %.2f GiB\n",
		r.RSSPerConn/1000, r.HeapPerConn/1000, r.GoroutinesPer, r.RSSAt100k/(1<<30))
	fmt.Fprintf(w, "CPU at rest: %.2f%% of one core over %.0fs; connect rate %.0f/s (%d handshake retries)\n",
		r.RestCPUPct, r.RestS, r.ConnectPerS, r.DialRetries)
	for k, v := range r.Errors {
		fmt.Fprintf(w, "  error %d: %s\n", v, k)
	}
}

package main

// Churn mode: many short-lived connections, each joining a fresh room, leaving it and
// disconnecting, then a check that the server is back where it was: no more goroutines and no
// more heap than after a warm-up, no connection or membership left behind.
//
// The cycles rotate over three kinds, so the held-offer state is exercised as well:
//
//	solo  one connection joins, leaves, disconnects
//	held  one connection joins, offers and sends two candidates (held), leaves (dropping them)
//	pair  a caller joins and holds an offer and two candidates; an answerer joins on a second
//	      connection, receives them, answers; the answerer leaves, then the caller; both disconnect
//
// The server is read at three points: before any cycle, after the warm-up cycles, and after the
// measured cycles. Before each reading the load generator waits until /metrics says no
// connection and no membership is left, then makes the server collect garbage: through
// /debug/pprof/heap?gc=1 when the server serves it (bench/sbserver), else by scraping /metrics
// (each scrape allocates) until the runtime has finished two more collections.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-rtc/switchboard/store"
)

// churnPoint is one reading of the server at rest.
type churnPoint struct {
	Goroutines  int64   `json:"goroutines"`
	HeapInuse   int64   `json:"heap_inuse_bytes"`
	HeapAlloc   int64   `json:"heap_alloc_bytes"`
	Connections int64   `json:"connections"`
	Members     int64   `json:"members"`
	Rooms       int64   `json:"rooms"`
	GCs         int64   `json:"gc_cycles"`
	GC          string  `json:"gc"`                   // how the collection was made: pprof or scrape
	SettleS     float64 `json:"settle_s"`             // from the last cycle to this reading
	RedisKeys   *int64  `json:"redis_keys,omitempty"` // with -redis-url: keys under the prefix
	RedisTimers *int64  `json:"redis_timers,omitempty"`
}

type churnReport struct {
	Mode         string           `json:"mode"`
	Label        string           `json:"label,omitempty"`
	Phase        string           `json:"phase,omitempty"`
	Addr         string           `json:"addr"`
	Sources      []string         `json:"sources,omitempty"`
	Concurrency  int              `json:"concurrency"`
	WarmupCycles int              `json:"warmup_cycles"`
	Cycles       int              `json:"cycles"`
	Completed    int64            `json:"cycles_completed"`
	Failed       int64            `json:"cycles_failed"`
	Kinds        map[string]int64 `json:"kinds"` // completed measured cycles by kind
	Conns        int64            `json:"conns"` // connections opened by the measured cycles
	RunS         float64          `json:"run_s"`
	CyclesPerS   float64          `json:"cycles_per_s"`
	ConnsPerS    float64          `json:"conns_per_s"`
	DialRetries  int64            `json:"dial_retries"`
	Retries      int64            `json:"retries"`
	Before       churnPoint       `json:"before"`
	Warm         churnPoint       `json:"after_warmup"`
	After        churnPoint       `json:"after"`

	GoroutineGrowth  int64   `json:"goroutine_growth"` // after - after_warmup
	HeapGrowth       int64   `json:"heap_growth_bytes"`
	HeapPerCycle     float64 `json:"heap_growth_per_cycle_bytes"`
	MaxGoroutineGrow int64   `json:"max_goroutine_growth"`
	MaxHeapGrowth    int64   `json:"max_heap_growth_bytes"`
	RedisKeyGrowth   *int64  `json:"redis_key_growth,omitempty"`
	MaxRedisKeyGrow  int64   `json:"max_redis_key_growth,omitempty"`

	OK       bool             `json:"ok"`
	Problems []string         `json:"problems,omitempty"`
	Errors   map[string]int64 `json:"errors,omitempty"`
}

// churnKinds is the rotation of cycle kinds.
var churnKinds = []string{"solo", "held", "pair"}

// churnMaxFailures ends a run early: once this many cycles failed the verdict is known.
const churnMaxFailures = 100

func (g *gen) runChurn(ctx context.Context) (*churnReport, error) {
	cfg := g.cfg
	base := g.bases[0]
	rep := &churnReport{
		Mode: "churn", Label: cfg.label, Phase: cfg.phase, Addr: cfg.addrs[0], Sources: cfg.sources,
		Concurrency: cfg.concurrency, WarmupCycles: cfg.warmupCycles, Cycles: cfg.cycles,
		Kinds: map[string]int64{}, MaxGoroutineGrow: cfg.maxGoroutineGrowth,
	}
	var rdb *redis.Client
	if cfg.redisURL != "" {
		opt, err := redis.ParseURL(cfg.redisURL)
		if err != nil {
			return nil, fmt.Errorf("-redis-url: %w", err)
		}
		rdb = redis.NewClient(opt)
		defer rdb.Close()
		rep.MaxRedisKeyGrow = cfg.maxRedisKeyGrowth
	}
	read := func(label string, last time.Time) (churnPoint, error) {
		p, err := g.settle(ctx, base, rdb, last)
		if err != nil {
			return p, fmt.Errorf("%s: %w", label, err)
		}
		fmt.Fprintf(os.Stderr, "loadgen: %s: %-12s goroutines %d, heap in use %.2f MiB (alloc %.2f MiB), connections %d, members %d, rooms %d (GC by %s, settled in %.1fs)\n",
			cfg.label, label, p.Goroutines, mib(p.HeapInuse), mib(p.HeapAlloc), p.Connections, p.Members, p.Rooms, p.GC, p.SettleS)
		return p, nil
	}

	var err error
	if rep.Before, err = read("before", time.Now()); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "loadgen: %s: %d warm-up cycles, %d concurrent\n", cfg.label, cfg.warmupCycles, cfg.concurrency)
	warm := g.churnCycles(ctx, "warmup", 0, cfg.warmupCycles, nil)
	rep.Failed = warm.failed
	if rep.Warm, err = read("after warm-up", time.Now()); err != nil {
		return rep, err
	}

	fmt.Fprintf(os.Stderr, "loadgen: %s: %d cycles, %d concurrent\n", cfg.label, cfg.cycles, cfg.concurrency)
	conns0, dialRetries0, retries0 := g.conns.load(), g.dialRetries.load(), g.retries.load()
	t0 := time.Now()
	run := g.churnCycles(ctx, "run", cfg.warmupCycles, cfg.cycles, rep.Kinds)
	rep.RunS = time.Since(t0).Seconds()
	rep.Completed, rep.Failed = run.completed, rep.Failed+run.failed
	rep.Conns, rep.DialRetries = g.conns.load()-conns0, g.dialRetries.load()-dialRetries0
	rep.Retries = g.retries.load() - retries0
	if rep.RunS > 0 {
		rep.CyclesPerS = float64(run.completed+run.failed) / rep.RunS
		rep.ConnsPerS = float64(rep.Conns) / rep.RunS
	}
	if rep.After, err = read("after", time.Now()); err != nil {
		rep.Errors = g.errs.snapshot()
		return rep, err
	}
	// A goroutine or heap reading over its bound is taken again a few times: a connection's last
	// goroutines may still be on their way out, and garbage may survive one collection (e.g.
	// objects with finalizers). A leak stays over the bound however often it is read.
	bound := func(p churnPoint) (int64, int64) {
		return p.Goroutines - rep.Warm.Goroutines, p.HeapInuse - rep.Warm.HeapInuse
	}
	rep.MaxHeapGrowth = max(cfg.maxHeapGrowth, int64(float64(rep.Warm.HeapInuse)*cfg.maxHeapGrowthPct/100))
	for i := 0; i < 5 && ctx.Err() == nil; i++ {
		gr, hp := bound(rep.After)
		if gr <= rep.MaxGoroutineGrow && hp <= rep.MaxHeapGrowth {
			break
		}
		sleepUntil(ctx, time.Now().Add(2*time.Second))
		if p, err := read("after (again)", time.Now()); err == nil {
			rep.After = p
		}
	}
	rep.GoroutineGrowth, rep.HeapGrowth = bound(rep.After)
	if rep.Completed > 0 {
		rep.HeapPerCycle = float64(rep.HeapGrowth) / float64(rep.Completed)
	}
	if rdb != nil {
		d := *rep.After.RedisKeys - *rep.Warm.RedisKeys
		rep.RedisKeyGrowth = &d
	}

	if rep.Failed > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d cycles failed", rep.Failed))
	}
	if n := int64(cfg.cycles); rep.Completed+run.failed < n {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d of %d cycles not run", n-rep.Completed-run.failed, n))
	}
	if rep.GoroutineGrowth > rep.MaxGoroutineGrow {
		rep.Problems = append(rep.Problems, fmt.Sprintf("goroutines grew by %d (bound %d)", rep.GoroutineGrowth, rep.MaxGoroutineGrow))
	}
	if rep.HeapGrowth > rep.MaxHeapGrowth {
		rep.Problems = append(rep.Problems, fmt.Sprintf("heap in use grew by %.2f MiB (bound %.2f MiB)", mib(rep.HeapGrowth), mib(rep.MaxHeapGrowth)))
	}
	if rep.After.Connections != 0 || rep.After.Members != 0 || rep.After.Rooms != 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("left behind: %d connections, %d members, %d rooms", rep.After.Connections, rep.After.Members, rep.After.Rooms))
	}
	if rdb != nil && *rep.RedisKeyGrowth > rep.MaxRedisKeyGrow {
		rep.Problems = append(rep.Problems, fmt.Sprintf("Redis keys under the prefix grew by %d (bound %d)", *rep.RedisKeyGrowth, rep.MaxRedisKeyGrow))
	}
	rep.OK = len(rep.Problems) == 0
	rep.Errors = g.errs.snapshot()
	rep.print(os.Stderr)
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	if !rep.OK {
		return rep, errors.New(strings.Join(rep.Problems, "; "))
	}
	return rep, nil
}

type churnTotals struct{ completed, failed int64 }

// churnCycles runs cycles first..first+n-1 on cfg.concurrency workers, counting completed ones
// by kind into kinds (when not nil). It stops early after churnMaxFailures failures.
func (g *gen) churnCycles(ctx context.Context, label string, first, n int, kinds map[string]int64) churnTotals {
	var (
		mu   sync.Mutex
		next = first
		tot  churnTotals
		wg   sync.WaitGroup
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next >= first+n || tot.failed >= churnMaxFailures || ctx.Err() != nil {
			return 0, false
		}
		next++
		return next - 1, true
	}
	t0 := time.Now()
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-progress.C:
				mu.Lock()
				c, f := tot.completed, tot.failed
				mu.Unlock()
				fmt.Fprintf(os.Stderr, "loadgen: %s: %s: %d/%d cycles, %d failed, %.0f cycles/s\n",
					g.cfg.label, label, c+f, n, f, float64(c+f)/time.Since(t0).Seconds())
			}
		}
	}()
	for range g.cfg.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i, ok := take()
				if !ok {
					return
				}
				kind := churnKinds[i%len(churnKinds)]
				err := g.churnCycle(ctx, i, kind)
				mu.Lock()
				if err != nil {
					tot.failed++
					g.errs.add(kind + ": " + shortErr(err))
				} else {
					tot.completed++
					if kinds != nil {
						kinds[kind]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(done)
	return tot
}

// churnCycle runs one cycle on new connections and closes them, whatever happened.
func (g *gen) churnCycle(ctx context.Context, i int, kind string) (err error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.callTimeout)
	defer cancel()
	room := fmt.Sprintf("%s-churn-%d", g.runID, i)
	var open []*side
	defer func() {
		for _, s := range open {
			s.conn.close()
		}
	}()
	connect := func(who string) (*side, error) {
		c, attempts, err := dial(ctx, g.dialer, g.urls[0], g.cfg.attempt, nil, nil)
		g.dialRetries.add(int64(attempts - 1))
		if err != nil {
			return nil, fmt.Errorf("%s dial: %w", who, err)
		}
		g.conns.add(1)
		s := newSide(g, c, 0)
		s.reset(room)
		open = append(open, s)
		if _, err := s.join(ctx); err != nil {
			return nil, fmt.Errorf("%s join: %w", who, err)
		}
		return s, nil
	}
	do := func(s *side, who, event, fields string) error {
		if _, err := s.send(event, fields).wait(ctx); err != nil {
			return fmt.Errorf("%s %s: %w", who, event, err)
		}
		return nil
	}
	ca, err := connect("caller")
	if err != nil {
		return err
	}
	if kind == "held" || kind == "pair" {
		if err := do(ca, "caller", "offer", `"sdp":`+jsonString(churnSDP)); err != nil {
			return err
		}
		for c := range 2 {
			if err := do(ca, "caller", "candidate", candidateFields(c)); err != nil {
				return err
			}
		}
	}
	if kind == "pair" {
		an, err := connect("answerer")
		if err != nil {
			return err
		}
		if err := expectEvents(ctx, an, "answerer", "offer", "candidate", "candidate"); err != nil {
			return err
		}
		if err := do(an, "answerer", "answer", `"sdp":`+jsonString(churnSDP)); err != nil {
			return err
		}
		if err := expectEvents(ctx, ca, "caller", "peer-joined", "answer"); err != nil {
			return err
		}
		if err := do(an, "answerer", "leave", ""); err != nil {
			return err
		}
		if err := expectEvents(ctx, ca, "caller", "peer-joined", "answer", "peer-left"); err != nil {
			return err
		}
	}
	return do(ca, "caller", "leave", "")
}

// expectEvents waits until s applied len(names) server events and checks their names.
func expectEvents(ctx context.Context, s *side, who string, names ...string) error {
	got, err := s.waitGot(ctx, len(names))
	if err != nil {
		return fmt.Errorf("%s waiting for %v: %w", who, names, err)
	}
	for k, name := range names {
		if got[k].name != name {
			return fmt.Errorf("%s: event %d is %s, want %s", who, k+1, got[k].name, name)
		}
	}
	return nil
}

// churnSDP is a small SDP: the cycles measure state kept per room, not bytes moved.
var churnSDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"

// settle waits until the server at base reports no connection and no membership, makes it
// collect garbage and reads it.
func (g *gen) settle(ctx context.Context, base string, rdb *redis.Client, since time.Time) (churnPoint, error) {
	var p churnPoint
	deadline := time.Now().Add(g.cfg.churnSettle)
	var m map[string]float64
	for {
		b, err := get(ctx, base+"/metrics")
		if err == nil {
			m = parseMetrics(b)
			if _, ok := m["switchboard_connections"]; !ok {
				return p, errors.New("/metrics has no switchboard_connections")
			}
			if m["switchboard_connections"] == 0 && m["switchboard_members"] == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				return p, fmt.Errorf("reading /metrics: %w", err)
			}
			// Read it anyway: what is left behind is part of the verdict.
			g.errs.add("settle: connections or members still open after " + g.cfg.churnSettle.String())
			break
		}
		if !sleepUntil(ctx, time.Now().Add(100*time.Millisecond)) {
			return p, ctx.Err()
		}
	}
	how, err := g.collect(ctx, base, m)
	if err != nil {
		return p, err
	}
	b, err := get(ctx, base+"/metrics")
	if err != nil {
		return p, err
	}
	m = parseMetrics(b)
	p = churnPoint{
		Goroutines:  int64(m["go_goroutines"]),
		HeapInuse:   int64(m["go_memstats_heap_inuse_bytes"]),
		HeapAlloc:   int64(m["go_memstats_heap_alloc_bytes"]),
		Connections: int64(m["switchboard_connections"]),
		Members:     int64(m["switchboard_members"]),
		Rooms:       int64(m["switchboard_rooms"]),
		GCs:         int64(m["go_gc_duration_seconds_count"]),
		GC:          how,
		SettleS:     time.Since(since).Seconds(),
	}
	if rdb != nil {
		keys, timers, err := redisCount(ctx, rdb, g.cfg.redisPrefix)
		if err != nil {
			return p, fmt.Errorf("redis: %w", err)
		}
		p.RedisKeys, p.RedisTimers = &keys, &timers
	}
	return p, nil
}

// collect makes the server finish two garbage collections after now and says how. m is a
// recent /metrics reading.
func (g *gen) collect(ctx context.Context, base string, m map[string]float64) (string, error) {
	n0 := m["go_gc_duration_seconds_count"]
	gcs := func() (float64, error) {
		b, err := get(ctx, base+"/metrics")
		if err != nil {
			return 0, err
		}
		return parseMetrics(b)["go_gc_duration_seconds_count"], nil
	}
	// runtime.GC, through pprof, when the server serves it (it returns after a full cycle).
	if _, err := get(ctx, base+"/debug/pprof/heap?gc=1"); err == nil {
		if _, err := get(ctx, base+"/debug/pprof/heap?gc=1"); err == nil {
			if n, err := gcs(); err == nil && n >= n0+2 {
				return "pprof", nil
			}
		}
	}
	// Otherwise make garbage: every scrape of /metrics allocates in the server. The runtime also
	// collects by itself at least every two minutes, which bounds the wait.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		n, err := gcs()
		if err != nil {
			return "", err
		}
		if n >= n0+2 {
			return "scrape", nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("the server did not collect garbage (GC count %v, want %v)", n, n0+2)
		}
	}
}

// redisCount counts the keys under prefix and the entries of its timers ZSET.
func redisCount(ctx context.Context, rdb *redis.Client, prefix string) (keys, timers int64, err error) {
	var cursor uint64
	for {
		var batch []string
		batch, cursor, err = rdb.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			return 0, 0, err
		}
		keys += int64(len(batch))
		if cursor == 0 {
			break
		}
	}
	for g := range store.TimerGroups {
		n, err := rdb.ZCard(ctx, store.TimersKey(prefix, g)).Result()
		if err != nil {
			return 0, 0, err
		}
		timers += n
	}
	return keys, timers, nil
}

// checkRedisURL refuses a Redis that is not on the loopback range, like every other target.
func checkRedisURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "redis" {
		return fmt.Errorf("%q: only redis:// URLs", s)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q: only loopback addresses are allowed", s)
	}
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func (r *churnReport) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "== %s: churn on %s: %d cycles (+%d warm-up), %d concurrent, sources %v\n",
		r.Label, r.Addr, r.Cycles, r.WarmupCycles, r.Concurrency, r.Sources)
	fmt.Fprintf(tw, "cycles\tcompleted %d\tfailed %d\tby kind %v\n", r.Completed, r.Failed, r.Kinds)
	fmt.Fprintf(tw, "rate\t%.0f cycles/s\t%.0f connections/s\t%.1fs\tdial retries %d\tevent retries %d\n",
		r.CyclesPerS, r.ConnsPerS, r.RunS, r.DialRetries, r.Retries)
	fmt.Fprintf(tw, "server\tgoroutines\theap in use MiB\theap alloc MiB\tconnections\tmembers\trooms\tGC\n")
	for _, x := range []struct {
		name string
		p    churnPoint
	}{{"before", r.Before}, {"after warm-up", r.Warm}, {"after", r.After}} {
		fmt.Fprintf(tw, "  %s\t%d\t%.2f\t%.2f\t%d\t%d\t%d\t%s\n", x.name, x.p.Goroutines, mib(x.p.HeapInuse), mib(x.p.HeapAlloc),
			x.p.Connections, x.p.Members, x.p.Rooms, x.p.GC)
	}
	fmt.Fprintf(tw, "growth\tgoroutines %+d (bound %d)\theap in use %+.2f MiB (bound %.2f MiB, %.1f B per cycle)\n",
		r.GoroutineGrowth, r.MaxGoroutineGrow, mib(r.HeapGrowth), mib(r.MaxHeapGrowth), r.HeapPerCycle)
	if r.RedisKeyGrowth != nil && r.Before.RedisKeys != nil {
		fmt.Fprintf(tw, "redis\tkeys %d / %d / %d\ttimers %d / %d / %d\tgrowth %+d (bound %d)\n",
			*r.Before.RedisKeys, *r.Warm.RedisKeys, *r.After.RedisKeys, *r.Before.RedisTimers, *r.Warm.RedisTimers, *r.After.RedisTimers,
			*r.RedisKeyGrowth, r.MaxRedisKeyGrow)
	}
	for k, v := range r.Errors {
		fmt.Fprintf(tw, "  error\t%d\t%s\n", v, k)
	}
	verdict := "OK"
	if !r.OK {
		verdict = "FAILED: " + strings.Join(r.Problems, "; ")
	}
	fmt.Fprintf(tw, "verdict\t%s\n", verdict)
	tw.Flush()
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"sync"
	"text/tabwriter"
	"time"
)

// callReport is the result of a calls run; its JSON form is the report line.
type callReport struct {
	Mode        string   `json:"mode"`
	Label       string   `json:"label,omitempty"`
	Phase       string   `json:"phase,omitempty"`
	Addrs       []string `json:"addrs"`
	Concurrency int      `json:"concurrency"`
	Rate        float64  `json:"rate"`
	HoldS       float64  `json:"hold_s"`
	DurationS   float64  `json:"duration_s"`
	WarmupS     float64  `json:"warmup_s"`
	Candidates  int      `json:"candidates"`
	SDPBytes    int      `json:"sdp_bytes"`
	ConnPerCall bool     `json:"conn_per_call"`

	ConnectS       float64          `json:"connect_s"` // opening every slot's connections
	Conns          int64            `json:"conns"`
	Started        int64            `json:"calls_started"`
	Completed      int64            `json:"calls_completed"`
	Failed         int64            `json:"calls_failed"`
	InWindow       int64            `json:"calls_in_window"`
	CallsPerS      float64          `json:"calls_per_s"`
	Skipped        int64            `json:"skipped_no_free_slot"`
	Unfinished     int64            `json:"calls_unfinished"`
	Expected       int              `json:"msgs_expected"`
	Received       int              `json:"msgs_applied"`
	Lost           int              `json:"lost"`
	ConnLostMsgs   int              `json:"msgs_on_lost_connections"`
	Duplicated     int              `json:"duplicated"`
	Misordered     int              `json:"misordered"`
	BadContent     int              `json:"bad_content"`
	Redelivered    int64            `json:"redelivered_same_seq"`
	Stale          int64            `json:"stale"`
	Retries        int64            `json:"retries"`
	LateReplies    int64            `json:"late_replies"`
	DialRetries    int64            `json:"dial_retries"`
	EventsSent     int64            `json:"events_sent"`
	Replies        int64            `json:"replies"`
	Acks           int64            `json:"acks_sent"`
	WSSent         int64            `json:"ws_sent"`
	WSRecv         int64            `json:"ws_recv"`
	Handoff        Percentiles      `json:"handoff"`
	Relay          Percentiles      `json:"relay"`
	Setup          Percentiles      `json:"setup"`
	ServerCPU      []float64        `json:"server_cpu_s"`
	WallS          float64          `json:"wall_s"`
	ServerCPUPct   float64          `json:"server_cpu_pct"` // sum over instances, 100 = one core
	RedisCPUPct    float64          `json:"redis_cpu_pct"`
	LoadgenCPUPct  float64          `json:"loadgen_cpu_pct"`
	ServerRSS      []int64          `json:"server_rss_bytes"`
	CallsPerCPUSec float64          `json:"calls_per_server_cpu_s"`
	Errors         map[string]int64 `json:"errors,omitempty"`
}

func (g *gen) runCalls(ctx context.Context) (*callReport, error) {
	cfg := g.cfg
	n := len(g.urls)
	slots := make([]*slot, cfg.concurrency)
	for i := range slots {
		slots[i] = &slot{id: i, callerInst: i % n, ansIns: (i + 1) % n}
	}
	rep := &callReport{
		Mode: "calls", Label: cfg.label, Phase: cfg.phase, Addrs: cfg.addrs, Concurrency: cfg.concurrency, Rate: cfg.rate,
		HoldS: cfg.hold.Seconds(), DurationS: cfg.duration.Seconds(), WarmupS: cfg.warmup.Seconds(),
		Candidates: cfg.candidates, SDPBytes: cfg.sdpBytes, ConnPerCall: cfg.connPerCall,
	}
	fmt.Fprintf(os.Stderr, "loadgen: %s: opening %d connections to %v\n", cfg.label, 2*len(slots), cfg.addrs)
	t := time.Now()
	if err := g.dialAll(ctx, slots, cfg.dialPar); err != nil {
		for _, sl := range slots {
			g.closeSlot(sl)
		}
		return nil, fmt.Errorf("connect: %w", err)
	}
	rep.ConnectS = time.Since(t).Seconds()
	rep.Conns = g.conns.load()
	fmt.Fprintf(os.Stderr, "loadgen: %s: %d connections in %.1fs; running calls for %s\n", cfg.label, rep.Conns, rep.ConnectS, cfg.duration)

	t0 := time.Now()
	winStart, winEnd := t0.Add(cfg.warmup), t0.Add(cfg.duration)
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()

	// CPU over the measurement window, read by a goroutine at its edges.
	pids := slices.Clone(cfg.serverPids)
	if cfg.redisPid > 0 {
		pids = append(pids, cfg.redisPid)
	}
	pids = append(pids, os.Getpid())
	cpuDone := make(chan struct{})
	go func() {
		defer close(cpuDone)
		if !sleepUntil(runCtx, winStart) {
			return
		}
		m := startCPU(pids)
		if !sleepUntil(runCtx, winEnd) {
			return
		}
		per, wall := m.stop()
		rep.WallS = wall.Seconds()
		var server float64
		for i := range cfg.serverPids {
			server += per[i]
			rep.ServerCPU = append(rep.ServerCPU, per[i])
			if s, err := readProc(cfg.serverPids[i]); err == nil {
				rep.ServerRSS = append(rep.ServerRSS, s.RSS)
			}
		}
		rep.ServerCPUPct = 100 * server / wall.Seconds()
		if cfg.redisPid > 0 {
			rep.RedisCPUPct = 100 * per[len(cfg.serverPids)] / wall.Seconds()
		}
		rep.LoadgenCPUPct = 100 * per[len(per)-1] / wall.Seconds()
	}()

	var mu sync.Mutex
	var total checkResult
	record := func(o callOutcome, sl *slot) {
		mu.Lock()
		defer mu.Unlock()
		if o.err != nil {
			rep.Failed++
			g.errs.add(o.phase + ": " + shortErr(o.err))
		} else {
			rep.Completed++
			if !o.ended.Before(winStart) && !o.ended.After(winEnd) {
				rep.InWindow++
			}
		}
		total.addAll(o.check)
		if o.err == nil && !o.started.Before(winStart) {
			g.handoff.add(o.handoff)
			g.set.add(o.setup)
			for _, d := range o.relays {
				g.relay.add(d)
			}
		}
	}
	// after readies a slot for its next call: new connections when asked for, or after a failed
	// call (its memberships may still be held: closing lets the server let them go).
	after := func(sl *slot, failed bool) {
		if cfg.connPerCall || failed {
			g.closeSlot(sl)
			dctx, cancel := context.WithTimeout(runCtx, cfg.callTimeout)
			if err := g.dialSlot(dctx, sl); err != nil {
				g.errs.add("redial: " + shortErr(err))
			}
			cancel()
		}
	}
	healthy := func(sl *slot) bool {
		return sl.caller != nil && sl.answerer != nil && sl.caller.conn.failure() == nil && sl.answerer.conn.failure() == nil
	}
	var started, skipped atomicCount
	var wg sync.WaitGroup
	if cfg.rate > 0 {
		free := make(chan *slot, len(slots))
		for _, sl := range slots {
			free <- sl
		}
		interval := time.Duration(float64(time.Second) / cfg.rate)
	issue:
		for k := 0; ; k++ {
			due := t0.Add(time.Duration(k) * interval)
			if !due.Before(winEnd) || !sleepUntil(runCtx, due) {
				break
			}
			select {
			case sl := <-free:
				if !healthy(sl) {
					after(sl, true)
					if !healthy(sl) {
						free <- sl
						skipped.add(1)
						continue issue
					}
				}
				started.add(1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					o := g.runCall(runCtx, sl)
					o.check = failedCheck(o, sl, cfg.candidates)
					record(o, sl)
					after(sl, o.err != nil)
					free <- sl
				}()
			default:
				skipped.add(1)
			}
		}
	} else {
		for _, sl := range slots {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(winEnd) && runCtx.Err() == nil {
					if !healthy(sl) {
						after(sl, true)
						if !healthy(sl) {
							sleepUntil(runCtx, time.Now().Add(100*time.Millisecond))
							continue
						}
					}
					started.add(1)
					o := g.runCall(runCtx, sl)
					o.check = failedCheck(o, sl, cfg.candidates)
					record(o, sl)
					after(sl, o.err != nil)
				}
			}()
		}
	}
	// Calls started before the end of the window run to their end (bounded by -call-timeout).
	sleepUntil(runCtx, winEnd)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.callTimeout + cfg.hold + 10*time.Second):
		cancelRun()
		<-done
	}
	cancelRun()
	<-cpuDone
	for _, sl := range slots {
		g.closeSlot(sl)
	}

	rep.Started, rep.Skipped = started.load(), skipped.load()
	rep.Unfinished = rep.Started - rep.Completed - rep.Failed
	win := cfg.duration - cfg.warmup
	rep.CallsPerS = float64(rep.InWindow) / win.Seconds()
	if cpu := rep.ServerCPUPct / 100 * rep.WallS; cpu > 0 {
		rep.CallsPerCPUSec = float64(rep.InWindow) / cpu
	}
	rep.Expected, rep.Received = total.expected, total.received
	rep.Lost, rep.Duplicated, rep.Misordered, rep.BadContent = total.lost, total.duplicated, total.misordered, total.badContent
	rep.ConnLostMsgs = total.connLost
	rep.Redelivered, rep.Stale, rep.Retries, rep.DialRetries = g.redelivered.load(), g.stale.load(), g.retries.load(), g.dialRetries.load()
	rep.LateReplies = g.lateReplies.load()
	rep.EventsSent, rep.Replies, rep.Acks = g.sends.load(), g.replies.load(), g.acks.load()
	rep.WSSent, rep.WSRecv = g.wsSent.load(), g.wsRecv.load()
	rep.Handoff, rep.Relay, rep.Setup = g.handoff.summary(), g.relay.summary(), g.set.summary()
	rep.Errors = g.errs.snapshot()
	rep.print(os.Stderr)
	return rep, ctx.Err()
}

// failedCheck counts, for a call that failed while waiting for messages the server had
// accepted, what had not arrived: as lost while both connections stayed up, apart otherwise
// (the protocol would resume the membership on a new connection; the load generator does not).
func failedCheck(o callOutcome, sl *slot, candidates int) checkResult {
	if o.err == nil || (o.phase != "hand-off" && o.phase != "relay" && o.phase != "teardown") {
		return o.check
	}
	c := lostOnFailure(sl, candidates)
	if errors.Is(o.err, errConnLost) {
		c.connLost, c.lost = c.lost, 0
	}
	return c
}

func (r *callReport) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "== %s: %d concurrent calls, rate %s, hold %s, %s (warm-up %s), %d candidates, SDP %d B\n",
		r.Label, r.Concurrency, rateStr(r.Rate), dur(r.HoldS), dur(r.DurationS), dur(r.WarmupS), r.Candidates, r.SDPBytes)
	fmt.Fprintf(tw, "calls\tstarted %d\tcompleted %d\tfailed %d\tunfinished %d\tskipped (no free slot) %d\n", r.Started, r.Completed, r.Failed, r.Unfinished, r.Skipped)
	fmt.Fprintf(tw, "call set-ups/s\t%.1f\t(in window: %d)\n", r.CallsPerS, r.InWindow)
	fmt.Fprintf(tw, "messages\texpected %d\tapplied %d\tlost %d\tduplicated %d\tmisordered %d\tbad %d\tnot applied on lost connections %d\n", r.Expected, r.Received, r.Lost, r.Duplicated, r.Misordered, r.BadContent, r.ConnLostMsgs)
	fmt.Fprintf(tw, "transport\tevents sent %d\treplies %d\tacks %d\tretries %d (late replies %d)\tredelivered %d\tstale %d\n", r.EventsSent, r.Replies, r.Acks, r.Retries, r.LateReplies, r.Redelivered, r.Stale)
	fmt.Fprintf(tw, "latency (ms)\tn\tp50\tp90\tp99\tmax\n")
	for _, x := range []struct {
		name string
		p    Percentiles
	}{{"hand-off", r.Handoff}, {"relay", r.Relay}, {"call set-up", r.Setup}} {
		fmt.Fprintf(tw, "  %s\t%d\t%.3f\t%.3f\t%.3f\t%.3f\n", x.name, x.p.N, x.p.P50, x.p.P90, x.p.P99, x.p.Max)
	}
	fmt.Fprintf(tw, "CPU (%% of one core)\tservers %.1f %v\tredis %.1f\tloadgen %.1f\n", r.ServerCPUPct, roundAll(r.ServerCPU), r.RedisCPUPct, r.LoadgenCPUPct)
	fmt.Fprintf(tw, "calls per server CPU-second\t%.1f\n", r.CallsPerCPUSec)
	if len(r.Errors) > 0 {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(tw, "  error\t%d\t%s\n", r.Errors[k], k)
		}
	}
	tw.Flush()
}

func rateStr(r float64) string {
	if r <= 0 {
		return "max (closed loop)"
	}
	return fmt.Sprintf("%.0f/s", r)
}

func dur(s float64) string { return time.Duration(s * float64(time.Second)).String() }

func roundAll(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(int(x*100+0.5)) / 100
	}
	return out
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

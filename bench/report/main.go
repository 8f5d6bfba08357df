// Command report turns the JSON lines written by bench/run.sh (loadgen reports and the Redis
// round-trip floor) into the comparison table of docs/benchmarks.md, and optionally into data
// files for bench/plot.gp.
//
//	go run ./bench/report [-a switchboard] [-b node] [-plotdata dir] results.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type pct struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// line is the union of the loadgen reports and the floor line.
type line struct {
	Mode        string  `json:"mode"`
	Label       string  `json:"label"`
	Phase       string  `json:"phase"`
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate"`
	HoldS       float64 `json:"hold_s"`
	DurationS   float64 `json:"duration_s"`
	WarmupS     float64 `json:"warmup_s"`

	CallsPerS      float64 `json:"calls_per_s"`
	Completed      int64   `json:"calls_completed"`
	Failed         int64   `json:"calls_failed"`
	Expected       int     `json:"msgs_expected"`
	Lost           int     `json:"lost"`
	ConnLostMsgs   int     `json:"msgs_on_lost_connections"`
	Duplicated     int     `json:"duplicated"`
	Misordered     int     `json:"misordered"`
	Retries        int64   `json:"retries"`
	Handoff        pct     `json:"handoff"`
	Relay          pct     `json:"relay"`
	Setup          pct     `json:"setup"`
	ServerCPUPct   float64 `json:"server_cpu_pct"`
	RedisCPUPct    float64 `json:"redis_cpu_pct"`
	CallsPerCPUSec float64 `json:"calls_per_server_cpu_s"`

	Points []struct {
		Conns      int   `json:"conns"`
		RSS        int64 `json:"rss_bytes"`
		Heap       int64 `json:"heap_bytes"`
		Goroutines int64 `json:"goroutines"`
	} `json:"points"`
	RSSPerConn    float64 `json:"rss_per_conn_bytes"`
	HeapPerConn   float64 `json:"heap_per_conn_bytes"`
	GoroutinesPer float64 `json:"goroutines_per_conn"`
	RSSAt100k     float64 `json:"rss_projected_100k_bytes"`
	RestCPUPct    float64 `json:"rest_cpu_pct"`
	ConnectPerS   float64 `json:"connects_per_s"`

	RTTus    float64 `json:"rtt_us"`
	P50us    float64 `json:"p50_us"`
	Machine  string  `json:"machine"`
	LoadAvg  string  `json:"loadavg"`
	Started  string  `json:"started"`
	Commands string  `json:"commands"`
}

func main() {
	a := flag.String("a", "switchboard", "label of the server compared (numerator of the ratios)")
	b := flag.String("b", "node", "label of the reference (denominator)")
	plot := flag.String("plotdata", "", "write latency_by_load.dat and memory_by_conns.dat here")
	flag.Parse()
	var lines []line
	for _, f := range flag.Args() {
		ls, err := read(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
		lines = append(lines, ls...)
	}
	if len(lines) == 0 {
		fmt.Fprintln(os.Stderr, "usage: report [-a label] [-b label] [-plotdata dir] results.jsonl...")
		os.Exit(2)
	}
	table(os.Stdout, lines, *a, *b)
	if *plot != "" {
		if err := plotData(*plot, lines, *a, *b); err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
	}
}

func read(path string) ([]line, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []line
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		t := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(t, "{") {
			continue
		}
		var l line
		if err := json.Unmarshal([]byte(t), &l); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// last returns the last line matching.
func last(lines []line, ok func(line) bool) *line {
	for i := len(lines) - 1; i >= 0; i-- {
		if ok(lines[i]) {
			return &lines[i]
		}
	}
	return nil
}

func phase(label, ph string) func(line) bool {
	return func(l line) bool { return l.Label == label && l.Phase == ph }
}

func table(w io.Writer, lines []line, a, b string) {
	floor := last(lines, func(l line) bool { return l.Mode == "floor" })
	if floor != nil && floor.Machine != "" {
		fmt.Fprintf(w, "Machine: %s. Load average at start: %s. Started %s.\n\n", floor.Machine, floor.LoadAvg, floor.Started)
	}
	ta, tb := last(lines, phase(a, "throughput")), last(lines, phase(b, "throughput"))
	la, lb := last(lines, phase(a, "latency")), last(lines, phase(b, "latency"))
	ia, ib := last(lines, phase(a, "idle")), last(lines, phase(b, "idle"))
	sa, sb := last(lines, phase(a, "stress")), last(lines, phase(b, "stress"))

	fmt.Fprintf(w, "| metric | %s | %s | %s/%s | target |\n|---|---:|---:|---:|---|\n", a, b, a, b)
	row := func(name string, va, vb *float64, format, target string, higherBetter bool) {
		s := func(v *float64) string {
			if v == nil {
				return "–"
			}
			return fmt.Sprintf(format, *v)
		}
		ratio := "–"
		if va != nil && vb != nil && *vb != 0 {
			ratio = fmt.Sprintf("%.2f×", *va / *vb)
		}
		_ = higherBetter
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", name, s(va), s(vb), ratio, target)
	}
	f := func(l *line, get func(*line) float64) *float64 {
		if l == nil {
			return nil
		}
		v := get(l)
		return &v
	}
	if ta != nil || tb != nil {
		c := ta
		if c == nil {
			c = tb
		}
		row(fmt.Sprintf("call set-ups/s (%d concurrent calls, closed loop)", c.Concurrency),
			f(ta, func(l *line) float64 { return l.CallsPerS }), f(tb, func(l *line) float64 { return l.CallsPerS }), "%.1f", "≥ 3× Node", true)
		row("server CPU, both instances (% of one core)",
			f(ta, func(l *line) float64 { return l.ServerCPUPct }), f(tb, func(l *line) float64 { return l.ServerCPUPct }), "%.0f%%", "", false)
		row("call set-ups per server CPU-second",
			f(ta, func(l *line) float64 { return l.CallsPerCPUSec }), f(tb, func(l *line) float64 { return l.CallsPerCPUSec }), "%.0f", "", true)
		row("Redis CPU (% of one core)",
			f(ta, func(l *line) float64 { return l.RedisCPUPct }), f(tb, func(l *line) float64 { return l.RedisCPUPct }), "%.0f%%", "", false)
		row("hand-off p99 at saturation (ms)",
			f(ta, func(l *line) float64 { return l.Handoff.P99 }), f(tb, func(l *line) float64 { return l.Handoff.P99 }), "%.1f", "", false)
	}
	if la != nil || lb != nil {
		c := la
		if c == nil {
			c = lb
		}
		conc := c.Rate * c.HoldS
		name := fmt.Sprintf("@ %.0f calls/s held %.0fs (≈%.0f concurrent calls)", c.Rate, c.HoldS, conc)
		row("hand-off p50 (ms) "+name,
			f(la, func(l *line) float64 { return l.Handoff.P50 }), f(lb, func(l *line) float64 { return l.Handoff.P50 }), "%.2f", "", false)
		row("hand-off p99 (ms) "+name,
			f(la, func(l *line) float64 { return l.Handoff.P99 }), f(lb, func(l *line) float64 { return l.Handoff.P99 }), "%.2f", "≤ 1 ms", false)
		row("relay p50 (ms) "+name,
			f(la, func(l *line) float64 { return l.Relay.P50 }), f(lb, func(l *line) float64 { return l.Relay.P50 }), "%.2f", "", false)
		row("relay p99 (ms) "+name,
			f(la, func(l *line) float64 { return l.Relay.P99 }), f(lb, func(l *line) float64 { return l.Relay.P99 }), "%.2f", "", false)
		row("server CPU at that rate (% of one core)",
			f(la, func(l *line) float64 { return l.ServerCPUPct }), f(lb, func(l *line) float64 { return l.ServerCPUPct }), "%.0f%%", "", false)
	}
	if sa != nil || sb != nil {
		c := sa
		if c == nil {
			c = sb
		}
		row(fmt.Sprintf("stress: call set-ups/s (%d concurrent calls, closed loop)", c.Concurrency),
			f(sa, func(l *line) float64 { return l.CallsPerS }), f(sb, func(l *line) float64 { return l.CallsPerS }), "%.1f", "", true)
		row("stress: calls failed (of started)",
			f(sa, func(l *line) float64 { return float64(l.Failed) }), f(sb, func(l *line) float64 { return float64(l.Failed) }), "%.0f", "", false)
		row("stress: client events sent again (no reply within 1 s)",
			f(sa, func(l *line) float64 { return float64(l.Retries) }), f(sb, func(l *line) float64 { return float64(l.Retries) }), "%.0f", "", false)
	}
	if floor != nil {
		fmt.Fprintf(w, "| Redis round trip, 1 client (floor, µs) | %.0f (p50 %.0f) | | | beside hand-off |\n", floor.RTTus, floor.P50us)
	}
	if ia != nil || ib != nil {
		c := ia
		if c == nil {
			c = ib
		}
		n := 0
		if len(c.Points) > 0 {
			n = c.Points[len(c.Points)-1].Conns
		}
		row(fmt.Sprintf("RSS per idle connection (KB, slope up to %d)", n),
			f(ia, func(l *line) float64 { return l.RSSPerConn / 1000 }), f(ib, func(l *line) float64 { return l.RSSPerConn / 1000 }), "%.1f", "≤ 10 KB", false)
		row("heap per idle connection (KB)",
			f(ia, func(l *line) float64 { return l.HeapPerConn / 1000 }), f(ib, func(l *line) float64 { return l.HeapPerConn / 1000 }), "%.1f", "", false)
		row("RSS projected at 100k connections (GiB)",
			f(ia, func(l *line) float64 { return l.RSSAt100k / (1 << 30) }), f(ib, func(l *line) float64 { return l.RSSAt100k / (1 << 30) }), "%.2f", "≤ 0.95 GiB", false)
		row(fmt.Sprintf("CPU at rest with %d idle connections (%% of one core)", n),
			f(ia, func(l *line) float64 { return l.RestCPUPct }), f(ib, func(l *line) float64 { return l.RestCPUPct }), "%.2f%%", "", false)
		row("connections opened per second (handshake + join)",
			f(ia, func(l *line) float64 { return l.ConnectPerS }), f(ib, func(l *line) float64 { return l.ConnectPerS }), "%.0f", "", true)
	}
	// Loss over every call run of each server.
	for _, lb := range []string{a, b} {
		var exp, lost, dup, mis, failed, connLost int64
		runs := 0
		for _, l := range lines {
			if l.Label == lb && l.Mode == "calls" {
				runs++
				exp += int64(l.Expected)
				lost += int64(l.Lost)
				dup += int64(l.Duplicated)
				mis += int64(l.Misordered)
				failed += l.Failed
				connLost += int64(l.ConnLostMsgs)
			}
		}
		if runs > 0 {
			fmt.Fprintf(w, "| %s: lost / duplicated / misordered of %d messages (%d runs; %d calls failed; %d messages not applied on connections that broke) | %d / %d / %d | | | 0 / 0 |\n",
				lb, exp, runs, failed, connLost, lost, dup, mis)
		}
	}
}

func plotData(dir string, lines []line, a, b string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Latency by load: every sweep run, by rate.
	type lat struct{ p50a, p99a, p50b, p99b, cpua, cpub *float64 }
	byRate := map[float64]*lat{}
	for i := range lines {
		l := &lines[i]
		if l.Phase != "sweep" || l.Handoff.N == 0 {
			continue
		}
		e := byRate[l.Rate]
		if e == nil {
			e = &lat{}
			byRate[l.Rate] = e
		}
		p50, p99, cpu := l.Handoff.P50, l.Handoff.P99, l.ServerCPUPct
		switch l.Label {
		case a:
			e.p50a, e.p99a, e.cpua = &p50, &p99, &cpu
		case b:
			e.p50b, e.p99b, e.cpub = &p50, &p99, &cpu
		}
	}
	rates := make([]float64, 0, len(byRate))
	for r := range byRate {
		rates = append(rates, r)
	}
	sort.Float64s(rates)
	var sb strings.Builder
	fmt.Fprintf(&sb, "# rate %s_p50 %s_p99 %s_p50 %s_p99 %s_cpu %s_cpu (hand-off ms, server CPU %%)\n", a, a, b, b, a, b)
	v := func(p *float64) string {
		if p == nil {
			return "NaN"
		}
		return fmt.Sprintf("%.3f", *p)
	}
	for _, r := range rates {
		e := byRate[r]
		fmt.Fprintf(&sb, "%g %s %s %s %s %s %s\n", r, v(e.p50a), v(e.p99a), v(e.p50b), v(e.p99b), v(e.cpua), v(e.cpub))
	}
	if err := os.WriteFile(filepath.Join(dir, "latency_by_load.dat"), []byte(sb.String()), 0o644); err != nil {
		return err
	}
	// Memory by connections: the idle runs, one data block per server.
	sb.Reset()
	for _, lb := range []string{a, b} {
		l := last(lines, phase(lb, "idle"))
		if l == nil {
			continue
		}
		fmt.Fprintf(&sb, "# %s: conns rss_MiB heap_MiB\n", lb)
		for _, p := range l.Points {
			fmt.Fprintf(&sb, "%d %.2f %.2f\n", p.Conns, float64(p.RSS)/(1<<20), float64(p.Heap)/(1<<20))
		}
		sb.WriteString("\n\n")
	}
	return os.WriteFile(filepath.Join(dir, "memory_by_conns.dat"), []byte(sb.String()), 0o644)
}

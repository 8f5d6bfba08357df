// Command loadgen drives Switchboard, or any server speaking its protocol (docs/protocol.md)
// over Socket.IO v4 websockets, with full WebRTC call set-ups, or holds idle connections, and
// reports what it measured as a table and as one JSON line.
//
//	loadgen -addrs 127.0.0.1:8081,127.0.0.1:8082 -concurrency 1000 -rate 100 -hold 10s -duration 40s
//	loadgen -mode idle -addrs 127.0.0.1:8081 -idle 19000 -server-pids 1234
//	loadgen -mode churn -addrs 127.0.0.1:8081 -cycles 100000 -concurrency 32
//
// Every target must be a loopback address; loops are bounded by -duration and -call-timeout.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	mode        string
	label       string
	phase       string
	addrs       []string
	sources     []string
	headers     string // browser or minimal
	concurrency int
	rate        float64
	duration    time.Duration
	warmup      time.Duration
	hold        time.Duration
	callTimeout time.Duration
	candidates  int
	sdpBytes    int
	retry       time.Duration
	maxRetry    time.Duration
	attempt     time.Duration
	ackCoalesce bool
	connPerCall bool
	dialPar     int
	serverPids  []int
	redisPid    int
	jsonOut     string

	idleConns int
	idleSteps []int
	idleRest  time.Duration
	settle    time.Duration

	cycles             int
	warmupCycles       int
	churnSettle        time.Duration
	maxGoroutineGrowth int64
	maxHeapGrowth      int64
	maxHeapGrowthPct   float64
	redisURL           string
	redisPrefix        string
	maxRedisKeyGrowth  int64
}

// Churn bounds: how much the server may have grown after the measured cycles against the
// reading after the warm-up (both taken at rest, after garbage collection).
//   - Goroutines: the server's own (store listener, timers, the HTTP connection /metrics is read
//     on, Redis pool) vary by a few between readings; one goroutine left per thousand cycles
//     is 100 over 100,000.
//   - Heap in use: 8 MiB is 84 bytes per cycle over 100,000 cycles, less than any record kept
//     per connection or room; 25% of the warmed heap covers a bigger server, whose allocator
//     and maps keep some of what peak concurrency made them grow.
//   - Redis keys under the prefix (with -redis-url): an emptied room leaves none; 10 allows for
//     keys kept per prefix, never one per cycle.
const (
	defaultMaxGoroutineGrowth = 20
	defaultMaxHeapGrowth      = 8 << 20
	defaultMaxHeapGrowthPct   = 25
	defaultMaxRedisKeyGrowth  = 10
)

// defaultChurnSources spread churn connections over several source addresses, so closed
// connections waiting out TIME_WAIT do not use up one address's ephemeral ports.
var defaultChurnSources = []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8", "127.0.0.9"}

// gen is one load generator run.
type gen struct {
	cfg    config
	runID  string
	dialer *dialer
	urls   []string // websocket URLs of the instances
	bases  []string // http://host:port of the instances

	wsSent, wsRecv      atomicCount // websocket messages (Engine.IO packets)
	sends, replies      atomicCount // client events emitted (retries included) and replies received
	acks, ackReplies    atomicCount // ack events emitted and answered
	retries             atomicCount // client events sent again
	lateReplies         atomicCount // replies to an event already answered (it was sent again)
	redelivered, stale  atomicCount // server events received again (same seq), or for an old membership
	dialRetries, conns  atomicCount
	errs                errorCounts
	handoff, relay, set samples
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	raiseFileLimit()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, err := newGen(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	var res any
	switch cfg.mode {
	case "calls":
		res, err = g.runCalls(ctx)
	case "idle":
		res, err = g.runIdle(ctx)
	case "churn":
		var r *churnReport
		if r, err = g.runChurn(ctx); r != nil {
			res = r
		}
	}
	if res != nil {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		if cfg.jsonOut != "" {
			if f, ferr := os.OpenFile(cfg.jsonOut, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); ferr == nil {
				_, _ = f.Write(append(b, '\n'))
				_ = f.Close()
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&c.mode, "mode", "calls", "calls (call set-ups), idle (idle connections) or churn (connect, join, leave, disconnect; then check the server for growth)")
	fs.StringVar(&c.label, "label", "", "name of the server under test, copied into the report")
	fs.StringVar(&c.phase, "phase", "", "name of this measurement (e.g. throughput, latency), copied into the report")
	addrs := fs.String("addrs", "127.0.0.1:8080", "comma-separated instance addresses (loopback only); a call's two peers use two neighbouring instances")
	sources := fs.String("sources", "", "comma-separated local source addresses to bind, e.g. 127.0.0.2,127.0.0.3 (more than ~28k connections need several; churn mode: 127.0.0.2-9 unless set)")
	fs.IntVar(&c.concurrency, "concurrency", 100, "concurrent calls (each holds two connections), or churn cycles (churn mode: 32 unless set)")
	fs.Float64Var(&c.rate, "rate", 0, "calls started per second; 0: every slot starts its next call as soon as the last ended")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "how long calls are started (the measurement window ends here)")
	fs.DurationVar(&c.warmup, "warmup", 0, "calls started before this are not measured")
	fs.DurationVar(&c.hold, "hold", 0, "how long a set-up call stays up before hanging up")
	fs.DurationVar(&c.callTimeout, "call-timeout", 30*time.Second, "a call taking longer (besides -hold) fails")
	fs.IntVar(&c.candidates, "candidates", 10, "ICE candidates each side sends")
	fs.IntVar(&c.sdpBytes, "sdp-bytes", 1500, "size of each SDP")
	fs.DurationVar(&c.retry, "retry", time.Second, "an unanswered client event is first sent again after this (protocol: resend until answered); each further resend waits twice as long, up to -max-retry, every wait drawn from 50-100% of that, as the bundled client")
	fs.DurationVar(&c.maxRetry, "max-retry", 8*time.Second, "the longest wait between two resends of a client event")
	fs.DurationVar(&c.attempt, "connect-attempt", 3*time.Second, "a Socket.IO handshake not answered within this is tried again on a new websocket (churn mode: 1s unless set)")
	ack := fs.String("ack", "coalesce", "coalesce: at most one ack in flight per membership; each: ack every event")
	fs.StringVar(&c.headers, "headers", "browser", "handshake headers: browser (origin, user agent, languages, cookies, as Chromium sends them from a page) or minimal (the websocket headers only)")
	fs.BoolVar(&c.connPerCall, "conn-per-call", false, "open two new connections for every call instead of reusing them")
	fs.IntVar(&c.dialPar, "dial-parallel", 64, "connections being opened at once")
	pids := fs.String("server-pids", "", "comma-separated pids of the server processes, for CPU and RSS")
	fs.IntVar(&c.redisPid, "redis-pid", 0, "pid of redis-server, for its CPU (optional)")
	fs.StringVar(&c.jsonOut, "json-out", "", "also append the JSON report line to this file")
	fs.IntVar(&c.idleConns, "idle", 1000, "idle mode: connections to open (each joins its own room), all on the first instance")
	steps := fs.String("idle-steps", "", "idle mode: comma-separated connection counts to measure at (default: 5 even steps)")
	fs.DurationVar(&c.idleRest, "idle-rest", 10*time.Second, "idle mode: how long CPU at rest is measured with all connections open")
	fs.DurationVar(&c.settle, "settle", 3*time.Second, "idle mode: wait this long after each step before measuring")
	fs.IntVar(&c.cycles, "cycles", 100000, "churn mode: measured cycles (rooms), after the warm-up ones; on the first instance")
	fs.IntVar(&c.warmupCycles, "warmup-cycles", 300, "churn mode: cycles run before the reading the others are compared with")
	fs.DurationVar(&c.churnSettle, "churn-settle", time.Minute, "churn mode: how long to wait for the server's connections and members to reach 0 before each reading")
	fs.Int64Var(&c.maxGoroutineGrowth, "max-goroutine-growth", defaultMaxGoroutineGrowth, "churn mode: goroutines the server may have gained after the cycles")
	fs.Int64Var(&c.maxHeapGrowth, "max-heap-growth", defaultMaxHeapGrowth, "churn mode: bytes of heap in use the server may have gained (or -max-heap-growth-pct, whichever is more)")
	fs.Float64Var(&c.maxHeapGrowthPct, "max-heap-growth-pct", defaultMaxHeapGrowthPct, "churn mode: heap in use growth allowed, in % of the reading after the warm-up")
	fs.StringVar(&c.redisURL, "redis-url", "", "churn mode: the server's Redis (redis://, loopback), to count the keys left under -redis-prefix")
	fs.StringVar(&c.redisPrefix, "redis-prefix", "", "churn mode: the server's SWITCHBOARD_REDIS_PREFIX (with -redis-url)")
	fs.Int64Var(&c.maxRedisKeyGrowth, "max-redis-key-growth", defaultMaxRedisKeyGrowth, "churn mode: keys under -redis-prefix the cycles may leave")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.mode != "calls" && c.mode != "idle" && c.mode != "churn" {
		return c, fmt.Errorf("-mode must be calls, idle or churn")
	}
	c.addrs = splitList(*addrs)
	c.sources = splitList(*sources)
	if c.mode == "churn" {
		if len(c.sources) == 0 {
			c.sources = defaultChurnSources
		}
		// A handshake the server library leaves unanswered (it drops a CONNECT now and then)
		// holds a worker for the whole attempt; answered ones take milliseconds here.
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["connect-attempt"] {
			c.attempt = time.Second
		}
		if !set["concurrency"] {
			c.concurrency = 32
		}
		switch {
		case c.cycles < 1 || c.warmupCycles < 0:
			return c, errors.New("-cycles must be positive, -warmup-cycles not negative")
		case c.churnSettle <= 0:
			return c, errors.New("-churn-settle must be positive")
		case c.redisURL != "" && c.redisPrefix == "":
			return c, errors.New("-redis-url needs -redis-prefix (counting every key of a shared Redis says nothing)")
		}
		if c.redisURL != "" {
			if err := checkRedisURL(c.redisURL); err != nil {
				return c, fmt.Errorf("-redis-url: %w", err)
			}
		}
	}
	if len(c.addrs) == 0 {
		return c, errors.New("-addrs is empty")
	}
	switch *ack {
	case "coalesce":
		c.ackCoalesce = true
	case "each":
	default:
		return c, fmt.Errorf("-ack must be coalesce or each")
	}
	if c.headers != "browser" && c.headers != "minimal" {
		return c, fmt.Errorf("-headers must be browser or minimal")
	}
	for _, p := range splitList(*pids) {
		n, err := strconv.Atoi(p)
		if err != nil {
			return c, fmt.Errorf("-server-pids: %w", err)
		}
		c.serverPids = append(c.serverPids, n)
	}
	for _, s := range splitList(*steps) {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return c, fmt.Errorf("-idle-steps: bad count %q", s)
		}
		c.idleSteps = append(c.idleSteps, n)
	}
	if len(c.idleSteps) == 0 {
		for i := 1; i <= 5; i++ {
			c.idleSteps = append(c.idleSteps, c.idleConns*i/5)
		}
	}
	switch {
	case c.concurrency < 1:
		return c, errors.New("-concurrency must be positive")
	case c.duration <= 0 || c.duration > 24*time.Hour:
		return c, errors.New("-duration must be positive and at most 24h")
	case c.warmup >= c.duration:
		return c, errors.New("-warmup must be shorter than -duration")
	case c.candidates < 1 || c.candidates > 60:
		return c, errors.New("-candidates must be 1..60 (the server holds at most 64)")
	case c.callTimeout <= 0 || c.retry <= 0 || c.attempt <= 0:
		return c, errors.New("timeouts must be positive")
	case c.maxRetry < c.retry:
		return c, errors.New("-max-retry must be at least -retry")
	}
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func newGen(cfg config) (*gen, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	g := &gen{cfg: cfg, runID: "lg" + hex.EncodeToString(b[:])}
	var err error
	if g.dialer, err = newDialer(cfg.sources, cfg.headers == "browser"); err != nil {
		return nil, err
	}
	for _, a := range cfg.addrs {
		u, err := wsURL(a)
		if err != nil {
			return nil, err
		}
		g.urls = append(g.urls, u)
		g.bases = append(g.bases, httpBase(a))
	}
	return g, nil
}

// raiseFileLimit lifts the soft open-file limit to the hard one.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func selfCPU() float64 {
	s, _ := readProc(os.Getpid())
	return s.CPU
}

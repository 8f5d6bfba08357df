package main

// What the load generator reads about the servers: CPU time and RSS from /proc/<pid>, and the
// language runtime's heap from the server itself: a Prometheus-style /metrics if it has one
// (the Node reference does), else Go's /debug/pprof.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat (100 on Linux).
const clockTicks = 100

// procSample is one reading of a process.
type procSample struct {
	CPU float64 // user+system seconds since start
	RSS int64   // bytes
}

func readProc(pid int) (procSample, error) {
	var s procSample
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name may hold spaces: the fields we want follow the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("short /proc/%d/stat", pid)
	}
	// After ')': state(0) ppid(1) ... utime is field 14 of the file, index 11 here; stime 12.
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	s.CPU = (ut + st) / clockTicks
	st2, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(st2), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			s.RSS = kb << 10
		}
	}
	return s, nil
}

// cpuMeter measures the CPU a set of processes uses over an interval.
type cpuMeter struct {
	pids  []int
	start []procSample
	t0    time.Time
}

func startCPU(pids []int) *cpuMeter {
	m := &cpuMeter{pids: pids, t0: time.Now()}
	for _, p := range pids {
		s, _ := readProc(p)
		m.start = append(m.start, s)
	}
	return m
}

// stop returns the CPU seconds used per process and the wall time since start.
func (m *cpuMeter) stop() (perProc []float64, wall time.Duration) {
	wall = time.Since(m.t0)
	for i, p := range m.pids {
		s, err := readProc(p)
		if err != nil {
			perProc = append(perProc, 0)
			continue
		}
		perProc = append(perProc, s.CPU-m.start[i].CPU)
	}
	return perProc, wall
}

// runtimeStats is what a server says about its own memory.
type runtimeStats struct {
	Heap       int64 `json:"heap_bytes"` // Go: HeapInuse; Node: heapUsed + external
	Goroutines int64 `json:"goroutines,omitempty"`
	Source     string
}

var httpClient = &http.Client{Timeout: 20 * time.Second}

func get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return b, nil
}

// readRuntime asks the server at base (http://host:port) for its heap after a garbage
// collection: Go's /debug/pprof/heap?gc=1 first (it collects before reporting), else a
// Prometheus-style /metrics (the Node reference collects on ?gc=1 when run with --expose-gc).
func readRuntime(ctx context.Context, base string) (runtimeStats, error) {
	if b, err := get(ctx, base+"/debug/pprof/heap?debug=1&gc=1"); err == nil {
		rs := runtimeStats{Source: "pprof"}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "# HeapInuse = "); ok {
				rs.Heap, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		if g, err := get(ctx, base+"/debug/pprof/goroutine?debug=1"); err == nil {
			line, _, _ := bytes.Cut(g, []byte("\n"))
			if v, ok := strings.CutPrefix(string(line), "goroutine profile: total "); ok {
				rs.Goroutines, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		return rs, nil
	}
	b, err := get(ctx, base+"/metrics?gc=1")
	if err != nil {
		return runtimeStats{}, fmt.Errorf("neither /debug/pprof nor /metrics: %w", err)
	}
	m := parseMetrics(b)
	if v, ok := m["go_memstats_heap_inuse_bytes"]; ok {
		return runtimeStats{Heap: int64(v), Goroutines: int64(m["go_goroutines"]), Source: "metrics"}, nil
	}
	if v, ok := m["nodejs_heap_used_bytes"]; ok {
		return runtimeStats{Heap: int64(v + m["nodejs_external_memory_bytes"]), Source: "metrics"}, nil
	}
	return runtimeStats{}, errors.New("/metrics has no heap gauge")
}

// parseMetrics reads "name value" lines of the Prometheus text format (labels ignored).
func parseMetrics(b []byte) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(f[0], "{")
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[name] = v
		}
	}
	return out
}

func httpBase(addr string) string {
	if strings.Contains(addr, "://") {
		return strings.TrimSuffix(addr, "/")
	}
	return "http://" + addr
}

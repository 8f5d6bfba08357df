package main

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// atomicCount is a counter shared by goroutines; a nil one counts nothing.
type atomicCount struct{ n atomic.Int64 }

func (c *atomicCount) add(d int64) {
	if c != nil {
		c.n.Add(d)
	}
}

func (c *atomicCount) load() int64 {
	if c == nil {
		return 0
	}
	return c.n.Load()
}

// samples collects latencies.
type samples struct {
	mu sync.Mutex
	v  []time.Duration
}

func (s *samples) add(d time.Duration) {
	s.mu.Lock()
	s.v = append(s.v, d)
	s.mu.Unlock()
}

// Percentiles is a latency summary in milliseconds.
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func (s *samples) summary() Percentiles {
	s.mu.Lock()
	v := slices.Clone(s.v)
	s.mu.Unlock()
	if len(v) == 0 {
		return Percentiles{}
	}
	slices.Sort(v)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(v)))) - 1
		i = max(0, min(i, len(v)-1))
		return ms(v[i])
	}
	return Percentiles{N: len(v), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(v[len(v)-1])}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// errorCounts counts failures by reason.
type errorCounts struct {
	mu sync.Mutex
	m  map[string]int64
}

func (e *errorCounts) add(reason string) {
	e.mu.Lock()
	if e.m == nil {
		e.m = map[string]int64{}
	}
	e.m[reason]++
	e.mu.Unlock()
}

func (e *errorCounts) snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int64, len(e.m))
	for k, v := range e.m {
		out[k] = v
	}
	return out
}

// linearFit returns the least-squares slope and intercept of y over x.
func linearFit(x, y []float64) (slope, intercept float64) {
	n := float64(len(x))
	if n < 2 {
		return 0, 0
	}
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
		sxx += x[i] * x[i]
		sxy += x[i] * y[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0, 0
	}
	slope = (n*sxy - sx*sy) / d
	return slope, (sy - slope*sx) / n
}

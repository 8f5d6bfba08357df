package server

import (
	"net/netip"
	"testing"
	"time"
)

func TestClientAddr(t *testing.T) {
	trusted, err := parsePrefixes([]string{"10.0.0.0/8", "127.0.0.1", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct", "203.0.113.7:5000", nil, "203.0.113.7"},
		{"untrusted peer's header is ignored", "203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"trusted proxy", "10.1.2.3:80", []string{"198.51.100.1"}, "198.51.100.1"},
		{"forged hops left of the real client", "10.1.2.3:80", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"proxy chain", "127.0.0.1:80", []string{"198.51.100.1, 10.9.9.9", "10.0.0.5"}, "198.51.100.1"},
		{"only proxies", "10.1.2.3:80", []string{"10.0.0.5"}, "10.0.0.5"},
		{"malformed hop stops the walk", "10.1.2.3:80", []string{"198.51.100.1, bogus"}, "10.1.2.3"},
		{"trusted without header", "127.0.0.1:80", nil, "127.0.0.1"},
		{"IPv6 counts by /64", "[2001:db8:1:2:aaaa::1]:443", nil, "2001:db8:1:2::"},
		{"IPv4-mapped IPv6", "[::ffff:203.0.113.7]:1", nil, "203.0.113.7"},
		{"unparsable peer", "nonsense", nil, "invalid IP"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := clientAddr(c.remote, c.xff, trusted).String(); got != c.want {
				t.Fatalf("clientAddr(%q, %q) = %s, want %s", c.remote, c.xff, got, c.want)
			}
		})
	}
	if _, err := parsePrefixes([]string{"10.0.0.0/33"}); err == nil {
		t.Fatal("a bad prefix was accepted")
	}
}

func TestConnLimiterBuckets(t *testing.T) {
	l := newConnLimiter(2, 3, nil)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	now := time.Now()
	for i := range 3 {
		if ok, _ := l.allow(a, now); !ok {
			t.Fatalf("burst connection %d refused", i+1)
		}
	}
	ok, wait := l.allow(a, now)
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("over the burst: ok=%v wait=%v; want refused, a token in at most 500ms at 2/s", ok, wait)
	}
	if ok, _ := l.allow(b, now); !ok {
		t.Fatal("another address was refused")
	}
	if ok, _ := l.allow(a, now.Add(500*time.Millisecond)); !ok {
		t.Fatal("refused after the bucket refilled one token")
	}
	// Full buckets are dropped by the sweep; the others stay.
	l.allow(a, now.Add(limiterSweepEvery))
	later := now.Add(limiterSweepEvery + 10*time.Second)
	l.allow(a, later)
	l.mu.Lock()
	n := len(l.buckets)
	_, hasB := l.buckets[b]
	l.mu.Unlock()
	if hasB || n != 1 {
		t.Fatalf("after the sweep: %d buckets, b kept: %v; want only a's", n, hasB)
	}
}

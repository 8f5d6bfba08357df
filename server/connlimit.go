package server

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchboard-rtc/switchboard/server/signaling"
)

// connLimiter throttles new Engine.IO sessions per client address with one token bucket each.
// It works at the HTTP layer, before a session exists, so a flood costs a map lookup and a
// 429; standard Socket.IO clients treat the refusal as a transport error and retry with backoff.
type connLimiter struct {
	limit   rate.Limit
	burst   int
	trusted []netip.Prefix // proxies whose X-Forwarded-For is believed
	refused func()         // counts a refusal; may be nil

	mu        sync.Mutex
	buckets   map[netip.Addr]*rate.Limiter
	lastSweep time.Time
}

// limiterSweepEvery is how often buckets that are full again are dropped, so the map holds only
// addresses seen recently.
const limiterSweepEvery = 10 * time.Second

func newConnLimiter(perSecond, burst int, trusted []netip.Prefix) *connLimiter {
	return &connLimiter{
		limit: rate.Limit(perSecond), burst: burst, trusted: trusted,
		buckets: make(map[netip.Addr]*rate.Limiter), lastSweep: time.Now(),
	}
}

// allow takes a token for addr, or says how long until one is there.
func (l *connLimiter) allow(addr netip.Addr, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= limiterSweepEvery {
		for a, b := range l.buckets {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.buckets, a)
			}
		}
		l.lastSweep = now
	}
	b := l.buckets[addr]
	if b == nil {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[addr] = b
	}
	if b.AllowN(now, 1) {
		return true, 0
	}
	wait := time.Duration(math.Ceil((1 - b.TokensAt(now)) / float64(l.limit) * float64(time.Second)))
	return false, wait
}

// middleware refuses new sessions (Engine.IO requests without a sid) over the limit with 429.
// Requests of existing sessions (polling, the websocket upgrade) always pass.
func (l *connLimiter) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("sid") != "" {
			next.ServeHTTP(w, r)
			return
		}
		addr := clientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), l.trusted)
		ok, wait := l.allow(addr, time.Now())
		if ok {
			next.ServeHTTP(w, r)
			return
		}
		if l.refused != nil {
			l.refused()
		}
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_ = json.NewEncoder(w).Encode(signaling.Error{
			Code:    signaling.CodeRateLimited,
			Message: fmt.Sprintf("too many new connections from this address; retry in %ds", max(secs, 1)),
		})
	})
}

// clientAddr is the address a request is counted under: the peer's, or, when the peer is a
// trusted proxy, the last X-Forwarded-For hop that is not one (hops left of it could be forged).
// IPv6 addresses count by their /64, which one host usually has to itself.
func clientAddr(remote string, xff []string, trusted []netip.Prefix) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{} // every unparsable peer shares one bucket
	}
	addr = addr.Unmap()
	if isTrusted(addr, trusted) {
		hops := strings.Split(strings.Join(xff, ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break // a malformed hop ends what can be believed
			}
			addr = hop.Unmap()
			if !isTrusted(addr, trusted) {
				break
			}
		}
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.Addr()
	}
	return addr
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parsePrefixes reads addresses and CIDR prefixes; a bare address is its own /32 or /128.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

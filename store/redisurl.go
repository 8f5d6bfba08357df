package store

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"time"

	"github.com/redis/go-redis/v9"
)

// OpenRedis connects a Redis store to the deployment named by a REDIS_URL (see ParseRedisURL).
func OpenRedis(url string, opts Options) (*Redis, error) {
	uo, err := ParseRedisURL(url)
	if err != nil {
		return nil, err
	}
	failFast(uo)
	return NewRedis(newClient(uo, opts.WithDefaults()), opts), nil
}

// failFast bounds how long a call retries an unreachable Redis (about half a second instead of
// go-redis's several seconds), so clients get "unavailable" quickly and retry themselves.
func failFast(uo *redis.UniversalOptions) {
	if uo.DialerRetries == 0 {
		uo.DialerRetries = 2
	}
	if uo.DialerRetryTimeout == 0 {
		uo.DialerRetryTimeout = 50 * time.Millisecond
	}
	if uo.MaxRetries == 0 {
		uo.MaxRetries = 1
	}
}

// ParseRedisURL turns a REDIS_URL into client options:
//
//	redis://[user:pass@]host:port[/db][?opt=...]        one server (go-redis ParseURL and its options)
//	rediss://...                                         the same over TLS
//	redis+sentinel://[user:pass@]h1:p1,h2:p2/master[?db=N&sentinel_password=P]
//	                                                     a Sentinel set; pass is the master's,
//	                                                     sentinel_password the sentinels' (if any)
//	redis+cluster://[user:pass@]h1:p1,h2:p2              a Cluster, any nodes as seeds
//
// rediss+sentinel:// and rediss+cluster:// use TLS. A host without a port gets 26379 (Sentinel)
// or 6379.
func ParseRedisURL(s string) (*redis.UniversalOptions, error) {
	scheme, _, _ := strings.Cut(s, "://")
	switch scheme {
	case "redis", "rediss":
		o, err := redis.ParseURL(s)
		if err != nil {
			return nil, fmt.Errorf("store: redis url: %w", err)
		}
		if o.Network == "unix" {
			return nil, fmt.Errorf("store: redis url: unix sockets are not supported")
		}
		return fromOptions(o), nil
	case "redis+sentinel", "rediss+sentinel":
		return parseMultiURL(s, true)
	case "redis+cluster", "rediss+cluster":
		return parseMultiURL(s, false)
	}
	return nil, fmt.Errorf("store: redis url: unknown scheme %q", scheme)
}

func fromOptions(o *redis.Options) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Addrs:           []string{o.Addr},
		DB:              o.DB,
		Username:        o.Username,
		Password:        o.Password,
		TLSConfig:       o.TLSConfig,
		ClientName:      o.ClientName,
		Protocol:        o.Protocol,
		MaxRetries:      o.MaxRetries,
		MinRetryBackoff: o.MinRetryBackoff,
		MaxRetryBackoff: o.MaxRetryBackoff,
		DialTimeout:     o.DialTimeout,
		ReadTimeout:     o.ReadTimeout,
		WriteTimeout:    o.WriteTimeout,
		PoolFIFO:        o.PoolFIFO,
		PoolSize:        o.PoolSize,
		PoolTimeout:     o.PoolTimeout,
		MinIdleConns:    o.MinIdleConns,
		MaxIdleConns:    o.MaxIdleConns,
		MaxActiveConns:  o.MaxActiveConns,
		ConnMaxIdleTime: o.ConnMaxIdleTime,
		ConnMaxLifetime: o.ConnMaxLifetime,
	}
}

// parseMultiURL parses the Sentinel and Cluster forms by hand: net/url does not take a host list.
func parseMultiURL(s string, sentinel bool) (*redis.UniversalOptions, error) {
	bad := func(format string, args ...any) (*redis.UniversalOptions, error) {
		return nil, fmt.Errorf("store: redis url: "+format, args...)
	}
	scheme, rest, _ := strings.Cut(s, "://")
	rest, rawQuery, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")

	o := &redis.UniversalOptions{}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		user, pass, _ := strings.Cut(authority[:at], ":")
		var err error
		if o.Username, err = url.PathUnescape(user); err != nil {
			return bad("user: %v", err)
		}
		if o.Password, err = url.PathUnescape(pass); err != nil {
			return bad("password: %v", err)
		}
		authority = authority[at+1:]
	}
	defaultPort := "6379"
	if sentinel {
		defaultPort = "26379"
	}
	for _, h := range strings.Split(authority, ",") {
		if h == "" {
			return bad("empty host in %q", authority)
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			// No port: the whole item is the host (bracketed if IPv6).
			host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), defaultPort
		}
		if host == "" || strings.ContainsAny(host, "[]/") {
			return bad("bad host %q", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return bad("bad port in %q", h)
		}
		o.Addrs = append(o.Addrs, net.JoinHostPort(host, port))
	}
	if strings.HasPrefix(scheme, "rediss") {
		host, _, _ := net.SplitHostPort(o.Addrs[0])
		o.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}

	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	if sentinel {
		master, err := url.PathUnescape(strings.TrimSuffix(path, "/"))
		if err != nil || master == "" || strings.Contains(master, "/") {
			return bad("sentinel url needs /<master name>, got path %q", path)
		}
		o.MasterName = master
		if v := q.Get("db"); v != "" {
			if o.DB, err = strconv.Atoi(v); err != nil || o.DB < 0 {
				return bad("bad db %q", v)
			}
		}
		o.SentinelPassword = q.Get("sentinel_password")
		q.Del("db")
		q.Del("sentinel_password")
	} else {
		if strings.Trim(path, "/") != "" {
			return bad("cluster url takes no path (no databases in a cluster), got %q", path)
		}
		o.IsClusterMode = true
	}
	for k := range q {
		return bad("unknown option %q", k)
	}
	return o, nil
}

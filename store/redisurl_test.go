package store_test

import (
	"slices"
	"testing"

	"github.com/switchboard-rtc/switchboard/store"
)

func TestParseRedisURL(t *testing.T) {
	type want struct {
		addrs              []string
		db                 int
		user, pass         string
		master, sentinelPW string
		cluster, tls       bool
	}
	tests := []struct {
		url  string
		want want
		bad  bool
	}{
		{url: "redis://localhost:6379", want: want{addrs: []string{"localhost:6379"}}},
		{url: "redis://localhost", want: want{addrs: []string{"localhost:6379"}}},
		{url: "redis://u:p%40ss@h:6380/3", want: want{addrs: []string{"h:6380"}, db: 3, user: "u", pass: "p@ss"}},
		{url: "redis://:secret@h:6379/0", want: want{addrs: []string{"h:6379"}, pass: "secret"}},
		{url: "rediss://h:6380", want: want{addrs: []string{"h:6380"}, tls: true}},
		{url: "redis://[::1]:6379/1", want: want{addrs: []string{"[::1]:6379"}, db: 1}},
		{url: "redis+sentinel://s1:26379,s2:26380/mymaster",
			want: want{addrs: []string{"s1:26379", "s2:26380"}, master: "mymaster"}},
		{url: "redis+sentinel://:pw@s1,s2:1234/mymaster?db=2&sentinel_password=spw",
			want: want{addrs: []string{"s1:26379", "s2:1234"}, master: "mymaster", db: 2, pass: "pw", sentinelPW: "spw"}},
		{url: "rediss+sentinel://s1:26379/m",
			want: want{addrs: []string{"s1:26379"}, master: "m", tls: true}},
		{url: "redis+cluster://n1:7000,n2:7001,[::1]:7002",
			want: want{addrs: []string{"n1:7000", "n2:7001", "[::1]:7002"}, cluster: true}},
		{url: "redis+cluster://:pw@n1", want: want{addrs: []string{"n1:6379"}, pass: "pw", cluster: true}},
		{url: "redis+cluster://user:pw@n1:7000/", want: want{addrs: []string{"n1:7000"}, user: "user", pass: "pw", cluster: true}},
		{url: "rediss+cluster://n1:7000", want: want{addrs: []string{"n1:7000"}, cluster: true, tls: true}},

		{url: "http://h:6379", bad: true},
		{url: "localhost:6379", bad: true},
		{url: "unix:///tmp/redis.sock", bad: true},
		{url: "redis://h:6379/notanumber", bad: true},
		{url: "redis+sentinel://s1:26379", bad: true},
		{url: "redis+sentinel://s1:26379/", bad: true},
		{url: "redis+sentinel://s1:26379/m?db=x", bad: true},
		{url: "redis+sentinel://s1:26379/m?bogus=1", bad: true},
		{url: "redis+cluster://n1:7000/2", bad: true},
		{url: "redis+cluster://n1:7000,,n2:7001", bad: true},
		{url: "redis+cluster://n1:99999", bad: true},
		{url: "redis+cluster://n1:x", bad: true},
		{url: "redis+cluster://", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			o, err := store.ParseRedisURL(tt.url)
			if tt.bad {
				if err == nil {
					t.Fatalf("accepted, options %+v", o)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := want{
				addrs: o.Addrs, db: o.DB, user: o.Username, pass: o.Password,
				master: o.MasterName, sentinelPW: o.SentinelPassword,
				cluster: o.IsClusterMode, tls: o.TLSConfig != nil,
			}
			if !slices.Equal(got.addrs, tt.want.addrs) {
				t.Fatalf("addrs %q, want %q", got.addrs, tt.want.addrs)
			}
			got.addrs, tt.want.addrs = nil, nil
			if got.db != tt.want.db || got.user != tt.want.user || got.pass != tt.want.pass ||
				got.master != tt.want.master || got.sentinelPW != tt.want.sentinelPW ||
				got.cluster != tt.want.cluster || got.tls != tt.want.tls {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOpenRedis(t *testing.T) {
	s, err := store.OpenRedis("redis://"+redisAddr()+"/0", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("ping through OpenRedis: %v", err)
	}
	if _, err := store.OpenRedis("nope://x", store.Options{}); err == nil {
		t.Fatal("OpenRedis accepted an unknown scheme")
	}
}

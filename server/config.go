package server

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-rtc/switchboard/server/signaling"
	"github.com/switchboard-rtc/switchboard/store"
)

// Config is every setting of a Switchboard instance. Each has an environment variable and a
// flag (flags win); DefaultConfig holds the defaults, docs in README.md and docs/deploy.md.
type Config struct {
	Addr        string   // listen address
	RedisURL    string   // empty: the embedded in-memory store (one instance only)
	RedisPrefix string   // prefix of every Redis key and channel
	InstanceID  string   // unique per instance; deliveries are routed by it
	CORSOrigins []string // allowed browser origins; "*" allows any
	Engine      string   // Engine.IO server under the Socket.IO layer: EngineLibrary or EngineSwitchboard
	// WSPoller: Switchboard's engine reads websockets through one poller (an idle one holds no
	// goroutine); false gives each a read goroutine.
	WSPoller bool
	LogLevel slog.Level

	HeldOfferTTL   time.Duration // how long a held offer waits for an answerer
	ResumeWindow   time.Duration // how long a disconnected peer keeps its place
	RoomCapacity   int           // members per room
	PingInterval   time.Duration // Engine.IO heartbeat
	PingTimeout    time.Duration // Engine.IO heartbeat
	ConnectTimeout time.Duration // a connection that does not complete the Socket.IO handshake is closed
	ResendInterval time.Duration // unacknowledged server messages are sent again after this
	ReorderTimeout time.Duration // how long an early client message waits for its predecessors
	MaxReorder     int           // early client messages that may wait per membership
	RoomTTL        time.Duration // a room's state is dropped this long after its last activity

	MaxMessageBytes   int // largest Socket.IO message accepted
	MaxSDPBytes       int
	MaxCandidateBytes int
	MaxHeldCandidates int // early candidates held with one offer
	MaxBacklog        int // unacknowledged messages queued for one peer
	MaxRoomsPerConn   int // memberships one connection may hold
	EventRate         int // events per second one connection may send
	EventBurst        int // how many events a connection may send at once beyond EventRate
	EventQueue        int // events of one connection received and not yet handled; when reached the connection is not read
	ConnRate          int // new connections per second from one client address
	ConnBurst         int // how many new connections one address may open at once beyond ConnRate
	MaxHeldOffers     int // offers held at once under RedisPrefix (all instances together)

	RedisClusterReload time.Duration // how often a Redis Cluster client re-reads the slot map
	RedisWaitReplicas  int           // replicas that must have a client message before it is acknowledged; 0: none
	RedisWaitTimeout   time.Duration // how long a client message waits for them

	TrustedProxies []string // addresses or CIDRs of proxies whose X-Forwarded-For is believed

	STUNURLs   []string      // ICE servers announced to clients
	TURNURLs   []string      // TURN servers announced to clients, with credentials (see turn.go)
	TURNSecret string        // coturn's static-auth-secret; empty: no TURN servers announced
	TURNTTL    time.Duration // lifetime of the TURN credentials in a join or resume reply

	AuthSecret string // HS256 secret of room tokens; empty: the server runs open

	Webhook WebhookConfig // call events sent to the app's backend (webhook.go)
}

// The Engine.IO servers a Config can name.
const (
	EngineLibrary     = "library"     // the Socket.IO library's own engine
	EngineSwitchboard = "switchboard" // package server/engineio
)

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Addr:               ":8080",
		RedisPrefix:        store.DefaultPrefix,
		InstanceID:         defaultInstanceID(),
		CORSOrigins:        []string{"*"},
		Engine:             EngineSwitchboard,
		WSPoller:           true,
		LogLevel:           slog.LevelInfo,
		HeldOfferTTL:       store.DefaultHeldTTL,
		ResumeWindow:       store.DefaultResumeWindow,
		RoomCapacity:       store.DefaultCapacity,
		PingInterval:       25 * time.Second,
		PingTimeout:        20 * time.Second,
		ConnectTimeout:     3 * time.Second,
		ResendInterval:     time.Second,
		ReorderTimeout:     5 * time.Second,
		MaxReorder:         256,
		RoomTTL:            store.DefaultRoomTTL,
		MaxMessageBytes:    128 << 10,
		MaxSDPBytes:        64 << 10,
		MaxCandidateBytes:  2048,
		MaxHeldCandidates:  store.DefaultMaxHeldCandidates,
		MaxBacklog:         store.DefaultMaxBacklog,
		MaxRoomsPerConn:    4,
		EventRate:          100,
		EventBurst:         200,
		EventQueue:         64,
		ConnRate:           20,
		ConnBurst:          100,
		MaxHeldOffers:      store.DefaultMaxHeldOffers,
		RedisClusterReload: store.DefaultClusterReload,
		RedisWaitTimeout:   store.DefaultWaitTimeout,
		Webhook:            defaultWebhookConfig(),
		TURNTTL:            time.Hour,
	}
}

func defaultInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "switchboard"
	}
	// A restarted instance gets a new id, so nothing stale is routed to it.
	return host + "-" + signalingID()
}

// setting binds one Config field to its environment variable and flag.
type setting struct {
	env, flag, usage string
	set              func(string) error // parses and stores a value
	get              func() string      // the current value, for the usage text
}

func strSetting(env, fl, usage string, p *string) setting {
	return setting{env, fl, usage, func(s string) error { *p = s; return nil }, func() string { return *p }}
}

func listSetting(env, fl, usage string, p *[]string) setting {
	return setting{env, fl, usage,
		func(s string) error { *p = splitList(s); return nil },
		func() string { return strings.Join(*p, ",") }}
}

func durSetting(env, fl, usage string, p *time.Duration) setting {
	return setting{env, fl, usage, func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		if d <= 0 {
			return errors.New("must be positive")
		}
		*p = d
		return nil
	}, func() string { return p.String() }}
}

func boolSetting(env, fl, usage string, p *bool) setting {
	return setting{env, fl, usage, func(s string) error {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		*p = b
		return nil
	}, func() string { return strconv.FormatBool(*p) }}
}

func intSetting(env, fl, usage string, p *int) setting {
	return setting{env, fl, usage, func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		if n <= 0 {
			return errors.New("must be positive")
		}
		*p = n
		return nil
	}, func() string { return strconv.Itoa(*p) }}
}

func (c *Config) settings() []setting {
	return append([]setting{
		strSetting("SWITCHBOARD_ADDR", "addr", "listen address", &c.Addr),
		strSetting("REDIS_URL", "redis-url", "Redis URL: redis://, rediss://, redis+sentinel://h1,h2/master or redis+cluster://h1,h2; empty: embedded store", &c.RedisURL),
		strSetting("SWITCHBOARD_REDIS_PREFIX", "redis-prefix", "prefix of Redis keys and channels", &c.RedisPrefix),
		strSetting("SWITCHBOARD_INSTANCE_ID", "instance-id", "unique instance id", &c.InstanceID),
		listSetting("SWITCHBOARD_CORS_ORIGINS", "cors-origins", "comma-separated allowed browser origins, * for any", &c.CORSOrigins),
		strSetting("SWITCHBOARD_ENGINE", "engine", "Engine.IO server under Socket.IO: library or switchboard", &c.Engine),
		boolSetting("SWITCHBOARD_WS_POLLER", "ws-poller", "switchboard engine: read websockets through one poller (false: a goroutine each)", &c.WSPoller),
		{"SWITCHBOARD_LOG_LEVEL", "log-level", "debug, info, warn or error",
			func(s string) error { return c.LogLevel.UnmarshalText([]byte(s)) },
			func() string { return strings.ToLower(c.LogLevel.String()) }},
		durSetting("SWITCHBOARD_HELD_OFFER_TTL", "held-offer-ttl", "how long a held offer waits for an answerer", &c.HeldOfferTTL),
		durSetting("SWITCHBOARD_RESUME_WINDOW", "resume-window", "how long a disconnected peer keeps its place", &c.ResumeWindow),
		intSetting("SWITCHBOARD_ROOM_CAPACITY", "room-capacity", "members per room", &c.RoomCapacity),
		durSetting("SWITCHBOARD_PING_INTERVAL", "ping-interval", "Engine.IO ping interval", &c.PingInterval),
		durSetting("SWITCHBOARD_PING_TIMEOUT", "ping-timeout", "Engine.IO ping timeout", &c.PingTimeout),
		durSetting("SWITCHBOARD_CONNECT_TIMEOUT", "connect-timeout", "close connections that do not complete the Socket.IO handshake within", &c.ConnectTimeout),
		durSetting("SWITCHBOARD_RESEND_INTERVAL", "resend-interval", "resend unacknowledged server messages after", &c.ResendInterval),
		durSetting("SWITCHBOARD_REORDER_TIMEOUT", "reorder-timeout", "how long an early client message waits for earlier ones", &c.ReorderTimeout),
		intSetting("SWITCHBOARD_MAX_REORDER", "max-reorder", "early client messages that may wait for earlier ones, per peer", &c.MaxReorder),
		durSetting("SWITCHBOARD_ROOM_TTL", "room-ttl", "drop a room's state this long after its last activity", &c.RoomTTL),
		intSetting("SWITCHBOARD_MAX_MESSAGE_BYTES", "max-message-bytes", "largest Socket.IO message", &c.MaxMessageBytes),
		intSetting("SWITCHBOARD_MAX_SDP_BYTES", "max-sdp-bytes", "largest SDP", &c.MaxSDPBytes),
		intSetting("SWITCHBOARD_MAX_CANDIDATE_BYTES", "max-candidate-bytes", "largest ICE candidate string", &c.MaxCandidateBytes),
		intSetting("SWITCHBOARD_MAX_HELD_CANDIDATES", "max-held-candidates", "early candidates held with one offer", &c.MaxHeldCandidates),
		intSetting("SWITCHBOARD_MAX_BACKLOG", "max-backlog", "unacknowledged messages queued for one peer", &c.MaxBacklog),
		intSetting("SWITCHBOARD_MAX_ROOMS_PER_CONN", "max-rooms-per-conn", "rooms one connection may be in", &c.MaxRoomsPerConn),
		intSetting("SWITCHBOARD_EVENT_RATE", "event-rate", "events per second one connection may send", &c.EventRate),
		intSetting("SWITCHBOARD_EVENT_BURST", "event-burst", "events one connection may send at once beyond the rate", &c.EventBurst),
		intSetting("SWITCHBOARD_EVENT_QUEUE", "event-queue", "events of one connection received and not yet handled; when reached, that connection is not read until one is done", &c.EventQueue),
		intSetting("SWITCHBOARD_CONN_RATE", "conn-rate", "new connections per second from one client address", &c.ConnRate),
		intSetting("SWITCHBOARD_CONN_BURST", "conn-burst", "new connections one client address may open at once beyond the rate", &c.ConnBurst),
		listSetting("SWITCHBOARD_TRUSTED_PROXIES", "trusted-proxies", "comma-separated addresses or CIDRs of proxies whose X-Forwarded-For names the client", &c.TrustedProxies),
		intSetting("SWITCHBOARD_MAX_HELD_OFFERS", "max-held-offers", "offers held at once by all instances sharing the Redis prefix", &c.MaxHeldOffers),
		durSetting("SWITCHBOARD_REDIS_CLUSTER_RELOAD", "redis-cluster-reload", "how often a Redis Cluster client re-reads the slot map (also at once when a node stops answering)", &c.RedisClusterReload),
		{"SWITCHBOARD_REDIS_WAIT_REPLICAS", "redis-wait-replicas", "replicas that must have a client message before it is acknowledged (Redis WAIT); 0: none",
			func(s string) error {
				n, err := strconv.Atoi(s)
				if err == nil && n < 0 {
					err = errors.New("must not be negative")
				}
				if err == nil {
					c.RedisWaitReplicas = n
				}
				return err
			},
			func() string { return strconv.Itoa(c.RedisWaitReplicas) }},
		durSetting("SWITCHBOARD_REDIS_WAIT_TIMEOUT", "redis-wait-timeout", "how long a client message waits for the replicas; fewer in time: unavailable", &c.RedisWaitTimeout),
		listSetting("SWITCHBOARD_STUN_URLS", "stun-urls", "comma-separated STUN URLs announced to clients", &c.STUNURLs),
		listSetting("SWITCHBOARD_TURN_URLS", "turn-urls", "comma-separated TURN URLs announced to clients with credentials (needs the TURN secret)", &c.TURNURLs),
		{"SWITCHBOARD_TURN_SECRET", "turn-secret", "TURN REST API shared secret (coturn static-auth-secret); empty: STUN only",
			func(s string) error { c.TURNSecret = s; return nil },
			func() string { return "" }}, // never printed
		durSetting("SWITCHBOARD_TURN_TTL", "turn-ttl", "lifetime of the TURN credentials handed to a peer", &c.TURNTTL),
		{"SWITCHBOARD_AUTH_SECRET", "auth-secret", "secret of room tokens (HS256 JWT); empty: anyone may join any room",
			func(s string) error { c.AuthSecret = s; return nil },
			func() string { return "" }}, // never printed
	}, c.Webhook.settings()...)
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// LoadConfig reads the defaults, then the environment (through getenv), then flags in args.
func LoadConfig(args []string, getenv func(string) string, usageOut io.Writer) (Config, error) {
	c := DefaultConfig()
	settings := c.settings()
	for _, s := range settings {
		if v := getenv(s.env); v != "" {
			if err := s.set(v); err != nil {
				return c, fmt.Errorf("%s=%q: %w", s.env, v, err)
			}
		}
	}
	fs := flag.NewFlagSet("switchboard", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	for _, s := range settings {
		fs.Func(s.flag, fmt.Sprintf("%s (env %s, default %q)", s.usage, s.env, s.get()), s.set)
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Validate checks settings that depend on each other.
func (c Config) Validate() error {
	switch {
	case c.RoomCapacity < 2:
		return errors.New("room capacity must be at least 2")
	case c.InstanceID == "" || strings.ContainsAny(c.InstanceID, " \n"):
		return errors.New("instance id must be non-empty without spaces")
	case c.Engine != EngineLibrary && c.Engine != EngineSwitchboard:
		return fmt.Errorf("engine %q: want %q or %q", c.Engine, EngineLibrary, EngineSwitchboard)
	case c.MaxSDPBytes > c.MaxMessageBytes:
		return fmt.Errorf("max SDP bytes (%d) exceeds max message bytes (%d)", c.MaxSDPBytes, c.MaxMessageBytes)
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		return fmt.Errorf("trusted proxies: %w", err)
	}
	if err := c.Webhook.validate(); err != nil {
		return err
	}
	return c.validateICE()
}

// StoreOptions are the store's share of the configuration.
func (c Config) StoreOptions() store.Options {
	return store.Options{
		Prefix:            c.RedisPrefix,
		Capacity:          c.RoomCapacity,
		HeldTTL:           c.HeldOfferTTL,
		ResumeWindow:      c.ResumeWindow,
		RoomTTL:           c.RoomTTL,
		MaxHeldCandidates: c.MaxHeldCandidates,
		MaxBacklog:        c.MaxBacklog,
		MaxHeldOffers:     c.MaxHeldOffers,
		OutboxMax:         c.Webhook.outboxMax(),
		ClusterReload:     c.RedisClusterReload,
		WaitReplicas:      c.RedisWaitReplicas,
		WaitTimeout:       c.RedisWaitTimeout,
	}
}

func (c Config) hubConfig() signaling.Config {
	return signaling.Config{
		Instance:       c.InstanceID,
		Limits:         signaling.Limits{MaxSDPBytes: c.MaxSDPBytes, MaxCandidateBytes: c.MaxCandidateBytes, MaxMessageBytes: c.MaxMessageBytes},
		ResumeWindow:   c.ResumeWindow,
		HeldTTL:        c.HeldOfferTTL,
		Capacity:       c.RoomCapacity,
		ResendInterval: c.ResendInterval,
		ReorderTimeout: c.ReorderTimeout,
		MaxReorder:     c.MaxReorder,
		MaxRooms:       c.MaxRoomsPerConn,
		EventRate:      float64(c.EventRate),
		EventBurst:     c.EventBurst,
		SweepInterval:  min(time.Second, c.HeldOfferTTL/4, c.ResumeWindow/4),
		ICEServers:     c.iceServers(),
		Authorize:      c.authorizer(),
	}
}

package deploy_test

// The compose topology as local processes on loopback: redis-server, the switchboard instances
// of docker-compose.yml with their environment, HAProxy with deploy/haproxy.cfg and coturn with
// deploy/turnserver.conf and the compose command line. Only addresses and ports differ; they are
// given the way each program takes them (environment, HAProxy's ${VAR}s, coturn's command line).

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/metricstest"
	"github.com/switchboard-rtc/switchboard/internal/redistest"
	"github.com/switchboard-rtc/switchboard/internal/sioclient"
)

// cluster is the running topology.
type cluster struct {
	root, dir  string
	binary     string
	secret     string
	lbURL      string
	insts      []clusterInstance
	turnAddr   string // coturn, 127.0.0.1:port (UDP and TCP)
	relayPorts [2]int // coturn's relay port range
	cookies    []string
}

type clusterInstance struct {
	name, id, addr string
}

func (c *cluster) url(i int) string { return "http://" + c.insts[i].addr }

// proc is a process started by a test; stop ends it and every process it started.
type proc struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
}

// startProc starts bin in its own process group, output to <dir>/<name>.log; the test's
// cleanup stops it and shows the end of its log if the test failed.
func startProc(t *testing.T, dir, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *proc) stop(t *testing.T) {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Errorf("%s did not stop on SIGTERM within 5s; killing it", p.name)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Nothing of its process group may be left.
	if err := syscall.Kill(-pgid, 0); err == nil {
		t.Errorf("%s left processes in group %d; killing them", p.name, pgid)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	if t.Failed() {
		t.Logf("--- end of %s log:\n%s", p.name, redistest.Tail(p.log, 30))
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// lookBins finds the programs the cluster needs. A missing one fails the test: .ci/run
// installs them.
func lookBins(t *testing.T, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var missing []string
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
				if _, serr := os.Stat(filepath.Join(dir, n)); serr == nil {
					p, err = filepath.Join(dir, n), nil
				}
			}
		}
		if err != nil {
			missing = append(missing, n)
		}
		out[n] = p
	}
	if len(missing) > 0 {
		t.Fatalf("missing programs %v: run .ci/run, or apt-get install redis-server haproxy coturn nodejs npm", missing)
	}
	return out
}

// freePort returns a port free for TCP and UDP on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			_ = u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func waitUntil(t *testing.T, what string, timeout time.Duration, p *proc, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if p != nil && p.exited() {
			t.Fatalf("%s exited while waiting for %s:\n%s", p.name, what, redistest.Tail(p.log, 30))
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func httpStatus(url string) int {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func redisPing(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// ensureNodeModules installs the npm dev dependencies (socket.io-client) when they are absent,
// as `make test` would before the Node tests.
func ensureNodeModules(t *testing.T, root, npm string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(root, "node_modules", "socket.io-client", "package.json")); err == nil {
		return
	}
	t.Log("node_modules is missing: npm ci")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
}

// startCluster starts the topology of docker-compose.yml on loopback.
func startCluster(t *testing.T, bins map[string]string) *cluster {
	t.Helper()
	c := &cluster{root: repoRoot(t), dir: t.TempDir(), secret: randomHex(16)}
	p := mustLoadCompose(t, c.secret)

	// The binary, with the race detector: the dependencies are already built that way for the
	// tests, so this is quick, and races under real traffic fail the test.
	began := time.Now()
	c.binary = filepath.Join(c.dir, "switchboard")
	build := exec.Command("go", "build", "-race", "-o", c.binary, ".")
	build.Dir = c.root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("go build -race: %v", time.Since(began).Round(time.Millisecond))
	began = time.Now()

	// Redis, without persistence: a throwaway instance of our own.
	redisAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	_, redisPort, _ := net.SplitHostPort(redisAddr)
	redis := startProc(t, c.dir, "redis", nil, bins["redis-server"],
		"--bind", "127.0.0.1", "--port", redisPort, "--save", "", "--appendonly", "no", "--dir", c.dir)
	waitUntil(t, "redis", 10*time.Second, redis, func() bool { return redisPing(redisAddr) })

	// coturn: the compose command line with the config file's host path, then loopback
	// addresses and ports. Relay ports come from below Linux's ephemeral range.
	c.turnAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	_, turnPort, _ := net.SplitHostPort(c.turnAddr)
	lo, _ := rand.Int(rand.Reader, big.NewInt(10000))
	c.relayPorts = [2]int{20000 + int(lo.Int64()), 20000 + int(lo.Int64()) + 99}
	coturn := p.Services["coturn"]
	var turnArgs []string
	for _, a := range coturn.Command {
		if src, ok := bindMount(coturn, a); ok {
			a = src
		}
		turnArgs = append(turnArgs, a)
	}
	turnArgs = append(turnArgs,
		"--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--listening-port="+turnPort,
		fmt.Sprintf("--min-port=%d", c.relayPorts[0]), fmt.Sprintf("--max-port=%d", c.relayPorts[1]),
		"--allow-loopback-peers", // both test peers are on loopback
		"--pidfile="+filepath.Join(c.dir, "turnserver.pid"), "--db="+filepath.Join(c.dir, "turndb"),
	)
	turn := startProc(t, c.dir, "coturn", nil, bins["turnserver"], turnArgs...)

	// The instances, with their compose environment; the addresses are loopback ones.
	hostAddr := map[string]string{} // compose service host:port -> loopback address
	for _, s := range switchboardServices(t, p) {
		inst := clusterInstance{name: s.Name, id: envOf(s, "SWITCHBOARD_INSTANCE_ID"), addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		_, port, _ := net.SplitHostPort(envOf(s, "SWITCHBOARD_ADDR"))
		hostAddr[net.JoinHostPort(s.Name, port)] = inst.addr
		env := []string{"PATH=" + os.Getenv("PATH")}
		for k, v := range s.Environment {
			if v != nil {
				env = append(env, k+"="+*v)
			}
		}
		env = append(env,
			"SWITCHBOARD_ADDR="+inst.addr,
			"REDIS_URL=redis://"+redisAddr,
			"SWITCHBOARD_STUN_URLS=stun:"+c.turnAddr,
			"SWITCHBOARD_TURN_URLS=turn:"+c.turnAddr+"?transport=udp",
		)
		proc := startProc(t, c.dir, s.Name, env, c.binary)
		c.insts = append(c.insts, inst)
		waitUntil(t, s.Name+" ready", 15*time.Second, proc, func() bool { return httpStatus("http://"+inst.addr+"/readyz") == 200 })
	}

	// HAProxy with deploy/haproxy.cfg; its ${SB_*} variables point at the loopback addresses.
	lb := p.Services["lb"]
	cfg, _ := bindMount(lb, "/usr/local/etc/haproxy/haproxy.cfg")
	lbAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c.lbURL = "http://" + lbAddr
	env := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range lb.Environment {
		switch {
		case v == nil:
		case k == "SB_LB_BIND":
			env = append(env, k+"="+lbAddr)
		case hostAddr[*v] != "":
			env = append(env, k+"="+hostAddr[*v])
		default:
			t.Fatalf("lb: %s=%s names no instance", k, *v)
		}
	}
	haproxy := startProc(t, c.dir, "haproxy", env, bins["haproxy"], "-db", "-f", cfg)
	waitUntil(t, "load balancer", 10*time.Second, haproxy, func() bool { return httpStatus(c.lbURL+"/healthz") == 200 })
	// Both instances in rotation: handshakes without a cookie get each instance's cookie.
	seen := map[string]bool{}
	waitUntil(t, "both instances behind the load balancer", 15*time.Second, haproxy, func() bool {
		if _, cookie, err := pollingHandshake(c.lbURL, ""); err == nil {
			seen[cookie] = true
		}
		return len(seen) == len(c.insts)
	})
	for k := range seen {
		c.cookies = append(c.cookies, k)
	}

	waitUntil(t, "coturn", 10*time.Second, turn, func() bool { return stunBinding(c.turnAddr) == nil })
	t.Logf("cluster up in %v: redis %s, instances %v, lb %s, coturn %s (relay ports %d-%d)",
		time.Since(began).Round(time.Millisecond), redisAddr, c.insts, lbAddr, c.turnAddr, c.relayPorts[0], c.relayPorts[1])
	return c
}

// pollingHandshake opens an Engine.IO long-polling session through the load balancer, sending
// cookie (NAME=value) if not empty. It returns the session id and the sticky cookie set.
func pollingHandshake(base, cookie string) (sid, setCookie string, err error) {
	req, _ := http.NewRequest("GET", base+"/socket.io/?EIO=4&transport=polling", nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var open struct {
		SID string `json:"sid"`
	}
	if resp.StatusCode != 200 || len(body) < 2 || body[0] != '0' || json.Unmarshal(body[1:], &open) != nil {
		return "", "", fmt.Errorf("handshake: %d %q", resp.StatusCode, body)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "SB_INSTANCE" {
			setCookie = ck.Name + "=" + ck.Value
		}
	}
	return open.SID, setCookie, nil
}

// pollingPost sends one Engine.IO payload to session sid through the load balancer.
func pollingPost(base, sid, cookie, payload string) (int, string, error) {
	req, _ := http.NewRequest("POST", base+"/socket.io/?EIO=4&transport=polling&sid="+sid, strings.NewReader(payload))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

func TestCluster(t *testing.T) {
	bins := lookBins(t, "redis-server", "haproxy", "turnserver", "node", "npm")
	ensureNodeModules(t, repoRoot(t), bins["npm"])
	c := startCluster(t, bins)

	t.Run("healthcheck", func(t *testing.T) {
		for addr, want := range map[string]int{
			c.insts[0].addr: 0,
			":" + strings.Split(c.insts[1].addr, ":")[1]: 0, // unspecified host: loopback
			fmt.Sprintf("127.0.0.1:%d", freePort(t)):     1, // nobody listens
		} {
			cmd := exec.Command(c.binary, "-healthcheck")
			// The race runtime's 1 s pause at exit is no use here.
			cmd.Env = []string{"SWITCHBOARD_ADDR=" + addr, "GORACE=atexit_sleep_ms=0"}
			out, err := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != want {
				t.Errorf("-healthcheck on %s: exit %d (%v), want %d\n%s", addr, code, err, want, out)
			}
		}
	})

	// Long-polling works only when every request reaches the instance that holds the session:
	// with the cookie it does, without it the other instance does not know the session.
	t.Run("sticky polling", func(t *testing.T) {
		sid, cookie, err := pollingHandshake(c.lbURL, "")
		if err != nil || cookie == "" {
			t.Fatalf("handshake: sid %q cookie %q: %v", sid, cookie, err)
		}
		for i := range 4 {
			if code, body, err := pollingPost(c.lbURL, sid, cookie, "6"); err != nil || code != 200 {
				t.Fatalf("request %d with the cookie: %d %q %v", i, code, body, err)
			}
		}
		unknown := 0
		for range 2 { // round robin: one of two requests reaches the other instance
			code, body, err := pollingPost(c.lbURL, sid, "", "6")
			if err != nil {
				t.Fatal(err)
			}
			if code == 400 && strings.Contains(body, "Session ID unknown") {
				unknown++
			}
		}
		if unknown == 0 {
			t.Error("without the cookie every request reached the session's instance: is there only one?")
		}
		_, _, _ = pollingPost(c.lbURL, sid, cookie, "1") // close
	})

	t.Run("polling and websocket across instances", func(t *testing.T) {
		before := []map[string]float64{scrape(t, c.url(0)), scrape(t, c.url(1))}
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		defer cancel()
		room := "transports-" + randomHex(6)
		cmd := exec.CommandContext(ctx, bins["node"], filepath.Join(c.root, "deploy", "testdata", "transports.mjs"), c.lbURL, room, strings.Join(c.cookies, ","))
		cmd.Dir = c.root
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.dir}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		began := time.Now()
		out, err := cmd.Output()
		if err != nil {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("node transports.mjs: %v\n%s%s", err, out, stderr)
		}
		t.Logf("call flow over polling + websocket through the load balancer: %v (node included)", time.Since(began).Round(time.Millisecond))
		var res struct {
			CallerTransport, AnswererTransport string
			CallerEvents, AnswererEvents       []string
			CallerICEServers                   []iceServer
			Timings                            map[string]int
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		t.Logf("steps (ms from start): %v", res.Timings)
		if res.CallerTransport != "polling" || res.AnswererTransport != "websocket" {
			t.Errorf("transports: caller %s, answerer %s", res.CallerTransport, res.AnswererTransport)
		}
		if got, want := strings.Join(res.AnswererEvents, " "), "offer candidate candidate hangup"; got != want {
			t.Errorf("answerer events %q, want %q", got, want)
		}
		if got, want := strings.Join(res.CallerEvents, " "), "peer-joined answer candidate candidate peer-left"; got != want {
			t.Errorf("caller events %q, want %q", got, want)
		}
		if len(res.CallerICEServers) != 2 || res.CallerICEServers[1].Username == "" {
			t.Errorf("caller's iceServers %+v: want STUN and TURN with credentials", res.CallerICEServers)
		}
		// The instances' own counters say where each side was.
		var callerAt, answererAt []string
		for i, b := range before {
			after := scrape(t, c.url(i))
			if after[`switchboard_joins_total{role="caller"}`]-b[`switchboard_joins_total{role="caller"}`] == 1 {
				callerAt = append(callerAt, c.insts[i].name)
			}
			if after[`switchboard_joins_total{role="answerer"}`]-b[`switchboard_joins_total{role="answerer"}`] == 1 {
				answererAt = append(answererAt, c.insts[i].name)
			}
		}
		if len(callerAt) != 1 || len(answererAt) != 1 || callerAt[0] == answererAt[0] {
			t.Errorf("caller joined on %v, answerer on %v: want different instances", callerAt, answererAt)
		}
	})

	t.Run("relay-only call through coturn", func(t *testing.T) { relayCall(t, c) })
	t.Run("coturn refuses wrong and expired credentials", func(t *testing.T) { turnCredentials(t, c) })

	t.Run("metrics", func(t *testing.T) {
		// One rejected event, to see the error counter move.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sc, err := sioclient.Dial(ctx, c.lbURL)
		if err != nil {
			t.Fatal(err)
		}
		if raw, err := sc.EmitWithAck(ctx, "join", map[string]any{"room": "no spaces allowed"}); err != nil || !strings.Contains(string(raw), "bad_request") {
			t.Errorf("bad join: %s %v", raw, err)
		}
		_ = sc.Close()

		sum := map[string]float64{}
		for i := range c.insts {
			m := scrape(t, c.url(i))
			if m["switchboard_connections_total"] == 0 {
				t.Errorf("%s served no connection", c.insts[i].name)
			}
			for k, v := range m {
				sum[k] += v
			}
		}
		for series, least := range map[string]float64{
			"switchboard_connections_total":                         5,
			`switchboard_joins_total{role="caller"}`:                3,
			`switchboard_joins_total{role="answerer"}`:              2,
			"switchboard_held_offers_total":                         2,
			"switchboard_handoffs_total":                            2,
			"switchboard_handoff_seconds_count":                     2,
			`switchboard_relayed_messages_total{event="offer"}`:     2,
			`switchboard_relayed_messages_total{event="answer"}`:    2,
			`switchboard_relayed_messages_total{event="candidate"}`: 4,
			`switchboard_relayed_messages_total{event="hangup"}`:    1,
			`switchboard_relayed_messages_total{event="leave"}`:     2,
			`switchboard_errors_total{code="bad_request"}`:          1,
		} {
			if sum[series] < least {
				t.Errorf("%s = %v over the instances, want at least %v", series, sum[series], least)
			}
		}
		t.Logf("hand-offs: %v, mean latency %.1f ms", sum["switchboard_handoffs_total"],
			1000*sum["switchboard_handoff_seconds_sum"]/sum["switchboard_handoff_seconds_count"])
		// Not through the load balancer.
		if code := httpStatus(c.lbURL + "/metrics"); code != http.StatusForbidden {
			t.Errorf("/metrics through the load balancer: %d, want 403", code)
		}
	})
}

// scrape returns every sample of url's /metrics by its series.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	return metricstest.Scrape(t, httpClient, url)
}

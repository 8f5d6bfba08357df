package deploy_test

import (
	"bufio"
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// composeSecret is the TURN secret the tests give docker-compose.yml through the environment.
const composeSecret = "compose-test-secret"

// repoRoot is the repository root: the parent of this package's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// loadCompose loads docker-compose.yml the way `docker compose` does, with env as the only
// environment for interpolation (neither the process environment nor a .env file).
func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	root := repoRoot(t)
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithEnv(list),
		cli.WithResolvedPaths(true),
		cli.WithNormalization(true),
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return opts.LoadProject(ctx)
}

func mustLoadCompose(t *testing.T, secret string) *types.Project {
	t.Helper()
	p, err := loadCompose(t, map[string]string{"SWITCHBOARD_TURN_SECRET": secret})
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

// switchboardServices returns the services built from deploy/Dockerfile, by name.
func switchboardServices(t *testing.T, p *types.Project) []types.ServiceConfig {
	t.Helper()
	var out []types.ServiceConfig
	for _, s := range p.Services {
		if s.Build != nil && dockerfilePath(s.Build) == filepath.Join(repoRoot(t), "deploy", "Dockerfile") {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func dockerfilePath(b *types.BuildConfig) string {
	if filepath.IsAbs(b.Dockerfile) {
		return b.Dockerfile
	}
	return filepath.Join(b.Context, b.Dockerfile)
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q", name)
	}
	return s
}

func envOf(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}

// bindMount returns the host path mounted at target in s.
func bindMount(s types.ServiceConfig, target string) (string, bool) {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return v.Source, true
		}
	}
	return "", false
}

// confValues returns the values of key in a coturn config file (lines "key=value" or "key").
func confValues(t *testing.T, path, key string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		if strings.TrimSpace(k) == key {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

func hasHealthcheck(s types.ServiceConfig) bool {
	return s.HealthCheck != nil && !s.HealthCheck.Disable && len(s.HealthCheck.Test) > 1
}

func TestComposeRoomCapacityForGroups(t *testing.T) {
	p, err := loadCompose(t, map[string]string{"SWITCHBOARD_TURN_SECRET": composeSecret, "SWITCHBOARD_ROOM_CAPACITY": "4"})
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	for _, s := range switchboardServices(t, p) {
		if c := envOf(s, "SWITCHBOARD_ROOM_CAPACITY"); c != "4" {
			t.Errorf("%s: SWITCHBOARD_ROOM_CAPACITY %q, want 4 from the environment", s.Name, c)
		}
	}
}

func TestComposeTopology(t *testing.T) {
	root := repoRoot(t)
	p := mustLoadCompose(t, composeSecret)

	// Redis: append-only persistence on a named volume, with a health check.
	redis := service(t, p, "redis")
	if cmd := strings.Join(redis.Command, " "); !strings.Contains(cmd, "--appendonly yes") {
		t.Errorf("redis command %q: append-only persistence is off", cmd)
	}
	var dataVolume string
	for _, v := range redis.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == "/data" {
			dataVolume = v.Source
		}
	}
	if _, ok := p.Volumes[dataVolume]; dataVolume == "" || !ok {
		t.Errorf("redis /data is not on a named volume: %+v", redis.Volumes)
	}
	if !hasHealthcheck(redis) {
		t.Error("redis has no health check")
	}

	// coturn: the config from deploy/, with the REST API secret from the environment.
	coturn := service(t, p, "coturn")
	confTarget := ""
	for i, a := range coturn.Command {
		if a == "-c" && i+1 < len(coturn.Command) {
			confTarget = coturn.Command[i+1]
		}
	}
	confSource, ok := bindMount(coturn, confTarget)
	if confTarget == "" || !ok || confSource != filepath.Join(root, "deploy", "turnserver.conf") {
		t.Fatalf("coturn does not run deploy/turnserver.conf: command %q, volumes %+v", coturn.Command, coturn.Volumes)
	}
	if !slices.Contains(coturn.Command, "--static-auth-secret="+composeSecret) {
		t.Errorf("coturn command %q does not carry SWITCHBOARD_TURN_SECRET", coturn.Command)
	}
	if confValues(t, confSource, "use-auth-secret") == nil || confValues(t, confSource, "static-auth-secret") != nil {
		t.Error("turnserver.conf must turn on use-auth-secret and leave the secret to the command line")
	}
	turnPort := confValues(t, confSource, "listening-port")
	if len(turnPort) != 1 {
		t.Fatalf("turnserver.conf listening-port: %q", turnPort)
	}

	// The instances: built from deploy/Dockerfile, on the redis service, sharing coturn's secret.
	insts := switchboardServices(t, p)
	if len(insts) < 2 {
		t.Fatalf("%d switchboard instances, want at least 2", len(insts))
	}
	ids := map[string]bool{}
	for _, s := range insts {
		u, err := url.Parse(envOf(s, "REDIS_URL"))
		if err != nil || u.Scheme != "redis" || u.Hostname() != redis.Name || u.Port() != "6379" {
			t.Errorf("%s: REDIS_URL %q does not point at the redis service", s.Name, envOf(s, "REDIS_URL"))
		}
		if d, ok := s.DependsOn[redis.Name]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s: does not wait for a healthy redis: %+v", s.Name, s.DependsOn)
		}
		id := envOf(s, "SWITCHBOARD_INSTANCE_ID")
		if id == "" || ids[id] {
			t.Errorf("%s: SWITCHBOARD_INSTANCE_ID %q is empty or not unique", s.Name, id)
		}
		ids[id] = true
		if c := envOf(s, "SWITCHBOARD_ROOM_CAPACITY"); c != "2" {
			t.Errorf("%s: SWITCHBOARD_ROOM_CAPACITY %q, want the one-to-one default 2", s.Name, c)
		}
		if envOf(s, "SWITCHBOARD_TURN_SECRET") != composeSecret {
			t.Errorf("%s: SWITCHBOARD_TURN_SECRET is not the one coturn gets", s.Name)
		}
		turnURLs := strings.Split(envOf(s, "SWITCHBOARD_TURN_URLS"), ",")
		for _, u := range turnURLs {
			if !strings.HasPrefix(u, "turn:") || !strings.Contains(u, ":"+turnPort[0]) {
				t.Errorf("%s: TURN URL %q is not coturn's port %s", s.Name, u, turnPort[0])
			}
		}
		if !hasHealthcheck(s) || !slices.Contains(s.HealthCheck.Test, "-healthcheck") {
			t.Errorf("%s: health check %+v does not run -healthcheck", s.Name, s.HealthCheck)
		}
	}

	// The load balancer: HAProxy with deploy/haproxy.cfg, port 8080 published, every instance
	// behind it.
	lb := service(t, p, "lb")
	cfgSource, ok := bindMount(lb, "/usr/local/etc/haproxy/haproxy.cfg")
	if !ok || cfgSource != filepath.Join(root, "deploy", "haproxy.cfg") {
		t.Fatalf("lb does not mount deploy/haproxy.cfg: %+v", lb.Volumes)
	}
	_, bindPort, err := net.SplitHostPort(envOf(lb, "SB_LB_BIND"))
	if err != nil {
		t.Fatalf("lb SB_LB_BIND: %v", err)
	}
	published := false
	for _, port := range lb.Ports {
		if port.Published == "8080" && port.Target == parsePort(t, bindPort) {
			published = true
		}
	}
	if !published {
		t.Errorf("lb does not publish 8080 to its bind port %s: %+v", bindPort, lb.Ports)
	}
	if !hasHealthcheck(lb) {
		t.Error("lb has no health check")
	}
	cfg, err := os.ReadFile(cfgSource)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{(SB_[A-Z0-9_]+)\}`).FindAllStringSubmatch(string(cfg), -1) {
		used[m[1]] = true
	}
	backends := map[string]bool{}
	for k, v := range lb.Environment {
		if !used[k] {
			t.Errorf("lb sets %s, which haproxy.cfg does not use", k)
		}
		if strings.HasPrefix(k, "SB_BACKEND_") && v != nil {
			backends[*v] = true
		}
	}
	for k := range used {
		if _, ok := lb.Environment[k]; !ok {
			t.Errorf("haproxy.cfg uses ${%s}, which the lb service does not set", k)
		}
	}
	for _, s := range insts {
		_, port, err := net.SplitHostPort(envOf(s, "SWITCHBOARD_ADDR"))
		if err != nil {
			t.Errorf("%s: SWITCHBOARD_ADDR: %v", s.Name, err)
			continue
		}
		if !backends[net.JoinHostPort(s.Name, port)] {
			t.Errorf("%s:%s is not a backend of the lb (%v)", s.Name, port, backends)
		}
		if _, ok := lb.DependsOn[s.Name]; !ok {
			t.Errorf("lb does not depend on %s", s.Name)
		}
	}
	if len(backends) != len(insts) {
		t.Errorf("lb has %d backends for %d instances", len(backends), len(insts))
	}

	// A bare `docker compose up` works: instances and coturn share the development secret.
	dev, err := loadCompose(t, nil)
	if err != nil {
		t.Fatalf("docker-compose.yml without SWITCHBOARD_TURN_SECRET: %v", err)
	}
	devCoturn, _ := dev.GetService("coturn")
	for _, name := range []string{"switchboard-1", "switchboard-2"} {
		s, _ := dev.GetService(name)
		secret := envOf(s, "SWITCHBOARD_TURN_SECRET")
		if secret == "" || !strings.Contains(strings.Join(devCoturn.Command, " "), "--static-auth-secret="+secret) {
			t.Errorf("%s: development secret %q is not coturn's (%q)", name, secret, devCoturn.Command)
		}
	}
}

func parsePort(t *testing.T, s string) uint32 {
	t.Helper()
	var n uint32
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("port %q", s)
		}
		n = n*10 + uint32(c-'0')
	}
	return n
}

// The Dockerfile builds a static binary in one stage and runs it as a non-root user on a small
// image, with a health check the image can run.
func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var from, run, user, health, entry []string
	for _, line := range strings.Split(string(raw), "\n") {
		inst, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch strings.ToUpper(inst) {
		case "FROM":
			from = append(from, rest)
		case "RUN":
			run = append(run, rest)
		case "USER":
			user = append(user, rest)
		case "HEALTHCHECK":
			health = append(health, rest)
		case "ENTRYPOINT":
			entry = append(entry, rest)
		}
	}
	if len(from) < 2 || !strings.Contains(from[0], " AS ") {
		t.Fatalf("not a multi-stage build: FROM %q", from)
	}
	final := from[len(from)-1]
	if !strings.Contains(final, "distroless/static") && !strings.Contains(final, "alpine") {
		t.Errorf("final image %q is neither distroless static nor alpine", final)
	}
	if !slices.ContainsFunc(run, func(r string) bool { return strings.Contains(r, "CGO_ENABLED=0") && strings.Contains(r, "go build") }) {
		t.Errorf("no CGO_ENABLED=0 go build in %q", run)
	}
	if len(user) == 0 || slices.ContainsFunc(user, func(u string) bool { return u == "root" || u == "0" || strings.HasPrefix(u, "0:") }) {
		t.Errorf("USER %q: the image must run as a non-root user", user)
	}
	if len(health) != 1 || !strings.Contains(health[0], `"-healthcheck"`) {
		t.Errorf("HEALTHCHECK %q does not run the binary's -healthcheck", health)
	}
	if len(entry) != 1 || !strings.Contains(entry[0], "/switchboard") {
		t.Errorf("ENTRYPOINT %q", entry)
	}

	// The Go image matches go.mod's language version.
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if goVersion == nil || !strings.Contains(from[0], "golang:"+string(goVersion[1])) {
		t.Errorf("build stage %q does not use Go %s from go.mod", from[0], goVersion)
	}

	// Every package of the binary builds without cgo, as the image's static build needs.
	cmd := exec.Command("go", "list", "-deps", "-e", "-f", `{{if or .Error .DepsErrors}}{{.ImportPath}}: {{.Error}} {{.DepsErrors}}{{"\n"}}{{end}}`, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("CGO_ENABLED=0 go list: %v\n%s", err, out)
	}
}

package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/server"
	"github.com/switchboard-rtc/switchboard/store"
)

// The server serves the browser client and the demo page beside the protocol.
func TestServesClient(t *testing.T) {
	inst := startInstances(t, store.NewMemory(store.Options{}), 1, nil)[0]
	for path, want := range map[string]string{
		"/":                    `<script type="module" src="demo.js">`,
		"/demo.js":             `from './switchboard.js'`,
		"/switchboard.js":      "Built by client/build.mjs",
		"/switchboard.iife.js": "var Switchboard=",
	} {
		code, body := get(t, inst.url+path)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, body without %q", path, code, want)
		}
	}
	if code, _ := get(t, inst.url+"/healthz"); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if code, _ := get(t, inst.url+"/missing"); code != 404 {
		t.Errorf("GET /missing: %d", code)
	}
}

// The client files follow SWITCHBOARD_CORS_ORIGINS as /socket.io/ does.
func TestClientFilesFollowCORSOrigins(t *testing.T) {
	inst := startInstances(t, store.NewMemory(store.Options{}), 1, func(c *server.Config) {
		c.CORSOrigins = []string{"https://app.example"}
	})[0]
	for origin, want := range map[string]string{"https://app.example": "https://app.example", "https://evil.example": ""} {
		req, _ := http.NewRequest("GET", inst.url+"/switchboard.js", nil)
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want || resp.Header.Get("Vary") == "" {
			t.Errorf("origin %s: Access-Control-Allow-Origin %q (want %q), Vary %q", origin, got, want, resp.Header.Values("Vary"))
		}
	}
}

package server_test

import (
	"strings"
	"testing"

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

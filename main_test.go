package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/auth"
)

func TestMintToken(t *testing.T) {
	env := map[string]string{"SWITCHBOARD_AUTH_SECRET": "s3cret-s3cret-s3cret-s3cret-s3cret"}
	var out, errOut bytes.Buffer
	code := mintToken([]string{"-room", "r1", "-subject", "alice", "-role", "caller", "-ttl", "2m"},
		func(k string) string { return env[k] }, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	c, err := auth.Verify([]byte(env["SWITCHBOARD_AUTH_SECRET"]), string(bytes.TrimSpace(out.Bytes())), "r1", time.Now())
	if err != nil || c.Subject != "alice" || c.Role != auth.RoleCaller {
		t.Fatalf("minted token: %+v, %v", c, err)
	}
	if c.ExpiresAt.Sub(time.Now()) > 2*time.Minute {
		t.Fatalf("expiry %v", c.ExpiresAt)
	}
	for _, args := range [][]string{{"-room", "r1"}, {"-subject", "a"}, {"-room", "r", "-subject", "a", "-role", "boss"}} {
		if mintToken(args, func(k string) string { return env[k] }, &out, &errOut) == 0 {
			t.Errorf("%v: exit 0", args)
		}
	}
	if mintToken([]string{"-room", "r", "-subject", "a"}, func(string) string { return "" }, &out, &errOut) == 0 {
		t.Error("no secret: exit 0")
	}
}

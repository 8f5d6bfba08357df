package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/auth"
	"github.com/switchboard-rtc/switchboard/webhook"
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

func TestMintTokenMeta(t *testing.T) {
	env := map[string]string{"SWITCHBOARD_AUTH_SECRET": "s3cret-s3cret-s3cret-s3cret-s3cret"}
	var out, errOut bytes.Buffer
	if code := mintToken([]string{"-room", "r1", "-subject", "alice", "-meta", `{"ring":"bob"}`},
		func(k string) string { return env[k] }, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	c, err := auth.Verify([]byte(env["SWITCHBOARD_AUTH_SECRET"]), string(bytes.TrimSpace(out.Bytes())), "r1", time.Now())
	if err != nil || string(c.Meta) != `{"ring":"bob"}` {
		t.Fatalf("minted token: %+v, %v", c, err)
	}
	if mintToken([]string{"-room", "r1", "-subject", "a", "-meta", `["bob"]`}, func(k string) string { return env[k] }, &out, &errOut) == 0 {
		t.Error("array meta: exit 0")
	}
}

func TestWebhookVerifyCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if webhookCmd([]string{"secret"}, nil, nil, &out, &errOut) != 0 {
		t.Fatal(errOut.String())
	}
	secret := strings.TrimSpace(out.String())
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		t.Fatalf("secret %q: %v", secret, err)
	}
	env := func(string) string { return secret }
	body := `{"id":"evt_1","type":"offer.held"}`
	now := time.Now()
	args := []string{"verify", "-id", "evt_1", "-timestamp", strconv.FormatInt(now.Unix(), 10),
		"-signature", webhook.Sign(key, "evt_1", now, []byte(body))}
	if code := webhookCmd(args, env, strings.NewReader(body), &out, &errOut); code != 0 {
		t.Fatalf("valid webhook: exit %d: %s", code, errOut.String())
	}
	if code := webhookCmd(args, env, strings.NewReader(body+" "), &out, &errOut); code != 1 {
		t.Fatalf("tampered body: exit %d", code)
	}
}

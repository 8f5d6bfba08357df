package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/switchboard-rtc/switchboard/webhook"
)

// webhookCmd is `switchboard webhook secret|verify`: make a signing secret, or check a received
// webhook (its body on stdin, its headers as flags) against SWITCHBOARD_WEBHOOK_SECRET.
func webhookCmd(args []string, getenv func(string) string, in io.Reader, out, errOut io.Writer) int {
	usage := "usage: switchboard webhook secret | switchboard webhook verify -id ID -timestamp TS -signature SIG < body"
	if len(args) == 0 {
		fmt.Fprintln(errOut, usage)
		return 2
	}
	switch args[0] {
	case "secret":
		fmt.Fprintln(out, webhook.NewSecret())
		return 0
	case "verify":
	default:
		fmt.Fprintln(errOut, usage)
		return 2
	}
	fs := flag.NewFlagSet("switchboard webhook verify", flag.ContinueOnError)
	fs.SetOutput(errOut)
	id := fs.String("id", "", "the webhook-id header")
	ts := fs.String("timestamp", "", "the webhook-timestamp header")
	sig := fs.String("signature", "", "the webhook-signature header")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	secret := getenv("SWITCHBOARD_WEBHOOK_SECRET")
	if secret == "" {
		fmt.Fprintln(errOut, "switchboard webhook verify: set SWITCHBOARD_WEBHOOK_SECRET")
		return 2
	}
	body, err := io.ReadAll(io.LimitReader(in, 1<<20))
	if err != nil {
		fmt.Fprintln(errOut, "switchboard webhook verify:", err)
		return 2
	}
	h := http.Header{}
	h.Set(webhook.HeaderID, *id)
	h.Set(webhook.HeaderTimestamp, *ts)
	h.Set(webhook.HeaderSignature, *sig)
	if err := webhook.Verify(secret, h, body, time.Now()); err != nil {
		fmt.Fprintln(errOut, "switchboard webhook verify:", err)
		return 1
	}
	fmt.Fprintln(out, "valid")
	return 0
}

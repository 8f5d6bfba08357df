package server

// ICE servers announced in join and resume replies: the STUN URLs as they are, and the TURN URLs
// with short-lived credentials of the TURN REST API (draft-uberti-behave-turn-rest), which
// coturn checks with `use-auth-secret` and `static-auth-secret`:
//
//	username   = "<expiry as Unix seconds>:<peer id>"
//	credential = base64(HMAC-SHA1(secret, username))
//
// coturn checks the expiry when an allocation is made, not during it: a call that started
// with valid credentials goes on after they expire. A client that reconnects gets new ones
// in the resume reply.

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-rtc/switchboard/server/signaling"
)

// TURNCredential returns the TURN REST API username and credential for peer, valid until expiry.
func TURNCredential(secret, peer string, expiry time.Time) (username, credential string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + peer
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// iceServers returns the function that builds a peer's iceServers: STUN, then TURN with
// credentials valid for TURNTTL from now. Without a TURN secret there is no TURN entry.
func (c Config) iceServers() func(peer string, now time.Time) []signaling.ICEServer {
	var static []signaling.ICEServer
	if len(c.STUNURLs) > 0 {
		static = append(static, signaling.ICEServer{URLs: slices.Clone(c.STUNURLs)})
	}
	turnURLs, secret, ttl := slices.Clone(c.TURNURLs), c.TURNSecret, c.TURNTTL
	return func(peer string, now time.Time) []signaling.ICEServer {
		out := make([]signaling.ICEServer, 0, len(static)+1)
		out = append(out, static...)
		if secret != "" && len(turnURLs) > 0 {
			user, cred := TURNCredential(secret, peer, now.Add(ttl))
			out = append(out, signaling.ICEServer{URLs: turnURLs, Username: user, Credential: cred})
		}
		return out
	}
}

// validateICE checks the STUN and TURN settings.
func (c Config) validateICE() error {
	for _, u := range c.STUNURLs {
		if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "stuns:") {
			return fmt.Errorf("STUN URL %q must start with stun: or stuns:", u)
		}
	}
	for _, u := range c.TURNURLs {
		if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
			return fmt.Errorf("TURN URL %q must start with turn: or turns:", u)
		}
	}
	switch {
	case len(c.TURNURLs) > 0 && c.TURNSecret == "":
		return fmt.Errorf("TURN URLs are set but the TURN secret is not: clients would get TURN servers without credentials")
	case c.TURNSecret != "" && len(c.TURNURLs) == 0:
		return fmt.Errorf("the TURN secret is set but no TURN URLs are")
	case c.TURNTTL <= 0:
		return fmt.Errorf("TURN credential lifetime must be positive")
	}
	return nil
}

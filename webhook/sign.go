// Package webhook sends Switchboard's call events to an app's backend as Standard Webhooks
// (signed HTTP POSTs, retried with back-off until a horizon), and verifies them for receivers.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of a Standard Webhooks request.
const (
	HeaderID        = "webhook-id"        // the event id, the same on every attempt: de-duplicate by it
	HeaderTimestamp = "webhook-timestamp" // Unix seconds of the attempt
	HeaderSignature = "webhook-signature" // "v1,<base64 HMAC-SHA256 of id.timestamp.body>", space-separated
)

// SecretPrefix starts a Standard Webhooks secret: "whsec_" and the base64 of the key.
const SecretPrefix = "whsec_"

// Tolerance is how far a request's timestamp may be from the receiver's clock.
const Tolerance = 5 * time.Minute

// Errors Verify returns; check them with errors.Is.
var (
	ErrSecret    = errors.New("webhook: secret must be whsec_ followed by base64 of at least 24 bytes")
	ErrHeaders   = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrTimestamp = errors.New("webhook: timestamp too far from now")
	ErrSignature = errors.New("webhook: no matching signature")
)

// ParseSecret decodes a secret ("whsec_" + base64; the prefix may be left out) into its key.
func ParseSecret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil || len(key) < 24 {
		return nil, ErrSecret
	}
	return key, nil
}

// NewSecret returns a fresh random secret in the Standard Webhooks format.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// Sign returns the webhook-signature value of body sent as id at ts.
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, ts.Unix())
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Verify checks a received webhook: the headers are present, the timestamp is within Tolerance
// of now, and one of the signatures matches body under secret. A receiver written in Go calls
// it with the request's headers and its raw body (before any JSON decoding):
//
//	body, _ := io.ReadAll(r.Body)
//	if err := webhook.Verify(secret, r.Header, body, time.Now()); err != nil {
//		http.Error(w, err.Error(), http.StatusUnauthorized)
//		return
//	}
//
// Deliveries are at least once: de-duplicate by the webhook-id header.
func Verify(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := ParseSecret(secret)
	if err != nil {
		return err
	}
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return ErrHeaders
	}
	sec, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrTimestamp, tsText)
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > Tolerance || d < -Tolerance {
		return fmt.Errorf("%w: %v", ErrTimestamp, d.Round(time.Second))
	}
	want := Sign(key, id, ts, body)
	for _, s := range strings.Fields(sigs) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return ErrSignature
}

// Package auth mints and verifies room tokens: short-lived JWTs (HS256) that let one subject
// join one room, optionally in one role. An app backend mints them (Mint, or the
// `switchboard token` command); the server verifies them on join when a secret is configured.
package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Roles a token may restrict a join to. Empty means either.
const (
	RoleCaller   = "caller"   // may only join an empty room (and so become its caller)
	RoleAnswerer = "answerer" // may only join a room that has a member already
)

// MaxTokenBytes bounds a token's length; longer ones are refused before parsing.
const MaxTokenBytes = 4096

// MaxMetaBytes bounds a token's meta claim.
const MaxMetaBytes = 1024

// Leeway absorbs clock skew between the app backend and the servers.
const Leeway = 5 * time.Second

// Errors Verify returns; callers check them with errors.Is.
var (
	ErrMissing   = errors.New("token required")
	ErrInvalid   = errors.New("token invalid")
	ErrExpired   = errors.New("token expired")
	ErrWrongRoom = errors.New("token is for another room")
	// ErrBadMeta is a meta claim that is not a JSON object of at most MaxMetaBytes; Verify
	// returns it wrapped in ErrInvalid.
	ErrBadMeta = fmt.Errorf("meta claim must be a JSON object of at most %d bytes", MaxMetaBytes)
)

// Claims are a room token's contents.
type Claims struct {
	Room string `json:"room"`
	Role string `json:"role,omitempty"` // RoleCaller, RoleAnswerer or empty
	// Meta is what the app wants in this member's call events (webhooks), e.g. whom to ring:
	// a JSON object of at most MaxMetaBytes. Switchboard only passes it on.
	Meta json.RawMessage `json:"meta,omitempty"`
	jwt.RegisteredClaims
}

// Mint returns a token letting subject join room (in role, if not empty) until now+ttl.
func Mint(secret []byte, room, subject, role string, ttl time.Duration, now time.Time) (string, error) {
	return MintMeta(secret, room, subject, role, nil, ttl, now)
}

// MintMeta is Mint with a meta claim (nil: none), passed on in the member's call events.
func MintMeta(secret []byte, room, subject, role string, meta json.RawMessage, ttl time.Duration, now time.Time) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("auth: empty secret")
	}
	if room == "" || subject == "" || ttl <= 0 {
		return "", errors.New("auth: room, subject and a positive ttl are required")
	}
	if role != "" && role != RoleCaller && role != RoleAnswerer {
		return "", fmt.Errorf("auth: unknown role %q", role)
	}
	if meta != nil && !validMeta(meta) {
		return "", fmt.Errorf("auth: %w", ErrBadMeta)
	}
	c := Claims{
		Room: room,
		Role: role,
		Meta: meta,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   subject,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// Verify checks token for room at now and returns its claims. Only HS256 with secret is
// accepted; an expiry and a subject are required.
func Verify(secret []byte, token, room string, now time.Time) (*Claims, error) {
	if token == "" {
		return nil, ErrMissing
	}
	if len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxTokenBytes)
	}
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet):
		return nil, fmt.Errorf("%w: %v", ErrExpired, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	case c.Subject == "":
		return nil, fmt.Errorf("%w: no subject", ErrInvalid)
	case c.Role != "" && c.Role != RoleCaller && c.Role != RoleAnswerer:
		return nil, fmt.Errorf("%w: unknown role %q", ErrInvalid, c.Role)
	case c.Meta != nil && !validMeta(c.Meta):
		return nil, fmt.Errorf("%w: %w", ErrInvalid, ErrBadMeta)
	case c.Room != room:
		return nil, ErrWrongRoom
	}
	return &c, nil
}

// validMeta reports whether meta is a JSON object of at most MaxMetaBytes.
func validMeta(meta json.RawMessage) bool {
	var obj map[string]json.RawMessage
	return len(meta) <= MaxMetaBytes && bytes.HasPrefix(bytes.TrimSpace(meta), []byte("{")) &&
		json.Unmarshal(meta, &obj) == nil
}

package server

import (
	"errors"
	"time"

	"github.com/switchboard-rtc/switchboard/auth"
	"github.com/switchboard-rtc/switchboard/server/signaling"
)

// authorizer checks join tokens against the configured secret; nil when the server runs open.
func (c Config) authorizer() func(token, room string, now time.Time) (string, *signaling.Error) {
	if c.AuthSecret == "" {
		return nil
	}
	secret := []byte(c.AuthSecret)
	return func(token, room string, now time.Time) (string, *signaling.Error) {
		claims, err := auth.Verify(secret, token, room, now)
		switch {
		case err == nil:
			return claims.Role, nil
		case errors.Is(err, auth.ErrWrongRoom):
			return "", &signaling.Error{Code: signaling.CodeForbidden, Message: "the token is for another room"}
		case errors.Is(err, auth.ErrMissing):
			return "", &signaling.Error{Code: signaling.CodeUnauthorized, Message: "this server needs a room token (join {token})"}
		case errors.Is(err, auth.ErrExpired):
			return "", &signaling.Error{Code: signaling.CodeUnauthorized, Message: "the room token has expired"}
		default:
			return "", &signaling.Error{Code: signaling.CodeUnauthorized, Message: "the room token is not valid"}
		}
	}
}

package server

import (
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-rtc/switchboard/auth"
	"github.com/switchboard-rtc/switchboard/server/signaling"
)

// authorizer checks join tokens against the configured secret; nil when the server runs open.
func (c Config) authorizer() func(token, room string, now time.Time) (signaling.Grant, *signaling.Error) {
	if c.AuthSecret == "" {
		return nil
	}
	secret := []byte(c.AuthSecret)
	return func(token, room string, now time.Time) (signaling.Grant, *signaling.Error) {
		claims, err := auth.Verify(secret, token, room, now)
		switch {
		case err == nil:
			return signaling.Grant{Role: claims.Role, Sub: claims.Subject, Meta: claims.Meta}, nil
		case errors.Is(err, auth.ErrWrongRoom):
			return signaling.Grant{}, &signaling.Error{Code: signaling.CodeForbidden, Message: "the token is for another room"}
		case errors.Is(err, auth.ErrMissing):
			return signaling.Grant{}, &signaling.Error{Code: signaling.CodeUnauthorized, Message: "this server needs a room token (join {token})"}
		case errors.Is(err, auth.ErrExpired):
			return signaling.Grant{}, &signaling.Error{Code: signaling.CodeUnauthorized, Message: "the room token has expired"}
		case errors.Is(err, auth.ErrBadMeta):
			return signaling.Grant{}, &signaling.Error{Code: signaling.CodeUnauthorized,
				Message: fmt.Sprintf("the room token's meta claim must be a JSON object of at most %d bytes", auth.MaxMetaBytes)}
		default:
			return signaling.Grant{}, &signaling.Error{Code: signaling.CodeUnauthorized, Message: "the room token is not valid"}
		}
	}
}

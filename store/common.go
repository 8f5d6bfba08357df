package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Both implementations keep every deadline as Unix milliseconds, so they round time the same way.
func ms(t time.Time) int64 { return t.UnixMilli() }

// idPattern is the alphabet of room ids (see docs/protocol.md). Peer ids and nonces use it too:
// it has no space, ':', '|' or newline, which the Redis layout uses as separators.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)

// checkIDs rejects ids the key layout cannot hold. Pairs are (what, value).
func checkIDs(op string, pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if !idPattern.MatchString(pairs[i+1]) {
			return fmt.Errorf("store: %s: invalid %s %q", op, pairs[i], pairs[i+1])
		}
	}
	return nil
}

// checkNonEmpty rejects empty connection and instance names: an away member has neither, so an
// empty one would match it.
func checkNonEmpty(op string, pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return fmt.Errorf("store: %s: empty %s", op, pairs[i])
		}
	}
	return nil
}

func checkKind(op string, k Kind) error {
	switch k {
	case KindOffer, KindAnswer, KindCandidate, KindHangup, KindLeave, KindSkip:
		return nil
	}
	return fmt.Errorf("store: %s: unknown kind %q", op, k)
}

// ctxErr wraps ctx's error when ctx is already done.
func ctxErr(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return nil
}

// Bodies of the messages the store queues itself. Ids match idPattern, so they need no escaping.
func peerJoinedBody(peer, role string) []byte {
	return []byte(`{"peer":"` + peer + `","role":"` + role + `"}`)
}

func peerLeftBody(peer, reason string) []byte {
	return []byte(`{"peer":"` + peer + `","reason":"` + reason + `"}`)
}

func hangupBody(from string) []byte { return []byte(`{"from":"` + from + `"}`) }

var expiredOfferBody = []byte(`{"what":"offer"}`)

// Reasons of "peer-left".
const (
	reasonLeft    = "left"
	reasonTimeout = "timeout"
)

// Timer names, shared by both implementations: the Redis timers ZSET uses them as members.
//
//	L|<room>|<peer>|<gen>  the lease of a member; fires only while the member's gen is gen
//	H|<room>|<gen>         a held offer's expiry; fires only while the held offer's gen is gen
func leaseTimer(room, peer string, gen int64) string {
	return fmt.Sprintf("L|%s|%s|%d", room, peer, gen)
}

func heldTimer(room string, gen int64) string { return fmt.Sprintf("H|%s|%d", room, gen) }

// timer is a parsed timer name.
type timer struct {
	kind       byte // 'L' or 'H'
	room, peer string
	gen        int64
}

func parseTimer(s string) (timer, bool) {
	var t timer
	parts := strings.Split(s, "|")
	switch {
	case len(parts) == 4 && parts[0] == "L":
		t.kind, t.room, t.peer = 'L', parts[1], parts[2]
		_, err := fmt.Sscan(parts[3], &t.gen)
		return t, err == nil
	case len(parts) == 3 && parts[0] == "H":
		t.kind, t.room = 'H', parts[1]
		_, err := fmt.Sscan(parts[2], &t.gen)
		return t, err == nil
	}
	return t, false
}

func validateJoin(p JoinParams) error {
	err := errors.Join(
		checkIDs("join", "room", p.Room, "peer", p.Peer),
		checkNonEmpty("join", "token", p.Token, "instance", p.Instance, "conn", p.Conn),
	)
	if err == nil && p.Nonce != "" {
		err = checkIDs("join", "nonce", p.Nonce)
	}
	if err == nil && p.Role != "" && p.Role != RoleCaller && p.Role != RoleAnswerer {
		err = fmt.Errorf("store: join: unknown role %q", p.Role)
	}
	return err
}

func validateResume(p ResumeParams) error {
	return errors.Join(
		checkIDs("resume", "room", p.Room, "peer", p.Peer),
		checkNonEmpty("resume", "token", p.Token, "instance", p.Instance, "conn", p.Conn),
	)
}

func validateSend(p SendParams) error {
	return errors.Join(
		checkIDs("send", "room", p.Room, "peer", p.Peer),
		checkNonEmpty("send", "conn", p.Conn),
		checkKind("send", p.Kind),
	)
}

package webhook

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/switchboard-rtc/switchboard/store"
)

// Payload is the JSON body of one webhook: the call event. It never carries an SDP or an ICE
// candidate (they hold users' addresses). docs/webhooks.md shows one of each type.
type Payload struct {
	ID        string          `json:"id"`        // the event id, also in the webhook-id header
	Type      string          `json:"type"`      // offer.held, offer.answered, offer.expired, peer.joined, peer.left, call.hangup
	Timestamp time.Time       `json:"timestamp"` // when it happened
	Room      string          `json:"room"`      //
	Peer      string          `json:"peer"`      // the member it is about (the answerer for offer.answered)
	Role      string          `json:"role,omitempty"`
	Sub       string          `json:"sub,omitempty"`  // the member's room token subject
	Meta      json.RawMessage `json:"meta,omitempty"` // peer.joined, offer.held: the token's meta claim
	Reason    string          `json:"reason,omitempty"`
	Caller    string          `json:"caller,omitempty"`     // offer.answered: the held offer's sender
	ExpiresAt *time.Time      `json:"expires_at,omitempty"` // offer.held
	HeldMS    *int64          `json:"held_ms,omitempty"`    // offer.answered, offer.expired
}

// NewPayload returns the payload of e.
func NewPayload(e store.Event) Payload {
	p := Payload{
		ID: e.ID, Type: e.Type, Timestamp: e.Time.UTC(), Room: e.Room, Peer: e.Peer, Role: e.Role,
		Sub: e.Sub, Reason: e.Reason, Caller: e.Caller,
	}
	if len(e.Meta) > 0 && json.Valid(e.Meta) {
		p.Meta = json.RawMessage(e.Meta)
	}
	if !e.Expires.IsZero() {
		t := e.Expires.UTC()
		p.ExpiresAt = &t
	}
	if e.Type == store.EvOfferAnswered || e.Type == store.EvOfferExpired {
		held := e.Held.Milliseconds()
		p.HeldMS = &held
	}
	return p
}

// ParseTypes checks an event filter: a list of event types; empty means all.
func ParseTypes(types []string) (map[string]bool, error) {
	if len(types) == 0 {
		return nil, nil
	}
	set := make(map[string]bool, len(types))
	for _, t := range types {
		if !slices.Contains(store.EventTypes, t) {
			return nil, fmt.Errorf("webhook: unknown event type %q (known: %v)", t, store.EventTypes)
		}
		set[t] = true
	}
	return set, nil
}

package server

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/switchboard-rtc/switchboard/store"
	"github.com/switchboard-rtc/switchboard/webhook"
)

// WebhookConfig is the webhook share of the configuration: call events (offer.held, ...)
// recorded by the store and sent to the app's backend (docs/webhooks.md). Without URLs nothing
// is recorded or sent.
type WebhookConfig struct {
	URLs        []string      // endpoints; empty: webhooks off
	Secret      string        // Standard Webhooks secret, "whsec_" + base64
	Events      []string      // event types to send; empty: all
	Timeout     time.Duration // bound of one attempt
	Horizon     time.Duration // no attempt later than this after the event; 0: the held-offer TTL
	OutboxMax   int           // events recorded and not yet sent; the oldest are dropped beyond
	ClaimAfter  time.Duration // another instance takes over the events an instance has not finished after this long without a sign of life
	Concurrency int           // events one instance sends at once
}

func defaultWebhookConfig() WebhookConfig {
	return WebhookConfig{
		Timeout:     10 * time.Second,
		OutboxMax:   store.DefaultOutboxMax,
		ClaimAfter:  30 * time.Second,
		Concurrency: 64,
	}
}

func (w *WebhookConfig) settings() []setting {
	horizon := durSetting("SWITCHBOARD_WEBHOOK_HORIZON", "webhook-horizon", "stop retrying an event this long after it happened (default: the held-offer TTL)", &w.Horizon)
	horizon.get = func() string {
		if w.Horizon == 0 {
			return "held-offer-ttl"
		}
		return w.Horizon.String()
	}
	return []setting{
		listSetting("SWITCHBOARD_WEBHOOK_URLS", "webhook-urls", "comma-separated endpoints that get every call event as a signed POST; empty: no webhooks", &w.URLs),
		{"SWITCHBOARD_WEBHOOK_SECRET", "webhook-secret", "Standard Webhooks signing secret (whsec_ + base64 of 24 to 64 bytes); required with webhook URLs",
			func(s string) error { w.Secret = s; return nil },
			func() string { return "" }}, // never printed
		listSetting("SWITCHBOARD_WEBHOOK_EVENTS", "webhook-events", "comma-separated event types to send; empty: all", &w.Events),
		durSetting("SWITCHBOARD_WEBHOOK_TIMEOUT", "webhook-timeout", "bound of one webhook attempt", &w.Timeout),
		horizon,
		intSetting("SWITCHBOARD_WEBHOOK_OUTBOX_MAX", "webhook-outbox-max", "call events recorded and not yet sent; beyond, the oldest are dropped", &w.OutboxMax),
		durSetting("SWITCHBOARD_WEBHOOK_CLAIM_AFTER", "webhook-claim-after", "another instance sends the events of an instance silent for this long", &w.ClaimAfter),
		intSetting("SWITCHBOARD_WEBHOOK_CONCURRENCY", "webhook-concurrency", "events one instance sends at once", &w.Concurrency),
	}
}

func (w WebhookConfig) on() bool { return len(w.URLs) > 0 }

// outboxMax is the store's outbox bound: 0 (nothing recorded) without webhooks.
func (w WebhookConfig) outboxMax() int {
	if !w.on() {
		return 0
	}
	return w.OutboxMax
}

func (w WebhookConfig) validate() error {
	if !w.on() {
		return nil
	}
	if w.Secret == "" {
		return errors.New("webhook URLs need SWITCHBOARD_WEBHOOK_SECRET (whsec_ + base64; `switchboard webhook secret` makes one)")
	}
	_, err := webhook.New(w.senderConfig(time.Minute, nil), nil, nil)
	return err
}

func (w WebhookConfig) senderConfig(heldTTL time.Duration, met webhook.Metrics) webhook.Config {
	horizon := w.Horizon
	if horizon == 0 {
		horizon = heldTTL
	}
	return webhook.Config{
		URLs: w.URLs, Secret: w.Secret, Types: w.Events, Timeout: w.Timeout, Horizon: horizon,
		Workers: w.Concurrency, KeepEvery: max(w.ClaimAfter/3, time.Millisecond), Metrics: met,
	}
}

// webhookSender returns the sender of st's call events, or nil when webhooks are off.
func (c Config) webhookSender(st store.Store, met webhook.Metrics, log *slog.Logger) (*webhook.Sender, error) {
	if !c.Webhook.on() {
		return nil, nil
	}
	var src webhook.Source
	switch s := st.(type) {
	case *store.Memory:
		if ob := s.Outbox(); ob != nil {
			src = ob
		}
	case *store.Redis:
		ob, err := s.Outbox(c.InstanceID, c.Webhook.ClaimAfter)
		if err != nil {
			return nil, fmt.Errorf("webhooks: %w", err)
		}
		src = ob
	}
	if src == nil {
		return nil, fmt.Errorf("webhooks: the store records no call events (open it with Config.StoreOptions)")
	}
	sender, err := webhook.New(c.Webhook.senderConfig(c.HeldOfferTTL, met), src, log)
	if err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	hosts := make([]string, 0, len(c.Webhook.URLs))
	for _, u := range c.Webhook.URLs {
		h, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://"), "/")
		if _, hp, ok := strings.Cut(h, "@"); ok {
			h = hp
		}
		hosts = append(hosts, h)
	}
	log.Info("webhooks on", "endpoints", hosts, "events", c.Webhook.Events)
	return sender, nil
}

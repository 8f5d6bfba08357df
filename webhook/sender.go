package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/clock"
	"github.com/switchboard-rtc/switchboard/store"
)

// Source is the outbox the sender reads: store.MemoryOutbox or store.RedisOutbox.
type Source interface {
	// Claim returns up to n events to send, waiting up to wait for the first.
	Claim(ctx context.Context, n int, wait time.Duration) ([]store.Event, error)
	// Keep tells other instances the events are still being sent (they would claim them).
	Keep(ctx context.Context, refs []string) error
	// Done removes events that were sent or given up.
	Done(ctx context.Context, refs []string) error
	// Stats describes the outbox.
	Stats(ctx context.Context) (store.OutboxStats, error)
}

// Metrics receives the sender's counts. Methods must be safe for concurrent use and not block.
type Metrics interface {
	Taken(typ string)                                   // this instance took an event from the outbox
	Attempt(result string)                              // one POST: "2xx", "410", "4xx", "5xx", "3xx", "timeout" or "error"
	Finished(typ, result string, latency time.Duration) // one endpoint done with an event: "delivered", "gone", "gave_up"; latency from the event to its 2xx
	Outbox(s store.OutboxStats)                         // the outbox, every KeepEvery
}

type nopMetrics struct{}

func (nopMetrics) Taken(string)                           {}
func (nopMetrics) Attempt(string)                         {}
func (nopMetrics) Finished(string, string, time.Duration) {}
func (nopMetrics) Outbox(store.OutboxStats)               {}

// Config is the sender's configuration. New fills zero fields with defaults.
type Config struct {
	URLs    []string      // endpoints; each gets every event
	Secret  string        // "whsec_" + base64 (see ParseSecret)
	Types   []string      // event types to send; empty: all
	Timeout time.Duration // bound of one attempt; default 10s
	Horizon time.Duration // no attempt later than this after the event; default 5m
	Workers int           // events being sent at once; default 64
	// KeepEvery is how often the events in progress are kept (see Source.Keep) and the outbox
	// statistics read; default 10s. It must be well below the time after which another instance
	// claims them.
	KeepEvery time.Duration
	// FirstRetry is the back-off before the second attempt; each later one doubles, up to
	// MaxRetry, with jitter (half fixed, half random). Defaults 500ms and 1m.
	FirstRetry, MaxRetry time.Duration
	Metrics              Metrics // nil: none
}

// Sender posts the events of a Source to the configured endpoints.
type Sender struct {
	cfg    Config
	key    []byte
	types  map[string]bool
	src    Source
	log    *slog.Logger
	client *http.Client

	mu       sync.Mutex          // guards the fields below
	inflight map[string]struct{} // refs being sent
	done     []string            // refs finished whose Done has not succeeded yet
}

// New returns a sender of src's events.
func New(cfg Config, src Source, log *slog.Logger) (*Sender, error) {
	key, err := ParseSecret(cfg.Secret)
	if err != nil {
		return nil, err
	}
	if len(cfg.URLs) == 0 {
		return nil, errors.New("webhook: no endpoint URL")
	}
	for _, u := range cfg.URLs {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("webhook: endpoint %q is not an http(s) URL", u)
		}
	}
	types, err := ParseTypes(cfg.Types)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Horizon <= 0 {
		cfg.Horizon = 5 * time.Minute
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.KeepEvery <= 0 {
		cfg.KeepEvery = 10 * time.Second
	}
	if cfg.FirstRetry <= 0 {
		cfg.FirstRetry = 500 * time.Millisecond
	}
	if cfg.MaxRetry <= 0 {
		cfg.MaxRetry = time.Minute
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	if log == nil {
		log = slog.Default()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = cfg.Workers
	return &Sender{
		cfg: cfg, key: key, types: types, src: src, log: log,
		client: &http.Client{
			Transport: tr,
			Timeout:   cfg.Timeout,
			// A redirect is an answer like any other non-2xx: retried, never followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		inflight: make(map[string]struct{}),
	}, nil
}

// Run sends events until ctx is done, then waits for the attempts in progress to stop. Events
// not finished by then stay in the outbox for another instance (or this one, restarted).
func (s *Sender) Run(ctx context.Context) error {
	defer s.client.CloseIdleConnections()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.keepLoop(ctx)
	}()
	slots := make(chan struct{}, s.cfg.Workers)
	errWait := 50 * time.Millisecond
	for {
		select { // wait for a free slot
		case slots <- struct{}{}:
			<-slots
		case <-ctx.Done():
			return ctx.Err()
		}
		evs, err := s.src.Claim(ctx, s.cfg.Workers-len(slots), time.Second)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			s.log.Warn("webhook outbox unavailable", "err", err)
			if !clock.Sleep(ctx, errWait) {
				return ctx.Err()
			}
			errWait = min(2*errWait, 2*time.Second)
			continue
		}
		errWait = 50 * time.Millisecond
		for _, ev := range evs {
			s.cfg.Metrics.Taken(ev.Type)
			if s.types != nil && !s.types[ev.Type] {
				s.finish(ctx, ev.Ref)
				continue
			}
			s.mu.Lock()
			_, busy := s.inflight[ev.Ref]
			s.inflight[ev.Ref] = struct{}{}
			s.mu.Unlock()
			if busy { // claimed back from ourselves (Keep failed for a while): already being sent
				continue
			}
			slots <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				if s.send(ctx, ev) {
					s.finish(ctx, ev.Ref)
				}
				s.mu.Lock()
				delete(s.inflight, ev.Ref)
				s.mu.Unlock()
			}()
		}
	}
}

// finish marks an event done in the outbox; should that fail, keepLoop tries again.
func (s *Sender) finish(ctx context.Context, ref string) {
	if err := s.src.Done(ctx, []string{ref}); err != nil {
		s.mu.Lock()
		s.done = append(s.done, ref)
		s.mu.Unlock()
	}
}

// keepLoop keeps the events in progress, retries failed Done calls and reads the outbox's
// statistics, every KeepEvery.
func (s *Sender) keepLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.KeepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		refs := make([]string, 0, len(s.inflight))
		for r := range s.inflight {
			refs = append(refs, r)
		}
		done := s.done
		s.done = nil
		s.mu.Unlock()
		if err := s.src.Keep(ctx, refs); err != nil {
			s.log.Debug("webhook keep failed", "err", err)
		}
		if err := s.src.Done(ctx, done); err != nil {
			s.mu.Lock()
			s.done = append(s.done, done...)
			s.mu.Unlock()
		}
		if st, err := s.src.Stats(ctx); err == nil {
			s.cfg.Metrics.Outbox(st)
		}
	}
}

// send delivers ev to every endpoint, each until it answers 2xx or 410 or the horizon passes.
// It returns false when ctx ended first (the event is not done).
func (s *Sender) send(ctx context.Context, ev store.Event) bool {
	body, err := json.Marshal(NewPayload(ev))
	if err != nil { // cannot happen: every field marshals
		s.log.Error("webhook payload", "event", ev.ID, "err", err)
		return true
	}
	if len(s.cfg.URLs) == 1 {
		return s.sendTo(ctx, ev, s.cfg.URLs[0], body)
	}
	var wg sync.WaitGroup
	ok := make([]bool, len(s.cfg.URLs))
	for i, u := range s.cfg.URLs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok[i] = s.sendTo(ctx, ev, u, body)
		}()
	}
	wg.Wait()
	for _, o := range ok {
		if !o {
			return false
		}
	}
	return true
}

// sendTo delivers ev to one endpoint; false when ctx ended first.
func (s *Sender) sendTo(ctx context.Context, ev store.Event, u string, body []byte) bool {
	deadline := ev.Time.Add(s.cfg.Horizon)
	log := s.log.With("event", ev.ID, "type", ev.Type, "endpoint", redact(u))
	for attempt := 0; ; attempt++ {
		status, err := s.post(ctx, u, ev.ID, body)
		if ctx.Err() != nil {
			return false
		}
		result := attemptResult(status, err)
		s.cfg.Metrics.Attempt(result)
		switch {
		case result == "2xx":
			s.cfg.Metrics.Finished(ev.Type, "delivered", time.Since(ev.Time))
			log.Debug("webhook delivered", "attempts", attempt+1)
			return true
		case status == http.StatusGone:
			s.cfg.Metrics.Finished(ev.Type, "gone", 0)
			log.Info("webhook endpoint answered 410 Gone: no more attempts for this event")
			return true
		}
		wait := s.backoff(attempt)
		if time.Now().Add(wait).After(deadline) {
			s.cfg.Metrics.Finished(ev.Type, "gave_up", 0)
			log.Warn("webhook not delivered before the retry horizon", "attempts", attempt+1, "last", result, "err", err)
			return true
		}
		log.Debug("webhook attempt failed", "attempt", attempt+1, "result", result, "err", err, "retry_in", wait)
		if !clock.Sleep(ctx, wait) {
			return false
		}
	}
}

// post makes one signed attempt and returns the status code.
func (s *Sender) post(ctx context.Context, u, id string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	now := time.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Switchboard-Webhooks/1")
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(s.key, id, now, body))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func attemptResult(status int, err error) string {
	var ue *url.Error
	switch {
	case err != nil && errors.As(err, &ue) && ue.Timeout():
		return "timeout"
	case err != nil:
		return "error"
	case status == http.StatusGone:
		return "410"
	}
	return strconv.Itoa(status/100) + "xx"
}

// backoff is the wait after attempt (0 for the first): FirstRetry doubled per attempt up to
// MaxRetry, half of it random so that retries of many events spread out.
func (s *Sender) backoff(attempt int) time.Duration {
	d := s.cfg.MaxRetry
	if attempt < 30 {
		d = min(s.cfg.FirstRetry<<attempt, s.cfg.MaxRetry)
	}
	return d/2 + rand.N(d/2+1)
}

// redact drops credentials and the query from an endpoint for logs.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "?"
	}
	p.User, p.RawQuery, p.Fragment = nil, "", ""
	return p.String()
}

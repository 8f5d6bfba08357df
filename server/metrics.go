package server

// Prometheus metrics, served at /metrics. Every metric is declared here and listed in
// docs/deploy.md. The signaling package reports through signaling.Metrics and does not import
// Prometheus; gauges of local state are read from the hub when scraped.

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-rtc/switchboard/server/signaling"
	"github.com/switchboard-rtc/switchboard/store"
	"github.com/switchboard-rtc/switchboard/webhook"
)

// metrics is one instance's registry. Each Server has its own, so several can run in one process.
type metrics struct {
	reg *prometheus.Registry

	connections prometheus.Counter
	joins       *prometheus.CounterVec
	held        prometheus.Counter
	handoffs    prometheus.Counter
	handoffTime prometheus.Histogram
	expired     prometheus.Counter
	relayed     *prometheus.CounterVec
	errors      *prometheus.CounterVec
	storeErrors *prometheus.CounterVec

	hookEvents   *prometheus.CounterVec
	hookResults  *prometheus.CounterVec
	hookAttempts *prometheus.CounterVec
	hookLatency  prometheus.Histogram
	hookDepth    prometheus.Gauge
	hookOldest   prometheus.Gauge
	hookDropped  prometheus.Counter
	hookRecorded prometheus.Gauge
}

var (
	_ signaling.Metrics = (*metrics)(nil)
	_ webhook.Metrics   = (*metrics)(nil)
)

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		connections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_connections_total",
			Help: "Socket.IO connections accepted by this instance.",
		}),
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_joins_total",
			Help: "Memberships created by join on this instance, by role (caller, answerer); retried joins are not counted.",
		}, []string{"role"}),
		held: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_held_offers_total",
			Help: "Offers held because their sender was alone in its room.",
		}),
		handoffs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_handoffs_total",
			Help: "Held offers handed to an answerer joining on this instance.",
		}),
		handoffTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_handoff_seconds",
			Help:    "From an answerer's join arriving to its held offer and early candidates being emitted to it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_expired_offers_total",
			Help: "Held offers that expired unanswered, counted by the instance their sender was connected to.",
		}),
		relayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_relayed_messages_total",
			Help: "Client messages applied (stored for their recipient or held), by event.",
		}, []string{"event"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_errors_total",
			Help: "Error replies to client events, by error code.",
		}, []string{"code"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_store_errors_total",
			Help: "Store calls that failed (store unreachable, timed out or broken), by operation.",
		}, []string{"op"}),
		hookEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_webhook_events_total",
			Help: "Call events this instance took from the outbox to send, by type.",
		}, []string{"type"}),
		hookResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_webhook_sent_total",
			Help: "Call events done with, per endpoint, by type and result: delivered (2xx), gone (410), gave_up (retry horizon passed).",
		}, []string{"type", "result"}),
		hookAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_webhook_attempts_total",
			Help: "Webhook POSTs, by result: 2xx, 3xx, 4xx, 410, 5xx, timeout, error.",
		}, []string{"result"}),
		hookLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_webhook_delivery_seconds",
			Help:    "From a call event to its 2xx answer, retries included.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
		hookDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_webhook_outbox_depth",
			Help: "Call events recorded and not yet done (the deployment's outbox; every instance reports it).",
		}),
		hookOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_webhook_outbox_oldest_seconds",
			Help: "Age of the oldest call event not yet done; 0 when none.",
		}),
		hookRecorded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_webhook_outbox_recorded",
			Help: "Call events ever recorded in the outbox (the deployment's outbox; every instance reports it).",
		}),
		hookDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_webhook_dropped_total",
			Help: "Call events dropped unsent because the outbox was full (each drop counted by one instance).",
		}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.connections, m.joins, m.held, m.handoffs, m.handoffTime, m.expired,
		m.relayed, m.errors, m.storeErrors,
		m.hookEvents, m.hookResults, m.hookAttempts, m.hookLatency, m.hookDepth, m.hookOldest, m.hookDropped, m.hookRecorded,
	)
	// Known label values start at zero, so rates and alerts work before the first event.
	for _, role := range []string{"caller", "answerer"} {
		m.joins.WithLabelValues(role)
	}
	for _, ev := range []string{signaling.EvOffer, signaling.EvAnswer, signaling.EvCandidate, signaling.EvHangup, signaling.EvLeave} {
		m.relayed.WithLabelValues(ev)
	}
	return m
}

// watch adds the gauges read from the hub at scrape time.
func (m *metrics) watch(h *signaling.Hub) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_connections",
			Help: "Socket.IO connections open on this instance.",
		}, func() float64 { return float64(h.Clients()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_rooms",
			Help: "Rooms with at least one member connected to this instance.",
		}, func() float64 { rooms, _ := h.Rooms(); return float64(rooms) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_members",
			Help: "Room memberships held by connections to this instance.",
		}, func() float64 { _, members := h.Rooms(); return float64(members) }),
	)
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *metrics) Connected()                   { m.connections.Inc() }
func (m *metrics) Joined(role string)           { m.joins.WithLabelValues(role).Inc() }
func (m *metrics) Held()                        { m.held.Inc() }
func (m *metrics) Expired()                     { m.expired.Inc() }
func (m *metrics) Relayed(event string)         { m.relayed.WithLabelValues(event).Inc() }
func (m *metrics) Rejected(code signaling.Code) { m.errors.WithLabelValues(string(code)).Inc() }
func (m *metrics) StoreError(op string)         { m.storeErrors.WithLabelValues(op).Inc() }
func (m *metrics) Taken(typ string)             { m.hookEvents.WithLabelValues(typ).Inc() }
func (m *metrics) Attempt(result string)        { m.hookAttempts.WithLabelValues(result).Inc() }
func (m *metrics) Finished(typ, result string, latency time.Duration) {
	m.hookResults.WithLabelValues(typ, result).Inc()
	if result == "delivered" {
		m.hookLatency.Observe(latency.Seconds())
	}
}
func (m *metrics) Outbox(s store.OutboxStats) {
	m.hookDepth.Set(float64(s.Depth))
	m.hookRecorded.Set(float64(s.Recorded))
	age := 0.0
	if !s.Oldest.IsZero() {
		age = max(time.Since(s.Oldest).Seconds(), 0)
	}
	m.hookOldest.Set(age)
	m.hookDropped.Add(float64(s.Dropped))
}
func (m *metrics) HandOff(d time.Duration) {
	m.handoffs.Inc()
	m.handoffTime.Observe(d.Seconds())
}

package governor

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"kadenz/governor/engine"
	"kadenz/governor/intake"
	"kadenz/store"
)

// Prometheus metrics, served at GET /metrics on the admin listener.
//
// Each relay has its own registry (not the package-level default), so
// several relays in one test binary never share counters. Label values
// come from closed sets only: classes, actions, the scoring package's
// reason codes, delivery outcomes, error kinds and configured mailbox
// names; never addresses, message IDs or error text.
//
// Queue depth by state comes from the counts the store keeps on every
// commit (store.StateCounts): a scrape costs a map copy, where walking
// the envelopes costs about half a second per 100,000 (see
// docs/operations.md). Nothing else in a scrape reads the database: the
// other metrics are counters the relay keeps as it works.

type metrics struct {
	reg *prometheus.Registry

	accepted        *prometheus.CounterVec
	decisions       *prometheus.CounterVec
	decided         *prometheus.CounterVec
	deliveries      *prometheus.CounterVec
	latency         prometheus.Histogram
	upstreamErrors  *prometheus.CounterVec
	reloads         *prometheus.CounterVec
	lastReloadOK    prometheus.Gauge
	mailboxLastOK   *prometheus.GaugeVec
	mailboxErrors   *prometheus.CounterVec
	retentionPurged *prometheus.CounterVec
	forgotten       prometheus.Counter
	intakeLimits    *prometheus.CounterVec

	depth   *queueDepth
	readers *learnedReaders
}

// newMetrics makes the relay's metrics. With a node name (several nodes
// on one database) every series carries node="NAME", so that the
// scrapes of a cluster's nodes can be told apart and summed; without one
// (bbolt) the series are as they always were.
func newMetrics(db store.Reads, node string) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.accepted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kadenz_messages_accepted_total",
		Help: "Messages accepted after DATA (250 sent), by class.",
	}, []string{"class"})
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kadenz_decisions_total",
		Help: "Governor decisions per reason code: a decision with two reasons counts once under each. Action is what enforce mode does (or would do, in shadow mode).",
	}, []string{"action", "reason"})
	m.decided = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kadenz_decided_envelopes_total",
		Help: "Governor decisions, one per envelope per round, by mode and action (what enforce mode does or would do).",
	}, []string{"mode", "action"})
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kadenz_deliveries_total",
		Help: "Delivery attempts by outcome: delivered, deferred (temporary failure, retried) or failed (permanent, or out of time).",
	}, []string{"outcome"})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "kadenz_delivery_latency_seconds",
		Help: "Time from acceptance to successful delivery; for governed marketing mail it includes the hold.",
		// From loopback speeds to the days a held or retried message may wait.
		Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400},
	})
	m.upstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kadenz_upstream_errors_total",
		Help: "Failed delivery attempts by kind: smtp_4xx, smtp_5xx, timeout, tls, network, store, other.",
	}, []string{"kind"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kadenz_config_reload_total",
		Help: "Configuration reloads (SIGHUP) by result: ok or error.",
	}, []string{"result"})
	m.lastReloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kadenz_config_last_reload_success_timestamp_seconds",
		Help: "When the configuration in force was loaded (start or last successful reload), Unix seconds.",
	})
	m.mailboxLastOK = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kadenz_mailbox_last_success_timestamp_seconds",
		Help: "When the feedback mailbox was last read without error, Unix seconds.",
	}, []string{"mailbox"})
	m.mailboxErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kadenz_mailbox_errors_total",
		Help: "Failed reads of a feedback mailbox.",
	}, []string{"mailbox"})
	m.retentionPurged = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kadenz_retention_purged_total",
		Help: "Records removed by the retention sweep: bodies or decisions.",
	}, []string{"kind"})
	m.forgotten = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kadenz_forget_requests_total",
		Help: "Erasure requests (POST /v1/forget) carried out.",
	})
	m.intakeLimits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kadenz_intake_limit_events_total",
		Help: "SMTP intake fair-slot events: connections refused (refused_total, refused_outsiders, refused_per_client), sessions closed (junk_commands, idle), failed logins (auth_failed) and logins refused during a lockout (auth_locked_client, auth_locked_user).",
	}, []string{"event"})
	m.depth = &queueDepth{db: db, desc: prometheus.NewDesc(
		"kadenz_queue_envelopes", "Envelopes stored, by state.", []string{"state"}, nil)}
	m.readers = &learnedReaders{
		share: prometheus.NewDesc("kadenz_presence_look_share",
			"The share of the list's readers who open mail at their next look rather than after a delay set when it came, as the engine fitted it and its decisions use it (0.5 until fitted); see docs/scoring.md, Presence.", nil, nil),
		delay: prometheus.NewDesc("kadenz_presence_open_delay_seconds",
			"The list's delay law as the engine fitted it (the defaults until fitted): the mean time to a first open of a reader at their inbox (reader=present) and at their quietest hour (reader=away).", []string{"reader"}, nil),
		stops: prometheus.NewDesc("kadenz_list_stop_rate",
			"The list's unsubscribes and complaints per marketing release, as the engine measured it (shrunk toward 0.002, never below it) and prices fatigue on; see docs/scoring.md, Fatigue.", nil, nil),
	}
	var reg prometheus.Registerer = m.reg
	if node != "" {
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"node": node}, m.reg)
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.accepted, m.decisions, m.decided, m.deliveries, m.latency, m.upstreamErrors,
		m.reloads, m.lastReloadOK, m.mailboxLastOK, m.mailboxErrors, m.retentionPurged, m.forgotten,
		m.intakeLimits,
		m.depth, m.readers,
	)
	// Every state is present from the first scrape, so a rate() or an
	// alert on "failed" works before the first failure.
	for _, s := range []string{"delivered", "deferred", "failed"} {
		m.deliveries.WithLabelValues(s)
	}
	for _, r := range []string{"ok", "error"} {
		m.reloads.WithLabelValues(r)
	}
	for _, e := range []string{intake.EventRefusedTotal, intake.EventRefusedOutsiders, intake.EventRefusedPerClient,
		intake.EventJunkCommands, intake.EventIdle, intake.EventAuthFailed, intake.EventAuthLockedClient, intake.EventAuthLockedUser} {
		m.intakeLimits.WithLabelValues(e)
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// messageAccepted counts one accepted message.
func (m *metrics) messageAccepted(class string) {
	m.accepted.WithLabelValues(class).Inc()
}

// decidedRound counts the decisions of one committed round.
func (m *metrics) decidedRound(recs []engine.Record) {
	for _, rec := range recs {
		action := rec.Action
		if rec.Would != "" {
			action = rec.Would
		}
		m.decided.WithLabelValues(rec.Mode, action).Inc()
		if len(rec.Reasons) == 0 {
			m.decisions.WithLabelValues(action, "none").Inc()
		}
		for _, reason := range rec.Reasons {
			m.decisions.WithLabelValues(action, reason).Inc()
		}
	}
}

// deliveryAttempted counts the outcome of one delivery attempt; e is the
// envelope as written back, err what the attempt returned.
func (m *metrics) deliveryAttempted(e store.Envelope, err error, now time.Time) {
	outcome := string(e.State)
	m.deliveries.WithLabelValues(outcome).Inc()
	if e.State == store.StateDelivered {
		m.latency.Observe(now.Sub(e.Created).Seconds())
	}
	if err != nil {
		m.upstreamErrors.WithLabelValues(errorKind(err)).Inc()
	}
}

// errorKind sorts a delivery error into a small fixed set of kinds.
func errorKind(err error) string {
	var se *smtp.SMTPError
	var ne net.Error
	var recordErr tls.RecordHeaderError
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &se):
		if se.Code >= 500 {
			return "smtp_5xx"
		}
		return "smtp_4xx"
	case errors.Is(err, store.ErrNotFound):
		return "store"
	case errors.As(err, &certErr), errors.As(err, &recordErr):
		return "tls"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &ne):
		return "network"
	}
	return "other"
}

// mailboxPolled records one read of a feedback mailbox (the IMAP reader
// calls it after every poll): the time of the last success, or one more
// error.
func (m *metrics) mailboxPolled(name string, err error, now time.Time) {
	if err != nil {
		m.mailboxErrors.WithLabelValues(name).Inc()
		return
	}
	m.mailboxErrors.WithLabelValues(name) // present at 0 from the first success
	m.mailboxLastOK.WithLabelValues(name).Set(float64(now.UnixNano()) / 1e9)
}

// MailboxPolled is for the feedback mailbox reader: call it after each
// poll of the mailbox called name, with the poll's error or nil.
func (r *Relay) MailboxPolled(name string, err error) {
	r.metrics.mailboxPolled(name, err, r.now())
}

// configLoaded records a reload attempt's result.
func (m *metrics) configLoaded(ok bool, now time.Time) {
	if !ok {
		m.reloads.WithLabelValues("error").Inc()
		return
	}
	m.reloads.WithLabelValues("ok").Inc()
	m.lastReloadOK.Set(float64(now.UnixNano()) / 1e9)
}

// queueDepth is a collector that reports envelope counts by state at
// scrape time.
type queueDepth struct {
	db   store.Reads
	desc *prometheus.Desc
}

func (q *queueDepth) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

func (q *queueDepth) Collect(ch chan<- prometheus.Metric) {
	counts := q.db.StateCounts()
	for _, s := range []store.State{store.StateQueued, store.StateDelivering, store.StateDeferred, store.StateDelivered,
		store.StateFailed, store.StateHeld, store.StateReview, store.StateSuppressed} {
		ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}

// learnedReaders is a collector of what the engine learned of the list's
// readers (engine.Learned), read at scrape time; nothing before the
// engine's first population refresh, or before there is an engine.
type learnedReaders struct {
	share, delay, stops *prometheus.Desc
	source              atomic.Pointer[func() (engine.Learned, bool)]
}

// watch makes learned the source of the readers' metrics (the relay's
// engine's, once it is built).
func (l *learnedReaders) watch(learned func() (engine.Learned, bool)) { l.source.Store(&learned) }

func (l *learnedReaders) Describe(ch chan<- *prometheus.Desc) {
	ch <- l.share
	ch <- l.delay
	ch <- l.stops
}

func (l *learnedReaders) Collect(ch chan<- prometheus.Metric) {
	src := l.source.Load()
	if src == nil {
		return
	}
	got, ok := (*src)()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(l.share, prometheus.GaugeValue, got.LookShare)
	ch <- prometheus.MustNewConstMetric(l.delay, prometheus.GaugeValue, got.OpenDelayPresent.Seconds(), "present")
	ch <- prometheus.MustNewConstMetric(l.delay, prometheus.GaugeValue, got.OpenDelayAway.Seconds(), "away")
	ch <- prometheus.MustNewConstMetric(l.stops, prometheus.GaugeValue, got.StopRate)
}

// observeDelivery is the delivery queue's Observe hook: it counts the
// attempt, then lets the feedback room learn from a smarthost's refusal.
func (r *Relay) observeDelivery(e store.Envelope, err error, now time.Time) {
	r.metrics.deliveryAttempted(e, err, now)
	r.feedback.ObserveDelivery(e, err, now)
}

// countIntakeEvent counts one fair-slot event of the SMTP intake.
func (r *Relay) countIntakeEvent(event string) {
	if r.metrics != nil {
		r.metrics.intakeLimits.WithLabelValues(event).Inc()
	}
}

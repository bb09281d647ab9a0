package external

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Client's Prometheus metrics. The Client is the
// prometheus.Collector: the caller registers it (reg.MustRegister(client)).
type metrics struct {
	calls       *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	attempts    *prometheus.CounterVec
	transitions *prometheus.CounterVec
	stateDesc   *prometheus.Desc
	state       func() BreakerState
}

func newMetrics() *metrics {
	return &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "authledger", Subsystem: "external_auth", Name: "calls_total",
			Help: "Calls to the external auth API by operation (login, refresh, me) and outcome (ok, or the failure's reason: invalid_credentials, breaker_open, timeout, transport, server_error, rate_limited, unexpected_status, bad_body).",
		}, []string{"op", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "authledger", Subsystem: "external_auth", Name: "call_duration_seconds",
			Help:    "Duration of a call to the external auth API, its retries and backoff included, by operation and outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"op", "outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "authledger", Subsystem: "external_auth", Name: "attempts_total",
			Help: "HTTP attempts made to the external auth API by operation and result (2xx, 4xx, 5xx and so on, timeout, transport); more attempts than calls means retries.",
		}, []string{"op", "result"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "authledger", Subsystem: "external_auth", Name: "breaker_transitions_total",
			Help: "Circuit breaker state changes, by the state entered (closed, open, half_open).",
		}, []string{"to"}),
		stateDesc: prometheus.NewDesc("authledger_external_auth_breaker_state",
			"1 for the circuit breaker's current state (closed, open, half_open), 0 for the others. Open turns half-open on the first call after the breaker's delay.",
			[]string{"state"}, nil),
	}
}

// attempt counts one HTTP attempt. An attempt whose context ended was cut
// by the timeout policy (the caller's cancellation does not reach it).
func (m *metrics) attempt(ctx context.Context, op string, status int, err error) {
	result := "transport"
	switch {
	case err == nil:
		result = fmt.Sprintf("%dxx", status/100)
	case ctx.Err() != nil || isTimeout(err):
		result = "timeout"
	}
	m.attempts.WithLabelValues(op, result).Inc()
}

// Describe implements prometheus.Collector.
func (c *Client) Describe(ch chan<- *prometheus.Desc) {
	c.metrics.calls.Describe(ch)
	c.metrics.duration.Describe(ch)
	c.metrics.attempts.Describe(ch)
	c.metrics.transitions.Describe(ch)
	ch <- c.metrics.stateDesc
}

// Collect implements prometheus.Collector.
func (c *Client) Collect(ch chan<- prometheus.Metric) {
	c.metrics.calls.Collect(ch)
	c.metrics.duration.Collect(ch)
	c.metrics.attempts.Collect(ch)
	c.metrics.transitions.Collect(ch)
	now := c.metrics.state()
	for _, s := range []BreakerState{BreakerClosed, BreakerOpen, BreakerHalfOpen} {
		v := 0.0
		if s == now {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.metrics.stateDesc, prometheus.GaugeValue, v, string(s))
	}
}

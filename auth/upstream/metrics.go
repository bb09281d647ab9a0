package upstream

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authledger/authledger/auth/external"
)

// Metrics are the upstream sign-ins' Prometheus metrics, by provider. It
// is a prometheus.Collector: the caller registers it.
type Metrics struct {
	signIns     *prometheus.CounterVec
	attempts    *prometheus.CounterVec
	transitions *prometheus.CounterVec
	stateDesc   *prometheus.Desc

	mu        sync.Mutex
	providers []Provider
}

// NewMetrics returns the metrics, registered nowhere yet.
func NewMetrics() *Metrics {
	return &Metrics{
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "authledger", Subsystem: "upstream", Name: "sign_ins_total",
			Help: "Upstream sign-in flows by provider and outcome (started, signed_in, linked, link_password_required, refused, provider_error, access_denied, bad_state, unavailable, invalid_token, code_rejected, not_allowed).",
		}, []string{"provider", "outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "authledger", Subsystem: "upstream", Name: "attempts_total",
			Help: "HTTP attempts made to upstream providers by provider and result (2xx, 4xx, 5xx, transport); more attempts than requests means retries.",
		}, []string{"provider", "result"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "authledger", Subsystem: "upstream", Name: "breaker_transitions_total",
			Help: "Circuit breaker state changes per provider, by the state entered.",
		}, []string{"provider", "to"}),
		stateDesc: prometheus.NewDesc("authledger_upstream_breaker_state",
			"1 for each provider's circuit breaker's current state (closed, open, half_open), 0 for the others.", []string{"provider", "state"}, nil),
	}
}

// Observe counts one flow's outcome.
func (m *Metrics) Observe(provider, outcome string) {
	if m != nil {
		m.signIns.WithLabelValues(provider, outcome).Inc()
	}
}

func (m *Metrics) attempt(provider string) func(int, error) {
	return func(status int, err error) {
		if m == nil {
			return
		}
		result := "transport"
		if err == nil {
			result = fmt.Sprintf("%dxx", status/100)
		}
		m.attempts.WithLabelValues(provider, result).Inc()
	}
}

func (m *Metrics) transition(provider string) func(external.BreakerState) {
	return func(to external.BreakerState) {
		if m != nil {
			m.transitions.WithLabelValues(provider, string(to)).Inc()
		}
	}
}

func (m *Metrics) watch(p Provider) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.providers = append(m.providers, p)
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.signIns.Describe(ch)
	m.attempts.Describe(ch)
	m.transitions.Describe(ch)
	ch <- m.stateDesc
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.signIns.Collect(ch)
	m.attempts.Collect(ch)
	m.transitions.Collect(ch)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.providers {
		now := p.BreakerState()
		for _, s := range []external.BreakerState{external.BreakerClosed, external.BreakerOpen, external.BreakerHalfOpen} {
			v := 0.0
			if s == now {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(m.stateDesc, prometheus.GaugeValue, v, p.Name(), string(s))
		}
	}
}

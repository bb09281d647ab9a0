package ratelimit

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	decisions   *prometheus.CounterVec
	degraded    *prometheus.CounterVec
	redisErrors prometheus.Counter
	// redisUp reports 1 while Redis answers; nil without Redis.
	redisUp func() float64
}

func newMetrics() *metrics {
	return &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authledger_rate_limit_decisions_total",
			Help: "Rate-limit decisions by level (ip, account, credential, route), route class (auth, read, write, upload) and outcome (allowed, limited, bypassed: a trusted network).",
		}, []string{"level", "class", "outcome"}),
		degraded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authledger_rate_limit_redis_down_decisions_total",
			Help: "Rate-limit decisions made without Redis while it could not answer, by level and mode (memory: this instance's buckets; open: let through).",
		}, []string{"level", "mode"}),
		redisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authledger_rate_limit_redis_errors_total",
			Help: "Rate-limit decisions Redis failed to answer (each starts a one-second back-off without Redis).",
		}),
	}
}

// Register exports the limiter's metrics on reg:
// authledger_rate_limit_decisions_total, and with Redis
// authledger_rate_limit_redis_up, authledger_rate_limit_redis_errors_total
// and authledger_rate_limit_redis_down_decisions_total. A nil limiter
// registers nothing.
func (l *Limiter) Register(reg prometheus.Registerer) error {
	if l == nil {
		return nil
	}
	m := l.metrics
	errs := []error{reg.Register(m.decisions)}
	if m.redisUp != nil {
		errs = append(errs,
			reg.Register(m.degraded), reg.Register(m.redisErrors),
			reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "authledger_rate_limit_redis_up",
				Help: "1 while Redis answers the rate limiter (AUTHLEDGER_REDIS_URL), 0 after a failure until it answers again.",
			}, m.redisUp)))
	}
	return errors.Join(errs...)
}

package projector

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the runtime's Prometheus metrics, labelled by projection.
type metrics struct {
	applied    *prometheus.CounterVec
	failures   *prometheus.CounterVec
	commits    *prometheus.CounterVec
	position   *prometheus.GaugeVec
	lagEvents  *prometheus.GaugeVec
	lagSeconds *prometheus.GaugeVec
	failed     *prometheus.GaugeVec
	// batchSeconds is how long each committed transaction was open: a
	// long one holds back every reader of the log (the store's horizon).
	batchSeconds *prometheus.HistogramVec

	followerRetries   *prometheus.CounterVec
	followerLag       *prometheus.GaugeVec
	followerFollowing *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "authledger", Subsystem: "projection", Name: "events_applied_total",
			Help: "Events applied and committed by a projection.",
		}, []string{"projection"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "authledger", Subsystem: "projection", Name: "failures_total",
			Help: "Failed attempts to apply an event or commit a batch (each is retried; the projection stops after the last attempt).",
		}, []string{"projection"}),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "authledger", Subsystem: "projection", Name: "batches_committed_total",
			Help: "Transactions committed (read-model rows and checkpoint together).",
		}, []string{"projection"}),
		position: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "authledger", Subsystem: "projection", Name: "checkpoint_position",
			Help: "Commit part of the projection's checkpoint position (PostgreSQL: transaction id).",
		}, []string{"projection"}),
		lagEvents: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "authledger", Subsystem: "projection", Name: "lag_events",
			Help: "Events in the log the projection has not applied yet (capped at the status lag cap).",
		}, []string{"projection"}),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "authledger", Subsystem: "projection", Name: "lag_seconds",
			Help: "Age of the oldest event the projection has not applied yet (0 when caught up).",
		}, []string{"projection"}),
		failed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "authledger", Subsystem: "projection", Name: "failed",
			Help: "1 while the projection is stopped on an event it cannot apply.",
		}, []string{"projection"}),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "authledger", Subsystem: "projection", Name: "batch_duration_seconds",
			Help:    "Time from the start of a projection's transaction to its commit, per committed batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"projection"}),
		followerRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "authledger", Subsystem: "follower", Name: "retries_total",
			Help: "Times a local log follower (revocation feed, worker wake-ups) resumed after its subscription or handler failed.",
		}, []string{"follower"}),
		followerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "authledger", Subsystem: "follower", Name: "lag_seconds",
			Help: "Time since a local log follower was last known to have handled every event of its filter.",
		}, []string{"follower"}),
		followerFollowing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "authledger", Subsystem: "follower", Name: "following",
			Help: "1 while a local log follower's subscription runs, 0 while it retries.",
		}, []string{"follower"}),
	}
	var err error
	m.applied, err = registerVec(reg, m.applied)
	if err != nil {
		return nil, err
	}
	if m.failures, err = registerVec(reg, m.failures); err != nil {
		return nil, err
	}
	if m.commits, err = registerVec(reg, m.commits); err != nil {
		return nil, err
	}
	if m.position, err = registerVec(reg, m.position); err != nil {
		return nil, err
	}
	if m.lagEvents, err = registerVec(reg, m.lagEvents); err != nil {
		return nil, err
	}
	if m.lagSeconds, err = registerVec(reg, m.lagSeconds); err != nil {
		return nil, err
	}
	if m.failed, err = registerVec(reg, m.failed); err != nil {
		return nil, err
	}
	if m.batchSeconds, err = registerVec(reg, m.batchSeconds); err != nil {
		return nil, err
	}
	if m.followerRetries, err = registerVec(reg, m.followerRetries); err != nil {
		return nil, err
	}
	if m.followerLag, err = registerVec(reg, m.followerLag); err != nil {
		return nil, err
	}
	if m.followerFollowing, err = registerVec(reg, m.followerFollowing); err != nil {
		return nil, err
	}
	return m, nil
}

// registerVec registers c, or returns the collector already registered
// under the same description (two runners in one process share metrics).
func registerVec[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (e *engine) metricFailure(name string) {
	if e.metrics != nil {
		e.metrics.failures.WithLabelValues(name).Inc()
	}
}

package projector

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authledger/authledger/eventstore"
)

// Config configures a Runner (and Rebuild). Zero durations and sizes take
// the defaults below.
type Config struct {
	// Store is the event log. Required.
	Store eventstore.Store
	// Pool holds the read models and checkpoints. Required.
	Pool *pgxpool.Pool
	// Projections run by the runner. Names must be unique.
	Projections []Projection
	// Followers are the local followers the runner runs beside the
	// projections (see Follower). Names must differ from each other and
	// from the projections'.
	Followers []Follower
	// Instance names this process in log_followers (default: a new id).
	Instance string
	// Logger receives the runtime's logs (slog.Default() when nil).
	Logger *slog.Logger
	// Registerer receives the metrics (a private registry when nil).
	Registerer prometheus.Registerer

	// BatchSize is the most events one transaction applies (default 500).
	BatchSize int
	// BatchTimeout is the longest a transaction stays open while events
	// keep coming (default 250ms). A batch commits at once whenever no
	// further event is pending.
	BatchTimeout time.Duration
	// CommitInterval is the shortest time between two commits of a live
	// projection while events keep arriving (default 10ms; negative: no
	// wait). An event that arrives sooner than this after the last commit
	// is held, with those that follow it, until the interval has passed
	// (or BatchSize events are held); then they are applied in one
	// transaction. Nothing is opened while they wait: a transaction that
	// had written rows would hold back every reader of the log. A lone
	// event after a quiet spell is applied at once; under load a
	// transaction carries many events instead of one or two, and the cost
	// per batch (a begin, the projection's set-up reads, the checkpoint row,
	// a synchronous commit) is most of a projection's cost per event. It
	// adds at most the interval to the live lag.
	CommitInterval time.Duration
	// CheckpointInterval is how long a live projection may leave progress
	// through events it filters out unwritten (default 500ms). That
	// progress changes no row, so the runner announces it to local waiters
	// at once and writes it with the next batch or after this interval,
	// rather than committing one checkpoint transaction per event of the
	// log that the projection does not read.
	CheckpointInterval time.Duration
	// BufferSize is how many events the store subscription may read ahead
	// of the handler (default 2048).
	BufferSize int
	// MaxAttempts is how many times an event is tried before its projection
	// stops as failed (default 5).
	MaxAttempts int
	// RetryBackoff is the first retry's delay, doubled per attempt up to
	// MaxBackoff (defaults 200ms and 5s).
	RetryBackoff time.Duration
	MaxBackoff   time.Duration
	// LockPollInterval is how often a standby instance tries to take over a
	// projection held by another instance (default 2s).
	LockPollInterval time.Duration
	// HeartbeatInterval is how often the lock connection is checked
	// (default 1s).
	HeartbeatInterval time.Duration
	// LagInterval is how often lag metrics are refreshed (default 5s).
	LagInterval time.Duration
	// RebuildIdle is how long a rebuild's subscription must have nothing
	// to deliver before the rebuild counts as caught up and swaps (default
	// 300ms).
	RebuildIdle time.Duration
	// MaxLag is how far behind the log a projection or a local follower
	// may be before readiness fails (default 30s).
	MaxLag time.Duration
	// VouchInterval is how often the local followers are vouched for
	// (default 200ms); the token check trusts its revocation set only
	// while it was vouched for recently, so this bounds how soon it
	// notices a stalled feed.
	VouchInterval time.Duration
	// StatusInterval is how often the local followers' states are
	// recorded in log_followers (default 2s).
	StatusInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.BufferSize == 0 {
		c.BufferSize = 2048
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	def(&c.BatchTimeout, 250*time.Millisecond)
	def(&c.CommitInterval, 10*time.Millisecond)
	def(&c.CheckpointInterval, 500*time.Millisecond)
	def(&c.RetryBackoff, 200*time.Millisecond)
	def(&c.MaxBackoff, 5*time.Second)
	def(&c.LockPollInterval, 2*time.Second)
	def(&c.HeartbeatInterval, time.Second)
	def(&c.LagInterval, 5*time.Second)
	def(&c.RebuildIdle, 300*time.Millisecond)
	def(&c.MaxLag, 30*time.Second)
	def(&c.VouchInterval, 200*time.Millisecond)
	def(&c.StatusInterval, 2*time.Second)
	if c.Instance == "" {
		c.Instance = defaultInstance()
	}
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("projections: Store is required"))
	}
	if c.Pool == nil {
		errs = append(errs, errors.New("projections: Pool is required"))
	}
	seen := map[string]bool{}
	for _, p := range c.Projections {
		switch {
		case p == nil:
			errs = append(errs, errors.New("projections: nil projection"))
			continue
		case p.Name() == "":
			errs = append(errs, errors.New("projections: a projection has an empty name"))
		case seen[p.Name()]:
			errs = append(errs, errors.New("projections: duplicate projection "+p.Name()))
		}
		seen[p.Name()] = true
	}
	for _, f := range c.Followers {
		switch {
		case f.Name == "" || f.Handle == nil:
			errs = append(errs, errors.New("projections: a follower needs a Name and a Handle"))
		case seen[f.Name]:
			errs = append(errs, errors.New("projections: duplicate projection or follower "+f.Name))
		}
		seen[f.Name] = true
	}
	if c.BatchSize < 0 || c.BufferSize < 0 || c.MaxAttempts < 0 {
		errs = append(errs, errors.New("projections: BatchSize, BufferSize and MaxAttempts must not be negative"))
	}
	if c.BatchTimeout < 0 || c.RetryBackoff < 0 || c.MaxBackoff < 0 || c.LockPollInterval < 0 ||
		c.HeartbeatInterval < 0 || c.LagInterval < 0 || c.RebuildIdle < 0 || c.MaxLag < 0 ||
		c.VouchInterval < 0 || c.StatusInterval < 0 {
		errs = append(errs, errors.New("projections: durations must not be negative"))
	}
	return errors.Join(errs...)
}

// defaultInstance names this process: host, pid and a random suffix, so
// that two processes on one host (or a restarted one) never share a row.
func defaultInstance() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), uuid.NewString()[:8])
}

package pg

import (
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Config configures a Store. Zero fields take the defaults listed.
type Config struct {
	// ConnString is the PostgreSQL connection string (URL or key=value).
	// Required. The database must have been migrated (migrations.Migrate).
	ConnString string

	// MaxConns caps each of the store's three pools (default 16): the main
	// one, the one that reads single streams and the one that reads $all
	// (see openStreamPool and openAllPool); connections open on demand.
	// Each Subscribe holds no connection between polls; the LISTEN
	// connection and the batcher's connections (AppendBatchers) are
	// separate.
	MaxConns int32

	// PollInterval is how often the Store's tail (the reader that every
	// caught-up subscription follows) polls when no wake-up arrives
	// (default 1s). Wake-ups normally come first: directly from
	// appends made through this Store, and by LISTEN/NOTIFY from other
	// processes; polling only bounds the delay when a notification is lost.
	PollInterval time.Duration

	// NotifyChannel is the LISTEN/NOTIFY channel shared by every Store of
	// one database (default "authledger_events"). A plain identifier.
	NotifyChannel string

	// NotifyInterval is the coalescing window of outgoing notifications
	// (default 5ms): after appends, at most one pg_notify is sent per
	// window. NOTIFY inside every append would take a global lock at commit
	// and serialise all writers.
	NotifyInterval time.Duration

	// TailInterval is the least time between two reads of the tail that
	// are not catching up a full page (default 5ms; negative for none).
	// Under a stream of appends every batch wakes the tail; reading at most
	// once per interval lets each read take several batches, and adds at
	// most the interval to live delivery. A wake-up after a quieter spell
	// is read at once.
	TailInterval time.Duration

	// BatchSize is the number of events a subscription, or the tail, reads
	// per page (default 512).
	BatchSize int

	// IdleInTransactionTimeout is set as idle_in_transaction_session_timeout
	// on the pool's sessions (default 30s): a writing transaction left open
	// holds every subscriber of the database back, so it must not live long.
	IdleInTransactionTimeout time.Duration

	// AppendRetries bounds how often Append retries an append that lost a
	// race for a revision with a writer of another process (default 10).
	AppendRetries int

	// AppendBatch is the most concurrent Append calls one statement and
	// commit carries (default 64); 1 writes every call in its own
	// transaction. AppendBatchEvents caps the events of such a batch
	// (default 1024; a single larger append still goes, alone).
	AppendBatch       int
	AppendBatchEvents int

	// AppendBatchers is the most batches written at once, each on its own
	// connection (see batcher). The default is DefaultAppendBatchers():
	// one per two CPUs, from two to four. Every batch pays a statement and
	// a commit whatever it holds, so fewer connections make larger batches;
	// more let a few writers append without waiting for each other's
	// commits, and PostgreSQL run batches on several cores.
	AppendBatchers int
}

// Defaults.
const (
	DefaultMaxConns = 16
	// DefaultConnectTimeout bounds a new connection when the connection
	// string sets no connect_timeout.
	DefaultConnectTimeout           = 5 * time.Second
	DefaultPollInterval             = time.Second
	DefaultNotifyChannel            = "authledger_events"
	DefaultNotifyInterval           = 5 * time.Millisecond
	DefaultTailInterval             = 5 * time.Millisecond
	DefaultBatchSize                = 512
	DefaultIdleInTransactionTimeout = 30 * time.Second
	DefaultAppendRetries            = 10
	DefaultAppendBatch              = 64
	DefaultAppendBatchEvents        = 1024
)

// DefaultAppendBatchers is the batch count for a zero
// Config.AppendBatchers: runtime.NumCPU()/2, at least 2, at most 4. With
// one, an append that arrives while a batch commits always waits for that
// commit before its own: two writers on two cores appended at about half
// the rate of two plain INSERTs (docs/benchmarks.md).
func DefaultAppendBatchers() int { return min(max(runtime.NumCPU()/2, 2), 4) }

var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.NotifyChannel == "" {
		c.NotifyChannel = DefaultNotifyChannel
	}
	if c.NotifyInterval == 0 {
		c.NotifyInterval = DefaultNotifyInterval
	}
	if c.TailInterval == 0 {
		c.TailInterval = DefaultTailInterval
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.IdleInTransactionTimeout == 0 {
		c.IdleInTransactionTimeout = DefaultIdleInTransactionTimeout
	}
	if c.AppendRetries == 0 {
		c.AppendRetries = DefaultAppendRetries
	}
	if c.AppendBatch == 0 {
		c.AppendBatch = DefaultAppendBatch
	}
	if c.AppendBatchEvents == 0 {
		c.AppendBatchEvents = DefaultAppendBatchEvents
	}
	if c.AppendBatchers == 0 {
		c.AppendBatchers = DefaultAppendBatchers()
	}
	return c
}

// Validate reports every problem of c at once. Zero fields are valid (they
// take defaults), except ConnString.
func (c Config) Validate() error {
	var errs []error
	if c.ConnString == "" {
		errs = append(errs, errors.New("pg: ConnString is required"))
	} else if _, err := pgxpool.ParseConfig(c.ConnString); err != nil {
		errs = append(errs, fmt.Errorf("pg: ConnString: %w", err))
	}
	if c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("pg: MaxConns must be positive, got %d", c.MaxConns))
	}
	if c.PollInterval < 0 || (c.PollInterval > 0 && c.PollInterval < time.Millisecond) {
		errs = append(errs, fmt.Errorf("pg: PollInterval must be at least 1ms, got %s", c.PollInterval))
	}
	if c.NotifyChannel != "" && !identifier.MatchString(c.NotifyChannel) {
		errs = append(errs, fmt.Errorf("pg: NotifyChannel %q must be a lower-case identifier of at most 63 bytes", c.NotifyChannel))
	}
	if c.NotifyInterval < 0 {
		errs = append(errs, fmt.Errorf("pg: NotifyInterval must not be negative, got %s", c.NotifyInterval))
	}
	if c.BatchSize < 0 || c.BatchSize > 100_000 {
		errs = append(errs, fmt.Errorf("pg: BatchSize must be between 1 and 100000, got %d", c.BatchSize))
	}
	if c.IdleInTransactionTimeout < 0 || (c.IdleInTransactionTimeout > 0 && c.IdleInTransactionTimeout < time.Millisecond) {
		errs = append(errs, fmt.Errorf("pg: IdleInTransactionTimeout must be at least 1ms, got %s", c.IdleInTransactionTimeout))
	}
	if c.AppendRetries < 0 {
		errs = append(errs, fmt.Errorf("pg: AppendRetries must not be negative, got %d", c.AppendRetries))
	}
	if c.AppendBatch < 0 || c.AppendBatch > 10_000 {
		errs = append(errs, fmt.Errorf("pg: AppendBatch must be between 1 and 10000, got %d", c.AppendBatch))
	}
	if c.AppendBatchEvents < 0 {
		errs = append(errs, fmt.Errorf("pg: AppendBatchEvents must be positive, got %d", c.AppendBatchEvents))
	}
	if c.AppendBatchers < 0 || c.AppendBatchers > 64 {
		errs = append(errs, fmt.Errorf("pg: AppendBatchers must be between 1 and 64, got %d", c.AppendBatchers))
	}
	return errors.Join(errs...)
}

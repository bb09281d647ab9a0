package esdb

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"
)

// Config configures the EventStoreDB adapter. The zero value of every field
// but URL means its default.
type Config struct {
	// URL is an EventStoreDB connection string, for example
	// "esdb://127.0.0.1:2113?tls=false" for an insecure single node or
	// "esdb://node1:2113,node2:2113,node3:2113?tls=true" for a cluster
	// (the client then discovers the leader by gossip).
	URL string

	// StreamPrefix, when set, is prepended to every stream name this store
	// writes and reads, and $all reads, subscriptions and Head see only
	// streams that carry it. It isolates independent logs inside one
	// EventStoreDB (the conformance suite runs each test in its own prefix
	// against a shared server). Changing it on a live deployment hides every
	// event written before.
	StreamPrefix string

	// ConnectTimeout bounds the reachability check of Open. Default 10s.
	ConnectTimeout time.Duration

	// ReadBatchSize is how many $all events one gRPC read asks for.
	// Default 512.
	ReadBatchSize int

	// MaxSearchWindow and CheckpointInterval are EventStoreDB's filtered
	// subscription settings: the server sends a checkpoint every
	// MaxSearchWindow*CheckpointInterval events it scans. Defaults 32 and 1.
	MaxSearchWindow    int
	CheckpointInterval int

	// ResubscribeMinBackoff and ResubscribeMaxBackoff bound the exponential
	// backoff between attempts to resubscribe after a dropped subscription.
	// Defaults 50ms and 5s.
	ResubscribeMinBackoff time.Duration
	ResubscribeMaxBackoff time.Duration

	// Logger receives dropped-subscription warnings and the client's own
	// log. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.ReadBatchSize == 0 {
		c.ReadBatchSize = 512
	}
	if c.MaxSearchWindow == 0 {
		c.MaxSearchWindow = 32
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = 1
	}
	if c.ResubscribeMinBackoff == 0 {
		c.ResubscribeMinBackoff = 50 * time.Millisecond
	}
	if c.ResubscribeMaxBackoff == 0 {
		c.ResubscribeMaxBackoff = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every problem of c at once (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("esdb: URL is required (an esdb:// connection string)"))
	} else if !strings.HasPrefix(c.URL, "esdb://") && !strings.HasPrefix(c.URL, "esdb+discover://") {
		errs = append(errs, fmt.Errorf("esdb: URL %q must start with esdb:// or esdb+discover://", redact(c.URL)))
	} else if _, err := client.ParseConnectionString(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("esdb: URL %q: %w", redact(c.URL), err))
	}
	if strings.HasPrefix(c.StreamPrefix, "$") {
		errs = append(errs, fmt.Errorf("esdb: StreamPrefix %q must not start with $ (system streams)", c.StreamPrefix))
	}
	if c.ConnectTimeout < 0 {
		errs = append(errs, fmt.Errorf("esdb: ConnectTimeout %v must be positive", c.ConnectTimeout))
	}
	if c.ReadBatchSize < 0 {
		errs = append(errs, fmt.Errorf("esdb: ReadBatchSize %d must be positive", c.ReadBatchSize))
	}
	if c.MaxSearchWindow < 0 {
		errs = append(errs, fmt.Errorf("esdb: MaxSearchWindow %d must be positive", c.MaxSearchWindow))
	}
	if c.CheckpointInterval < 0 {
		errs = append(errs, fmt.Errorf("esdb: CheckpointInterval %d must be positive", c.CheckpointInterval))
	}
	if c.ResubscribeMinBackoff < 0 || c.ResubscribeMaxBackoff < c.ResubscribeMinBackoff {
		errs = append(errs, fmt.Errorf("esdb: resubscribe backoff must satisfy 0 < min (%v) <= max (%v)", c.ResubscribeMinBackoff, c.ResubscribeMaxBackoff))
	}
	return errors.Join(errs...)
}

// redact hides a password in a connection string (esdb://user:pass@host).
func redact(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	cred := u[scheme+3 : at]
	if i := strings.Index(cred, ":"); i >= 0 {
		return u[:scheme+3] + cred[:i] + ":***" + u[at:]
	}
	return u
}

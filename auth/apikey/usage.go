package apikey

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// UsageTable is the read-model table of last-used times. Usage creates
// it at start (like the projections' tables, not in a migration: it is
// derived data, and losing it loses only when keys were last used).
const UsageTable = "api_key_last_used"

// DefaultFlushInterval is how often Usage writes what it has collected.
const DefaultFlushInterval = 5 * time.Second

// Usage collects the last-used time of each key in memory, as the
// authentication middleware accepts it (Touch: a map write under a
// mutex, no I/O), and writes the newest of each to UsageTable every
// interval, in one statement, and once more when it stops. A request
// costs no commit and no event; a crash loses at most one interval of
// last-used times. Every instance writes its own; the table keeps the
// latest of all (GREATEST).
type Usage struct {
	pool     *pgxpool.Pool
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	pending map[uuid.UUID]time.Time
}

// NewUsage returns a collector writing to pool every interval
// (DefaultFlushInterval when 0).
func NewUsage(pool *pgxpool.Pool, interval time.Duration, log *slog.Logger) (*Usage, error) {
	if pool == nil {
		return nil, errors.New("apikey: NewUsage needs a pool")
	}
	if interval < 0 {
		return nil, errors.New("apikey: the flush interval must not be negative")
	}
	if interval == 0 {
		interval = DefaultFlushInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Usage{pool: pool, interval: interval, log: log, pending: map[uuid.UUID]time.Time{}}, nil
}

// Touch records that key id was used at t.
func (u *Usage) Touch(id uuid.UUID, t time.Time) {
	u.mu.Lock()
	if t.After(u.pending[id]) {
		u.pending[id] = t
	}
	u.mu.Unlock()
}

// Setup creates UsageTable when it does not exist.
func (u *Usage) Setup(ctx context.Context) error {
	_, err := u.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+UsageTable+` (
		key_id       uuid PRIMARY KEY,
		last_used_at timestamptz NOT NULL)`)
	if err != nil {
		return fmt.Errorf("apikey: create %s: %w", UsageTable, err)
	}
	return nil
}

// Run creates the table, then flushes every interval until ctx is done,
// and a last time after.
func (u *Usage) Run(ctx context.Context) error {
	if err := u.Setup(ctx); err != nil {
		return err
	}
	t := time.NewTicker(u.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return u.Flush(stop)
		case <-t.C:
			if err := u.Flush(ctx); err != nil {
				u.log.Warn("api keys: last-used times not written; kept for the next try", slog.String("error", err.Error()))
			}
		}
	}
}

// Flush writes the collected times in one statement; on error they are
// kept (a newer Touch wins over them) for the next flush.
func (u *Usage) Flush(ctx context.Context) error {
	u.mu.Lock()
	batch := u.pending
	u.pending = make(map[uuid.UUID]time.Time, len(batch))
	u.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, 0, len(batch))
	ats := make([]time.Time, 0, len(batch))
	for id, at := range batch {
		ids, ats = append(ids, id), append(ats, at.UTC())
	}
	_, err := u.pool.Exec(ctx, `INSERT INTO `+UsageTable+` (key_id, last_used_at)
		SELECT * FROM unnest($1::uuid[], $2::timestamptz[])
		ON CONFLICT (key_id) DO UPDATE SET last_used_at = GREATEST(`+UsageTable+`.last_used_at, EXCLUDED.last_used_at)`, ids, ats)
	if err != nil {
		for id, at := range batch {
			u.Touch(id, at)
		}
		return fmt.Errorf("apikey: write last-used times: %w", err)
	}
	return nil
}

// LastUsed returns the last-used time of each of ids that has one: the
// newer of the table's and what this instance has not written yet.
func (u *Usage) LastUsed(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]time.Time, error) {
	out := map[uuid.UUID]time.Time{}
	if len(ids) > 0 {
		rows, err := u.pool.Query(ctx, `SELECT key_id, last_used_at FROM `+UsageTable+` WHERE key_id = ANY($1)`, ids)
		if err != nil {
			return nil, fmt.Errorf("apikey: read last-used times: %w", err)
		}
		type row struct {
			ID uuid.UUID
			At time.Time
		}
		rs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		if err != nil {
			return nil, fmt.Errorf("apikey: read last-used times: %w", err)
		}
		for _, r := range rs {
			out[r.ID] = r.At
		}
	}
	u.mu.Lock()
	pending := maps.Clone(u.pending)
	u.mu.Unlock()
	for _, id := range ids {
		if at, ok := pending[id]; ok && at.After(out[id]) {
			out[id] = at
		}
	}
	return out, nil
}

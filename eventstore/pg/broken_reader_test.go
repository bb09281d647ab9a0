package pg_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/eventstore/eventstoretest"
	"github.com/authledger/authledger/eventstore/pg"
)

// seqReader is the reader ARCHITECTURE.md warns against: it orders $all by
// the sequence number alone and reads every committed row, with no xmin
// horizon. A transaction that took its number early and commits late lands
// behind a position a subscriber has already passed, and is never delivered.
type seqReader struct{ *pg.Store }

func (r seqReader) read(ctx context.Context, after uint64, limit int) ([]eventstore.RecordedEvent, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	rows, err := r.Pool().Query(ctx, `SELECT tx_id, seq, event_id, stream, revision, type, data, metadata, recorded_at
		FROM events WHERE seq > $1 ORDER BY seq LIMIT $2`, int64(after), limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (eventstore.RecordedEvent, error) {
		var e eventstore.RecordedEvent
		var tx, seq, rev int64
		err := row.Scan(&tx, &seq, &e.ID, &e.Stream, &rev, &e.Type, &e.Data, &e.Metadata, &e.RecordedAt)
		// The real positions, so that only the order and the cursor are broken.
		e.Position = eventstore.Position{Commit: uint64(tx), Prepare: uint64(seq)}
		e.Revision = uint64(rev)
		return e, err
	})
}

func (r seqReader) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) ([]eventstore.RecordedEvent, error) {
	return r.read(ctx, opts.After.Prepare, opts.Limit)
}

func (r seqReader) Subscribe(ctx context.Context, opts eventstore.SubscribeOptions, h eventstore.Handler) error {
	cp := opts.After.Prepare
	for {
		page, err := r.read(ctx, cp, 500)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		for _, e := range page {
			if err := h(ctx, e); err != nil {
				return err
			}
			cp = e.Position.Prepare
		}
		if len(page) == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(2 * time.Millisecond):
			}
		}
	}
}

// TestSequenceOrderedReaderFailsConcurrency shows the concurrency check has
// teeth: the same writers against a sequence-ordered reader lose events.
func TestSequenceOrderedReaderFailsConcurrency(t *testing.T) {
	t.Parallel()
	f := fixture(t)
	defer f.Store.Close()
	f.Store = seqReader{f.Store.(*pg.Store)}
	f.Reopen = nil
	cfg := eventstoretest.DefaultConcurrencyConfig()
	cfg.Duration = 4 * time.Second
	cfg.HoldOpen = time.Second
	rep, err := eventstoretest.Concurrency(t.Context(), f, cfg)
	if err != nil {
		t.Fatalf("concurrency run: %v", err)
	}
	t.Log(rep.String())
	if rep.Counts[eventstoretest.Lost] == 0 {
		t.Fatalf("a reader ordered by sequence number alone lost no event in the concurrency check (violations: %v); the check cannot catch late commits", rep.Counts)
	}
}

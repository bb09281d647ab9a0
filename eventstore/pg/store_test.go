package pg_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/eventstore/eventstoretest"
	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/migrations"
	"github.com/authledger/authledger/test/pgtest"
)

// heldTx is a transaction the conformance suite controls.
type heldTx struct {
	s  *pg.Store
	tx pgx.Tx
}

func (h *heldTx) TouchUnrelated(ctx context.Context) error {
	_, err := h.tx.Exec(ctx, `INSERT INTO unrelated VALUES (1)`)
	return err
}

func (h *heldTx) Append(ctx context.Context, stream string, x eventstore.ExpectedRevision, ev ...eventstore.EventData) (eventstore.AppendResult, error) {
	return h.s.AppendTx(ctx, h.tx, stream, x, ev...)
}

func (h *heldTx) Commit(ctx context.Context) error {
	err := h.tx.Commit(ctx)
	h.s.Wake()
	return err
}

func (h *heldTx) Rollback(ctx context.Context) error { return h.tx.Rollback(ctx) }

// migratedDatabase is a fresh, migrated database for one test.
func migratedDatabase(t *testing.T) string {
	t.Helper()
	url := pgtest.NewDatabase(t)
	if err := migrations.Migrate(context.Background(), url); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return url
}

func openStore(t eventstoretest.TB, url string) *pg.Store {
	t.Helper()
	s, err := pg.Open(context.Background(), pg.Config{ConnString: url})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func fixture(t *testing.T) eventstoretest.Fixture {
	url := migratedDatabase(t)
	s := openStore(t, url)
	if _, err := s.Pool().Exec(context.Background(), `CREATE TABLE unrelated (x int)`); err != nil {
		t.Fatalf("create unrelated table: %v", err)
	}
	return eventstoretest.Fixture{
		Store: s,
		Begin: func(ctx context.Context) (eventstoretest.Tx, error) {
			tx, err := s.Pool().Begin(ctx)
			if err != nil {
				return nil, err
			}
			return &heldTx{s: s, tx: tx}, nil
		},
		Reopen: func(t eventstoretest.TB) eventstore.Store {
			o := openStore(t, url)
			t.Cleanup(func() { _ = o.Close() })
			return o
		},
	}
}

func TestConformance(t *testing.T) {
	eventstoretest.Run(t, fixture)
}

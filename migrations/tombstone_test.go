package migrations

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/authledger/authledger/test/pgtest"
)

// Migration 005 turns the streams table's tombstones into $tombstone rows
// after each deleted stream's last revision, and keeps every event.
func TestTombstonesSurviveTheEndOfTheStreamsTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(files); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, 4); err != nil {
		t.Fatalf("migrate to 4: %v", err)
	}
	for _, q := range []string{
		`SELECT eventstore_append('kept', -1, ARRAY[gen_random_uuid()], ARRAY['t.v1'], ARRAY['{}'::jsonb], ARRAY[NULL::jsonb])`,
		`SELECT eventstore_append('gone', -1, ARRAY[gen_random_uuid(), gen_random_uuid()], ARRAY['t.v1', 't.v1'], ARRAY['{}'::jsonb, '{}'::jsonb], ARRAY[NULL::jsonb, NULL::jsonb])`,
		`SELECT eventstore_tombstone('gone', 1)`,
		`SELECT eventstore_tombstone('never', -1)`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := m.Migrate(ctx); err != nil {
		t.Fatalf("migrate to latest: %v", err)
	}
	rows, err := conn.Query(ctx, `SELECT stream, revision, type FROM events ORDER BY stream, revision`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var s, typ string
		var rev int64
		err := r.Scan(&s, &rev, &typ)
		return fmt.Sprintf("%s/%s@%d", s, typ, rev), err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"gone/t.v1@0", "gone/t.v1@1", "gone/$tombstone@2", "kept/t.v1@0", "never/$tombstone@0"}
	if len(got) != len(want) {
		t.Fatalf("events after migration: %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events after migration: %v, want %v", got, want)
		}
	}
	var streams bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('streams') IS NOT NULL`).Scan(&streams); err != nil || streams {
		t.Fatalf("streams table still there (%v, err %v)", streams, err)
	}
}

package migrations

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/authledger/authledger/test/pgtest"
)

const insertEvent = `INSERT INTO events (event_id, stream, revision, type, data)
	VALUES (gen_random_uuid(), 'user-1', $1, 'user.registered.v1', '{"roles":["user"]}')`

// changes are the statements the log refuses.
var changes = []string{
	`UPDATE events SET data = '{"roles":["admin"]}'`,
	"DELETE FROM events",
	"TRUNCATE events",
}

func connect(t *testing.T, ctx context.Context, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// migrated is a connection, as the cluster's superuser, to a new migrated
// database, and a context bounding the test.
func migrated(t *testing.T) (context.Context, *pgx.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	url := pgtest.NewDatabase(t)
	if err := Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	return ctx, connect(t, ctx, url)
}

// refused reports whether err is PostgreSQL refusing a statement, and
// with which message.
func refused(err error) (string, bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
		return pgErr.Message, true
	}
	return "", false
}

// In the embedded development and test cluster the service connects as a
// superuser that owns everything. The trigger still refuses every change
// to the log; only a deliberate step around it (which the audit chain
// detects) gets through.
func TestEventsAreAppendOnlyForTheOwner(t *testing.T) {
	t.Parallel()
	ctx, c := migrated(t)
	if _, err := c.Exec(ctx, insertEvent, 0); err != nil {
		t.Fatalf("insert: %v", err)
	}
	for _, s := range changes {
		_, err := c.Exec(ctx, s)
		if msg, ok := refused(err); !ok || !strings.Contains(msg, "the event log is append-only") {
			t.Errorf("%s: %v, want refused as append-only", s, err)
		}
	}
	var data string
	if err := c.QueryRow(ctx, "SELECT data::text FROM events").Scan(&data); err != nil || data != `{"roles": ["user"]}` {
		t.Fatalf("the event after the refused changes: %s, %v", data, err)
	}
	// What the trigger cannot stop: a superuser turning triggers off.
	err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, changes[0])
		return err
	})
	if err != nil {
		t.Fatalf("a superuser with triggers off: %v", err)
	}
}

// The production arrangement (docs/database-roles.md): an owner role
// migrates, the service role gets ServiceGrants. The service role cannot
// change the log by privilege, nor turn the trigger off; a grant given by
// mistake still meets the trigger, and GrantService takes it back.
func TestServiceRoleCannotChangeTheLog(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	owner := pgtest.NewRole(t, "owner")
	service := pgtest.NewRole(t, "service")
	url := pgtest.NewDatabaseOwnedBy(t, owner)
	ownerURL, serviceURL := pgtest.AsRole(t, url, owner), pgtest.AsRole(t, url, service)
	if err := Migrate(ctx, ownerURL); err != nil {
		t.Fatalf("migrate as the owner: %v", err)
	}
	if err := GrantService(ctx, ownerURL, service); err != nil {
		t.Fatalf("grant: %v", err)
	}
	for _, bad := range []struct{ role, want string }{
		{owner, "owns the events table"},
		{"authledger", "superuser"},
		{"nobody_at_all", "does not exist"},
	} {
		if err := GrantService(ctx, ownerURL, bad.role); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("GrantService(%s): %v, want %q", bad.role, err, bad.want)
		}
	}

	svc := connect(t, ctx, serviceURL)
	if _, err := svc.Exec(ctx, insertEvent, 0); err != nil {
		t.Fatalf("the service role cannot append: %v", err)
	}
	for _, s := range append(changes,
		"ALTER TABLE events DISABLE TRIGGER events_append_only",
		"SET session_replication_role = replica",
	) {
		if _, err := svc.Exec(ctx, s); err == nil {
			t.Errorf("%s: allowed to the service role", s)
		} else if _, ok := refused(err); !ok {
			t.Errorf("%s: %v, want a privilege error", s, err)
		}
	}
	// Every table it needs, it can use (projections create their own).
	for _, q := range []string{
		"SELECT count(*) FROM events", "SELECT count(*) FROM projection_checkpoints", "SELECT count(*) FROM signing_keys",
		"SELECT eventstore_horizon()", "CREATE TABLE read_model_g1 (id int)", "DROP TABLE read_model_g1",
	} {
		if _, err := svc.Exec(ctx, q); err != nil {
			t.Errorf("%s as the service role: %v", q, err)
		}
	}

	// A grant given by mistake meets the trigger; GrantService resets it.
	own := connect(t, ctx, ownerURL)
	if _, err := own.Exec(ctx, "GRANT UPDATE, DELETE, TRUNCATE ON events TO "+service); err != nil {
		t.Fatal(err)
	}
	for _, s := range changes {
		_, err := svc.Exec(ctx, s)
		if msg, ok := refused(err); !ok || !strings.Contains(msg, "append-only") {
			t.Errorf("%s with a mistaken grant: %v, want refused by the trigger", s, err)
		}
	}
	if err := GrantService(ctx, ownerURL, service); err != nil {
		t.Fatal(err)
	}
	_, err := svc.Exec(ctx, changes[0])
	if msg, ok := refused(err); !ok || !strings.Contains(msg, "permission denied") {
		t.Errorf("after GrantService again: %v, want permission denied", err)
	}
	// The owner meets the trigger too, but could turn it off: the owner
	// is not the service.
	_, err = own.Exec(ctx, changes[0])
	if msg, ok := refused(err); !ok || !strings.Contains(msg, "append-only") {
		t.Errorf("the owner's UPDATE: %v, want refused by the trigger", err)
	}
}

// Every table the migrations create has its grant decided in
// ServiceGrants.
func TestServiceGrantsCoverEveryTable(t *testing.T) {
	t.Parallel()
	ctx, c := migrated(t)
	rows, err := c.Query(ctx, `SELECT table_name::text FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, g := range ServiceGrants {
		listed[g.Table] = true
	}
	for _, tbl := range tables {
		if !listed[tbl] {
			t.Errorf("table %s has no entry in ServiceGrants: decide what the service role may do to it", tbl)
		}
		delete(listed, tbl)
	}
	for tbl := range listed {
		t.Errorf("ServiceGrants lists %s, which the migrations do not create", tbl)
	}
}

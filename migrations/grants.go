package migrations

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ServiceGrants are the privileges the service role (the one serve and
// worker connect as) holds on each table the migrations create. The log
// is append-only: events gets SELECT and INSERT, never UPDATE, DELETE or
// TRUNCATE. Every table a migration creates must be listed here (a test
// holds the list to the schema), so that adding one is a decision about
// what the service may do to it.
var ServiceGrants = []TableGrant{
	{"events", "SELECT, INSERT"},
	// SELECT ... FOR UPDATE (a rebuild's swap) needs UPDATE.
	{"projection_checkpoints", "SELECT, INSERT, UPDATE"},
	{"projection_rebuilds", "SELECT, INSERT, UPDATE, DELETE"},
	// Sealed keys are immutable rows.
	{"signing_keys", "SELECT, INSERT"},
	// Each process upserts its log followers' states and deletes its rows
	// when it stops.
	{"log_followers", "SELECT, INSERT, UPDATE, DELETE"},
	// The vault's rows are replaced at each refresh and deleted at logout.
	{"external_tokens", "SELECT, INSERT, UPDATE, DELETE"},
	{VersionTable, "SELECT"},
}

// TableGrant is the privileges of the service role on one table.
type TableGrant struct {
	Table      string
	Privileges string
}

// GrantService gives role exactly ServiceGrants on the database at
// connString, after revoking whatever it held on those tables, and USAGE
// and CREATE on the schema (the projections create their read-model tables
// at run time, one set per generation, and own them). Run it as the owner
// of the tables (the role that migrates), after Migrate; it is idempotent.
// It refuses a role that owns the events table or is a superuser: either
// can step around the append-only triggers.
func GrantService(ctx context.Context, connString, role string) (err error) {
	if role == "" {
		return errors.New("migrations: no service role given")
	}
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return fmt.Errorf("migrations: connect: %w", err)
	}
	defer func() { err = errors.Join(err, conn.Close(context.WithoutCancel(ctx))) }()
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var super, ownsLog bool
		err := tx.QueryRow(ctx, `SELECT r.rolsuper, c.relowner = r.oid FROM pg_roles r, pg_class c
			WHERE r.rolname = $1 AND c.oid = 'events'::regclass`, role).Scan(&super, &ownsLog)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("migrations: role %q does not exist (create it first; see docs/database-roles.md)", role)
		case err != nil:
			return fmt.Errorf("migrations: look up role %q: %w", role, err)
		case super:
			return fmt.Errorf("migrations: role %q is a superuser, which no grant restrains: the service needs a role of its own", role)
		case ownsLog:
			return fmt.Errorf("migrations: role %q owns the events table and could disable its triggers: migrate as another role (the owner)", role)
		}
		r := pgx.Identifier{role}.Sanitize()
		tables := make([]string, len(ServiceGrants))
		for i, g := range ServiceGrants {
			tables[i] = pgx.Identifier{g.Table}.Sanitize()
		}
		var schema string
		if err := tx.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
			return fmt.Errorf("migrations: %w", err)
		}
		stmts := []string{
			"REVOKE ALL ON " + strings.Join(tables, ", ") + " FROM " + r,
			"GRANT USAGE, CREATE ON SCHEMA " + pgx.Identifier{schema}.Sanitize() + " TO " + r,
		}
		for i, g := range ServiceGrants {
			stmts = append(stmts, "GRANT "+g.Privileges+" ON "+tables[i]+" TO "+r)
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("migrations: %s: %w", s, err)
			}
		}
		return nil
	})
}

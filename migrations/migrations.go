// Package migrations holds the database schema of authledger as numbered SQL
// files, embedded in the binary and applied with tern.
//
// # Adding a migration
//
// Add a file NNN_what.sql to this directory, NNN being the next number (the
// numbers must be contiguous from 001; tern refuses a gap or a duplicate). A
// file holds the forward SQL, optionally followed by a line
//
//	---- create above / drop below ----
//
// and the SQL that undoes it. Each file runs in its own transaction unless it
// contains the line `---- tern: disable-tx ----` (needed for CREATE INDEX
// CONCURRENTLY). Files are Go templates (tern), so write `{{` only on
// purpose. Never edit a file that has been released: add a new one. The
// version reached is kept in the table schema_version.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed *.sql
var files embed.FS

// VersionTable is the table in which tern records the schema version.
const VersionTable = "schema_version"

// Migrate brings the database at connString to the latest schema version.
// Concurrent callers (several instances starting at once) are safe: tern
// holds a PostgreSQL advisory lock while it checks and applies migrations,
// so each migration runs once and the others wait, then find nothing to do.
func Migrate(ctx context.Context, connString string) (err error) {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return fmt.Errorf("migrations: connect: %w", err)
	}
	defer func() { err = errors.Join(err, conn.Close(context.WithoutCancel(ctx))) }()

	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return fmt.Errorf("migrations: load: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrations: apply: %w", err)
	}
	return nil
}

// Latest is the version Migrate brings a database to: the number of
// migration files.
func Latest() (int, error) {
	names, err := migrate.FindMigrations(files)
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	return len(names), nil
}

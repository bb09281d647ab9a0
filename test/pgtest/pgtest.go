// Package pgtest gives each test its own PostgreSQL database on the cluster
// that `make test` starts (scripts/pg.sh with-temp), so tests run against a
// real server and never see each other's rows.
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// BaseURL is the cluster's connection string. A test that needs PostgreSQL
// fails (never skips) without one: a skipped database test is a test that
// cannot fail.
func BaseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("DATABASE_URL")
	if u == "" {
		t.Fatal("DATABASE_URL is not set: run the tests with `make test`, which starts a private PostgreSQL")
	}
	return u
}

// NewDatabase creates an empty database for this test and drops it when the
// test ends. It returns the database's connection string.
func NewDatabase(t testing.TB) string {
	t.Helper()
	base := BaseURL(t)
	name := "t_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:20]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
		}
	})
	return withDatabase(t, base, name)
}

func withDatabase(t testing.TB, base, name string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("pgtest: DATABASE_URL: %v", err)
	}
	if u.Scheme == "" {
		// key=value form
		return fmt.Sprintf("%s dbname=%s", base, name)
	}
	u.Path = "/" + name
	return u.String()
}

// NewRole creates a login role (no superuser, no password: the test
// cluster trusts local connections) and drops it when the test ends.
// Create it before the databases it will own (NewDatabaseOwnedBy): cleanups
// run last first, so the databases are gone when the role is dropped.
func NewRole(t testing.TB, prefix string) string {
	t.Helper()
	name := prefix + "_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, BaseURL(t))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE ROLE "+name+" LOGIN NOSUPERUSER"); err != nil {
		t.Fatalf("pgtest: create role: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, BaseURL(t))
		if err != nil {
			t.Logf("pgtest: drop role %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP ROLE IF EXISTS "+name); err != nil {
			t.Logf("pgtest: drop role %s: %v", name, err)
		}
	})
	return name
}

// NewDatabaseOwnedBy is NewDatabase for a database (and so its public
// schema) owned by role. It returns the database's connection string as
// the cluster's superuser; AsRole switches it to another role.
func NewDatabaseOwnedBy(t testing.TB, role string) string {
	t.Helper()
	db := NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{c.Config().Database}.Sanitize()+" OWNER TO "+pgx.Identifier{role}.Sanitize()); err != nil {
		t.Fatalf("pgtest: database owner: %v", err)
	}
	return db
}

// AsRole returns connString with role as the user.
func AsRole(t testing.TB, connString, role string) string {
	t.Helper()
	u, err := url.Parse(connString)
	if err != nil || u.Scheme == "" {
		// key=value form: a later user= wins.
		return connString + " user=" + role
	}
	u.User = url.User(role)
	return u.String()
}

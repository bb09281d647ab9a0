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

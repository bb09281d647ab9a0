package outage_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/outage"
	"github.com/authledger/authledger/test/pgtest"
	"github.com/authledger/authledger/test/smallfs"
)

// Errors as the real dependencies return them: a server that refuses, one
// that terminates the connection, a statement that is simply wrong.
func TestOutagesAreToldFromBugs(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	_, refused := pgx.Connect(ctx, "postgres://nobody@"+closed+"/x?sslmode=disable&connect_timeout=5")

	url := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, syntax := conn.Exec(ctx, "SELEC 1")
	_, missing := conn.Exec(ctx, "SELECT * FROM no_such_table")
	victim, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := victim.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	_, terminated := victim.Exec(ctx, "SELECT 1")
	_, afterwards := victim.Exec(ctx, "SELECT 1")

	for _, c := range []struct {
		name      string
		err       error
		down      bool
		retryable bool
	}{
		{"connection refused", refused, true, true},
		{"terminated by the server (57P01)", terminated, true, true},
		{"a closed connection used again", afterwards, true, true},
		{"a deadline", fmt.Errorf("read: %w", context.DeadlineExceeded), true, true},
		{"wrapped ErrUnavailable", fmt.Errorf("esdb: append: %w", outage.ErrUnavailable), true, true},
		{"syntax error", syntax, false, false},
		{"missing table", missing, false, false},
		{"the caller's cancellation", context.Canceled, false, false},
		{"a plain error", errors.New("boom"), false, false},
	} {
		if c.err == nil {
			t.Fatalf("%s: no error happened", c.name)
		}
		if got := outage.Is(c.err); got != c.down {
			t.Errorf("%s (%v): Is = %v, want %v", c.name, c.err, got, c.down)
		}
		if got := outage.Retryable(c.err); got != c.retryable {
			t.Errorf("%s (%v): Retryable = %v, want %v", c.name, c.err, got, c.retryable)
		}
		if outage.StorageFull(c.err) {
			t.Errorf("%s: StorageFull", c.name)
		}
	}
}

func TestAFullFileSystemIsStorageFull(t *testing.T) {
	t.Parallel()
	smallfs.Run(t, 16<<10, func(dir string) {
		err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, 64<<10), 0o600)
		if err == nil {
			t.Fatal("64 KiB fitted on a 16 KiB file system")
		}
		wrapped := fmt.Errorf("blob: write: %w", err)
		if !outage.StorageFull(wrapped) || outage.Is(wrapped) {
			t.Fatalf("%v: StorageFull %v, Is %v; want a full disk, not an outage", wrapped, outage.StorageFull(wrapped), outage.Is(wrapped))
		}
	})
}

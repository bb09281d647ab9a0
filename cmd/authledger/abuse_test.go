package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	domaintask "github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/test/pgtest"
	"github.com/authledger/authledger/test/testimage"
)

// waitTables polls db until the tasks read model exists: the projection
// runner creates it beside a service that already answers.
func waitTables(t *testing.T, db string) {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ok bool
		if err := pool.QueryRow(context.Background(), `SELECT to_regclass('tasks') IS NOT NULL`).Scan(&ok); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the tasks read model was never created")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// loginAs registers email and returns its access token and user id.
func (r *running) loginAs(email string) (string, uuid.UUID) {
	r.t.Helper()
	if status, _, body := r.call("POST", "/v1/auth/register", "", map[string]string{"email": email, "password": "a long enough secret", "display_name": "T"}); status != http.StatusCreated {
		r.t.Fatalf("register: %d %v", status, body)
	}
	status, _, tok := r.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "a long enough secret"})
	if status != http.StatusOK {
		r.t.Fatalf("login: %d %v", status, tok)
	}
	return tok["access_token"].(string), uuid.MustParse(tok["user"].(map[string]any)["id"].(string))
}

// Refused reads in the assembled service: a user reading random task ids
// once appended one access.denied.v1 per read; within
// AUTHLEDGER_ACCESS_DENIAL_WINDOW only the first is appended now, the rest
// counted (and written out at shutdown).
func TestRefusedReadsDoNotGrowTheLogOneEventEach(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	r := startService(t, map[string]string{"DATABASE_URL": db, "AUTHLEDGER_WORKERS": "0", "AUTHLEDGER_ACCESS_DENIAL_WINDOW": "1h"})
	waitTables(t, db)
	access, id := r.loginAs("prober@example.com")
	for i := range 50 {
		if status, _, body := r.call("GET", "/v1/tasks/"+uuid.NewString(), access, nil); status != http.StatusNotFound {
			t.Fatalf("read %d: %d %v", i, status, body)
		}
	}
	store, err := pg.Open(context.Background(), pg.Config{ConnString: db})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	evs, err := store.ReadStream(context.Background(), domaintask.AccessStream(id), eventstore.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Type != domaintask.EventAccessDenied {
		t.Fatalf("50 refused reads appended %d events to the log", len(evs))
	}
}

// Authenticated routes are limited per user
// (AUTHLEDGER_USER_RATE_LIMIT_*): past the burst, 429 rate-limited with
// Retry-After; another user is not affected.
func TestAuthenticatedRoutesAreRateLimitedPerUser(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	r := startService(t, map[string]string{
		"DATABASE_URL": db, "AUTHLEDGER_WORKERS": "0",
		"AUTHLEDGER_USER_RATE_LIMIT_PER_SECOND": "0.001", "AUTHLEDGER_USER_RATE_LIMIT_BURST": "5",
	})
	waitTables(t, db)
	greedy, _ := r.loginAs("greedy@example.com")
	other, _ := r.loginAs("other@example.com")
	for i := range 5 {
		if status, _, body := r.call("GET", "/v1/tasks", greedy, nil); status != http.StatusOK {
			t.Fatalf("request %d within the burst: %d %v", i+1, status, body)
		}
	}
	status, hdr, body := r.call("GET", "/v1/history", greedy, nil)
	if status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" || !strings.HasSuffix(body["type"].(string), "/rate-limited") {
		t.Fatalf("past the burst: %d %q %v", status, hdr.Get("Retry-After"), body)
	}
	if status, _, body := r.call("GET", "/v1/tasks", other, nil); status != http.StatusOK {
		t.Fatalf("another user: %d %v", status, body)
	}
}

// Five wrong passwords from a stranger once locked the account for its
// owner too (doubling to 24 h). Now they slow the stranger down (429 with
// Retry-After) and the owner, from elsewhere, gets in.
func TestAStrangerCannotLockTheOwnerOutOfTheService(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{
		"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_WORKERS": "0",
		"AUTHLEDGER_TRUSTED_PROXIES": "127.0.0.1", "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0",
		// A wait no slow machine outruns between two guesses.
		"AUTHLEDGER_LOCKOUT_DURATION": "1h", "AUTHLEDGER_LOCKOUT_MAX_DURATION": "1h",
	})
	if status, _, body := r.call("POST", "/v1/auth/register", "", map[string]string{"email": "owner@example.com", "password": "a long enough secret", "display_name": "O"}); status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, body)
	}
	for i := range 8 {
		status, hdr, _ := r.call("POST", "/v1/auth/login", "", map[string]string{"email": "owner@example.com", "password": "a guess"}, "X-Forwarded-For", "198.51.100.66")
		if want := http.StatusUnauthorized; i >= 5 {
			if status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
				t.Fatalf("guess %d: %d, Retry-After %q", i+1, status, hdr.Get("Retry-After"))
			}
		} else if status != want {
			t.Fatalf("guess %d: %d", i+1, status)
		}
	}
	status, _, body := r.call("POST", "/v1/auth/login", "", map[string]string{"email": "owner@example.com", "password": "a long enough secret"}, "X-Forwarded-For", "203.0.113.5")
	if status != http.StatusOK {
		t.Fatalf("the owner, after a stranger's guesses: %d %v", status, body)
	}
}

// The caller's own audit trail once said "not_owner" for another user's
// real task and "missing" for a random id, which the identical 404 was
// meant to hide.
func TestMyAuditDoesNotTellWhichTaskIDsExist(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	r := startService(t, map[string]string{"DATABASE_URL": db, "AUTHLEDGER_WORKERS": "0", "AUTHLEDGER_ACCESS_DENIAL_WINDOW": "0"})
	waitTables(t, db)
	alice, _ := r.loginAs("alice@example.com")
	status, hdr, created := r.upload(alice, "scan.png", testimage.TextPNG(t, "MINE"))
	if status != http.StatusAccepted {
		t.Fatalf("upload: %d %v", status, created)
	}
	bob, _ := r.loginAs("bob@example.com")
	// Once the read model has alice's task, bob's 404 is a refusal of a
	// real id.
	token := hdr.Get("X-Consistency-Token")
	for _, id := range []string{created["task_id"].(string), uuid.NewString()} {
		if status, _, body := r.call("GET", "/v1/tasks/"+id, bob, nil, "X-Consistency-Token", token); status != http.StatusNotFound {
			t.Fatalf("bob reads %s: %d %v", id, status, body)
		}
	}
	// The audit trail catches up on its own time: poll.
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _, page := r.call("GET", "/v1/me/audit?type=access.denied.v1", bob, nil)
		items, _ := page["items"].([]any)
		if status == http.StatusOK && len(items) == 2 {
			for _, it := range items {
				if reason := it.(map[string]any)["summary"].(map[string]any)["reason"]; reason != "not_found" {
					t.Fatalf("bob's own trail shows reason %v", reason)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's trail: %d %v", status, page)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

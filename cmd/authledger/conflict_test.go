package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/test/pgtest"
)

// A command whose stream keeps changing under it gives up after its
// retries (commands.ErrConflict). That answered 500 internal-error, as if
// the server were broken; it is the client's cue to retry, 409 conflict,
// and nothing is written.
//
// The log is made to look, to the command, like a stream another writer
// always appends to first: a copy of the session's last event sits ten
// revisions past its end. Loading folds every event (one more than the
// stream's revisions say), so the revision each attempt expects is never
// the stream's current one, and every attempt conflicts, as it would
// under a writer that always wins the race.
func TestACommandThatKeepsConflictingAnswers409(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	r := startService(t, map[string]string{"DATABASE_URL": db, "AUTHLEDGER_WORKERS": "0", "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0"})

	r.login("conflict@example.com")
	status, _, tok := r.call("POST", "/v1/auth/login", "", map[string]string{"email": "conflict@example.com", "password": "a long enough secret"})
	if status != http.StatusOK {
		t.Fatalf("login: %d %v", status, tok)
	}
	// A refresh gives the session stream an event that folds twice
	// harmlessly.
	status, _, tok = r.call("POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": tok["refresh_token"].(string)})
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, tok)
	}
	access, stream := tok["access_token"].(string), "session-"+tok["session_id"].(string)

	pool, err := pgxpool.New(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(t.Context(), `WITH last AS (
		SELECT gen_random_uuid() AS id, stream, revision, type, data, metadata FROM events
		 WHERE stream = $1 ORDER BY revision DESC LIMIT 1)
		INSERT INTO events (event_id, stream, revision, type, data, metadata)
		SELECT id, stream, revision + 10, type, data, jsonb_set(metadata, '{event_id}', to_jsonb(id::text)) FROM last`, stream); err != nil {
		t.Fatal(err)
	}
	revoked := func() int {
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE stream = $1 AND type = 'session.revoked.v1'`, stream).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	status, hdr, body := r.call("POST", "/v1/auth/logout", access, nil)
	if status != http.StatusConflict || hdr.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("logout on a stream that keeps changing: %d %v, want 409 problem+json", status, body)
	}
	if typ, _ := body["type"].(string); !strings.HasSuffix(typ, "/conflict") {
		t.Errorf("type %q, want conflict", typ)
	}
	if n := revoked(); n != 0 {
		t.Errorf("the refused logout appended %d revocations", n)
	}
	if hdr.Get("X-Consistency-Token") != "" {
		t.Errorf("a refused command answered a consistency token")
	}
	// The session is still open: the token that failed to log out works.
	if status, _, body := r.call("GET", "/v1/me/audit", access, nil); status != http.StatusOK {
		t.Errorf("the session's token after the refused logout: %d %v", status, body)
	}
}

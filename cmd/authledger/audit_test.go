package main

// The attacks of issue 25 on the log and its audit trail, by someone with
// write access to the database. They run as the cluster's superuser, who
// can step around the append-only triggers (session_replication_role =
// replica), against the real server, and each is judged by the real
// `authledger audit verify`.

import (
	"context"
	"crypto/sha256"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/projections/audit"
	"github.com/authledger/authledger/test/esdbserver"
	"github.com/authledger/authledger/test/pgtest"
)

// tamperEnv is a running service, the environment its commands read, and
// a superuser pool on its database.
type tamperEnv struct {
	env map[string]string
	r   *running
	db  *pgxpool.Pool
}

func newTamperEnv(t *testing.T) *tamperEnv {
	t.Helper()
	url := pgtest.NewDatabase(t)
	return startTamperEnv(t, url, map[string]string{"DATABASE_URL": url})
}

// startTamperEnv starts the service on env (with a data directory of its
// own unless env names one, no rate limit, quiet logs) and opens a pool on
// superuserURL, the same database as the cluster's superuser.
func startTamperEnv(t *testing.T, superuserURL string, env map[string]string) *tamperEnv {
	t.Helper()
	for k, v := range map[string]string{"AUTHLEDGER_DATA_DIR": t.TempDir(), "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0", "AUTHLEDGER_LOG_LEVEL": "warn"} {
		if _, ok := env[k]; !ok {
			env[k] = v
		}
	}
	r := startService(t, env)
	db, err := pgxpool.New(t.Context(), superuserURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return &tamperEnv{env: env, r: r, db: db}
}

// account registers a user and logs in: the user id, the access token and
// the login's consistency token.
func (e *tamperEnv) account(t *testing.T, email string) (userID, access, token string) {
	t.Helper()
	status, _, body := e.r.call("POST", "/v1/auth/register", "", map[string]string{"email": email, "password": "a long enough secret", "display_name": "T"})
	if status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, body)
	}
	userID = body["user_id"].(string)
	access, token = e.login(t, email)
	return userID, access, token
}

// stopAudited registers and logs in a user, waits until the audit trail
// has it all, and stops the service, so that nothing appends while the
// attacker works.
func (e *tamperEnv) stopAudited(t *testing.T, email string) (userID string) {
	t.Helper()
	userID, access, tok := e.account(t, email)
	e.settle(t, access, tok)
	e.r.stop()
	return userID
}

func (e *tamperEnv) login(t *testing.T, email string) (access, token string) {
	t.Helper()
	status, hdr, tok := e.r.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "a long enough secret"})
	if status != http.StatusOK {
		t.Fatalf("login: %d %v", status, tok)
	}
	return tok["access_token"].(string), hdr.Get("X-Consistency-Token")
}

// settle waits until the audit trail holds everything up to token.
func (e *tamperEnv) settle(t *testing.T, access, token string) {
	t.Helper()
	if status, _, body := e.r.call("GET", "/v1/me/audit", access, nil, "X-Consistency-Token", token); status != http.StatusOK {
		t.Fatalf("me/audit with the consistency token: %d %v", status, body)
	}
}

func (e *tamperEnv) verify(t *testing.T, args ...string) (int, string) {
	t.Helper()
	code, out, errOut := runCmd(t, e.env, append([]string{"audit", "verify"}, args...)...)
	t.Logf("audit verify %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	return code, out + errOut
}

// head runs `audit head` and keeps what it printed in a file, as an
// operator would store it away from the database.
func (e *tamperEnv) head(t *testing.T) string {
	t.Helper()
	code, out, errOut := runCmd(t, e.env, "audit", "head")
	if code != exitOK {
		t.Fatalf("audit head: exit %d\n%s%s", code, out, errOut)
	}
	path := filepath.Join(t.TempDir(), "head.jws")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// tamper runs fn as the superuser, with the triggers of the session off.
func tamper(t *testing.T, db *pgxpool.Pool, fn func(ctx context.Context, tx pgx.Tx) error) {
	t.Helper()
	ctx := t.Context()
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		return fn(ctx, tx)
	})
	if err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

func tamperSQL(t *testing.T, db *pgxpool.Pool, stmts ...string) {
	t.Helper()
	tamper(t, db, func(ctx context.Context, tx pgx.Tx) error {
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
}

// The attack that was seen: an UPDATE of a user's registration event gives
// them the admin role (from the next start on), and verify noticed
// nothing because it read the audit trail only.
func TestAuditVerifyCatchesAnEventRewrittenToGrantAdmin(t *testing.T) {
	t.Parallel()
	e := newTamperEnv(t)
	userID, access, tok := e.account(t, "mallory@example.com")
	if status, _, body := e.r.call("GET", "/v1/audit", access, nil); status != http.StatusForbidden {
		t.Fatalf("GET /v1/audit as a plain user: %d %v", status, body)
	}
	e.settle(t, access, tok)
	if code, out := e.verify(t); code != exitOK {
		t.Fatalf("verify before the attack: exit %d\n%s", code, out)
	}

	var eventID string
	tamper(t, e.db, func(ctx context.Context, tx pgx.Tx) error {
		return tx.QueryRow(ctx, `UPDATE events SET data = jsonb_set(data, '{roles}', '["admin", "user"]')
			WHERE type = 'user.registered.v1' AND data->>'user_id' = $1 RETURNING event_id::text`, userID).Scan(&eventID)
	})
	// The rewrite works once the service reads the log again (the access
	// follower folds it at start): a fresh login is an admin.
	e.r.stop()
	e.r = startService(t, e.env)
	admin, tok := e.login(t, "mallory@example.com")
	if status, _, body := e.r.call("GET", "/v1/audit", admin, nil); status != http.StatusOK {
		t.Fatalf("GET /v1/audit after the rewrite: %d %v (the attack did not take)", status, body)
	}
	e.settle(t, admin, tok)
	e.r.stop()

	code, out := e.verify(t)
	if code != exitError || !strings.Contains(out, eventID) || !strings.Contains(out, "changed in the log") {
		t.Fatalf("verify after the rewrite of event %s: exit %d\n%s", eventID, code, out)
	}
}

// An attacker changes a row of the audit trail (where a login came from)
// and computes every link again with the documented SHA-256 chain: the
// chain holds, the count and the last event match the checkpoint.
func TestAuditVerifyCatchesATrailRechainedWithPlainSHA256(t *testing.T) {
	t.Parallel()
	e := newTamperEnv(t)
	e.stopAudited(t, "eve@example.com")

	tamper(t, e.db, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE audit_log SET client_ip = '203.0.113.66' WHERE event_type = 'session.started.v1'"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT seq, event_id, position, stream, revision, event_type, occurred_at, recorded_at,
			actor_kind, actor_id, correlation_id, causation_id, client_ip, user_agent, summary, event_digest FROM audit_log ORDER BY seq`)
		if err != nil {
			return err
		}
		trail, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (audit.Row, error) {
			var r audit.Row
			var rev int64
			err := row.Scan(&r.Seq, &r.EventID, &r.Position, &r.Stream, &rev, &r.EventType, &r.OccurredAt, &r.RecordedAt,
				&r.ActorKind, &r.ActorID, &r.CorrelationID, &r.CausationID, &r.ClientIP, &r.UserAgent, &r.Summary, &r.EventDigest)
			r.Revision = uint64(rev)
			return r, err
		})
		if err != nil {
			return err
		}
		prev := make([]byte, sha256.Size)
		for _, r := range trail {
			h := sha256.New()
			h.Write(prev)
			h.Write(audit.Canonical(r))
			prev = h.Sum(nil)
			if _, err := tx.Exec(ctx, "UPDATE audit_log_g1 SET hash = $1 WHERE seq = $2", prev, r.Seq); err != nil {
				return err
			}
		}
		return nil
	})
	code, out := e.verify(t)
	if code != exitError || !strings.Contains(out, "keyed chain") {
		t.Fatalf("verify after a SHA-256 re-chain: exit %d\n%s", code, out)
	}
}

// The last row of the trail deleted together with its checkpoint: the
// trail is consistent again, and only a head kept elsewhere shows it.
func TestAuditVerifyHeadCatchesTheLastRowDeletedWithItsCheckpoint(t *testing.T) {
	t.Parallel()
	e := newTamperEnv(t)
	e.stopAudited(t, "trudy@example.com")
	head := e.head(t)
	if code, out := e.verify(t, "-head", head); code != exitOK {
		t.Fatalf("verify -head before the attack: exit %d\n%s", code, out)
	}

	tamperSQL(t, e.db,
		"DELETE FROM audit_log_g1 WHERE seq = (SELECT max(seq) FROM audit_log_g1)",
		`UPDATE projection_checkpoints c SET events_applied = a.seq, last_event_id = a.event_id, position = a.position
		   FROM (SELECT seq, event_id, position FROM audit_log_g1 ORDER BY seq DESC LIMIT 1) a WHERE c.name = 'audit'`)
	code, out := e.verify(t, "-head", head)
	if code != exitError || !strings.Contains(out, "before the exported head") {
		t.Fatalf("verify -head after the last row went: exit %d\n%s", code, out)
	}
	// Nor is a new head signed over it.
	if code, out, errOut := runCmd(t, e.env, "audit", "head", "-head", head); code != exitError || out != "" || !strings.Contains(errOut, "no head signed") {
		t.Fatalf("audit head -head after the last row went: exit %d\n%s%s", code, out, errOut)
	}
	// Without the head it looks like lag: the event is still in the log,
	// and a running server would audit it again (with the same link).
	if code, out := e.verify(t); code != exitOK || !strings.Contains(out, "not audited yet (projection lag; not checked): 1") {
		t.Fatalf("verify without the head: exit %d\n%s", code, out)
	}
}

// Events deleted from the log, or the log truncated, with the trail left
// as it was or emptied with it.
func TestAuditVerifyCatchesDeletedAndTruncatedEvents(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		stmts    []string
		withHead bool
		want     string
	}{
		{"an event in the middle", []string{
			"DELETE FROM events WHERE (tx_id, seq) = (SELECT tx_id, seq FROM events ORDER BY tx_id, seq OFFSET 2 LIMIT 1)"}, false, "not in the log"},
		{"the last event", []string{
			"DELETE FROM events WHERE (tx_id, seq) = (SELECT tx_id, seq FROM events ORDER BY tx_id DESC, seq DESC LIMIT 1)"}, false, "not in the log"},
		{"every event", []string{"TRUNCATE events"}, false, "not in the log"},
		{"every event and the whole trail, checkpoint reset", []string{
			"TRUNCATE events", "TRUNCATE audit_log_g1",
			"UPDATE projection_checkpoints SET events_applied = 0, last_event_id = NULL, position = '00000000000000000000000000000000'"},
			true, "before the exported head"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newTamperEnv(t)
			e.stopAudited(t, "oscar@example.com")
			var args []string
			if c.withHead {
				args = []string{"-head", e.head(t)}
			}
			if code, out := e.verify(t, args...); code != exitOK {
				t.Fatalf("verify before the attack: exit %d\n%s", code, out)
			}
			tamperSQL(t, e.db, c.stmts...)
			code, out := e.verify(t, args...)
			if code != exitError || !strings.Contains(out, c.want) {
				t.Fatalf("verify after the attack: exit %d, want 1 and %q\n%s", code, c.want, out)
			}
		})
	}
}

// The production arrangement, through the real commands: `migrate
// -service-role` as the owner, serve as the service role. The service's
// own connection cannot change the log; verify and head work as that role;
// a superuser's change is still caught.
func TestServeAsTheServiceRole(t *testing.T) {
	t.Parallel()
	owner := pgtest.NewRole(t, "owner")
	service := pgtest.NewRole(t, "service")
	url := pgtest.NewDatabaseOwnedBy(t, owner)
	dataDir := t.TempDir()
	code, _, errOut := runCmd(t, map[string]string{"DATABASE_URL": pgtest.AsRole(t, url, owner), "AUTHLEDGER_DATA_DIR": dataDir},
		"migrate", "-service-role", service)
	if code != exitOK {
		t.Fatalf("migrate -service-role: exit %d\n%s", code, errOut)
	}
	e := startTamperEnv(t, url, map[string]string{
		"DATABASE_URL":                pgtest.AsRole(t, url, service),
		"AUTHLEDGER_MIGRATE_ON_START": "false",
		"AUTHLEDGER_DATA_DIR":         dataDir,
	})
	userID, access, tok := e.account(t, "svc@example.com")
	e.settle(t, access, tok)

	svc, err := pgxpool.New(t.Context(), e.env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	for _, s := range []string{`UPDATE events SET data = '{}'`, "DELETE FROM events", "TRUNCATE events"} {
		if _, err := svc.Exec(t.Context(), s); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s as the service role: %v, want permission denied", s, err)
		}
	}
	e.r.stop()
	head := e.head(t)
	if code, out := e.verify(t, "-head", head); code != exitOK {
		t.Fatalf("verify as the service role: exit %d\n%s", code, out)
	}
	tamper(t, e.db, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE events SET data = jsonb_set(data, '{roles}', '["admin"]')
			WHERE type = 'user.registered.v1' AND data->>'user_id' = $1`, userID)
		return err
	})
	if code, out := e.verify(t, "-head", head); code != exitError || !strings.Contains(out, "changed in the log") {
		t.Fatalf("verify after a superuser's change: exit %d\n%s", code, out)
	}
}

// With the log in EventStoreDB, verify reads it through the store's $all
// and compares it with the trail in PostgreSQL: an untouched pair passes
// (the bytes the projection digested are the bytes a later read returns),
// a changed row and a truncated trail do not.
func TestAuditVerifyOnESDB(t *testing.T) {
	t.Parallel()
	srv, err := esdbserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	url := pgtest.NewDatabase(t)
	e := startTamperEnv(t, url, map[string]string{"DATABASE_URL": url, "AUTHLEDGER_EVENT_STORE": "esdb", "ESDB_URL": srv.URL()})
	_, access, tok := e.account(t, "esdb@example.com")
	e.login(t, "esdb@example.com")
	_, tok2 := e.login(t, "esdb@example.com")
	e.settle(t, access, tok)
	e.settle(t, access, tok2)
	e.r.stop()
	head := e.head(t)
	code, out := e.verify(t, "-head", head)
	if code != exitOK || !strings.Contains(out, "passes through the head") {
		t.Fatalf("verify on ESDB: exit %d\n%s", code, out)
	}

	tamperSQL(t, e.db, "UPDATE audit_log_g1 SET actor_id = 'someone else' WHERE seq = 2")
	if code, out := e.verify(t); code != exitError || !strings.Contains(out, "BROKEN at seq 2") || !strings.Contains(out, "row was changed") {
		t.Fatalf("verify on ESDB after a row changed: exit %d\n%s", code, out)
	}
	tamperSQL(t, e.db,
		"DELETE FROM audit_log_g1 WHERE seq > 1",
		`UPDATE projection_checkpoints c SET events_applied = 1, last_event_id = a.event_id, position = a.position
		   FROM audit_log_g1 a WHERE a.seq = 1 AND c.name = 'audit'`)
	code, out = e.verify(t, "-head", head)
	if code != exitError || !strings.Contains(out, "before the exported head") {
		t.Fatalf("verify -head on ESDB after the trail was cut: exit %d\n%s", code, out)
	}
}

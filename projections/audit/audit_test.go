package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/bench/projbench"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/audit"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/projtest"
)

func TestSummarizeDropsSecretLookingFields(t *testing.T) {
	t.Parallel()
	in := `{"email":"a@example.com","password_hash":"$argon2id$...","refreshTokenDigest":"abc","api_key":"k",
		"display_name":"Ann","keyboard_layout":"fr","monkey":1,"session":{"id":"s1","secret":"x","ip":"192.0.2.1"},
		"keys":[1],"items":[{"privateKey":"p","name":"n"}],"client_secret_hash":"h","Authorization":"Bearer x","amount":1.50}`
	got := audit.Summarize(json.RawMessage(in))
	want := `{"amount":1.50,"display_name":"Ann","email":"a@example.com","items":[{"name":"n"}],"keyboard_layout":"fr","monkey":1,"session":{"id":"s1","ip":"192.0.2.1"}}`
	if got != want {
		t.Fatalf("Summarize =\n %s\nwant\n %s", got, want)
	}
	for _, c := range []struct{ in, want string }{
		{``, `{}`},
		{`not json`, `{"_unparsable":true}`},
		{`[{"token":"t","a":1}]`, `{"value":[{"a":1}]}`},
		{`"<b>"`, `{"value":"<b>"}`},
	} {
		if got := audit.Summarize(json.RawMessage(c.in)); got != c.want {
			t.Errorf("Summarize(%q) = %s, want %s", c.in, got, c.want)
		}
	}
	long := audit.Summarize(json.RawMessage(`{"note":"` + strings.Repeat("x", 300) + `"}`))
	if !strings.Contains(long, strings.Repeat("x", 256)+"…") || strings.Contains(long, strings.Repeat("x", 257)) {
		t.Errorf("long strings are not cut at 256: %s", long)
	}
}

func TestCanonicalFormIsFixed(t *testing.T) {
	t.Parallel()
	r := audit.Row{
		Seq: 7, EventID: uuid.MustParse("0b0e8f8e-6c4b-4a43-9d5e-6a1f7f1c2b3a"), Position: "0000000000000010000000000000002a",
		Stream: "user-1", Revision: 3, EventType: "user.logged_in.v1",
		OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.FixedZone("x", 3600)),
		RecordedAt: time.Date(2026, 1, 2, 2, 4, 5, 0, time.UTC),
		ActorKind:  "user", ActorID: "u1", CorrelationID: "req<1>", ClientIP: "192.0.2.1", UserAgent: "ua",
		Summary: `{"a":1}`, EventDigest: []byte{0xab, 0x01},
	}
	want := `{"actor_id":"u1","actor_kind":"user","causation_id":"","client_ip":"192.0.2.1","correlation_id":"req<1>",` +
		`"event_digest":"ab01","event_id":"0b0e8f8e-6c4b-4a43-9d5e-6a1f7f1c2b3a","event_type":"user.logged_in.v1","occurred_at":"2026-01-02T02:04:05.123456Z",` +
		`"position":"0000000000000010000000000000002a","recorded_at":"2026-01-02T02:04:05.000000Z","revision":3,"seq":7,` +
		`"stream":"user-1","summary":"{\"a\":1}","user_agent":"ua"}`
	if got := string(audit.Canonical(r)); got != want {
		t.Fatalf("Canonical =\n %s\nwant\n %s", got, want)
	}
}

// trail builds an audit trail of n events in a fresh database and stops
// the runner.
func trail(t *testing.T, n int) (*projtest.Env, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	env := projtest.New(t)
	last := env.AppendN(t, ctx, n, 4)
	catchUp(t, ctx, env, last)
	return env, ctx
}

// catchUp runs a runner with a fresh audit projection (as a restarted
// server would) until the trail reaches last, and stops it.
func catchUp(t testing.TB, ctx context.Context, env *projtest.Env, last eventstore.Position) {
	t.Helper()
	r, err := projector.NewRunner(env.Config(audit.New(projtest.AuditKey)))
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	env.WaitCaughtUp(t, ctx, last, audit.Name)
	rcancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func verify(t testing.TB, ctx context.Context, env *projtest.Env, head *audit.Head) audit.Report {
	t.Helper()
	rep, err := audit.Verify(ctx, env.Admin, env.Store, audit.VerifyOptions{Key: projtest.AuditKey, Head: head, PageSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Broken != nil {
		t.Logf("verify: %s", rep.Broken)
	}
	return rep
}

// tamper runs statements as a superuser who bypasses the triggers.
func tamper(t *testing.T, ctx context.Context, env *projtest.Env, stmts ...string) {
	t.Helper()
	err := pgx.BeginFunc(ctx, env.Admin, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

func tamperArgs(t *testing.T, ctx context.Context, env *projtest.Env, stmt string, args ...any) {
	t.Helper()
	err := pgx.BeginFunc(ctx, env.Admin, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, stmt, args...)
		return err
	})
	if err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

// readTrail reads the trail's rows, as an attacker with read access can.
func readTrail(t *testing.T, ctx context.Context, env *projtest.Env) []audit.Row {
	t.Helper()
	rows, err := env.Admin.Query(ctx, `SELECT seq, event_id, position, stream, revision, event_type, occurred_at, recorded_at,
		actor_kind, actor_id, correlation_id, causation_id, client_ip, user_agent, summary, event_digest, hash FROM audit_log ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (audit.Row, error) {
		var r audit.Row
		var rev int64
		err := row.Scan(&r.Seq, &r.EventID, &r.Position, &r.Stream, &rev, &r.EventType, &r.OccurredAt, &r.RecordedAt, &r.ActorKind,
			&r.ActorID, &r.CorrelationID, &r.CausationID, &r.ClientIP, &r.UserAgent, &r.Summary, &r.EventDigest, &r.Hash)
		r.Revision = uint64(rev)
		return r, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// nthEvent is the condition selecting the n-th event (from 1) of the log.
func nthEvent(n int) string {
	return fmt.Sprintf("(tx_id, seq) = (SELECT tx_id, seq FROM events ORDER BY tx_id, seq OFFSET %d LIMIT 1)", n-1)
}

func TestTrailIsAppendOnlyAndVerifies(t *testing.T) {
	t.Parallel()
	env, ctx := trail(t, 12)
	rep := verify(t, ctx, env, nil)
	if !rep.OK || rep.Rows != 12 || rep.Events != 12 || rep.Unaudited != 0 || rep.LastSeq != 12 || len(rep.LastHash) != 64 {
		t.Fatalf("Verify on an untouched chain = %+v", rep)
	}
	for _, stmt := range []string{
		"UPDATE audit_log SET actor_id = 'mallory' WHERE seq = 3",
		"UPDATE audit_log_g1 SET actor_id = 'mallory' WHERE seq = 3",
		"DELETE FROM audit_log_g1 WHERE seq = 3",
		"TRUNCATE audit_log_g1",
	} {
		_, err := env.Admin.Exec(ctx, stmt)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want refused as append-only", stmt, err)
		}
	}
	// The rows are what the events said, with secrets left out.
	var actor, ip, ua, corr, summary string
	if err := env.Admin.QueryRow(ctx, "SELECT actor_id, client_ip, user_agent, correlation_id, summary FROM audit_log WHERE seq = 2").
		Scan(&actor, &ip, &ua, &corr, &summary); err != nil {
		t.Fatal(err)
	}
	if actor != "user-1" || ip != "192.0.2.7" || ua != "projtest/1.0" || !strings.HasPrefix(corr, "req-") || summary != `{"i":1}` {
		t.Fatalf("row 2 = %q %q %q %q %s", actor, ip, ua, corr, summary)
	}
	// Events after the checkpoint are lag, not a fault.
	env.AppendN(t, ctx, 3, 2)
	if rep := verify(t, ctx, env, nil); !rep.OK || rep.Rows != 12 || rep.Unaudited != 3 {
		t.Fatalf("Verify with 3 events not yet applied = %+v", rep)
	}
	// Without the chain key nothing can be verified.
	if _, err := audit.Verify(ctx, env.Admin, env.Store, audit.VerifyOptions{}); !errors.Is(err, audit.ErrNoKey) {
		t.Fatalf("Verify without a key: %v", err)
	}
}

// Each way of tampering with the trail or with the log, by someone who can
// write to the database but has no chain key, is caught at the right row.
func TestVerifyCatchesTampering(t *testing.T) {
	t.Parallel()
	otherKey := []byte("not the chain key, but 32 bytes.")
	cases := []struct {
		name string
		// stmts run as a superuser bypassing the triggers; fn, when set,
		// tampers with code instead.
		stmts   []string
		fn      func(t *testing.T, ctx context.Context, env *projtest.Env)
		seq     int64
		wantMsg string
	}{
		// The trail.
		{name: "changed row", stmts: []string{"UPDATE audit_log_g1 SET actor_id = 'mallory' WHERE seq = 5"}, seq: 5, wantMsg: "row was changed"},
		{name: "changed summary", stmts: []string{`UPDATE audit_log_g1 SET summary = '{"i":999}' WHERE seq = 9`}, seq: 9, wantMsg: "row was changed"},
		{name: "changed row with its link recomputed under another key", seq: 5, wantMsg: "row was changed",
			fn: func(t *testing.T, ctx context.Context, env *projtest.Env) {
				trail := readTrail(t, ctx, env)
				r := trail[4]
				r.ActorID = "mallory"
				tamperArgs(t, ctx, env, "UPDATE audit_log_g1 SET actor_id = 'mallory', hash = $1 WHERE seq = 5", audit.Link(otherKey, trail[3].Hash, r))
			}},
		{name: "deleted row", stmts: []string{"DELETE FROM audit_log_g1 WHERE seq = 5"}, seq: 5, wantMsg: "row missing"},
		{name: "deleted first row", stmts: []string{"DELETE FROM audit_log_g1 WHERE seq = 1"}, seq: 1, wantMsg: "row missing"},
		{name: "deleted last row", stmts: []string{"DELETE FROM audit_log_g1 WHERE seq = 12"}, seq: 12, wantMsg: "rows removed from the trail's end"},
		{name: "checkpoint deleted", stmts: []string{"DELETE FROM projection_checkpoints WHERE name = 'audit'"}, seq: 13, wantMsg: "the projection applied 0 events"},
		{name: "reordered rows", stmts: []string{
			"CREATE TEMP TABLE saved ON COMMIT DROP AS SELECT * FROM audit_log_g1 WHERE seq IN (4, 7)",
			"UPDATE audit_log_g1 SET event_id = gen_random_uuid() WHERE seq IN (4, 7)",
			`UPDATE audit_log_g1 a SET (event_id, position, stream, revision, event_type, occurred_at, recorded_at, actor_kind, actor_id, correlation_id, causation_id, client_ip, user_agent, summary, event_digest, hash) = (SELECT event_id, position, stream, revision, event_type, occurred_at, recorded_at, actor_kind, actor_id, correlation_id, causation_id, client_ip, user_agent, summary, event_digest, hash FROM saved b WHERE b.seq = CASE a.seq WHEN 4 THEN 7 ELSE 4 END) WHERE a.seq IN (4, 7)`,
		}, seq: 4, wantMsg: "order events differently"},
		{name: "rows renumbered after a delete", stmts: []string{"DELETE FROM audit_log_g1 WHERE seq = 5", "UPDATE audit_log_g1 SET seq = seq - 1 WHERE seq > 5"},
			seq: 5, wantMsg: "order events differently"},
		{name: "a row changed and the whole trail chained again with plain SHA-256", seq: 1, wantMsg: "keyed chain",
			fn: func(t *testing.T, ctx context.Context, env *projtest.Env) {
				prev := make([]byte, sha256.Size)
				for _, r := range readTrail(t, ctx, env) {
					h := sha256.New()
					h.Write(prev)
					h.Write(audit.Canonical(r))
					prev = h.Sum(nil)
					tamperArgs(t, ctx, env, "UPDATE audit_log_g1 SET hash = $1 WHERE seq = $2", prev, r.Seq)
				}
			}},
		// The log.
		{name: "event data changed", stmts: []string{`UPDATE events SET data = '{"i":999}' WHERE ` + nthEvent(6)}, seq: 6, wantMsg: "changed in the log"},
		// The summary leaves password_hash out; the digest does not.
		{name: "a redacted field of an event changed", stmts: []string{`UPDATE events SET data = jsonb_set(data, '{password_hash}', '"y"') WHERE ` + nthEvent(7)},
			seq: 7, wantMsg: "changed in the log"},
		{name: "event metadata changed", stmts: []string{`UPDATE events SET metadata = jsonb_set(metadata, '{client_ip}', '"203.0.113.9"') WHERE ` + nthEvent(8)},
			seq: 8, wantMsg: "changed in the log"},
		{name: "event deleted", stmts: []string{"DELETE FROM events WHERE " + nthEvent(5)}, seq: 5, wantMsg: "not in the log (removed"},
		{name: "last event deleted", stmts: []string{"DELETE FROM events WHERE " + nthEvent(12)}, seq: 12, wantMsg: "not in the log: the log ends before it"},
		{name: "log truncated", stmts: []string{"TRUNCATE events"}, seq: 1, wantMsg: "not in the log"},
		// An event slipped into the log's past, in the transaction of the
		// fifth: it sorts right after it, where the projection never looks.
		{name: "event inserted into the log's past", stmts: []string{
			`INSERT INTO events (tx_id, event_id, stream, revision, type, data, metadata)
			 SELECT tx_id, gen_random_uuid(), 'thing-9', 0, 'thing.happened.v1', '{"i":-1}', metadata FROM events WHERE ` + nthEvent(5)},
			seq: 6, wantMsg: "inserted into the log"},
		{name: "events reordered in the log", stmts: []string{
			`UPDATE events e SET tx_id = CASE WHEN e.tx_id = a.t3 THEN a.t8 ELSE a.t3 END
			   FROM (SELECT (SELECT tx_id FROM events ORDER BY tx_id, seq OFFSET 2 LIMIT 1) AS t3,
			                (SELECT tx_id FROM events ORDER BY tx_id, seq OFFSET 7 LIMIT 1) AS t8) a
			  WHERE e.tx_id IN (a.t3, a.t8)`},
			seq: 3, wantMsg: "order events differently"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env, ctx := trail(t, 12)
			if c.fn != nil {
				c.fn(t, ctx, env)
			} else {
				tamper(t, ctx, env, c.stmts...)
			}
			rep := verify(t, ctx, env, nil)
			if rep.OK || rep.Broken == nil {
				t.Fatalf("Verify did not notice: %+v", rep)
			}
			if rep.Broken.Seq != c.seq || !strings.Contains(rep.Broken.Reason, c.wantMsg) {
				t.Fatalf("broken link = %s, want seq %d (%s)", rep.Broken, c.seq, c.wantMsg)
			}
			if rep.LastSeq != c.seq-1 {
				t.Fatalf("chain said to hold up to seq %d, want %d", rep.LastSeq, c.seq-1)
			}
		})
	}
}

func TestHeadsAreSignedAndPinTheChain(t *testing.T) {
	t.Parallel()
	headKey := []byte("the head key (not the chain's)..")
	env, ctx := trail(t, 12)
	rep := verify(t, ctx, env, nil)
	h := rep.Head()
	if h == nil || h.Count != 12 || h.Hash != rep.LastHash || h.EventID != rep.LastEventID || h.Position != rep.LastPosition {
		t.Fatalf("head of %+v = %+v", rep, h)
	}
	h.At = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	signed, err := audit.SignHead(*h, headKey)
	if err != nil {
		t.Fatal(err)
	}
	got, err := audit.ParseHead(append(append([]byte("  "), signed...), '\n'), headKey)
	if err != nil || got != *h {
		t.Fatalf("ParseHead = %+v, %v; want %+v", got, err, *h)
	}
	if _, err := audit.ParseHead(signed, []byte("another master key's head key..")); !errors.Is(err, audit.ErrBadHead) {
		t.Fatalf("ParseHead under another key: %v", err)
	}
	// A head whose count was raised by hand no longer verifies.
	parts := strings.Split(string(signed), ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := strings.Replace(string(payload), `"count":12`, `"count":13`, 1)
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(forged))
	if _, err := audit.ParseHead([]byte(strings.Join(parts, ".")), headKey); !errors.Is(err, audit.ErrBadHead) || forged == string(payload) {
		t.Fatalf("ParseHead of an edited head: %v", err)
	}

	// The log grows: it still passes through the head.
	last := env.AppendN(t, ctx, 5, 2)
	catchUp(t, ctx, env, last)
	if rep := verify(t, ctx, env, h); !rep.OK || !rep.HeadChecked || rep.Rows != 17 {
		t.Fatalf("Verify with the head after growth = %+v", rep)
	}

	t.Run("the end of the log and of the trail deleted, checkpoint rewound", func(t *testing.T) {
		t.Parallel()
		env, ctx := trail(t, 12)
		h := verify(t, ctx, env, nil).Head()
		tamper(t, ctx, env,
			"DELETE FROM audit_log_g1 WHERE seq > 9",
			"DELETE FROM events WHERE (tx_id, seq) > (SELECT tx_id, seq FROM events ORDER BY tx_id, seq OFFSET 8 LIMIT 1)",
			`UPDATE projection_checkpoints c SET events_applied = a.seq, last_event_id = a.event_id, position = a.position
			   FROM (SELECT seq, event_id, position FROM audit_log_g1 ORDER BY seq DESC LIMIT 1) a WHERE c.name = 'audit'`)
		// Consistent again: only the head shows it.
		if rep := verify(t, ctx, env, nil); !rep.OK || rep.Rows != 9 {
			t.Fatalf("Verify without the head = %+v", rep)
		}
		rep := verify(t, ctx, env, h)
		if rep.OK || rep.Broken.Seq != 10 || !strings.Contains(rep.Broken.Reason, "before the exported head") {
			t.Fatalf("Verify with the head = %+v", rep)
		}
	})

	// The attacker changes an event, empties the trail and resets its
	// checkpoint: the server (restarted here) audits the changed log again,
	// under the real key. The trail agrees with the log; the head, signed
	// before, does not.
	t.Run("an event changed and the trail rebuilt from the changed log", func(t *testing.T) {
		t.Parallel()
		env, ctx := trail(t, 12)
		h := verify(t, ctx, env, nil).Head()
		tamper(t, ctx, env, `UPDATE events SET data = '{"i":999}' WHERE `+nthEvent(3), "TRUNCATE audit_log_g1",
			"UPDATE projection_checkpoints SET events_applied = 0, last_event_id = NULL, position = '00000000000000000000000000000000' WHERE name = 'audit'")
		lastPos, err := eventstore.ParsePosition(h.Position)
		if err != nil {
			t.Fatal(err)
		}
		catchUp(t, ctx, env, lastPos)
		if rep := verify(t, ctx, env, nil); !rep.OK || rep.Rows != 12 {
			t.Fatalf("Verify without the head = %+v", rep)
		}
		rep := verify(t, ctx, env, h)
		if rep.OK || rep.Broken.Seq != 12 || !strings.Contains(rep.Broken.Reason, "no longer extends the exported head") {
			t.Fatalf("Verify with the head = %+v", rep)
		}
	})
}

// A running projection that finds its trail shorter than, or different
// from, what it read before stops instead of chaining the rewritten trail
// under the real key.
func TestRunningProjectionRefusesARewrittenTrail(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	env := projtest.New(t)
	last := env.AppendN(t, ctx, 10, 3)
	env.Run(t, audit.New(projtest.AuditKey))
	env.WaitCaughtUp(t, ctx, last, audit.Name)

	tamper(t, ctx, env, "TRUNCATE audit_log_g1",
		"UPDATE projection_checkpoints SET events_applied = 0, last_event_id = NULL, position = '00000000000000000000000000000000' WHERE name = 'audit'")
	env.AppendN(t, ctx, 1, 1)
	lastErr := waitFailed(t, ctx, env, "rewritten")
	var rows int
	if err := env.Admin.QueryRow(ctx, "SELECT count(*) FROM audit_log").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Fatalf("failed with %q, but %d rows written", lastErr, rows)
	}
}

// waitFailed waits until the audit projection's checkpoint row says it
// failed with an error containing want (the row may still show an earlier
// runner's failure, or not exist before the runner sets up), and returns
// the error.
func waitFailed(t *testing.T, ctx context.Context, env *projtest.Env, want string) string {
	t.Helper()
	for {
		var state, lastErr string
		err := env.Admin.QueryRow(ctx, "SELECT state, coalesce(last_error, '') FROM projection_checkpoints WHERE name = $1", audit.Name).Scan(&state, &lastErr)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		if state == projector.StateFailed && strings.Contains(lastErr, want) {
			return lastErr
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the projection did not fail with %q: %s %s", want, state, lastErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Without a key the projection writes nothing; a trail from before the
// keyed chain asks for a rebuild, which writes a keyed generation.
func TestKeylessProjectionAndUnkeyedTrail(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	env := projtest.New(t)
	last := env.AppendN(t, ctx, 6, 2)
	failedWith := func(p *audit.Projection, want error) {
		t.Helper()
		_, stop := projtest.StartRunner(t, env.Config(p))
		defer stop()
		waitFailed(t, ctx, env, want.Error())
	}
	failedWith(audit.New(nil), audit.ErrNoKey)

	// Generation 1 as an older version left it: no event_digest.
	if _, err := env.Admin.Exec(ctx, "DROP VIEW audit_log; ALTER TABLE audit_log_g1 DROP COLUMN event_digest; CREATE VIEW audit_log AS SELECT * FROM audit_log_g1"); err != nil {
		t.Fatal(err)
	}
	failedWith(audit.New(projtest.AuditKey), audit.ErrUnkeyedTrail)
	if _, err := audit.Verify(ctx, env.Admin, env.Store, audit.VerifyOptions{Key: projtest.AuditKey}); !errors.Is(err, audit.ErrUnkeyedTrail) {
		t.Fatalf("Verify of an unkeyed trail: %v", err)
	}
	if _, err := projector.Rebuild(ctx, env.Config(audit.New(projtest.AuditKey)), audit.Name, projector.RebuildOptions{}); err != nil {
		t.Fatal(err)
	}
	catchUp(t, ctx, env, last)
	if rep := verify(t, ctx, env, nil); !rep.OK || rep.Rows != 6 {
		t.Fatalf("Verify after the rebuild = %+v", rep)
	}
}

func TestListFiltersAndPages(t *testing.T) {
	t.Parallel()
	env, ctx := trail(t, 30)
	items, total, err := audit.List(ctx, env.Admin, audit.Filter{ActorID: "user-1"}, 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	if total != 10 || len(items) != 4 || items[0].Seq <= items[1].Seq || items[0].Actor.ID != "user-1" {
		t.Fatalf("List = %d items of %d: %+v", len(items), total, items)
	}
	items, total, err = audit.List(ctx, env.Admin, audit.Filter{Stream: "thing-2", EventType: "thing.happened.v1"}, 2, 5)
	if err != nil || total != 7 || len(items) != 2 {
		t.Fatalf("List page 2 = %d items of %d, %v", len(items), total, err)
	}
	items, total, err = audit.List(ctx, env.Admin, audit.Filter{From: time.Now().Add(time.Hour)}, 1, 5)
	if err != nil || total != 0 || len(items) != 0 {
		t.Fatalf("List from the future = %d, %v", total, err)
	}
	_ = eventstore.Position{}
}

// canonicalRef is the canonical form by its definition: encoding/json of
// the columns in key order, HTML escaping off.
func canonicalRef(r audit.Row) string {
	type row struct {
		ActorID       string `json:"actor_id"`
		ActorKind     string `json:"actor_kind"`
		CausationID   string `json:"causation_id"`
		ClientIP      string `json:"client_ip"`
		CorrelationID string `json:"correlation_id"`
		EventDigest   string `json:"event_digest"`
		EventID       string `json:"event_id"`
		EventType     string `json:"event_type"`
		OccurredAt    string `json:"occurred_at"`
		Position      string `json:"position"`
		RecordedAt    string `json:"recorded_at"`
		Revision      uint64 `json:"revision"`
		Seq           int64  `json:"seq"`
		Stream        string `json:"stream"`
		Summary       string `json:"summary"`
		UserAgent     string `json:"user_agent"`
	}
	const layout = "2006-01-02T15:04:05.000000Z"
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(row{r.ActorID, r.ActorKind, r.CausationID, r.ClientIP, r.CorrelationID, hex.EncodeToString(r.EventDigest), r.EventID.String(), r.EventType,
		r.OccurredAt.UTC().Format(layout), r.Position, r.RecordedAt.UTC().Format(layout), r.Revision, r.Seq, r.Stream, r.Summary, r.UserAgent})
	return strings.TrimSuffix(b.String(), "\n")
}

func TestCanonicalMatchesItsDefinition(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "tab\tnl\n", "\x01\x1f", "é ü 日本", "\u2028\u2029", "<&>", "bad\xffutf8", "\x7f"} {
		r := audit.Row{Seq: 1, EventID: uuid.New(), ActorID: s, UserAgent: s, Summary: `{"a":"` + s + `"}`, Stream: s,
			OccurredAt: time.Now(), RecordedAt: time.Now(), Revision: 1 << 40, EventDigest: []byte(s)}
		if got, want := string(audit.Canonical(r)), canonicalRef(r); got != want {
			t.Errorf("Canonical(%q) =\n %s\nwant\n %s", s, got, want)
		}
	}
}

// BenchmarkVerify measures audit verify's pass over a log and its trail of
// 20,000 events (events/s: log events compared with their rows per second).
func BenchmarkVerify(b *testing.B) {
	ctx := b.Context()
	env := projtest.New(b)
	const n = 20_000
	if err := projbench.Fill(ctx, env.Store, n); err != nil {
		b.Fatal(err)
	}
	head, err := env.Store.Head(ctx)
	if err != nil {
		b.Fatal(err)
	}
	catchUp(b, ctx, env, head)
	b.ResetTimer()
	for b.Loop() {
		rep, err := audit.Verify(ctx, env.Admin, env.Store, audit.VerifyOptions{Key: projtest.AuditKey})
		if err != nil || !rep.OK || rep.Events != n {
			b.Fatalf("verify: %+v %v", rep, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// EventDigest is a format (every link depends on it): hold it to its
// definition, written out independently here.
func TestEventDigestMatchesItsDefinition(t *testing.T) {
	t.Parallel()
	ev := eventstore.RecordedEvent{ID: uuid.MustParse("0b0e8f8e-6c4b-4a43-9d5e-6a1f7f1c2b3a"), Stream: "user-1", Revision: 7,
		Position: eventstore.Position{Commit: 0x10, Prepare: 0x2a}, Type: "user.registered.v1",
		Data: json.RawMessage(`{"roles": ["user"]}`), Metadata: json.RawMessage(`{"client_ip": "192.0.2.1"}`),
		RecordedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))}
	var ref bytes.Buffer
	ref.WriteString("authledger event digest v1")
	for _, f := range [][]byte{ev.ID[:], []byte("user-1"), {0, 0, 0, 0, 0, 0, 0, 7}, []byte("0000000000000010000000000000002a"),
		[]byte("user.registered.v1"), ev.Data, ev.Metadata} {
		_ = binary.Write(&ref, binary.BigEndian, uint64(len(f)))
		ref.Write(f)
	}
	_ = binary.Write(&ref, binary.BigEndian, uint64(8))
	_ = binary.Write(&ref, binary.BigEndian, time.Date(2026, 1, 2, 2, 4, 5, 123456000, time.UTC).UnixMicro())
	want := sha256.Sum256(ref.Bytes())
	if got := audit.EventDigest(ev); !bytes.Equal(got, want[:]) {
		t.Fatalf("EventDigest = %x, want %x", got, want)
	}
	// Every field counts.
	for name, change := range map[string]func(e *eventstore.RecordedEvent){
		"id":       func(e *eventstore.RecordedEvent) { e.ID = uuid.New() },
		"stream":   func(e *eventstore.RecordedEvent) { e.Stream = "user-2" },
		"revision": func(e *eventstore.RecordedEvent) { e.Revision++ },
		"position": func(e *eventstore.RecordedEvent) { e.Position.Prepare++ },
		"type":     func(e *eventstore.RecordedEvent) { e.Type = "user.role_granted.v1" },
		"data":     func(e *eventstore.RecordedEvent) { e.Data = json.RawMessage(`{"roles": ["admin"]}`) },
		"metadata": func(e *eventstore.RecordedEvent) { e.Metadata = nil },
		"recorded": func(e *eventstore.RecordedEvent) { e.RecordedAt = e.RecordedAt.Add(time.Microsecond) },
		// A byte moved from the data to the type is still a change.
		"boundary": func(e *eventstore.RecordedEvent) { e.Type += "{"; e.Data = e.Data[1:] },
	} {
		e := ev
		change(&e)
		if bytes.Equal(audit.EventDigest(e), want[:]) {
			t.Errorf("changing the %s leaves the digest", name)
		}
	}
}

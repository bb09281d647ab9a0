package audit_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/audit"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/projections/runtime"
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
		Summary: `{"a":1}`,
	}
	want := `{"actor_id":"u1","actor_kind":"user","causation_id":"","client_ip":"192.0.2.1","correlation_id":"req<1>",` +
		`"event_id":"0b0e8f8e-6c4b-4a43-9d5e-6a1f7f1c2b3a","event_type":"user.logged_in.v1","occurred_at":"2026-01-02T02:04:05.123456Z",` +
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
	r, err := runtime.NewRunner(env.Config(audit.New()))
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
	return env, ctx
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

func TestTrailIsAppendOnlyAndVerifies(t *testing.T) {
	t.Parallel()
	env, ctx := trail(t, 12)
	rep, err := audit.Verify(ctx, env.Admin)
	if err != nil || !rep.OK || rep.Rows != 12 || rep.LastSeq != 12 || len(rep.LastHash) != 64 {
		t.Fatalf("Verify on an untouched chain = %+v, %v", rep, err)
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
}

func TestVerifyCatchesTampering(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		stmts   []string
		seq     int64
		wantMsg string
	}{
		{"changed row", []string{"UPDATE audit_log_g1 SET actor_id = 'mallory' WHERE seq = 5"}, 5, "hash"},
		{"changed summary", []string{`UPDATE audit_log_g1 SET summary = '{"i":999}' WHERE seq = 9`}, 9, "hash"},
		{"changed row with its hash recomputed", nil, 6, "hash"},
		{"deleted row", []string{"DELETE FROM audit_log_g1 WHERE seq = 5"}, 5, "missing"},
		{"deleted first row", []string{"DELETE FROM audit_log_g1 WHERE seq = 1"}, 1, "missing"},
		{"deleted last row", []string{"DELETE FROM audit_log_g1 WHERE seq = 12"}, 12, "removed from the end"},
		{"reordered rows", []string{
			"CREATE TEMP TABLE saved ON COMMIT DROP AS SELECT * FROM audit_log_g1 WHERE seq IN (4, 7)",
			"UPDATE audit_log_g1 SET event_id = gen_random_uuid() WHERE seq IN (4, 7)",
			`UPDATE audit_log_g1 a SET (event_id, position, stream, revision, event_type, occurred_at, recorded_at, actor_kind, actor_id, correlation_id, causation_id, client_ip, user_agent, summary, hash) = (SELECT event_id, position, stream, revision, event_type, occurred_at, recorded_at, actor_kind, actor_id, correlation_id, causation_id, client_ip, user_agent, summary, hash FROM saved b WHERE b.seq = CASE a.seq WHEN 4 THEN 7 ELSE 4 END) WHERE a.seq IN (4, 7)`,
		}, 4, "hash"},
		{"rows renumbered after a delete", []string{"DELETE FROM audit_log_g1 WHERE seq = 5", "UPDATE audit_log_g1 SET seq = seq - 1 WHERE seq > 5"}, 5, "hash"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env, ctx := trail(t, 12)
			if c.stmts == nil {
				// The attacker changes row 5 and recomputes its own hash:
				// the next link still breaks.
				var r audit.Row
				var rev int64
				if err := env.Admin.QueryRow(ctx, `SELECT seq, event_id, position, stream, revision, event_type, occurred_at, recorded_at,
					actor_kind, actor_id, correlation_id, causation_id, client_ip, user_agent, summary FROM audit_log WHERE seq = 5`).
					Scan(&r.Seq, &r.EventID, &r.Position, &r.Stream, &rev, &r.EventType, &r.OccurredAt, &r.RecordedAt, &r.ActorKind,
						&r.ActorID, &r.CorrelationID, &r.CausationID, &r.ClientIP, &r.UserAgent, &r.Summary); err != nil {
					t.Fatal(err)
				}
				r.Revision = uint64(rev)
				var prev []byte
				if err := env.Admin.QueryRow(ctx, "SELECT hash FROM audit_log WHERE seq = 4").Scan(&prev); err != nil {
					t.Fatal(err)
				}
				r.ActorID = "mallory"
				h := audit.Link(prev, r)
				tamperArgs(t, ctx, env, "UPDATE audit_log_g1 SET actor_id = 'mallory', hash = $1 WHERE seq = 5", h)
			} else {
				tamper(t, ctx, env, c.stmts...)
			}
			rep, err := audit.Verify(ctx, env.Admin)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.Broken == nil {
				t.Fatalf("Verify did not notice: %+v", rep)
			}
			if rep.Broken.Seq != c.seq || !strings.Contains(rep.Broken.Reason, c.wantMsg) {
				t.Fatalf("broken link = %s, want seq %d (%s)", rep.Broken, c.seq, c.wantMsg)
			}
			t.Logf("verify: %s", rep.Broken)
		})
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
	_ = enc.Encode(row{r.ActorID, r.ActorKind, r.CausationID, r.ClientIP, r.CorrelationID, r.EventID.String(), r.EventType,
		r.OccurredAt.UTC().Format(layout), r.Position, r.RecordedAt.UTC().Format(layout), r.Revision, r.Seq, r.Stream, r.Summary, r.UserAgent})
	return strings.TrimSuffix(b.String(), "\n")
}

func TestCanonicalMatchesItsDefinition(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "tab\tnl\n", "\x01\x1f", "é ü 日本", "\u2028\u2029", "<&>", "bad\xffutf8", "\x7f"} {
		r := audit.Row{Seq: 1, EventID: uuid.New(), ActorID: s, UserAgent: s, Summary: `{"a":"` + s + `"}`, Stream: s,
			OccurredAt: time.Now(), RecordedAt: time.Now(), Revision: 1 << 40}
		if got, want := string(audit.Canonical(r)), canonicalRef(r); got != want {
			t.Errorf("Canonical(%q) =\n %s\nwant\n %s", s, got, want)
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/httpapi/authn"
	"github.com/authledger/authledger/projections/audit"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/reactors/sessionlimit"
	"github.com/authledger/authledger/test/pgtest"
)

func TestAdminCommandsHelpAndUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"projections", "--help"},
		{"audit", "help"},
	} {
		if code, out, _ := runCmd(t, nil, args...); code != exitOK || !strings.Contains(out, "usage: authledger "+args[0]) {
			t.Errorf("%v: %d %q", args, code, out)
		}
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"projections", "status", "--help"}, []string{"-json", "lag", "DATABASE_URL"}},
		{[]string{"projections", "rebuild", "-h"}, []string{"NAME", audit.Name, "DATABASE_URL"}},
		{[]string{"audit", "verify", "-help"}, []string{"-json", "-head", "broken link", "HMAC-SHA256", "the log", "DATABASE_URL"}},
		{[]string{"audit", "head", "-help"}, []string{"-head", "JWS", "outside", "DATABASE_URL"}},
		{[]string{"audit", "verify", "-help"}, []string{"FILE", "offline", "-thumbprint", "-archive"}},
		{[]string{"audit", "tail", "-help"}, []string{"-f", "-n", "-json"}},
		{[]string{"audit", "export", "-help"}, []string{"-from", "-to", "-o", "Ed25519", "thumbprint"}},
		{[]string{"audit", "archive", "-help"}, []string{"-before", "AUTHLEDGER_AUDIT_RETENTION", "audit.archived.v1"}},
		{[]string{"replay", "-help"}, []string{"-until", "-projection", "-schema", "search_path"}},
	} {
		code, out, _ := runCmd(t, nil, c.args...)
		for _, w := range c.want {
			if code != exitOK || !strings.Contains(out, w) {
				t.Errorf("%v: exit %d, output lacks %q:\n%s", c.args, code, w, out)
			}
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"projections"}, "status"},
		{[]string{"projections", "frobnicate"}, `unknown command "frobnicate"`},
		// One argument is an export FILE to check offline; two are too many.
		{[]string{"audit", "verify", "one", "two"}, "want at most one FILE"},
		{[]string{"audit", "tail", "extra"}, "unexpected argument"},
		{[]string{"audit", "export"}, "-o FILE is required"},
		{[]string{"audit", "export", "-o", "x", "-from", "2026-02-01T00:00:00Z", "-to", "2026-01-01T00:00:00Z"}, "-from must be before -to"},
		{[]string{"replay"}, "-until TIME is required"},
		{[]string{"audit", "head", "extra"}, "unexpected argument"},
		{[]string{"projections", "rebuild"}, "which projection? (one of: " + audit.Name},
		// An unknown name is refused before any connection, naming the known ones.
		{[]string{"projections", "rebuild", "nope"}, `unknown projection "nope" (known: ` + audit.Name},
		{[]string{"projections", "status"}, "DATABASE_URL"},
	} {
		if code, _, errOut := runCmd(t, nil, c.args...); code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr lacks %q: %s", c.args, code, c.want, errOut)
		}
	}
}

// statusOf runs `projections status -json` and returns the named row.
func statusOf(t *testing.T, envm map[string]string, name string) statusJSON {
	t.Helper()
	code, out, errOut := runCmd(t, envm, "projections", "status", "-json")
	if code != exitOK {
		t.Fatalf("projections status -json: exit %d: %s", code, errOut)
	}
	var st []statusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	for _, s := range st {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("status lacks %s:\n%s", name, out)
	return statusJSON{}
}

// testMasterKey is a master key for tests that run a projection beside the
// commands (base64 of 32 bytes).
const testMasterKey = "dGVzdCBtYXN0ZXIga2V5IG9mIDMyIGJ5dGVzLCBvayE="

// testAuditKeys are the audit keys the commands derive from testMasterKey.
func testAuditKeys(t *testing.T) auditKeys {
	t.Helper()
	m, err := keys.ParseMasterKey(testMasterKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := deriveAuditKeys(m)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// trailDump is the audit trail's every column, in order, as text.
func trailDump(t *testing.T, ctx context.Context, env *projtest.Env) string {
	t.Helper()
	var s string
	if err := env.Admin.QueryRow(ctx, "SELECT coalesce(string_agg(row_to_json(a)::text, E'\n' ORDER BY seq), '') FROM audit_log a").Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestProjectionsStatusRebuildAndAuditVerify runs the operator commands
// against a real database: status before and after the projection runs, a
// rebuild that reproduces the live trail, and verify before and after a
// superuser tampers with a row.
func TestProjectionsStatusRebuildAndAuditVerify(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	env := projtest.New(t)
	envm := map[string]string{"DATABASE_URL": env.URL, "AUTHLEDGER_LOG_LEVEL": "warn", "AUTHLEDGER_MASTER_KEY": testMasterKey}
	const n = 30
	last := env.AppendN(t, ctx, n, 3)

	// Nothing applied yet: the whole log is lag.
	s := statusOf(t, envm, audit.Name)
	if s.LagEvents != n || s.EventsApplied != 0 || s.LagSeconds <= 0 {
		t.Fatalf("status before the runner: %+v", s)
	}

	// The runner chains under the key the commands derive from the master key.
	r, err := projector.NewRunner(env.Config(audit.New(testAuditKeys(t).chain)))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	env.WaitCaughtUp(t, ctx, last, audit.Name)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	s = statusOf(t, envm, audit.Name)
	if s.Generation != 1 || s.EventsApplied != n || s.LagEvents != 0 || s.LagSeconds != 0 || s.Position != last.String() || s.State == projector.StateFailed {
		t.Fatalf("status after catching up: %+v (want generation 1, %d applied, no lag, at %s)", s, n, last)
	}
	code, out, errOut := runCmd(t, envm, "projections", "status")
	if code != exitOK {
		t.Fatalf("projections status: exit %d: %s", code, errOut)
	}
	t.Logf("projections status:\n%s", out)
	if !strings.Contains(out, "LAG EVENTS") || !tableRowHas(out, audit.Name, "1", s.State, last.String(), "30", "0", "0.0") {
		t.Fatalf("status table lacks the audit row:\n%s", out)
	}

	before := trailDump(t, ctx, env)
	code, out, errOut = runCmd(t, envm, "projections", "rebuild", audit.Name)
	t.Logf("rebuild stdout: %s\nrebuild stderr:\n%s", out, errOut)
	if code != exitOK || !strings.Contains(out, "rebuilt audit: generation 2 now serving, 30 events") {
		t.Fatalf("rebuild: exit %d\n%s\n%s", code, out, errOut)
	}
	// stderr is not a terminal here: plain progress lines, ending with done.
	if strings.Contains(errOut, "\r") || !strings.Contains(errOut, "events/s") || !strings.Contains(errOut, projector.PhaseDone) {
		t.Errorf("progress on stderr: %q", errOut)
	}
	if after := trailDump(t, ctx, env); after != before || after == "" {
		t.Fatalf("rebuilt trail differs from the live one:\nbefore\n%s\nafter\n%s", before, after)
	}
	if s = statusOf(t, envm, audit.Name); s.Generation != 2 || s.EventsApplied != n || s.LagEvents != 0 || s.Rebuild != nil {
		t.Fatalf("status after rebuild: %+v", s)
	}

	code, out, errOut = runCmd(t, envm, "audit", "verify")
	if code != exitOK || !strings.Contains(out, "audit trail OK: 30 rows checked against 30 events of the log; head seq 30") {
		t.Fatalf("verify on an untouched trail: exit %d\n%s\n%s", code, out, errOut)
	}

	// A superuser bypasses the append-only triggers and changes row 7 of
	// the serving generation.
	err = pgx.BeginFunc(ctx, env.Admin, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE audit_log_g2 SET actor_id = 'mallory' WHERE seq = 7")
		return err
	})
	if err != nil {
		t.Fatalf("tamper: %v", err)
	}
	var eventID string
	if err := env.Admin.QueryRow(ctx, "SELECT event_id::text FROM audit_log WHERE seq = 7").Scan(&eventID); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCmd(t, envm, "audit", "verify")
	t.Logf("verify after tampering:\n%s", out)
	if code != exitError || !strings.Contains(out, "BROKEN at seq 7 (event "+eventID+"): the row was changed") ||
		!strings.Contains(out, "holds up to seq 6") {
		t.Fatalf("verify after tampering: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(t, envm, "audit", "verify", "-json")
	var rep struct {
		OK     bool  `json:"ok"`
		Rows   int64 `json:"rows"`
		Broken *struct {
			Seq     int64  `json:"seq"`
			EventID string `json:"event_id"`
		} `json:"broken"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("verify JSON: %v\n%s", err, out)
	}
	if code != exitError || rep.OK || rep.Rows != n || rep.Broken == nil || rep.Broken.Seq != 7 || rep.Broken.EventID != eventID {
		t.Fatalf("verify -json after tampering: exit %d %+v", code, rep)
	}
}

// tableRowHas reports whether the table has a row whose whitespace-separated
// cells start with cells.
func tableRowHas(table string, cells ...string) bool {
	for line := range strings.SplitSeq(table, "\n") {
		f := strings.Fields(line)
		if len(f) < len(cells) {
			continue
		}
		match := true
		for i, c := range cells {
			if f[i] != c {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

func TestProgressLine(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		p    projector.Progress
		want []string
		not  []string
	}{
		{"building with a total", projector.Progress{Projection: "audit", Generation: 3, Phase: projector.PhaseBuilding,
			Applied: 500, Total: 2000, EventsPerSecond: 250, Elapsed: 2 * time.Second, ETA: 6 * time.Second},
			[]string{"audit g3 building", "[#######.......................]  25%", "500/2000 events", "250 events/s", "ETA 6s"}, nil},
		{"past the estimate", projector.Progress{Projection: "audit", Phase: projector.PhaseSwapping, Applied: 2100, Total: 2000},
			[]string{"100%", "2100/2000 events"}, []string{"ETA"}},
		{"never ran: no total", projector.Progress{Projection: "audit", Phase: projector.PhaseBuilding, Applied: 42},
			[]string{"42 events", "0 events/s"}, []string{"[", "%"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := progressLine(c.p)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			for _, w := range c.not {
				if strings.Contains(got, w) {
					t.Errorf("%q has %q", got, w)
				}
			}
		})
	}
}

// On a terminal the bar redraws one line in place, and a log line clears
// it first rather than landing in its middle; elsewhere lines are plain.
func TestProgressBarOnATerminal(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	b := &progressBar{w: &out, tty: true}
	p := projector.Progress{Projection: "audit", Generation: 2, Phase: projector.PhaseBuilding, Applied: 10, Total: 100}
	b.report(p)
	p.Applied = 50
	b.report(p)
	if _, err := b.Write([]byte("{\"level\":\"WARN\"}\n")); err != nil {
		t.Fatal(err)
	}
	p.Phase, p.Applied = projector.PhaseDone, 100
	b.report(p)
	b.finish()
	got := out.String()
	const clear = "\r\033[K"
	want := clear + "audit g2 building [###" + strings.Repeat(".", 27) + "]  10%"
	if !strings.HasPrefix(got, want) {
		t.Fatalf("first frame: %q, want prefix %q", got, want)
	}
	if !strings.Contains(got, " 50/100 events  0 events/s  elapsed 0s"+clear+"{\"level\":\"WARN\"}\n"+clear+"audit g2 done") ||
		!strings.HasSuffix(got, "100/100 events  0 events/s  elapsed 0s\n") || strings.Count(got, "\n") != 2 {
		t.Fatalf("terminal output: %q", got)
	}

	out.Reset()
	plain := &progressBar{w: &out}
	p.Phase = projector.PhaseBuilding
	plain.report(p)
	plain.report(p) // within plainEvery: dropped
	p.Phase = projector.PhaseDone
	plain.report(p)
	if got := out.String(); strings.Contains(got, "\r") || strings.Count(got, "\n") != 2 {
		t.Fatalf("plain output: %q", got)
	}
}

// A running server's log followers and its policies show beside the read
// models, with their state and lag.
func TestProjectionsStatusShowsFollowersAndPolicies(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	r := startService(t, map[string]string{"DATABASE_URL": db, "AUTHLEDGER_MAX_SESSIONS_PER_USER": "3"})
	r.waitReady(30 * time.Second)
	envm := map[string]string{"DATABASE_URL": db, "AUTHLEDGER_MAX_SESSIONS_PER_USER": "3", "AUTHLEDGER_LOG_LEVEL": "warn"}
	// The server records its followers every couple of seconds.
	var feed statusJSON
	for deadline := time.Now().Add(15 * time.Second); ; {
		code, out, errOut := runCmd(t, envm, "projections", "status", "-json")
		if code != exitOK {
			t.Fatalf("projections status -json: exit %d: %s", code, errOut)
		}
		var st []statusJSON
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status JSON: %v\n%s", err, out)
		}
		for _, s := range st {
			if s.Name == authn.FeedName {
				feed = s
			}
		}
		if feed.Kind == "follower" && feed.State == projector.FollowerFollowing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed the revocation feed following:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if feed.Instance == "" || feed.LagSeconds < 0 || feed.LagSeconds > 30 {
		t.Errorf("revocation feed row: %+v", feed)
	}
	if s := statusOf(t, envm, sessionlimit.Name); s.Kind != "policy" {
		t.Errorf("session limit policy row: %+v", s)
	}
	if s := statusOf(t, envm, audit.Name); s.Kind != "read_model" {
		t.Errorf("audit row: %+v", s)
	}
	code, out, _ := runCmd(t, envm, "projections", "status")
	if code != exitOK || !strings.Contains(out, "FOLLOWER") || !strings.Contains(out, "worker_wakeups") {
		t.Errorf("status table lacks the followers:\n%s", out)
	}
}

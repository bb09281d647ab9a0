package main

// The audit tools against the real server and database: tail -f, export
// and the offline verify of its file, replay --until (time travel), the
// ?at= profile, and audit retention.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// exportFile runs `audit export` into a new file and returns its path and
// the signing key's thumbprint.
func exportFile(t *testing.T, env map[string]string, args ...string) (path, thumb string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "export.jsonl")
	code, out, errOut := runCmd(t, env, append([]string{"audit", "export", "-o", path}, args...)...)
	if code != exitOK {
		t.Fatalf("audit export: exit %d\n%s%s", code, out, errOut)
	}
	m := regexp.MustCompile(`signed by key (\S+)`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("audit export names no key: %s", errOut)
	}
	return path, m[1]
}

// verifyOffline runs `audit verify FILE` with no configuration at all: no
// database, no master key.
func verifyOffline(t *testing.T, args ...string) (int, string) {
	t.Helper()
	code, out, errOut := runCmd(t, map[string]string{}, append([]string{"audit", "verify"}, args...)...)
	t.Logf("audit verify %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	return code, out + errOut
}

// rewrite returns a copy of the file at path with line n (1-based)
// changed by edit.
func rewrite(t *testing.T, path string, n int, edit func(line []byte) []byte) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	lines[n-1] = edit(bytes.Clone(lines[n-1]))
	out := filepath.Join(t.TempDir(), "tampered.jsonl")
	if err := os.WriteFile(out, append(bytes.Join(lines, []byte("\n")), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAuditExportVerifiesOfflineAndNamesTheFirstTamperedLine(t *testing.T) {
	t.Parallel()
	e := newTamperEnv(t)
	_, access, _ := e.account(t, "ada@example.com")
	e.login(t, "ada@example.com")
	_, tok := e.login(t, "ada@example.com")
	e.settle(t, access, tok)

	path, thumb := exportFile(t, e.env)
	code, out := verifyOffline(t, path)
	if code != exitOK || !strings.Contains(out, "export OK") || !strings.Contains(out, thumb) || !strings.Contains(out, "not pinned") {
		t.Fatalf("verify FILE: exit %d\n%s", code, out)
	}
	if code, out := verifyOffline(t, "-thumbprint", thumb, path); code != exitOK || strings.Contains(out, "not pinned") {
		t.Fatalf("verify -thumbprint FILE: exit %d\n%s", code, out)
	}
	if code, out := verifyOffline(t, "-thumbprint", "another-key", path); code != exitError || !strings.Contains(out, "not the pinned") {
		t.Fatalf("verify with another pinned key: exit %d\n%s", code, out)
	}
	// The same key signs every export of the installation.
	if _, again := exportFile(t, e.env); again != thumb {
		t.Errorf("a second export is signed by %s, the first by %s", again, thumb)
	}

	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 6 {
		t.Fatalf("the export has %d lines, want a header, rows and a trailer", len(lines))
	}
	third := 4 // line 4 is the third row
	var row struct {
		Seq int64 `json:"seq"`
	}
	if err := json.Unmarshal([]byte(lines[third-1]), &row); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		line int
		edit func([]byte) []byte
		want string
	}{
		{"one byte of a row's data", third, func(l []byte) []byte {
			i := bytes.Index(l, []byte(`"event_type":"`)) + len(`"event_type":"`)
			l[i]++
			return l
		}, fmt.Sprintf("line %d (seq %d): the row's link does not follow", third, row.Seq)},
		{"a row's bytes, not its meaning", third, func(l []byte) []byte {
			return bytes.Replace(l, []byte(`,"seq":`), []byte(`, "seq":`), 1)
		}, fmt.Sprintf("line %d (seq %d): the line is not in canonical form", third, row.Seq)},
		{"the header's anchor", 1, func(l []byte) []byte {
			return bytes.Replace(l, []byte(`"prev_hash":"0`), []byte(`"prev_hash":"1`), 1)
		}, "line 2"},
		{"one byte of the signature", len(lines), func(l []byte) []byte {
			i := len(l) - 5
			if l[i] == 'A' {
				l[i] = 'B'
			} else {
				l[i] = 'A'
			}
			return l
		}, "signature does not verify"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := verifyOffline(t, rewrite(t, path, c.line, c.edit))
			if code != exitError || !strings.Contains(out, "BROKEN") || !strings.Contains(out, c.want) {
				t.Fatalf("verify of the tampered file: exit %d, want 1 and %q\n%s", code, c.want, out)
			}
		})
	}
	// A row removed, every later link recomputed to hide it: the seq gap
	// shows, and so would the signature.
	cut := filepath.Join(t.TempDir(), "cut.jsonl")
	if err := os.WriteFile(cut, []byte(strings.Join(slices.Delete(slices.Clone(lines), third-1, third), "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := verifyOffline(t, cut); code != exitError || !strings.Contains(out, fmt.Sprintf("line %d (seq %d): out of order", third, row.Seq+1)) {
		t.Fatalf("verify of a file with a row removed: exit %d\n%s", code, out)
	}

	// The range: rows recorded from a time on chain from the row before.
	var mid time.Time
	if err := e.db.QueryRow(t.Context(), "SELECT recorded_at FROM audit_log WHERE seq = $1", row.Seq).Scan(&mid); err != nil {
		t.Fatal(err)
	}
	part, _ := exportFile(t, e.env, "-from", mid.UTC().Format(time.RFC3339Nano))
	code, out = verifyOffline(t, "-json", part)
	var rep exportVerifyJSON
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &rep); err != nil || code != exitOK || !rep.OK {
		t.Fatalf("verify -json of a range: exit %d %v\n%s", code, err, out)
	}
	var prev string
	if err := e.db.QueryRow(t.Context(), "SELECT encode(hash, 'hex') FROM audit_log WHERE seq = $1", rep.FirstSeq-1).Scan(&prev); err != nil {
		t.Fatal(err)
	}
	if rep.FirstSeq > row.Seq || rep.PrevHash != prev {
		t.Errorf("the range starts at seq %d chained from %s, want at most %d chained from the row before (%s)", rep.FirstSeq, rep.PrevHash, row.Seq, prev)
	}
}

func TestAuditTailFollowsNewRows(t *testing.T) {
	t.Parallel()
	e := newTamperEnv(t)
	_, access, tok := e.account(t, "tail@example.com")
	e.settle(t, access, tok)
	last := lastSeq(t, e.db)

	code, out, errOut := runCmd(t, e.env, "audit", "tail", "-n", "2")
	if code != exitOK || strings.Count(out, "\n") != 2 || !strings.HasPrefix(out, fmt.Sprint(last-1, "\t")) {
		t.Fatalf("audit tail -n 2 (last seq %d): exit %d\n%s%s", last, code, out, errOut)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	buf := &lockedBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"audit", "tail", "-f", "-n", "0", "-json"}, envOf(e.env), buf, buf) }()
	_, tok = e.login(t, "tail@example.com")
	e.settle(t, access, tok)
	want := lastSeq(t, e.db)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var seqs []int64
		sc := bufio.NewScanner(strings.NewReader(buf.String()))
		for sc.Scan() {
			var entry struct {
				Seq  int64  `json:"seq"`
				Type string `json:"type"`
			}
			if err := json.Unmarshal(sc.Bytes(), &entry); err != nil {
				t.Fatalf("tail -json printed %q: %v", sc.Text(), err)
			}
			seqs = append(seqs, entry.Seq)
		}
		if len(seqs) > 0 && seqs[len(seqs)-1] == want {
			if seqs[0] != last+1 {
				t.Fatalf("tail -f -n 0 printed seqs %v, want %d to %d", seqs, last+1, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tail -f printed seqs %v, want up to %d\n%s", seqs, want, buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("tail -f after interruption: exit %d", code)
	}
}

func lastSeq(t *testing.T, db *pgxpool.Pool) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(t.Context(), "SELECT coalesce(max(seq), 0) FROM audit_log").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// snapshotTable is a table's rows as JSON text, in a stable order.
func snapshotTable(t *testing.T, db *pgxpool.Pool, schema, table string) []string {
	t.Helper()
	rows, err := db.Query(t.Context(), "SELECT to_jsonb(r)::text FROM "+pgx.Identifier{schema, table}.Sanitize()+" r ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// between returns a moment after everything recorded so far and before
// anything recorded next (the database's clock decides recorded_at).
func between(t *testing.T, db *pgxpool.Pool) time.Time {
	t.Helper()
	var at time.Time
	if err := db.QueryRow(t.Context(), "SELECT clock_timestamp()").Scan(&at); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	return at.UTC()
}

// The read models as of T, replayed later from the log, are the ones the
// live projections held at T; those of now differ.
func TestReplayUntilEqualsTheReadModelsAtThatTime(t *testing.T) {
	t.Parallel()
	a := startWithAdmin(t, hooks{})
	tok, id := a.loginAs("zoe@example.com")
	status, hdr, body := a.call("POST", "/v1/auth/login", "", map[string]string{"email": "zoe@example.com", "password": "a long enough secret"})
	ok(t, "login", http.StatusOK, status, body)
	waitStatus(t, a.running, "GET", "/v1/admin/users/"+id.String()+"/sessions", a.tok, http.StatusOK)
	status, _, body = a.call("GET", "/v1/me/audit", tok, nil, "X-Consistency-Token", hdr.Get("X-Consistency-Token"))
	ok(t, "settle", http.StatusOK, status, body)
	db, err := pgxpool.New(t.Context(), a.env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables := []string{"user_profiles", "sessions", "account_states"}
	waitCaughtUp(t, a.env)
	at := between(t, db)
	thenRows := map[string][]string{}
	for _, tb := range tables {
		thenRows[tb] = snapshotTable(t, db, "public", tb)
	}

	status, hdr, body = a.call("PATCH", "/v1/me", tok, map[string]any{"display_name": "Zoe Later"})
	ok(t, "rename", http.StatusOK, status, body)
	status, _, body = a.call("PUT", "/v1/admin/users/"+id.String()+"/roles/auditor", a.tok, nil)
	ok(t, "grant auditor", http.StatusOK, status, body)
	a.loginAs("yan@example.com")
	status, _, body = a.call("GET", "/v1/me/audit", tok, nil, "X-Consistency-Token", hdr.Get("X-Consistency-Token"))
	ok(t, "settle", http.StatusOK, status, body)
	waitCaughtUp(t, a.env)

	code, out, errOut := runCmd(t, a.env, "replay", "-until", at.Format(time.RFC3339Nano), "-schema", "then_t", "-projection", "user_profiles",
		"-projection", "sessions", "-projection", "account_states")
	if code != exitOK || !strings.Contains(out, "into schema then_t") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errOut)
	}
	for _, tb := range tables {
		got := snapshotTable(t, db, "then_t", tb)
		if !slices.Equal(got, thenRows[tb]) {
			t.Errorf("%s replayed until %s:\n%v\nthe live table held then:\n%v", tb, at, got, thenRows[tb])
		}
		if now := snapshotTable(t, db, "public", tb); tb != "account_states" && slices.Equal(got, now) {
			t.Errorf("%s replayed until %s equals the table of now: the test shows nothing", tb, at)
		}
	}
	// Every read model, the audit trail with it, up to now equals the
	// live one: replay runs the projections' own code.
	now := between(t, db)
	if code, out, errOut := runCmd(t, a.env, "replay", "-until", now.Format(time.RFC3339Nano), "-schema", "now_t"); code != exitOK {
		t.Fatalf("replay of everything: exit %d\n%s%s", code, out, errOut)
	}
	for _, tb := range append(tables, "audit_log", "tasks", "external_identities") {
		if got, live := snapshotTable(t, db, "now_t", tb), snapshotTable(t, db, "public", tb); !slices.Equal(got, live) {
			t.Errorf("%s replayed until now differs from the live table:\n%v\n%v", tb, got, live)
		}
	}
	if code, _, errOut := runCmd(t, a.env, "replay", "-until", now.Format(time.RFC3339Nano), "-schema", "now_t"); code != exitError || !strings.Contains(errOut, "exists already") {
		t.Errorf("replay into an existing schema: exit %d %s", code, errOut)
	}
	for _, bad := range [][]string{{"-until", "yesterday"}, {"-until", now.Format(time.RFC3339), "-schema", "public"}, {"-until", now.Format(time.RFC3339), "-projection", "nope"}, {}} {
		if code, _, _ := runCmd(t, a.env, append([]string{"replay"}, bad...)...); code != exitUsage {
			t.Errorf("replay %v: exit %d, want %d", bad, code, exitUsage)
		}
	}
}

// waitCaughtUp waits until every read model has applied the whole log,
// as `projections status` tells.
func waitCaughtUp(t *testing.T, env map[string]string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, errOut := runCmd(t, env, "projections", "status", "-json")
		if code != exitOK {
			t.Fatalf("projections status: exit %d\n%s%s", code, out, errOut)
		}
		var list []statusJSON
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatal(err)
		}
		var behind []string
		for _, s := range list {
			if s.Kind == "read_model" && s.LagEvents > 0 {
				behind = append(behind, s.Name)
			}
		}
		if len(behind) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("read models still behind the log: %v", behind)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAdminUserAtAnswersFromTheLog(t *testing.T) {
	t.Parallel()
	a := startWithAdmin(t, hooks{})
	tok, id := a.loginAs("kim@example.com")
	db, err := pgxpool.New(t.Context(), a.env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitStatus(t, a.running, "GET", "/v1/admin/users/"+id.String(), a.tok, http.StatusOK)
	at := between(t, db)
	status, _, before := a.call("GET", "/v1/admin/users/"+id.String(), a.tok, nil)
	ok(t, "profile then", http.StatusOK, status, before)

	status, _, body := a.call("PATCH", "/v1/me", tok, map[string]any{"display_name": "Kim Renamed"})
	ok(t, "rename", http.StatusOK, status, body)
	status, _, body = a.call("PUT", "/v1/admin/users/"+id.String()+"/roles/auditor", a.tok, nil)
	ok(t, "grant auditor", http.StatusOK, status, body)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, now := a.call("GET", "/v1/admin/users/"+id.String(), a.tok, nil)
		if now["display_name"] == "Kim Renamed" && slices.Contains(now["roles"].([]any), any("auditor")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the change never reached the read model: %v", now)
		}
		time.Sleep(20 * time.Millisecond)
	}

	status, _, then := a.call("GET", "/v1/admin/users/"+id.String()+"?at="+at.Format(time.RFC3339Nano), a.tok, nil)
	ok(t, "profile ?at", http.StatusOK, status, then)
	if fmt.Sprint(then) != fmt.Sprint(before) {
		t.Errorf("?at=%s answered\n%v\nthe read model answered then\n%v", at, then, before)
	}
	if then["display_name"] != "T" || slices.Contains(then["roles"].([]any), any("auditor")) {
		t.Errorf("?at=%s: %v, want the old name and no auditor role", at, then)
	}
	// Before the registration the user did not exist: as any unknown id.
	status, _, body = a.call("GET", "/v1/admin/users/"+id.String()+"?at=2001-01-01T00:00:00Z", a.tok, nil)
	ok(t, "profile before it existed", http.StatusNotFound, status, body)
	status, _, body = a.call("GET", "/v1/admin/users/"+id.String()+"?at=last-tuesday", a.tok, nil)
	ok(t, "a bad ?at", http.StatusBadRequest, status, body)
	if !strings.Contains(jsonString(body), `"at"`) {
		t.Errorf("the refusal does not name at: %v", body)
	}
	// Nothing of the fold stays behind.
	var scratch int
	if err := db.QueryRow(t.Context(), "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'timetravel_%'").Scan(&scratch); err != nil || scratch != 0 {
		t.Errorf("%d scratch schemas left (%v)", scratch, err)
	}
	// The permission holds as without ?at.
	plain, _ := a.loginAs("pat@example.com")
	status, _, body = a.call("GET", "/v1/admin/users/"+id.String()+"?at="+at.Format(time.RFC3339Nano), plain, nil)
	ok(t, "?at as a plain user", http.StatusForbidden, status, body)
}

func TestAuditRetentionArchivesAndTheChainStillVerifies(t *testing.T) {
	t.Parallel()
	e := newTamperEnv(t)
	_, access, tok := e.account(t, "old@example.com")
	e.settle(t, access, tok)
	cutoff := between(t, e.db)
	archivedThrough := lastSeq(t, e.db)
	_, tok = e.login(t, "old@example.com")
	e.settle(t, access, tok)

	code, out, errOut := runCmd(t, e.env, "audit", "archive", "-before", cutoff.Format(time.RFC3339Nano))
	if code != exitOK || !strings.Contains(out, fmt.Sprintf("archived rows 1 to %d", archivedThrough)) {
		t.Fatalf("audit archive: exit %d\n%s%s", code, out, errOut)
	}
	file := regexp.MustCompile(`to (\S+\.jsonl)`).FindStringSubmatch(out)[1]
	if !strings.HasPrefix(file, filepath.Join(e.env["AUTHLEDGER_DATA_DIR"], "audit-archive")) {
		t.Errorf("the archive %s is not in the data dir", file)
	}
	// The projection deletes the rows when it applies the archiving.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var first int64
		if err := e.db.QueryRow(t.Context(), "SELECT min(seq) FROM audit_log").Scan(&first); err != nil {
			t.Fatal(err)
		}
		if first == archivedThrough+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the trail starts at seq %d, want %d", first, archivedThrough+1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The table is append-only again for everyone else.
	if _, err := e.db.Exec(t.Context(), "DELETE FROM audit_log_g1 WHERE seq = $1", archivedThrough+1); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("a plain DELETE after the archiving: %v, want refused", err)
	}
	_, tok = e.login(t, "old@example.com")
	e.settle(t, access, tok)

	if code, out := e.verify(t); code != exitOK || !strings.Contains(out, fmt.Sprintf("rows 1 to %d are archived", archivedThrough)) {
		t.Fatalf("verify after the archiving: exit %d\n%s", code, out)
	}
	if code, out := e.verify(t, "-archive", file); code != exitOK || !strings.Contains(out, "the one the log recorded") {
		t.Fatalf("verify -archive: exit %d\n%s", code, out)
	}
	if code, out := verifyOffline(t, file); code != exitOK {
		t.Fatalf("verify of the archive offline: exit %d\n%s", code, out)
	}
	// An export across the boundary chains from the anchor.
	exp, _ := exportFile(t, e.env)
	if code, out := verifyOffline(t, exp); code != exitOK || !strings.Contains(out, fmt.Sprintf("seq %d to", archivedThrough+1)) {
		t.Fatalf("verify of an export after the archiving: exit %d\n%s", code, out)
	}
	// Nothing more to archive before the same cutoff.
	if code, out, errOut := runCmd(t, e.env, "audit", "archive", "-before", cutoff.Format(time.RFC3339Nano)); code != exitOK || !strings.Contains(out, "nothing to archive") {
		t.Fatalf("a second archive: exit %d\n%s%s", code, out, errOut)
	}

	// A changed archive is caught, offline and against the log.
	tampered := rewrite(t, file, 2, func(l []byte) []byte { return bytes.Replace(l, []byte(`"actor_kind":"`), []byte(`"actor_kind":"x`), 1) })
	if code, out := e.verify(t, "-archive", tampered); code != exitError || !strings.Contains(out, "BROKEN at line 2 (seq 1)") {
		t.Fatalf("verify -archive of a changed archive: exit %d\n%s", code, out)
	}
	// Rows deleted from the start outside retention break the chain.
	tamperSQL(t, e.db, fmt.Sprintf("DELETE FROM audit_log_g1 WHERE seq = %d", archivedThrough+1))
	if code, out := e.verify(t); code != exitError || !strings.Contains(out, "no archiving in the log ends at seq") {
		t.Fatalf("verify after a row deleted at the trail's start: exit %d\n%s", code, out)
	}
}

// serve under AUTHLEDGER_AUDIT_RETENTION archives at start what is older
// than the retention (the clock moved two hours on, the retention one).
func TestServeArchivesUnderTheRetention(t *testing.T) {
	t.Parallel()
	e := newTamperEnv(t)
	through := func() int64 { e.stopAudited(t, "aged@example.com"); return lastSeq(t, e.db) }()
	env := map[string]string{"AUTHLEDGER_AUDIT_RETENTION": "1h"}
	for k, v := range e.env {
		env[k] = v
	}
	r := startServiceWith(t, env, hooks{auditClock: func() time.Time { return time.Now().Add(2 * time.Hour) }})
	defer r.stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var first *int64
		if err := e.db.QueryRow(t.Context(), "SELECT min(seq) FROM audit_log").Scan(&first); err != nil {
			t.Fatal(err)
		}
		if first != nil && *first > through {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the trail still starts at seq %v, want past %d", first, through)
		}
		time.Sleep(20 * time.Millisecond)
	}
	files, err := filepath.Glob(filepath.Join(env["AUTHLEDGER_DATA_DIR"], "audit-archive", "audit-archive-*.jsonl"))
	if err != nil || len(files) != 1 {
		t.Fatalf("archives: %v %v, want one", files, err)
	}
	if code, out := e.verify(t, "-archive", files[0]); code != exitOK || !strings.Contains(out, "are archived") {
		t.Fatalf("verify after serve archived: exit %d\n%s", code, out)
	}
}

package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/test/pgtest"
	"github.com/authledger/authledger/test/testimage"
)

// download sends a GET and returns the raw answer.
func (r *running) download(path, bearer string) (int, http.Header, []byte) {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.base+path, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// unzip reads an export archive into member name → bytes.
func unzip(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("the export is no zip: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = content
	}
	return out
}

// plaintextIn lists which of needles the rows of query contain (each row
// one text column).
func plaintextIn(t *testing.T, db *pgxpool.Pool, query string, needles []string) []string {
	t.Helper()
	rows, err := db.Query(t.Context(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var text string
		if err := rows.Scan(&text); err != nil {
			t.Fatal(err)
		}
		for _, n := range needles {
			if strings.Contains(text, n) {
				found[n] = true
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var out []string
	for n := range found {
		out = append(out, n)
	}
	return out
}

// The whole of issue 22 item 4 through the assembled service: a user's
// personal data (address, name, IP, user agent, file name, OCR text)
// never reaches the log in clear; the export holds all of it, file bytes
// included; DELETE /v1/me with the password erases the account; then no
// table (the log, the read models, the audit trail) holds any of it, the
// read models rebuilt from the log show the account erased, the file is
// gone, and `authledger audit verify` still passes.
func TestExportThenEraseLeavesNoPlaintext(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	tag := uuid.NewString()[:8]
	email, name := "zelda-"+tag+"@example.com", "Zelda Fitzgerald "+tag
	ip, ua := "198.51.100.23", "PrivateAgent/"+tag
	fileName, ocrWord := "diagnosis-"+tag+".png", "PRIVATE"
	dataDir := t.TempDir()
	env := map[string]string{"DATABASE_URL": db, "AUTHLEDGER_DATA_DIR": dataDir, "AUTHLEDGER_TRUSTED_PROXIES": "127.0.0.1",
		"AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0", "AUTHLEDGER_BOOTSTRAP_ADMIN": "root-" + tag + "@example.com", "AUTHLEDGER_LOG_LEVEL": "warn"}
	r := startService(t, env)
	pool, err := pgxpool.New(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	from := []string{"X-Forwarded-For", ip, "User-Agent", ua}

	status, _, reg := r.call("POST", "/v1/auth/register", "", map[string]string{"email": email, "password": "a long enough secret", "display_name": name}, from...)
	if status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, reg)
	}
	userID := reg["user_id"].(string)
	status, _, tok := r.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "a long enough secret"}, from...)
	if status != http.StatusOK {
		t.Fatalf("login: %d %v", status, tok)
	}
	access := tok["access_token"].(string)
	image := testimage.TextPNG(t, ocrWord+" 4711")
	sum := sha256.Sum256(image)
	hexSum := hex.EncodeToString(sum[:])
	blobPath := filepath.Join(dataDir, blobDir, "sha256", hexSum[0:2], hexSum[2:4], hexSum)
	status, _, created := r.upload(access, fileName, image)
	if status != http.StatusAccepted {
		t.Fatalf("upload: %d %v", status, created)
	}
	taskID := created["task_id"].(string)
	var ocrText string
	for deadline := time.Now().Add(2 * time.Minute); ; {
		_, _, got := r.call("GET", "/v1/tasks/"+taskID, access, nil)
		if got["status"] == "completed" {
			ocrText, _ = got["result"].(string)
			break
		}
		if got["status"] == "failed" || time.Now().After(deadline) {
			t.Fatalf("task: %v", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(ocrText, ocrWord) {
		t.Fatalf("OCR read %q", ocrText)
	}
	if _, err := os.Stat(blobPath); err != nil {
		t.Fatalf("the upload's blob: %v", err)
	}
	// The audit trail has it all too (the completion is among the last).
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, _, trail := r.call("GET", "/v1/me/audit?type=task.completed.v1", access, nil)
		if items, _ := trail["items"].([]any); len(items) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the audit trail lacks the completion")
		}
		time.Sleep(50 * time.Millisecond)
	}
	personal := []string{email, name, ip, ua, fileName, strings.TrimSpace(ocrText)}
	logRows := `SELECT data::text || ' ' || metadata::text FROM events`

	// Sealed from the first append on: the log never held them in clear.
	if found := plaintextIn(t, pool, logRows, personal); len(found) > 0 {
		t.Fatalf("the log holds in clear: %q", found)
	}

	// The export: everything, the file's bytes included, in clear.
	status, hdr, archive := r.download("/v1/me/export", access)
	if status != http.StatusOK || hdr.Get("Content-Type") != "application/zip" {
		t.Fatalf("export: %d %s %s", status, hdr.Get("Content-Type"), archive)
	}
	members := unzip(t, archive)
	for _, want := range []struct{ member, text string }{
		{"profile.json", email}, {"profile.json", name}, {"sessions.json", ip}, {"sessions.json", ua},
		{"tasks.json", fileName}, {"tasks.json", ocrWord}, {"task_history.json", taskID}, {"audit.json", ip}, {"audit.json", email},
	} {
		if !bytes.Contains(members[want.member], []byte(want.text)) {
			t.Errorf("%s lacks %q:\n%s", want.member, want.text, members[want.member])
		}
	}
	var gotFile []byte
	for n, b := range members {
		if strings.HasPrefix(n, "files/"+taskID+"/") && strings.HasSuffix(n, "-"+fileName) {
			gotFile = b
		}
	}
	if !bytes.Equal(gotFile, image) {
		t.Errorf("the archive's file is not the upload (%d bytes, members %d)", len(gotFile), len(members))
	}

	// An administrator's export of someone else reads their files: each
	// live task's read is recorded in the log, as the task API records it.
	admin, _ := r.loginAs("root-" + tag + "@example.com")
	waitStatus(t, r, "GET", "/v1/admin/users/"+userID, admin, http.StatusOK)
	if status, _, b := r.download("/v1/admin/users/"+userID+"/export", admin); status != http.StatusOK || !bytes.Contains(unzip(t, b)["tasks.json"], []byte(ocrWord)) {
		t.Fatalf("admin export before erasure: %d", status)
	}
	var viewed int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE type = 'task.viewed.v1' AND data->>'task_id' = $1 AND (data->>'as_admin')::boolean`, taskID).Scan(&viewed); err != nil || viewed != 1 {
		t.Fatalf("recorded admin reads of the task: %d %v", viewed, err)
	}

	// Erasure needs the password.
	if status, _, body := r.call("DELETE", "/v1/me", access, map[string]string{"password": "not it at all"}); status != http.StatusBadRequest {
		t.Fatalf("erase with a wrong password: %d %v", status, body)
	}
	status, hdr, body := r.call("DELETE", "/v1/me", access, map[string]string{"password": "a long enough secret"}, from...)
	if status != http.StatusNoContent {
		t.Fatalf("erase: %d %v", status, body)
	}
	erasedAt := hdr.Get("X-Consistency-Token")
	// The account is gone: its address logs in as an unknown one, its
	// token stops working.
	if status, _, body := r.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "a long enough secret"}); status != http.StatusUnauthorized || !strings.HasSuffix(body["type"].(string), "/invalid-credentials") {
		t.Fatalf("login after erasure: %d %v", status, body)
	}
	waitRejected(t, r, access)

	// An administrator sees the account erased.
	status, _, prof := r.call("GET", "/v1/admin/users/"+userID, admin, nil, "X-Consistency-Token", erasedAt)
	if status != http.StatusOK || prof["email"] != "" || prof["display_name"] != "" {
		t.Fatalf("the erased profile: %d %v", status, prof)
	}
	for deadline := time.Now().Add(10 * time.Second); prof["erased_at"] == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the erased profile has no erased_at: %v", prof)
		}
		_, _, prof = r.call("GET", "/v1/admin/users/"+userID, admin, nil)
	}
	status, _, archive = r.download("/v1/admin/users/"+userID+"/export", admin)
	if status != http.StatusOK {
		t.Fatalf("admin export: %d %s", status, archive)
	}
	var erasedProfile map[string]any
	if err := json.Unmarshal(unzip(t, archive)["profile.json"], &erasedProfile); err != nil || erasedProfile["erased"] != true {
		t.Fatalf("the erased user's profile.json: %v %v", erasedProfile, err)
	}

	// The file is removed (by the blob_release policy, after the task's
	// deletion reaches the read model).
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := os.Stat(blobPath); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the erased user's file is still stored")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Rebuilt from the log, the read models still show the account erased.
	for _, p := range []string{"user_profiles", "sessions", "tasks", "audit"} {
		if code, out, errOut := runCmd(t, env, "projections", "rebuild", p); code != exitOK {
			t.Fatalf("rebuild %s: exit %d\n%s%s", p, code, out, errOut)
		}
	}
	var rebuiltEmail string
	if err := pool.QueryRow(t.Context(), `SELECT email FROM user_profiles WHERE user_id = $1`, userID).Scan(&rebuiltEmail); err != nil || rebuiltEmail != "" {
		t.Fatalf("rebuilt profile: %q %v", rebuiltEmail, err)
	}

	// Nothing anywhere holds the user's personal data in clear: the log
	// (as it always was) and every read model, the audit trail included.
	if found := plaintextIn(t, pool, logRows, personal); len(found) > 0 {
		t.Errorf("the log holds in clear after erasure: %q", found)
	}
	for _, table := range []string{"user_profiles", "sessions", "tasks", "task_files", "task_history", "audit_log", "external_identities", "email_verifications"} {
		if found := plaintextIn(t, pool, `SELECT t::text FROM `+table+` t`, personal); len(found) > 0 {
			t.Errorf("%s holds in clear after erasure: %q", table, found)
		}
	}

	// The audit chain hashes the log's bytes, which erasure does not
	// touch: it still verifies.
	if code, out, errOut := runCmd(t, env, "audit", "verify"); code != exitOK {
		t.Fatalf("audit verify after erasure: exit %d\n%s%s", code, out, errOut)
	}
}

// Consent: registration records the terms version it accepts; a new
// version is required at the next password login until it is accepted
// (at the login, or with POST /v1/me/consents).
func TestTermsVersionIsRecordedAndANewOneRequired(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	dataDir := t.TempDir()
	env := map[string]string{"DATABASE_URL": db, "AUTHLEDGER_DATA_DIR": dataDir, "AUTHLEDGER_TERMS_VERSION": "2026-01", "AUTHLEDGER_WORKERS": "0"}
	r := startService(t, env)
	reg := map[string]string{"email": "tess@example.com", "password": "a long enough secret", "display_name": "Tess"}
	status, _, body := r.call("POST", "/v1/auth/register", "", reg)
	if status != http.StatusBadRequest || !strings.Contains(toJSON(t, body), "terms_version") {
		t.Fatalf("register without the terms: %d %v", status, body)
	}
	reg["terms_version"] = "2026-01"
	if status, _, body := r.call("POST", "/v1/auth/register", "", reg); status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, body)
	}
	login := map[string]string{"email": "tess@example.com", "password": "a long enough secret"}
	status, hdr, tok := r.call("POST", "/v1/auth/login", "", login)
	if status != http.StatusOK {
		t.Fatalf("login: %d %v", status, tok)
	}
	waitStatus(t, r, "GET", "/v1/me", tok["access_token"].(string), http.StatusOK)
	status, _, consents := r.call("GET", "/v1/me/consents", tok["access_token"].(string), nil, "X-Consistency-Token", hdr.Get("X-Consistency-Token"))
	if status != http.StatusOK || consents["accepted_version"] != "2026-01" || consents["acceptance_required"] != false {
		t.Fatalf("consents: %d %v", status, consents)
	}
	r.stop()

	// New terms.
	env["AUTHLEDGER_TERMS_VERSION"] = "2026-06"
	r = startService(t, env)
	status, _, body = r.call("POST", "/v1/auth/login", "", login)
	if status != http.StatusForbidden || !strings.HasSuffix(body["type"].(string), "/terms-acceptance-required") || !strings.Contains(body["detail"].(string), "2026-06") {
		t.Fatalf("login under new terms: %d %v", status, body)
	}
	// A wrong password still answers invalid-credentials: the terms are
	// asked only of who has the password.
	if status, _, body := r.call("POST", "/v1/auth/login", "", map[string]string{"email": "tess@example.com", "password": "wrong wrong wrong"}); status != http.StatusUnauthorized {
		t.Fatalf("wrong password under new terms: %d %v", status, body)
	}
	login["accept_terms"] = "2026-06"
	status, hdr, tok = r.call("POST", "/v1/auth/login", "", login)
	if status != http.StatusOK {
		t.Fatalf("login accepting the terms: %d %v", status, tok)
	}
	access := tok["access_token"].(string)
	waitStatus(t, r, "GET", "/v1/me", access, http.StatusOK)
	status, _, consents = r.call("GET", "/v1/me/consents", access, nil, "X-Consistency-Token", hdr.Get("X-Consistency-Token"))
	list, _ := consents["consents"].([]any)
	if status != http.StatusOK || consents["accepted_version"] != "2026-06" || len(list) != 2 {
		t.Fatalf("consents after accepting: %d %v", status, consents)
	}
	// Only the current version can be accepted.
	if status, _, body := r.call("POST", "/v1/me/consents", access, map[string]string{"terms_version": "1999"}); status != http.StatusBadRequest {
		t.Fatalf("accepting another version: %d %v", status, body)
	}
	if status, _, body := r.call("POST", "/v1/me/consents", access, map[string]string{"terms_version": "2026-06"}); status != http.StatusNoContent {
		t.Fatalf("accepting the current version again: %d %v", status, body)
	}
	delete(login, "accept_terms")
	if status, _, body := r.call("POST", "/v1/auth/login", "", login); status != http.StatusOK {
		t.Fatalf("login once accepted: %d %v", status, body)
	}
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

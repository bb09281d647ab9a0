package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/test/pgtest"
	"github.com/authledger/authledger/test/testclock"
)

// authzEnv is one deployment's environment: a database, a data
// directory and a master key shared by its instances and the CLI.
func authzEnv(t *testing.T, extra map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{
		"DATABASE_URL":                          pgtest.NewDatabase(t),
		"AUTHLEDGER_DATA_DIR":                   t.TempDir(),
		"AUTHLEDGER_MASTER_KEY":                 "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"AUTHLEDGER_RATE_LIMIT_PER_SECOND":      "0",
		"AUTHLEDGER_USER_RATE_LIMIT_PER_SECOND": "0",
		"AUTHLEDGER_LOG_LEVEL":                  "warn",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// count is how many events of type the log holds.
func count(t *testing.T, db, eventType string) int {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM events WHERE type = $1", eventType).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// ok fails unless status is want.
func ok(t *testing.T, what string, want, status int, body map[string]any) {
	t.Helper()
	if status != want {
		t.Fatalf("%s: %d %v, want %d", what, status, body, want)
	}
}

// The first admin: AUTHLEDGER_BOOTSTRAP_ADMIN names an address nobody
// has registered yet; as soon as it registers, its user is an admin, on
// the session it already has. It is applied once: two instances record
// it once, a restart does not grant it again after an admin revoked it.
func TestBootstrapAdmin(t *testing.T) {
	t.Parallel()
	env := authzEnv(t, map[string]string{"AUTHLEDGER_BOOTSTRAP_ADMIN": "boss@example.com"})
	a := startService(t, env)
	b := startService(t, env)
	tok, bossID := a.loginAs("boss@example.com")
	// The grant reaches the live session: no new login.
	waitStatus(t, a, "GET", "/v1/audit", tok, http.StatusOK)
	waitStatus(t, b, "GET", "/v1/audit", tok, http.StatusOK)
	deadline := time.Now().Add(5 * time.Second)
	for count(t, env["DATABASE_URL"], "access.bootstrap_admin_applied.v1") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the bootstrap was not recorded once")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := count(t, env["DATABASE_URL"], "user.role_granted.v1"); n != 1 {
		t.Errorf("%d grants, want one for two instances", n)
	}
	// The grant was made by the system, and is in the audit trail.
	status, _, trail := a.call("GET", "/v1/audit?type=user.role_granted.v1", tok, nil)
	ok(t, "audit", http.StatusOK, status, trail)
	if !strings.Contains(jsonString(trail), `"bootstrap-admin"`) {
		t.Errorf("the trail does not name the bootstrap as actor: %v", trail)
	}

	// Revoked, it stays revoked across restarts.
	code, out, errOut := runCmd(t, env, "users", "revoke-role", "boss@example.com", "admin")
	if code != exitOK || !strings.Contains(out, "revoked admin") {
		t.Fatalf("revoke-role: %d %s %s", code, out, errOut)
	}
	waitStatus(t, a, "GET", "/v1/audit", tok, http.StatusForbidden)
	a.stop()
	b.stop()
	c := startService(t, env)
	time.Sleep(1500 * time.Millisecond) // the bootstrap loop has had its go
	status, _, body := c.call("GET", "/v1/audit", tok, nil)
	ok(t, "audit after a restart", http.StatusForbidden, status, body)
	if n := count(t, env["DATABASE_URL"], "user.role_granted.v1"); n != 1 {
		t.Errorf("%d grants after the restart, want 1", n)
	}
	_ = bossID
}

// `authledger users grant-role` works from the log with no server
// running; the server started afterwards knows the admin.
func TestGrantRoleCLIWithoutAServer(t *testing.T) {
	t.Parallel()
	env := authzEnv(t, nil)
	r := startService(t, env)
	tok, _ := r.loginAs("ops@example.com")
	r.stop()
	if code, out, errOut := runCmd(t, env, "users", "grant-role", "-for", "1h", "ops@example.com", "auditor"); code != exitOK || !strings.Contains(out, "granted auditor") {
		t.Fatalf("grant-role: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := runCmd(t, env, "users", "grant-role", "nobody@example.com", "admin"); code != exitError || !strings.Contains(errOut, "no user") {
		t.Errorf("grant-role to nobody: %d %s", code, errOut)
	}
	if code, _, errOut := runCmd(t, env, "users", "grant-role", "ops@example.com", "wizard"); code != exitError || !strings.Contains(errOut, "no such role") {
		t.Errorf("grant-role of no role: %d %s", code, errOut)
	}
	r = startService(t, env)
	waitStatus(t, r, "GET", "/v1/audit", tok, http.StatusOK)
}

// admin is a running service with an admin (granted by the CLI) and its
// token.
type admin struct {
	*running
	env map[string]string
	tok string
	id  uuid.UUID
}

func startWithAdmin(t *testing.T, h hooks) admin {
	t.Helper()
	env := authzEnv(t, nil)
	r := startServiceWith(t, env, h)
	tok, id := r.loginAs("root@example.com")
	if code, out, errOut := runCmd(t, env, "users", "grant-role", "root@example.com", "admin"); code != exitOK {
		t.Fatalf("grant-role: %d %s %s", code, out, errOut)
	}
	waitStatus(t, r, "GET", "/v1/admin/users", tok, http.StatusOK)
	return admin{running: r, env: env, tok: tok, id: id}
}

// A custom role inherits its parents' permissions; a cycle is refused; a
// change to a role reaches its holders' live sessions within a second;
// each change is in the audit trail with the admin as actor.
func TestCustomRolesWithInheritanceReachLiveSessions(t *testing.T) {
	t.Parallel()
	a := startWithAdmin(t, hooks{})
	status, _, body := a.call("POST", "/v1/admin/roles", a.tok, map[string]any{"name": "reader", "permissions": []string{"rollout:read"}})
	ok(t, "create reader", http.StatusCreated, status, body)
	status, _, body = a.call("POST", "/v1/admin/roles", a.tok, map[string]any{"name": "support", "description": "Helps users",
		"permissions": []string{"users:write"}, "parents": []string{"reader", "auditor"}})
	ok(t, "create support", http.StatusCreated, status, body)
	status, _, body = a.call("PUT", "/v1/admin/roles/reader", a.tok, map[string]any{"permissions": []string{"rollout:read"}, "parents": []string{"support"}})
	ok(t, "a cycle", http.StatusBadRequest, status, body)
	if !strings.Contains(jsonString(body), "parents") {
		t.Errorf("the cycle's refusal does not name parents: %v", body)
	}
	status, _, body = a.call("DELETE", "/v1/admin/roles/reader", a.tok, nil)
	ok(t, "delete an inherited role", http.StatusConflict, status, body)
	status, _, body = a.call("PUT", "/v1/admin/roles/admin", a.tok, map[string]any{"permissions": []string{}})
	ok(t, "change a built-in role", http.StatusConflict, status, body)

	tok, id := a.loginAs("sam@example.com")
	status, _, body = a.call("GET", "/v1/admin/users", tok, nil)
	ok(t, "a plain user lists users", http.StatusForbidden, status, body)
	status, _, body = a.call("PUT", "/v1/admin/users/"+id.String()+"/roles/support", a.tok, nil)
	ok(t, "grant support", http.StatusOK, status, body)
	// Inherited from reader and from auditor, on the session Sam has.
	waitStatus(t, a.running, "GET", "/v1/admin/rollout", tok, http.StatusOK)
	waitStatus(t, a.running, "GET", "/v1/audit", tok, http.StatusOK)

	// reader loses rollout:read: Sam's same token loses the rollout.
	status, _, body = a.call("PUT", "/v1/admin/roles/reader", a.tok, map[string]any{"permissions": []string{}})
	ok(t, "change reader", http.StatusOK, status, body)
	waitStatus(t, a.running, "GET", "/v1/admin/rollout", tok, http.StatusForbidden)
	// Revoking the grant takes the rest.
	status, revoked, body := a.call("DELETE", "/v1/admin/users/"+id.String()+"/roles/support", a.tok, nil)
	ok(t, "revoke support", http.StatusNoContent, status, body)
	waitStatus(t, a.running, "GET", "/v1/audit", tok, http.StatusForbidden)

	status, _, roles := a.call("GET", "/v1/admin/roles", a.tok, nil)
	ok(t, "list roles", http.StatusOK, status, roles)
	if s := jsonString(roles); !strings.Contains(s, `"support"`) || !strings.Contains(s, `"auditor"`) {
		t.Errorf("roles %s", s)
	}
	// After the revocation's write: the trail is a projection.
	status, _, trail := a.call("GET", "/v1/audit?actor="+a.id.String(), a.tok, nil, "X-Consistency-Token", revoked.Get("X-Consistency-Token"))
	ok(t, "the admin's trail", http.StatusOK, status, trail)
	for _, typ := range []string{"role.created.v1", "role.changed.v1", "user.role_granted.v1", "user.role_revoked.v1"} {
		if !strings.Contains(jsonString(trail), typ) {
			t.Errorf("the admin's trail lacks %s", typ)
		}
	}
}

// A grant with an expiry counts until then and not after, by the clock
// alone (an injected one), without an event.
func TestGrantWithExpiry(t *testing.T) {
	t.Parallel()
	clock := testclock.New()
	a := startWithAdmin(t, hooks{grantClock: clock.Now})
	tok, id := a.loginAs("temp@example.com")
	until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	status, _, body := a.call("PUT", "/v1/admin/users/"+id.String()+"/roles/auditor", a.tok, map[string]any{"expires_at": until})
	ok(t, "grant until", http.StatusOK, status, body)
	waitStatus(t, a.running, "GET", "/v1/audit", tok, http.StatusOK)
	status, _, body = a.call("PUT", "/v1/admin/users/"+id.String()+"/roles/auditor", a.tok, map[string]any{"expires_at": "2001-01-01T00:00:00Z"})
	ok(t, "an expiry in the past", http.StatusBadRequest, status, body)
	before := count(t, a.env["DATABASE_URL"], "user.role_revoked.v1")
	clock.Add(61 * time.Minute)
	status, _, body = a.call("GET", "/v1/audit", tok, nil)
	ok(t, "after the expiry", http.StatusForbidden, status, body)
	status, _, body = a.call("GET", "/v1/me", tok, nil)
	ok(t, "the user role still counts", http.StatusOK, status, body)
	if after := count(t, a.env["DATABASE_URL"], "user.role_revoked.v1"); after != before {
		t.Errorf("an expiry appended a revocation")
	}
}

// Every admin route answers 401 without a token and 403 to a plain user.
func TestAdminRoutesRefuseAPlainUser(t *testing.T) {
	t.Parallel()
	r := startService(t, authzEnv(t, nil))
	tok, _ := r.loginAs("plain@example.com")
	n := 0
	for _, rt := range r.routes {
		if !strings.HasPrefix(rt.Path, "/v1/admin/") {
			continue
		}
		n++
		path := pathParam.ReplaceAllStringFunc(rt.Path, func(string) string { return uuid.NewString() })
		if status, _, body := r.call(rt.Method, path, "", nil); status != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d %v", rt.Method, rt.Path, status, body)
		}
		if status, _, body := r.call(rt.Method, path, tok, nil); status != http.StatusForbidden {
			t.Errorf("%s %s as a plain user: %d %v", rt.Method, rt.Path, status, body)
		}
	}
	if n < 16 {
		t.Errorf("only %d admin routes", n)
	}
}

// refresh presents a refresh token.
func (r *running) refresh(rt string) (int, map[string]any) {
	r.t.Helper()
	status, _, body := r.call("POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": rt})
	return status, body
}

// session logs email in (registered before) and returns its tokens.
func (r *running) session(email string) (access, refresh string) {
	r.t.Helper()
	status, _, body := r.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "a long enough secret"})
	if status != http.StatusOK {
		r.t.Fatalf("login %s: %d %v", email, status, body)
	}
	return body["access_token"].(string), body["refresh_token"].(string)
}

// A force logout ends every session of the user at once on every
// instance: access tokens are refused, refreshes are refused (and revoke
// the session), the user's session list is empty; a new login works.
func TestForceLogout(t *testing.T) {
	t.Parallel()
	a := startWithAdmin(t, hooks{})
	b := startService(t, a.env)
	_, id := a.loginAs("kim@example.com")
	acc1, ref1 := a.session("kim@example.com")
	acc2, _ := a.session("kim@example.com")
	other, _ := a.loginAs("lee@example.com")

	status, hdr, body := a.call("POST", "/v1/admin/users/"+id.String()+"/logout", a.tok, map[string]string{"reason": "lost laptop"})
	ok(t, "force logout", http.StatusNoContent, status, body)
	for _, tok := range []string{acc1, acc2} {
		waitStatus(t, a.running, "GET", "/v1/me", tok, http.StatusUnauthorized)
		waitStatus(t, b, "GET", "/v1/me", tok, http.StatusUnauthorized)
	}
	if status, body := b.refresh(ref1); status != http.StatusUnauthorized {
		t.Errorf("refresh after the force logout: %d %v", status, body)
	}
	status, _, body = a.call("GET", "/v1/admin/users/"+id.String()+"/sessions", a.tok, nil, "X-Consistency-Token", hdr.Get("X-Consistency-Token"))
	ok(t, "sessions", http.StatusOK, status, body)
	if body["total"].(float64) != 0 {
		t.Errorf("sessions after the force logout: %v", body)
	}
	status, _, body = a.call("GET", "/v1/me", other, nil)
	ok(t, "another user's session", http.StatusOK, status, body)
	time.Sleep(time.Second) // the cutoff covers the rest of its second
	acc3, _ := a.session("kim@example.com")
	status, _, body = b.call("GET", "/v1/me", acc3, nil)
	ok(t, "a new login", http.StatusOK, status, body)
}

// Bulk revocation: "every session started before T" for one role's
// holders, then for everyone; later sessions are untouched.
func TestBulkRevocation(t *testing.T) {
	t.Parallel()
	a := startWithAdmin(t, hooks{})
	audTok, audID := a.loginAs("aud@example.com")
	usrTok, _ := a.loginAs("usr@example.com")
	status, _, body := a.call("PUT", "/v1/admin/users/"+audID.String()+"/roles/auditor", a.tok, nil)
	ok(t, "grant auditor", http.StatusOK, status, body)
	waitStatus(t, a.running, "GET", "/v1/audit", audTok, http.StatusOK)

	status, _, body = a.call("POST", "/v1/admin/sessions/revoke", a.tok, map[string]any{"role": "auditor", "reason": "auditor laptop stolen"})
	ok(t, "revoke the auditors' sessions", http.StatusOK, status, body)
	waitStatus(t, a.running, "GET", "/v1/me", audTok, http.StatusUnauthorized)
	status, _, body = a.call("GET", "/v1/me", usrTok, nil)
	ok(t, "a plain user's session", http.StatusOK, status, body)

	status, _, body = a.call("POST", "/v1/admin/sessions/revoke", a.tok, map[string]any{"before": time.Now().Add(time.Hour).Format(time.RFC3339)})
	ok(t, "a cutoff in the future", http.StatusBadRequest, status, body)
	status, _, body = a.call("POST", "/v1/admin/sessions/revoke", a.tok, map[string]any{"role": "wizard"})
	ok(t, "a cutoff for no role", http.StatusBadRequest, status, body)

	status, _, body = a.call("POST", "/v1/admin/sessions/revoke", a.tok, map[string]any{"reason": "key compromise"})
	ok(t, "revoke everyone's", http.StatusOK, status, body)
	for _, tok := range []string{usrTok, a.tok} {
		waitStatus(t, a.running, "GET", "/v1/me", tok, http.StatusUnauthorized)
	}
	time.Sleep(time.Second)
	fresh, _ := a.session("root@example.com")
	status, _, trail := a.call("GET", "/v1/audit?type=sessions.revoked_before.v1", fresh, nil)
	ok(t, "the trail", http.StatusOK, status, trail)
	if s := jsonString(trail); !strings.Contains(s, a.id.String()) || strings.Count(s, "sessions.revoked_before.v1") != 2 {
		t.Errorf("the trail does not show both cutoffs by the admin: %s", s)
	}
}

// Lock, unlock, disable, enable: the account's logins follow; the user
// list shows the state; disabling ends the sessions.
func TestLockAndDisable(t *testing.T) {
	t.Parallel()
	a := startWithAdmin(t, hooks{})
	tok, id := a.loginAs("max@example.com")
	login := func() (int, map[string]any) {
		status, _, body := a.call("POST", "/v1/auth/login", "", map[string]string{"email": "max@example.com", "password": "a long enough secret"})
		return status, body
	}
	path := "/v1/admin/users/" + id.String()
	status, _, body := a.call("POST", path+"/lock", a.tok, map[string]string{"reason": "investigation"})
	ok(t, "lock", http.StatusNoContent, status, body)
	status, body = login()
	if status != http.StatusUnauthorized || !strings.HasSuffix(body["type"].(string), "/account-locked") {
		t.Errorf("login while locked: %d %v", status, body)
	}
	status, _, body = a.call("GET", "/v1/me", tok, nil)
	ok(t, "the open session of a locked account", http.StatusOK, status, body)
	status, _, body = a.call("POST", path+"/unlock", a.tok, nil)
	ok(t, "unlock", http.StatusNoContent, status, body)
	status, body = login()
	ok(t, "login after unlock", http.StatusOK, status, body)

	status, _, body = a.call("POST", path+"/disable", a.tok, nil)
	ok(t, "disable", http.StatusNoContent, status, body)
	waitStatus(t, a.running, "GET", "/v1/me", tok, http.StatusUnauthorized)
	status, body = login()
	if status != http.StatusUnauthorized || !strings.HasSuffix(body["type"].(string), "/account-disabled") {
		t.Errorf("login while disabled: %d %v", status, body)
	}
	status, _, body = a.call("POST", "/v1/auth/login", "", map[string]string{"email": "max@example.com", "password": "the wrong password!"})
	if status != http.StatusUnauthorized || !strings.HasSuffix(body["type"].(string), "/invalid-credentials") {
		t.Errorf("a wrong password for a disabled account: %d %v (must not tell it is disabled)", status, body)
	}
	status, _, body = a.call("GET", "/v1/admin/users?q=max", a.tok, nil)
	ok(t, "users", http.StatusOK, status, body)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(jsonString(body), `"disabled":true`) {
		if time.Now().After(deadline) {
			t.Fatalf("the list never showed the account disabled: %v", body)
		}
		time.Sleep(50 * time.Millisecond)
		_, _, body = a.call("GET", "/v1/admin/users?q=max", a.tok, nil)
	}
	status, _, body = a.call("POST", path+"/enable", a.tok, nil)
	ok(t, "enable", http.StatusNoContent, status, body)
	time.Sleep(time.Second) // past the disable's cutoff second
	status, body = login()
	ok(t, "login after enable", http.StatusOK, status, body)
	status, _, body = a.call("POST", "/v1/admin/users/"+uuid.NewString()+"/lock", a.tok, nil)
	ok(t, "lock of no user", http.StatusNotFound, status, body)

	status, _, trail := a.call("GET", "/v1/audit?actor="+a.id.String(), a.tok, nil)
	ok(t, "trail", http.StatusOK, status, trail)
	for _, typ := range []string{"user.locked_by_admin.v1", "user.unlocked.v1", "user.disabled.v1", "user.enabled.v1"} {
		if !strings.Contains(jsonString(trail), typ) {
			t.Errorf("the admin's trail lacks %s", typ)
		}
	}
}

// jsonString is v as JSON, for substring checks.
func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

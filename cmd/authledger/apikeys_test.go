package main

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/test/pgtest"
	"github.com/authledger/authledger/test/testimage"
)

// keyService starts the service on a fresh database with a master key
// the test knows (to sign an expired token with the service's own keys).
func keyService(t *testing.T) (*running, string, string) {
	t.Helper()
	db := pgtest.NewDatabase(t)
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		t.Fatal(err)
	}
	master := base64.StdEncoding.EncodeToString(k[:])
	r := startService(t, map[string]string{"DATABASE_URL": db, "AUTHLEDGER_MASTER_KEY": master})
	return r, db, master
}

// admin registers admin@example.com, grants it the admin role and
// returns once the grant counts.
func (r *running) admin(db string) (string, uuid.UUID) {
	r.t.Helper()
	access, id := r.loginAs("admin@example.com")
	changeRoles(r.t, db, id, []string{"admin"}, nil)
	waitStatus(r.t, r, "GET", "/v1/admin/service-accounts", access, http.StatusOK)
	return access, id
}

// newKey creates a key by POST path and returns its answer.
func (r *running) newKey(path, bearer string, perms []string, ttl time.Duration) map[string]any {
	r.t.Helper()
	status, _, body := r.call("POST", path, bearer, map[string]any{
		"name": "test key", "permissions": perms, "expires_at": time.Now().Add(ttl).UTC().Format(time.RFC3339)})
	if status != http.StatusCreated {
		r.t.Fatalf("POST %s: %d %v", path, status, body)
	}
	return body
}

// form posts a form-encoded body (the RFC 7662 and 7009 endpoints).
func (r *running) form(path, bearer string, vals url.Values) (int, map[string]any) {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.base+path, strings.NewReader(vals.Encode()))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	status, _, m := r.send(req)
	return status, m
}

func problemSlug(body map[string]any) string {
	s, _ := body["type"].(string)
	return s[strings.LastIndex(s, "/")+1:]
}

// A personal key through the real server: created with some of its
// owner's permissions, used as Bearer, never more than the owner holds
// now (a role revoked from the owner is lost by the key at once),
// listed with its last use, revoked, and expired.
func TestPersonalAPIKeys(t *testing.T) {
	t.Parallel()
	r, db, _ := keyService(t)
	access, alice := r.loginAs("alice@example.com")
	changeRoles(t, db, alice, []string{"auditor"}, nil)
	aliceAdmin := "/v1/admin/users/" + alice.String()
	waitStatus(t, r, "GET", aliceAdmin, access, http.StatusOK)

	// Scopes the owner does not hold are refused (400, the field named).
	status, _, body := r.call("POST", "/v1/me/api-keys", access, map[string]any{
		"name": "too much", "permissions": []string{"users:write"}, "expires_at": time.Now().Add(time.Hour).Format(time.RFC3339)})
	if status != http.StatusBadRequest || problemSlug(body) != "invalid-input" {
		t.Fatalf("a key with a permission the owner lacks: %d %v", status, body)
	}
	status, _, body = r.call("POST", "/v1/me/api-keys", access, map[string]any{
		"name": "", "permissions": []string{}, "expires_at": time.Now().Add(-time.Hour).Format(time.RFC3339)})
	if status != http.StatusBadRequest || len(body["errors"].([]any)) != 3 {
		t.Fatalf("a key without name, permissions or a future expiry: %d %v", status, body)
	}

	created := r.newKey("/v1/me/api-keys", access, []string{"account:read", "users:read"}, time.Hour)
	key := created["key"].(string)
	keyID := created["id"].(string)
	if !strings.HasPrefix(key, "al_"+strings.ReplaceAll(keyID, "-", "")+"_") || len(key) != 3+32+1+43 {
		t.Fatalf("key %q of id %s", key, keyID)
	}
	// The key authenticates as its owner, with its scopes only.
	if status, _, me := r.call("GET", "/v1/me", key, nil); status != http.StatusOK || me["id"] != alice.String() {
		t.Fatalf("GET /v1/me with the key: %d %v", status, me)
	}
	if status, _, _ := r.call("GET", aliceAdmin, key, nil); status != http.StatusOK {
		t.Fatalf("GET %s with the key: %d", aliceAdmin, status)
	}
	if status, _, body := r.call("GET", "/v1/tasks", key, nil); status != http.StatusForbidden {
		t.Fatalf("GET /v1/tasks with a key without tasks:read: %d %v", status, body)
	}
	if status, _, _ := r.call("GET", "/v1/me/api-keys", key, nil); status != http.StatusForbidden {
		t.Fatalf("a key without account:api_keys listed keys: %d", status)
	}
	// The owner loses the auditor role: the key loses users:read at once,
	// and keeps account:read.
	changeRoles(t, db, alice, nil, []string{"auditor"})
	waitStatus(t, r, "GET", aliceAdmin, key, http.StatusForbidden)
	if status, _, _ := r.call("GET", "/v1/me", key, nil); status != http.StatusOK {
		t.Fatalf("GET /v1/me with the key after the owner lost auditor: %d", status)
	}

	// Listed, never with the key; last use shown.
	status, _, list := r.call("GET", "/v1/me/api-keys", access, nil)
	items, _ := list["items"].([]any)
	if status != http.StatusOK || len(items) != 1 {
		t.Fatalf("GET /v1/me/api-keys: %d %v", status, list)
	}
	item := items[0].(map[string]any)
	if item["id"] != keyID || item["key"] != nil || item["last_used_at"] == nil || item["active"] != true {
		t.Fatalf("listed key: %v", item)
	}
	// Another user cannot see or revoke it.
	bobAccess, _ := r.loginAs("bob@example.com")
	if status, _, body := r.call("DELETE", "/v1/me/api-keys/"+keyID, bobAccess, nil); status != http.StatusNotFound {
		t.Fatalf("bob revoking alice's key: %d %v", status, body)
	}
	if _, _, list := r.call("GET", "/v1/me/api-keys", bobAccess, nil); len(list["items"].([]any)) != 0 {
		t.Fatalf("bob's list: %v", list)
	}

	// Revoked: refused at once.
	if status, _, body := r.call("DELETE", "/v1/me/api-keys/"+keyID, access, nil); status != http.StatusNoContent {
		t.Fatalf("revoke: %d %v", status, body)
	}
	if status, hdr, body := r.call("GET", "/v1/me", key, nil); status != http.StatusUnauthorized || problemSlug(body) != "invalid-token" ||
		!strings.Contains(hdr.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("a revoked key: %d %v", status, body)
	}
	if status, _, _ := r.call("DELETE", "/v1/me/api-keys/"+keyID, access, nil); status != http.StatusNoContent {
		t.Fatalf("revoking twice: %d", status)
	}
	_, _, list = r.call("GET", "/v1/me/api-keys", access, nil)
	if item := list["items"].([]any)[0].(map[string]any); item["revoked_at"] == nil || item["active"] != false {
		t.Fatalf("revoked key listed as %v", item)
	}

	// Expired: refused once its expiry passes, without anyone acting.
	short := r.newKey("/v1/me/api-keys", access, []string{"account:read"}, 2*time.Second)["key"].(string)
	if status, _, _ := r.call("GET", "/v1/me", short, nil); status != http.StatusOK {
		t.Fatalf("a fresh key: %d", status)
	}
	waitStatus(t, r, "GET", "/v1/me", short, http.StatusUnauthorized)

	// Garbage in the key's shape, and a key whose secret is wrong.
	for _, bad := range []string{"al_x", key[:len(key)-1] + "A", strings.Replace(key, key[40:48], "AAAAAAAA", 1)} {
		if status, _, _ := r.call("GET", "/v1/me", bad, nil); status != http.StatusUnauthorized {
			t.Errorf("key %q: %d, want 401", bad, status)
		}
	}

	// The log has the events with their actor, the digest and never the
	// key; the last use reached the table without an event per request.
	pool, err := pgxpool.New(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE type IN ('api_key.created.v1', 'api_key.revoked.v1')
		AND metadata->'actor'->>'id' = $1 AND data::text NOT LIKE '%' || $2 || '%'`, alice.String(), key[36:]).Scan(&n); err != nil || n != 3 {
		t.Fatalf("key events by alice without the secret: %d (%v), want 3", n, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var used bool
		err := pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM api_key_last_used WHERE key_id = $1)`, keyID).Scan(&used)
		if err == nil && used {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last use never written: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A service account (no password) gets a key from an admin; the key
// calls the API the OCR worker would need if it spoke HTTP: the worker
// itself claims tasks and reads their files from the log and the blob
// store directly (worker/), so the test shows a service account's key
// reading any user's task and downloading its file (tasks:read:any).
func TestServiceAccountKey(t *testing.T) {
	t.Parallel()
	r, db, _ := keyService(t)
	adminAccess, admin := r.admin(db)
	userAccess, _ := r.loginAs("carol@example.com")

	// A plain user may not create one.
	if status, _, _ := r.call("POST", "/v1/admin/service-accounts", userAccess, map[string]any{"name": "x", "roles": []string{"user"}}); status != http.StatusForbidden {
		t.Fatalf("a user creating a service account: %d", status)
	}
	if status, _, body := r.call("POST", "/v1/admin/service-accounts", adminAccess, map[string]any{"name": "ocr", "roles": []string{"nope"}}); status != http.StatusNotFound {
		t.Fatalf("an unknown role: %d %v", status, body)
	}
	status, _, acct := r.call("POST", "/v1/admin/service-accounts", adminAccess, map[string]any{"name": "OCR worker", "roles": []string{"admin"}})
	if status != http.StatusCreated {
		t.Fatalf("create service account: %d %v", status, acct)
	}
	acctID := acct["id"].(string)
	if status, _, list := r.call("GET", "/v1/admin/service-accounts", adminAccess, nil); status != http.StatusOK ||
		len(list["items"].([]any)) != 1 || list["items"].([]any)[0].(map[string]any)["name"] != "OCR worker" {
		t.Fatalf("list service accounts: %d %v", status, list)
	}
	// Not a service account, or none at all: 404.
	if status, _, _ := r.call("GET", "/v1/admin/service-accounts/"+admin.String()+"/api-keys", adminAccess, nil); status != http.StatusNotFound {
		t.Fatalf("a person's account as a service account: %d", status)
	}
	key := r.newKey("/v1/admin/service-accounts/"+acctID+"/api-keys", adminAccess, []string{"tasks:read", "tasks:read:any"}, time.Hour)
	secret := key["key"].(string)

	// Carol uploads; the service account's key reads her task and file.
	status, _, task := r.upload(userAccess, "scan.png", testimage.BlankPNG(t, 32, 32))
	if status != http.StatusCreated && status != http.StatusAccepted {
		t.Fatalf("upload: %d %v", status, task)
	}
	taskID := task["task_id"].(string)
	waitStatus(t, r, "GET", "/v1/tasks/"+taskID, secret, http.StatusOK)
	_, _, got := r.call("GET", "/v1/tasks/"+taskID, secret, nil)
	files, _ := got["files"].([]any)
	if len(files) != 1 {
		t.Fatalf("task read with the service key: %v", got)
	}
	fileID := files[0].(map[string]any)["file_id"].(string)
	if status, _, _ := r.call("GET", "/v1/tasks/"+taskID+"/files/"+fileID, secret, nil); status != http.StatusOK {
		t.Fatalf("file download with the service key: %d", status)
	}
	// Only what the key holds: no audit trail.
	if status, _, _ := r.call("GET", "/v1/audit", secret, nil); status != http.StatusForbidden {
		t.Fatalf("the service key read the audit trail: %d", status)
	}
	// Listed and revoked by the admin.
	if status, _, list := r.call("GET", "/v1/admin/service-accounts/"+acctID+"/api-keys", adminAccess, nil); status != http.StatusOK || len(list["items"].([]any)) != 1 {
		t.Fatalf("list the account's keys: %d %v", status, list)
	}
	if status, _, _ := r.call("DELETE", "/v1/admin/service-accounts/"+acctID+"/api-keys/"+key["id"].(string), adminAccess, nil); status != http.StatusNoContent {
		t.Fatalf("revoke the account's key: %d", status)
	}
	if status, _, _ := r.call("GET", "/v1/tasks/"+taskID, secret, nil); status != http.StatusUnauthorized {
		t.Fatalf("a revoked service key: %d", status)
	}
}

// signedTokens signs two access tokens for userID's session sid with the
// service's own signing keys (read with its master key): one issued now,
// and one that expired an access-token lifetime ago.
func signedTokens(t *testing.T, db, master string, userID, sid uuid.UUID) (fresh, expired string) {
	t.Helper()
	cfg, err := config.Load(envOf(map[string]string{"DATABASE_URL": db, "AUTHLEDGER_MASTER_KEY": master}))
	if err != nil {
		t.Fatal(err)
	}
	store, err := pg.Open(t.Context(), pg.Config{ConnString: db})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	pool, err := pgxpool.New(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	reg, err := newRegistry()
	if err != nil {
		t.Fatal(err)
	}
	mk, err := keys.ParseMasterKey(master)
	if err != nil {
		t.Fatal(err)
	}
	km, err := newKeyManager(cfg, store, pool, reg, mk)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := km.LoadRing(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	iss, err := token.NewIssuer(tokenConfig(cfg), signNow{ring})
	if err != nil {
		t.Fatal(err)
	}
	if fresh, _, err = iss.Issue(token.Subject{UserID: userID, SessionID: sid}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if expired, _, err = iss.Issue(token.Subject{UserID: userID, SessionID: sid}, time.Now().Add(-2*cfg.Identity.AccessTokenTTL)); err != nil {
		t.Fatal(err)
	}
	return fresh, expired
}

// signNow signs with the key active now, whatever time the token is
// issued at (the service's key is younger than the expired token).
type signNow struct{ ring *keys.KeyRing }

func (s signNow) Signer(time.Time) (*keys.SigningKey, error) { return s.ring.Signer(time.Now()) }

// Introspection (RFC 7662) and revocation (RFC 7009) as another service
// calls them: with a service account's key holding tokens:introspect.
func TestTokenIntrospectionAndRevocation(t *testing.T) {
	t.Parallel()
	r, db, master := keyService(t)
	adminAccess, admin := r.admin(db)
	_, _, acct := r.call("POST", "/v1/admin/service-accounts", adminAccess, map[string]any{"name": "resource server", "roles": []string{"admin"}})
	acctPath := "/v1/admin/service-accounts/" + acct["id"].(string) + "/api-keys"
	introspector := r.newKey(acctPath, adminAccess, []string{"tokens:introspect"}, time.Hour)["key"].(string)
	other := r.newKey(acctPath, adminAccess, []string{"account:read"}, time.Hour)["key"].(string)
	// The account's permissions reach the access follower (it was just
	// created): then the key is authorised.
	waitStatus(t, r, "GET", "/v1/me", other, http.StatusOK)

	status, _, l := r.call("POST", "/v1/auth/login", "", map[string]string{"email": "admin@example.com", "password": "a long enough secret"})
	if status != http.StatusOK {
		t.Fatal(status)
	}
	access, refresh := l["access_token"].(string), l["refresh_token"].(string)
	sid := uuid.MustParse(l["session_id"].(string))

	introspect := func(tok string) map[string]any {
		t.Helper()
		status, body := r.form("/oauth2/introspect", introspector, url.Values{"token": {tok}})
		if status != http.StatusOK {
			t.Fatalf("introspect: %d %v", status, body)
		}
		return body
	}
	// Active: who, which session, what it may do now.
	got := introspect(access)
	if got["active"] != true || got["sub"] != admin.String() || got["sid"] != sid.String() || got["token_type"] != "access_token" ||
		!strings.Contains(got["scope"].(string), "tokens:introspect") {
		t.Fatalf("an active token: %v", got)
	}
	if got := introspect(other); got["active"] != true || got["token_type"] != "api_key" || got["scope"] != "account:read" {
		t.Fatalf("an active API key: %v", got)
	}
	// Inactive: garbage, a refresh token, an expired token (the same
	// keys sign one that is active), each the same answer and nothing more.
	fresh, expired := signedTokens(t, db, master, admin, sid)
	if got := introspect(fresh); got["active"] != true {
		t.Fatalf("a token signed now: %v", got)
	}
	// A refresh token: active while it is its session's current one.
	if got := introspect(refresh); got["active"] != true || got["token_type"] != "refresh_token" || got["sid"] != sid.String() || got["sub"] != admin.String() {
		t.Fatalf("a current refresh token: %v", got)
	}
	status, _, rotated := r.call("POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh})
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, rotated)
	}
	access = rotated["access_token"].(string)
	for name, tok := range map[string]string{
		"garbage": "not a token", "rotated-out refresh token": refresh, "expired": expired,
		"malformed key": "al_0000",
	} {
		if got := introspect(tok); len(got) != 1 || got["active"] != false {
			t.Errorf("%s: %v, want only active false", name, got)
		}
	}
	// The caller: none is 401, one without tokens:introspect 403, a JSON
	// body or no token 400.
	if status, _ := r.form("/oauth2/introspect", "", url.Values{"token": {access}}); status != http.StatusUnauthorized {
		t.Errorf("introspect without a key: %d", status)
	}
	if status, body := r.form("/oauth2/introspect", other, url.Values{"token": {access}}); status != http.StatusForbidden {
		t.Errorf("introspect with a key without tokens:introspect: %d %v", status, body)
	}
	if status, _, _ := r.call("POST", "/oauth2/introspect", introspector, map[string]string{"token": access}); status != http.StatusBadRequest {
		t.Errorf("introspect with JSON: %d", status)
	}
	if status, _ := r.form("/oauth2/introspect", introspector, url.Values{}); status != http.StatusBadRequest {
		t.Errorf("introspect without a token: %d", status)
	}

	// A logout: the token is inactive (the revocation feed, within its
	// lag; this instance applies it at once when it revokes itself).
	status, l = r.form("/oauth2/revoke", introspector, url.Values{"token": {"garbage"}})
	if status != http.StatusOK {
		t.Fatalf("revoking garbage: %d %v", status, l)
	}
	if status, _, _ := r.call("POST", "/v1/auth/logout", access, nil); status != http.StatusNoContent {
		t.Fatalf("logout: %d", status)
	}
	deadline := time.Now().Add(5 * time.Second)
	for introspect(access)["active"] != false {
		if time.Now().After(deadline) {
			t.Fatal("a logged-out session's token stays active")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// RFC 7009: a refresh token ends its session; its access token is
	// inactive at once and refused, the refresh token too.
	_, _, l2 := r.call("POST", "/v1/auth/login", "", map[string]string{"email": "admin@example.com", "password": "a long enough secret"})
	access2, refresh2 := l2["access_token"].(string), l2["refresh_token"].(string)
	if got := introspect(access2); got["active"] != true {
		t.Fatalf("a new session's token: %v", got)
	}
	if status, _ := r.form("/oauth2/revoke", introspector, url.Values{"token": {refresh2}, "token_type_hint": {"refresh_token"}}); status != http.StatusOK {
		t.Fatalf("revoke a refresh token: %d", status)
	}
	if got := introspect(access2); got["active"] != false {
		t.Fatalf("the revoked session's token: %v", got)
	}
	if status, _, _ := r.call("GET", "/v1/me", access2, nil); status != http.StatusUnauthorized {
		t.Fatalf("the revoked session's token used: %d", status)
	}
	if status, _, _ := r.call("POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh2}); status != http.StatusUnauthorized {
		t.Fatalf("the revoked refresh token: %d", status)
	}
	// An access token ends its session too; an API key is revoked.
	_, _, l3 := r.call("POST", "/v1/auth/login", "", map[string]string{"email": "admin@example.com", "password": "a long enough secret"})
	access3 := l3["access_token"].(string)
	if status, _ := r.form("/oauth2/revoke", introspector, url.Values{"token": {access3}}); status != http.StatusOK {
		t.Fatalf("revoke an access token: %d", status)
	}
	if got := introspect(access3); got["active"] != false {
		t.Fatalf("a revoked access token: %v", got)
	}
	if status, _ := r.form("/oauth2/revoke", introspector, url.Values{"token": {other}}); status != http.StatusOK {
		t.Fatalf("revoke an API key: %d", status)
	}
	if got := introspect(other); got["active"] != false {
		t.Fatalf("a revoked API key: %v", got)
	}
	if status, _ := r.form("/oauth2/revoke", other, url.Values{"token": {access}}); status != http.StatusUnauthorized {
		t.Fatalf("revoking with a revoked key: %d", status)
	}

	// Both in the discovery document.
	_, _, disc := r.call("GET", "/.well-known/openid-configuration", "", nil)
	if !strings.HasSuffix(disc["introspection_endpoint"].(string), "/oauth2/introspect") || !strings.HasSuffix(disc["revocation_endpoint"].(string), "/oauth2/revoke") {
		t.Fatalf("discovery: %v", disc)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/test/esdbserver"
	"github.com/authledger/authledger/test/openapitest"
	"github.com/authledger/authledger/test/pgtest"
)

// running is the assembled service listening on a free port.
type running struct {
	t    *testing.T
	base string
	logs *lockedBuffer
	// routes are the engine's registered routes.
	routes gin.RoutesInfo
	// stop shuts the service down (once; the test's cleanup calls it too).
	stop func()
	// console is the web console (nil with AUTHLEDGER_CONSOLE=false);
	// consoleRoutes the routes it registered.
	console       consoleCodec
	consoleRoutes map[string]bool
}

// lockedBuffer collects the log, which background tasks write while the
// test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startService builds the app from env (over testConfig's defaults),
// serves it until the test ends, and returns once it is ready.
func startService(t *testing.T, env map[string]string) *running {
	t.Helper()
	return startServiceWith(t, env, hooks{})
}

// startServiceWith is startService with test hooks (an injected clock).
func startServiceWith(t *testing.T, env map[string]string, h hooks) *running {
	t.Helper()
	vars := map[string]string{
		"AUTHLEDGER_DATA_DIR":        t.TempDir(),
		"AUTHLEDGER_STARTUP_TIMEOUT": "60s",
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load(envOf(vars))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
	if h.mailOut == nil {
		// Without SMTP, mail goes with the log, where a test can read it.
		h.mailOut = logs
	}
	if h.consoleAPI == nil {
		h.consoleAPI = func(api http.Handler) http.Handler { return openapitest.Handler(t, api) }
	}
	a, err := newAppWith(ctx, cfg, testLogger(logs), h)
	if err != nil {
		cancel()
		t.Fatalf("newApp: %v", err)
	}
	// Every exchange of the test is checked against openapi.yaml: the
	// API's, and the console's calls of the API in process; the console's
	// pages are HTML of their own.
	a.handler = consoleAside(a, openapitest.Handler(t, a.handler), a.handler)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.serve(ctx, ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-served; err != nil {
				t.Errorf("serve: %v", err)
			}
			_ = a.close()
		})
	}
	t.Cleanup(stop)
	r := &running{t: t, base: "http://" + ln.Addr().String(), logs: logs, routes: a.engine.Routes(), stop: stop, consoleRoutes: a.consoleRoutes}
	if a.console != nil {
		r.console = a.console
	}
	// As an orchestrator would: traffic once every projection, policy and
	// log follower runs.
	r.waitReady(60 * time.Second)
	return r
}

// call sends a JSON request and decodes a JSON answer.
func (r *running) call(method, path, bearer string, body any, hdr ...string) (int, http.Header, map[string]any) {
	r.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			r.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, r.base+path, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return r.send(req)
}

// send sends req and decodes a JSON answer (nil when it is not JSON).
func (r *running) send(req *http.Request) (int, http.Header, map[string]any) {
	r.t.Helper()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, resp.Header, m
}

// identityFlow is the identity core end to end through the assembled
// service, as a client sees it: register, log in, read with the consistency
// token, refresh, reuse detection, logout biting at once.
func identityFlow(t *testing.T, r *running) {
	t.Helper()
	status, hdr, body := r.call("POST", "/v1/auth/register", "", map[string]string{
		"email": "Flow@Example.com", "password": "a long enough secret", "display_name": "Flow",
	})
	if status != http.StatusCreated || body["user_id"] == nil || hdr.Get("X-Consistency-Token") == "" {
		t.Fatalf("register: %d %v", status, body)
	}
	userID := body["user_id"].(string)
	if status, _, body = r.call("POST", "/v1/auth/register", "", map[string]string{
		"email": "flow@example.COM", "password": "another long secret", "display_name": "Other",
	}); status != http.StatusConflict || !strings.HasSuffix(body["type"].(string), "/email-taken") {
		t.Fatalf("duplicate email in another case: %d %v", status, body)
	}
	status, hdr, tok := r.call("POST", "/v1/auth/login", "", map[string]string{"email": "flow@example.com", "password": "a long enough secret"})
	if status != http.StatusOK || tok["token_type"] != "Bearer" {
		t.Fatalf("login: %d %v", status, tok)
	}
	access, refresh := tok["access_token"].(string), tok["refresh_token"].(string)
	loginToken := hdr.Get("X-Consistency-Token")

	// Read your write: the audit trail shows the registration and the login.
	status, _, page := r.call("GET", "/v1/me/audit", access, nil, "X-Consistency-Token", loginToken)
	if status != http.StatusOK {
		t.Fatalf("me/audit: %d %v", status, page)
	}
	items, _ := page["items"].([]any)
	types := map[string]bool{}
	for _, it := range items {
		types[it.(map[string]any)["type"].(string)] = true
	}
	if !types["user.registered.v1"] || !types["session.started.v1"] {
		t.Fatalf("the caller's audit trail lacks the registration or the login: %v", types)
	}
	status, _, me := r.call("GET", "/v1/me", access, nil, "X-Consistency-Token", loginToken)
	if status != http.StatusOK || me["id"] != userID || me["email"] != "flow@example.com" || me["display_name"] != "Flow" || me["last_login_at"] == nil {
		t.Fatalf("me: %d %v", status, me)
	}
	status, _, sessions := r.call("GET", "/v1/auth/sessions", access, nil, "X-Consistency-Token", loginToken)
	if list, _ := sessions["items"].([]any); status != http.StatusOK || len(list) != 1 || list[0].(map[string]any)["current"] != true {
		t.Fatalf("sessions: %d %v", status, sessions)
	}
	if status, _, body = r.call("GET", "/v1/me/audit", "", nil); status != http.StatusUnauthorized {
		t.Fatalf("me/audit without a token: %d %v", status, body)
	}

	// Rotation, then reuse of the rotated token revokes the session.
	status, _, tok2 := r.call("POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh})
	if status != http.StatusOK || tok2["refresh_token"] == refresh {
		t.Fatalf("refresh: %d %v", status, tok2)
	}
	if status, _, body = r.call("POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh}); status != http.StatusUnauthorized {
		t.Fatalf("reused refresh token: %d %v", status, body)
	}
	if status, _, body = r.call("POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": tok2["refresh_token"].(string)}); status != http.StatusUnauthorized {
		t.Fatalf("the token issued in place of a reused one still works: %d %v", status, body)
	}
	// The revocation reaches the access tokens of the session too.
	waitRejected(t, r, tok2["access_token"].(string))

	// A fresh session; logout bites at once.
	status, _, tok3 := r.call("POST", "/v1/auth/login", "", map[string]string{"email": "FLOW@example.com", "password": "a long enough secret"})
	if status != http.StatusOK {
		t.Fatalf("second login: %d %v", status, tok3)
	}
	if sub := tok3["user"].(map[string]any)["id"]; sub != userID {
		t.Fatalf("login answered user %v, registered %s", sub, userID)
	}
	if status, _, body = r.call("POST", "/v1/auth/logout", tok3["access_token"].(string), nil); status != http.StatusNoContent {
		t.Fatalf("logout: %d %v", status, body)
	}
	waitRejected(t, r, tok3["access_token"].(string))
	if status, _, body = r.call("POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": tok3["refresh_token"].(string)}); status != http.StatusUnauthorized {
		t.Fatalf("refresh after logout: %d %v", status, body)
	}

	// The well-known documents name the public URL.
	status, _, disc := r.call("GET", "/.well-known/openid-configuration", "", nil)
	if status != http.StatusOK || disc["jwks_uri"] == nil {
		t.Fatalf("discovery: %d %v", status, disc)
	}
	status, _, jwks := r.call("GET", "/.well-known/jwks.json", "", nil)
	if keys, _ := jwks["keys"].([]any); status != http.StatusOK || len(keys) == 0 {
		t.Fatalf("jwks: %d %v", status, jwks)
	}
}

// waitRejected polls until the access token is refused: revocation reaches
// the middleware through the log subscription, asynchronously.
func waitRejected(t *testing.T, r *running, access string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, _, _ := r.call("GET", "/v1/me/audit", access, nil)
		if status == http.StatusUnauthorized {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the access token of a revoked session is still accepted (%d)", status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIdentityFlowOnPostgres(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t)})
	identityFlow(t, r)
}

// The same flow with the log in EventStoreDB (the in-process server that
// speaks its gRPC protocol) and the read models in PostgreSQL.
func TestIdentityFlowOnESDB(t *testing.T) {
	t.Parallel()
	srv, err := esdbserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	r := startService(t, map[string]string{
		"DATABASE_URL":           pgtest.NewDatabase(t),
		"AUTHLEDGER_EVENT_STORE": "esdb",
		"ESDB_URL":               srv.URL(),
	})
	identityFlow(t, r)
}

// Without a configured master key, serve creates a development key file
// (mode 0600), says so, and reuses it on the next start.
func TestDevMasterKeyFileIsCreatedAndReused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := pgtest.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": db, "AUTHLEDGER_DATA_DIR": dir}
	first := startService(t, env)
	path := filepath.Join(dir, devMasterKeyFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no development key file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if !strings.Contains(first.logs.String(), "created a development master key file") {
		t.Errorf("serve did not say it created the key file:\n%s", first.logs.String())
	}
	// A second instance on the same database and key file opens the
	// sealed signing keys (a different key would fail start-up).
	second := startService(t, env)
	if !strings.Contains(second.logs.String(), "using the development master key file") {
		t.Errorf("second start did not reuse the key file:\n%s", second.logs.String())
	}
	// A different master key cannot open them: start-up fails, naming why.
	cfg, err := config.Load(envOf(map[string]string{"DATABASE_URL": db, "AUTHLEDGER_DATA_DIR": t.TempDir(),
		"AUTHLEDGER_MASTER_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newApp(t.Context(), cfg, testLogger(io.Discard)); err == nil || !strings.Contains(err.Error(), "another master key") {
		t.Fatalf("newApp with another master key: %v", err)
	}
}

// `keys rotate` adds a key that the servers publish at once and, after the
// overlap, sign with, while the replaced key stays published.
func TestKeysRotate(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_DATA_DIR": t.TempDir(), "AUTHLEDGER_KEY_OVERLAP": "0s"}
	first := startService(t, env)
	jwksKids := func(r *running) []string {
		_, _, jwks := r.call("GET", "/.well-known/jwks.json", "", nil)
		var kids []string
		for _, k := range jwks["keys"].([]any) {
			kids = append(kids, k.(map[string]any)["kid"].(string))
		}
		return kids
	}
	before := jwksKids(first)
	if len(before) != 1 {
		t.Fatalf("a fresh server publishes %v, want one key", before)
	}
	code, out, errOut := runCmd(t, env, "keys", "rotate")
	if code != exitOK || !strings.Contains(out, "added signing key") {
		t.Fatalf("keys rotate: %d\n%s\n%s", code, out, errOut)
	}
	// A server starting now activates the key (overlap 0) and publishes both.
	second := startService(t, env)
	after := jwksKids(second)
	if len(after) != 2 || (after[0] != before[0] && after[1] != before[0]) {
		t.Fatalf("after rotation the JWKS has %v, want the old key %s and a new one", after, before[0])
	}
	if code, _, errOut := runCmd(t, map[string]string{"DATABASE_URL": env["DATABASE_URL"], "AUTHLEDGER_DATA_DIR": t.TempDir()}, "keys", "rotate"); code != exitError || !strings.Contains(errOut, "no development key file") {
		t.Fatalf("keys rotate without the master key: %d %s", code, errOut)
	}
}

// With AUTHLEDGER_MAX_SESSIONS_PER_USER=2 a third login revokes the oldest
// session: its tokens stop working, the two newest stay.
func TestSessionLimitRevokesTheOldest(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_MAX_SESSIONS_PER_USER": "2", "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0"})
	if status, _, body := r.call("POST", "/v1/auth/register", "", map[string]string{"email": "many@example.com", "password": "a long enough secret", "display_name": "M"}); status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, body)
	}
	var toks []map[string]any
	for range 3 {
		status, _, tok := r.call("POST", "/v1/auth/login", "", map[string]string{"email": "many@example.com", "password": "a long enough secret"})
		if status != http.StatusOK {
			t.Fatalf("login: %d %v", status, tok)
		}
		toks = append(toks, tok)
	}
	waitRejected(t, r, toks[0]["access_token"].(string))
	if status, _, body := r.call("POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": toks[0]["refresh_token"].(string)}); status != http.StatusUnauthorized {
		t.Fatalf("refresh of the revoked oldest session: %d %v", status, body)
	}
	// The sessions read model follows the revocation a moment later.
	var items []any
	var list map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; {
		var status int
		status, _, list = r.call("GET", "/v1/auth/sessions", toks[2]["access_token"].(string), nil)
		items, _ = list["items"].([]any)
		if status == http.StatusOK && len(items) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions after the third login: %d %v", status, list)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, it := range items {
		if it.(map[string]any)["id"] == toks[0]["session_id"] {
			t.Fatalf("the oldest session is still listed: %v", list)
		}
	}
}

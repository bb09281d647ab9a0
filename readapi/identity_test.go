package readapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authledger/authledger/test/identitytest"

	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/authn"
	"github.com/authledger/authledger/httpapi/errtable"
	httpidentity "github.com/authledger/authledger/httpapi/identity"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/projections/userviews"
	"github.com/authledger/authledger/readapi"
	"github.com/authledger/authledger/test/openapitest"
)

// idServer is the whole identity stack on one real gin engine: the write
// endpoints (httpapi/identity), the real Bearer middleware, and
// readapi.Mount on the /v1 group behind it, over a runner of the two
// identity projections.
type idServer struct {
	t      *testing.T
	ctx    context.Context
	env    *projtest.Env
	engine http.Handler
	runner *projector.Runner
	// skew moves the read API's clock (nanoseconds), to expire sessions.
	skew  atomic.Int64
	start func()
}

func newIdentityServer(t *testing.T, startRunner bool) *idServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	env := projtest.New(t)
	s := &idServer{t: t, ctx: ctx, env: env}

	st := identitytest.New(t, ctx, env.Store, env.Store.Pool())
	rev := st.Revocations(t, env.Store, env.Store.Pool())

	profiles, sessProj := userviews.NewProfiles(), userviews.NewSessions()
	// /v1/me reads the external identities too.
	r, err := projector.NewRunner(env.Config(profiles, sessProj, userviews.NewExternalIdentities(), userviews.NewEmailVerifications(), userviews.NewPrivacy()))
	if err != nil {
		t.Fatal(err)
	}
	s.runner = r
	var once sync.Once
	s.start = func() {
		once.Do(func() {
			rctx, rcancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- r.Run(rctx) }()
			t.Cleanup(func() {
				rcancel()
				if err := <-done; err != nil {
					t.Errorf("runner: %v", err)
				}
			})
		})
	}
	if startRunner {
		s.start()
	} else if err := projector.Setup(ctx, env.Pool, profiles, sessProj); err != nil {
		// The views exist (as in a server, whose runner sets them up
		// before serving), but nothing is applied yet.
		t.Fatal(err)
	}

	engine, err := httpapi.New(httpapi.Config{Logger: slog.New(slog.DiscardHandler), OpenAPI: []byte("openapi: 3.1.0\n"), Errors: errtable.Table()})
	if err != nil {
		t.Fatal(err)
	}
	auth := authn.Middleware(st.Verifier, rev, authn.WithPermissions(st.Access(t, env.Store)))
	err = httpidentity.Mount(&engine.RouterGroup, httpidentity.Deps{
		Register:   st.Register,
		Login:      st.Login,
		Refresh:    st.Refresh,
		Revoke:     st.Revoke,
		Auth:       auth,
		Ring:       st.Ring,
		PublicURL:  identitytest.Issuer,
		Algorithms: []string{"ES256"},
	})
	if err != nil {
		t.Fatal(err)
	}
	v1 := engine.Group("/v1", auth)
	err = readapi.Mount(v1, readapi.Deps{
		Pool: env.Pool, Waiter: projector.NewWaiter(env.Pool, r, 0), ConsistencyTimeout: 2 * time.Second,
		Now:       func() time.Time { return time.Now().Add(time.Duration(s.skew.Load())) },
		Authorize: refuseTaskReads,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.engine = engine
	return s
}

type idReply struct {
	code int
	hdr  http.Header
	body []byte
}

func (r idReply) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

// do sends a request from ip with user agent ua; hdr are header pairs.
func (s *idServer) do(method, path, bearer string, body any, hdr ...string) idReply {
	s.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req := httptest.NewRequest(method, path, rd).WithContext(s.ctx)
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = "198.51.100.7:40000"
	req.Header.Set("User-Agent", "idtest/1.0")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	openapitest.Handler(s.t, s.engine).ServeHTTP(w, req)
	return idReply{code: w.Code, hdr: w.Header(), body: w.Body.Bytes()}
}

type loggedIn struct {
	access, sessionID, consistency string
}

func (s *idServer) register(email, name string) (userID, consistency string) {
	s.t.Helper()
	r := s.do("POST", "/v1/auth/register", "", map[string]string{"email": email, "password": "correct horse battery", "display_name": name})
	var b struct {
		UserID string `json:"user_id"`
	}
	if r.code != http.StatusCreated {
		s.t.Fatalf("register %s: %d %s", email, r.code, r.body)
	}
	r.json(s.t, &b)
	return b.UserID, r.hdr.Get(httpapi.HeaderConsistencyToken)
}

func (s *idServer) login(email, ua string) loggedIn {
	s.t.Helper()
	r := s.do("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "correct horse battery"}, "User-Agent", ua)
	if r.code != http.StatusOK {
		s.t.Fatalf("login %s: %d %s", email, r.code, r.body)
	}
	var b struct {
		AccessToken string `json:"access_token"`
		SessionID   string `json:"session_id"`
	}
	r.json(s.t, &b)
	return loggedIn{access: b.AccessToken, sessionID: b.SessionID, consistency: r.hdr.Get(httpapi.HeaderConsistencyToken)}
}

func (s *idServer) sessions(l loggedIn, token string, query string) readapi.SessionsPage {
	s.t.Helper()
	var hdr []string
	if token != "" {
		hdr = []string{httpapi.HeaderConsistencyToken, token}
	}
	r := s.do("GET", "/v1/auth/sessions"+query, l.access, nil, hdr...)
	if r.code != http.StatusOK {
		s.t.Fatalf("sessions: %d %s", r.code, r.body)
	}
	var p readapi.SessionsPage
	r.json(s.t, &p)
	return p
}

func TestIdentityReadEndpoints(t *testing.T) {
	t.Parallel()
	s := newIdentityServer(t, true)
	aliceID, _ := s.register("Alice@Example.com", "Alice")
	bobID, _ := s.register("bob@example.com", "Bob")
	a1 := s.login("alice@example.com", "Firefox/140")
	a2 := s.login("ALICE@example.com", "curl/8")
	b1 := s.login("bob@example.com", "Bob's phone")

	// /v1/me: read your writes with the login's token.
	r := s.do("GET", "/v1/me", a1.access, nil, httpapi.HeaderConsistencyToken, a2.consistency)
	if r.code != http.StatusOK || r.hdr.Get("Cache-Control") != "private, no-store" {
		t.Fatalf("me: %d %s", r.code, r.body)
	}
	var me map[string]any
	r.json(t, &me)
	if me["id"] != aliceID || me["email"] != "alice@example.com" || me["display_name"] != "Alice" ||
		len(me) != 11 || me["email_verified"] != false || me["created_at"] == nil || me["last_login_at"] == nil {
		t.Fatalf("me = %v", me)
	}
	if roles, _ := me["roles"].([]any); len(roles) != 1 || roles[0] != user.DefaultRole {
		t.Fatalf("roles = %v", me["roles"])
	}
	// Never linked: the external members are there, and null.
	if v, ok := me["external_user_id"]; !ok || v != nil {
		t.Errorf("external_user_id = %v (present %v)", v, ok)
	}
	if v, ok := me["provider_email"]; !ok || v != nil {
		t.Errorf("provider_email = %v (present %v)", v, ok)
	}
	var typed readapi.MeResponse
	r.json(t, &typed)
	if typed.LastLoginAt.Before(typed.CreatedAt) {
		t.Fatalf("last login %s before registration %s", typed.LastLoginAt, typed.CreatedAt)
	}
	r = s.do("GET", "/v1/me", b1.access, nil, httpapi.HeaderConsistencyToken, b1.consistency)
	r.json(t, &me)
	if me["id"] != bobID || me["email"] != "bob@example.com" {
		t.Fatalf("bob's me = %v", me)
	}

	// Sessions: Alice's two, the caller's marked current, Bob's never.
	p := s.sessions(a2, a2.consistency, "")
	if p.Total != 2 || len(p.Items) != 2 || p.Page != 1 || p.PageSize != readapi.DefaultPageSize {
		t.Fatalf("alice's sessions = %+v", p)
	}
	// Newest login first.
	if p.Items[0].ID.String() != a2.sessionID || !p.Items[0].Current || p.Items[1].ID.String() != a1.sessionID || p.Items[1].Current {
		t.Fatalf("order or current wrong: %+v", p.Items)
	}
	it := p.Items[0]
	if it.IP != "198.51.100.7" || it.UserAgent != "curl/8" || it.Method != session.MethodPassword || len(it.AMR) != 1 ||
		it.StartedAt.IsZero() || !it.LastUsedAt.Equal(it.StartedAt) || !it.ExpiresAt.After(it.StartedAt) {
		t.Fatalf("item = %+v", it)
	}
	// The same list through a1's token marks a1.
	p = s.sessions(a1, "", "")
	if !p.Items[1].Current || p.Items[0].Current {
		t.Fatalf("current from a1 = %+v", p.Items)
	}
	p = s.sessions(b1, b1.consistency, "")
	if p.Total != 1 || p.Items[0].ID.String() != b1.sessionID || !p.Items[0].Current {
		t.Fatalf("bob's sessions = %+v", p)
	}
	p = s.sessions(a2, "", "?page=2&page_size=1")
	if p.Total != 2 || len(p.Items) != 1 || p.Items[0].ID.String() != a1.sessionID || p.Page != 2 || p.PageSize != 1 {
		t.Fatalf("second page = %+v", p)
	}

	// Logout of a1: gone from the list once the token is honoured.
	r = s.do("POST", "/v1/auth/logout", a1.access, nil)
	if r.code != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.code, r.body)
	}
	p = s.sessions(a2, r.hdr.Get(httpapi.HeaderConsistencyToken), "")
	if p.Total != 1 || len(p.Items) != 1 || p.Items[0].ID.String() != a2.sessionID {
		t.Fatalf("after logout = %+v", p)
	}
	// Deleting a2 from a2 itself: the list is empty (and the token dies).
	r = s.do("DELETE", "/v1/auth/sessions/"+a2.sessionID, a2.access, nil)
	if r.code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
	a3 := s.login("alice@example.com", "Safari/18")
	if p = s.sessions(a3, a3.consistency, ""); p.Total != 1 || p.Items[0].ID.String() != a3.sessionID {
		t.Fatalf("after delete and a new login = %+v", p)
	}

	// Expired sessions are left out: a clock past the absolute lifetime.
	s.skew.Store(int64(session.DefaultPolicy().AbsoluteLifetime + time.Minute))
	if p = s.sessions(a3, "", ""); p.Total != 0 || len(p.Items) != 0 || p.Items == nil {
		t.Fatalf("expired sessions listed: %+v", p)
	}
	s.skew.Store(0)

	for _, c := range []struct {
		name, method, path, bearer string
		hdr                        []string
		status                     int
		slug                       string
	}{
		{"me without token", "GET", "/v1/me", "", nil, 401, "unauthenticated"},
		{"sessions without token", "GET", "/v1/auth/sessions", "", nil, 401, "unauthenticated"},
		{"me with a forged token", "GET", "/v1/me", a3.access + "x", nil, 401, "invalid-token"},
		{"page_size too large", "GET", "/v1/auth/sessions?page_size=101", a3.access, nil, 400, "invalid-input"},
		{"page zero", "GET", "/v1/auth/sessions?page=0", a3.access, nil, 400, "invalid-input"},
		{"malformed consistency token", "GET", "/v1/me", a3.access, []string{httpapi.HeaderConsistencyToken, "nope"}, 400, "invalid-input"},
		{"unreached consistency token", "GET", "/v1/me", a3.access, []string{httpapi.HeaderConsistencyToken, eventstore.Position{Commit: 1 << 40}.String()}, 503, "unavailable"},
		{"unreached consistency token on sessions", "GET", "/v1/auth/sessions", a3.access, []string{httpapi.HeaderConsistencyToken, eventstore.Position{Commit: 1 << 40}.String()}, 503, "unavailable"},
	} {
		r := s.do(c.method, c.path, c.bearer, nil, c.hdr...)
		var prob struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(r.body, &prob)
		if r.code != c.status || prob.Type != "https://authledger.dev/problems/"+c.slug || r.hdr.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s %s", c.name, r.code, r.hdr.Get("Content-Type"), r.body)
		}
		if c.status == 503 && r.hdr.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", c.name)
		}
	}
}

// With the projections stopped, the consistency token of a login makes
// /v1/me wait and answer 503; without one the caller briefly gets 404 (the
// documented window). Once the runner runs, the same token gets the
// profile.
func TestMeWaitsForTheConsistencyToken(t *testing.T) {
	t.Parallel()
	s := newIdentityServer(t, false)
	id, _ := s.register("erin@example.com", "Erin")
	l := s.login("erin@example.com", "ua")

	if r := s.do("GET", "/v1/me", l.access, nil); r.code != http.StatusNotFound {
		t.Fatalf("before the projection ran, without a token: %d %s", r.code, r.body)
	}
	if r := s.do("GET", "/v1/me", l.access, nil, httpapi.HeaderConsistencyToken, l.consistency); r.code != http.StatusServiceUnavailable {
		t.Fatalf("before the projection ran, with the token: %d %s", r.code, r.body)
	}
	s.start()
	r := s.do("GET", "/v1/me", l.access, nil, httpapi.HeaderConsistencyToken, l.consistency)
	// The runner may still be setting up: a 503 is a retry, as for a client.
	for deadline := time.Now().Add(20 * time.Second); r.code == http.StatusServiceUnavailable && time.Now().Before(deadline); {
		r = s.do("GET", "/v1/me", l.access, nil, httpapi.HeaderConsistencyToken, l.consistency)
	}
	var me readapi.MeResponse
	if r.code != http.StatusOK {
		t.Fatalf("after start: %d %s", r.code, r.body)
	}
	r.json(t, &me)
	if me.ID.String() != id || me.LastLoginAt == nil {
		t.Fatalf("me = %+v", me)
	}
	// The same token makes the session list complete too.
	if p := s.sessions(l, l.consistency, ""); p.Total != 1 || !p.Items[0].Current {
		t.Fatalf("sessions = %+v", p)
	}
}

func TestMountValidates(t *testing.T) {
	t.Parallel()
	engine, err := httpapi.New(httpapi.Config{Logger: slog.New(slog.DiscardHandler), OpenAPI: []byte("openapi: 3.1.0\n")})
	if err != nil {
		t.Fatal(err)
	}
	err = readapi.Mount(engine.Group("/v1"), readapi.Deps{ConsistencyTimeout: -1})
	if err == nil {
		t.Fatal("empty Deps were accepted")
	}
	for _, want := range []string{"Pool", "Waiter", "Authorize", "ConsistencyTimeout"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

package identity_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/authledger/authledger/test/identitytest"

	"github.com/gin-gonic/gin"
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/authn"
	"github.com/authledger/authledger/httpapi/errtable"
	"github.com/authledger/authledger/httpapi/identity"
	"github.com/authledger/authledger/httpapi/ratelimit"
	"github.com/authledger/authledger/migrations"
	"github.com/authledger/authledger/test/openapitest"
	"github.com/authledger/authledger/test/pgtest"
)

type client struct {
	t   *testing.T
	url string
}

// reply is what a test reads of a response; do has closed the body.
type reply struct {
	StatusCode int
	Header     http.Header
}

func (c client) do(method, path, authz string, body any, hdr ...string) (reply, map[string]any) {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = bytes.NewBufferString(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, c.url+path, r)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-ID", "test-req-1")
	if authz != "" {
		req.Header.Set("Authorization", "Bearer "+authz)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return reply{StatusCode: resp.StatusCode, Header: resp.Header}, m
}

// serverOption adjusts the stack or the routes of a test server.
type serverOption func(*identitytest.Stack, *identity.Deps)

func withRateLimit(p ratelimit.Policy) serverOption {
	return func(_ *identitytest.Stack, d *identity.Deps) {
		l, err := ratelimit.New(p, ratelimit.Options{AccountSecret: []byte("a test account-key secret")})
		if err != nil {
			panic(err)
		}
		d.RateLimit = l
	}
}

func newServer(t *testing.T, opts ...serverOption) client {
	t.Helper()
	c, _ := newServerAndStack(t, opts...)
	return c
}

// newServerAndStack also returns the command stack, for a test that writes
// to the log what an older version would have.
func newServerAndStack(t *testing.T, opts ...serverOption) (client, *identitytest.Stack) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	url := pgtest.NewDatabase(t)
	if err := migrations.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	store, err := pg.Open(ctx, pg.Config{ConnString: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	st := identitytest.New(t, ctx, store, store.Pool())
	rev := st.Revocations(t, store, store.Pool())
	// The loopback peer is a trusted proxy, so a test names the client's
	// address in X-Forwarded-For.
	engine, err := httpapi.New(httpapi.Config{Logger: slog.New(slog.DiscardHandler), OpenAPI: []byte("openapi: 3.1.0"),
		TrustedProxies: []string{"127.0.0.1", "::1"}, Errors: errtable.Table()})
	if err != nil {
		t.Fatal(err)
	}
	deps := identity.Deps{
		Register:   st.Register,
		Login:      st.Login,
		Refresh:    st.Refresh,
		Revoke:     st.Revoke,
		Auth:       authn.Middleware(st.Verifier, rev, authn.WithPermissions(st.Access(t, store))),
		Ring:       st.Ring,
		PublicURL:  identitytest.Issuer,
		Algorithms: []string{"ES256"},
	}
	for _, o := range opts {
		o(st, &deps)
	}
	if err := identity.Mount(&engine.RouterGroup, deps); err != nil {
		t.Fatal(err)
	}
	// A protected route of the test's own: it answers 204 exactly when the
	// authentication middleware accepts the token.
	engine.GET("/v1/auth/probe", authn.Middleware(st.Verifier, rev), func(c *gin.Context) { c.Status(http.StatusNoContent) })
	srv := httptest.NewServer(openapitest.Handler(t, engine, openapitest.TestRoutes("GET /v1/auth/probe")))
	t.Cleanup(srv.Close)
	return client{t: t, url: srv.URL}, st
}

func TestIdentityFlow(t *testing.T) {
	t.Parallel()
	c := newServer(t)
	reg := map[string]string{"email": "Dave@Example.com", "password": "correct horse battery", "display_name": "Dave"}
	resp, body := c.do("POST", "/v1/auth/register", "", reg)
	if resp.StatusCode != http.StatusCreated || body["user_id"] == nil || resp.Header.Get("X-Consistency-Token") == "" || resp.Header.Get("X-Request-ID") != "test-req-1" {
		t.Fatalf("register: %d %v", resp.StatusCode, body)
	}
	reg["email"] = "dave@EXAMPLE.COM"
	if resp, body = c.do("POST", "/v1/auth/register", "", reg); resp.StatusCode != http.StatusConflict {
		t.Fatalf("duplicate: %d %v", resp.StatusCode, body)
	}
	if resp, _ = c.do("POST", "/v1/auth/register", "", "{not json"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed: %d", resp.StatusCode)
	}
	resp, body = c.do("POST", "/v1/auth/register", "", map[string]string{"email": "eve@example.com", "password": "short", "display_name": "Eve"})
	if errs, _ := body["errors"].([]any); resp.StatusCode != http.StatusBadRequest || len(errs) != 1 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("weak password: %d %v", resp.StatusCode, body)
	}

	_, unknown := c.do("POST", "/v1/auth/login", "", map[string]string{"email": "nobody@example.com", "password": "whatever it is"})
	resp, wrong := c.do("POST", "/v1/auth/login", "", map[string]string{"email": "dave@example.com", "password": "wrong password!"})
	delete(unknown, "instance")
	delete(wrong, "instance")
	if resp.StatusCode != http.StatusUnauthorized || !equalJSON(unknown, wrong) {
		t.Fatalf("unknown vs wrong: %v %v", unknown, wrong)
	}

	resp, tok := c.do("POST", "/v1/auth/login", "", map[string]string{"email": "dave@example.com", "password": "correct horse battery"})
	if resp.StatusCode != http.StatusOK || tok["token_type"] != "Bearer" || resp.Header.Get("X-Consistency-Token") == "" {
		t.Fatalf("login: %d %v", resp.StatusCode, tok)
	}
	access := tok["access_token"].(string)

	// The JWT verifies with go-jose against the served JWKS.
	_, jwksBody := c.do("GET", "/.well-known/jwks.json", "", nil)
	raw, _ := json.Marshal(jwksBody)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks: %v", err)
	}
	parsed, err := josejwt.ParseSigned(access, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var claims josejwt.Claims
	if err := parsed.Claims(set.Keys[0].Key, &claims); err != nil || claims.Issuer != "http://id.example.test" {
		t.Fatalf("go-jose verify: %v %+v", err, claims)
	}
	_, disc := c.do("GET", "/.well-known/openid-configuration", "", nil)
	if disc["issuer"] != "http://id.example.test" || disc["jwks_uri"] != "http://id.example.test/.well-known/jwks.json" {
		t.Fatalf("discovery: %v", disc)
	}

	// Refresh rotation and reuse detection.
	resp, tok2 := c.do("POST", "/v1/auth/refresh", "", map[string]any{"refresh_token": tok["refresh_token"]})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh: %d %v", resp.StatusCode, tok2)
	}
	if resp, _ = c.do("POST", "/v1/auth/refresh", "", map[string]any{"refresh_token": tok["refresh_token"]}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("reuse: %d", resp.StatusCode)
	}
	if resp, _ = c.do("POST", "/v1/auth/refresh", "", map[string]any{"refresh_token": tok2["refresh_token"]}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("newer after reuse: %d", resp.StatusCode)
	}

	// Logout revokes the access token within a second.
	_, tok3 := c.do("POST", "/v1/auth/login", "", map[string]string{"email": "dave@example.com", "password": "correct horse battery"})
	a3 := tok3["access_token"].(string)
	if resp, _ = c.do("DELETE", "/v1/auth/sessions/not-a-uuid", a3, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("non-uuid: %d", resp.StatusCode)
	}
	if resp, _ = c.do("POST", "/v1/auth/logout", a3, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	// The revocation travels through the log subscription: poll, with a
	// bound generous enough for a loaded CI machine (the contract's one
	// second is a latency goal, not something a test can time reliably).
	c.waitRejected(a3)
	if resp, _ = c.do("POST", "/v1/auth/logout", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("logout without token: %d", resp.StatusCode)
	}
}

// waitRejected polls until the access token is refused.
func (c client) waitRejected(access string) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, _ := c.do("GET", "/v1/auth/probe", access, nil); resp.StatusCode == http.StatusUnauthorized {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatal("the access token of a revoked session is still accepted")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Deleting one of my sessions from another one: its refresh token and its
// access tokens stop working; another user's session is not found.
func TestDeleteSession(t *testing.T) {
	t.Parallel()
	c := newServer(t)
	login := func(email string) map[string]any {
		t.Helper()
		if resp, body := c.do("POST", "/v1/auth/register", "", map[string]string{"email": email, "password": "a good long password", "display_name": "X"}); resp.StatusCode != http.StatusCreated {
			t.Fatalf("register: %d %v", resp.StatusCode, body)
		}
		resp, tok := c.do("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "a good long password"})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("login: %d %v", resp.StatusCode, tok)
		}
		return tok
	}
	laptop := login("sam@example.com")
	resp, phone := c.do("POST", "/v1/auth/login", "", map[string]string{"email": "sam@example.com", "password": "a good long password"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("second login: %d %v", resp.StatusCode, phone)
	}
	other := login("kim@example.com")

	if resp, body := c.do("DELETE", "/v1/auth/sessions/"+other["session_id"].(string), laptop["access_token"].(string), nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("deleting another user's session: %d %v", resp.StatusCode, body)
	}
	if resp, body := c.do("DELETE", "/v1/auth/sessions/"+phone["session_id"].(string), laptop["access_token"].(string), nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("deleting my other session: %d %v", resp.StatusCode, body)
	}
	c.waitRejected(phone["access_token"].(string))
	if resp, body := c.do("POST", "/v1/auth/refresh", "", map[string]any{"refresh_token": phone["refresh_token"]}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("refresh of a deleted session: %d %v", resp.StatusCode, body)
	}
	// The session that deleted it and the other user's are untouched.
	for _, tok := range []map[string]any{laptop, other} {
		if resp, body := c.do("GET", "/v1/auth/probe", tok["access_token"].(string), nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("an unrelated session was affected: %d %v", resp.StatusCode, body)
		}
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	c := newServer(t, withRateLimit(ratelimit.Policy{IP: ratelimit.Rate{PerSecond: 0.01, Burst: 2}}))
	for i := range 3 {
		resp, _ := c.do("POST", "/v1/auth/login", "", map[string]string{"email": "x@example.com", "password": "whatever it is"})
		if i < 2 && resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, resp.StatusCode)
		}
		if i == 2 && (resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "") {
			t.Fatalf("limited: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
}

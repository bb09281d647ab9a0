package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/authledger/authledger/test/pgtest"
	"github.com/authledger/authledger/test/upstreamfakes"
)

// faultyMock is mockoidc on 127.0.0.1 whose token endpoint answers 503
// while down is set, counting the token requests that reach it.
type faultyMock struct {
	*mockoidc.MockOIDC
	down       atomic.Bool
	tokenCalls atomic.Int64
}

func startFaultyMock(t *testing.T) *faultyMock {
	t.Helper()
	srv, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &faultyMock{MockOIDC: srv}
	if err := srv.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == mockoidc.TokenEndpoint {
				f.tokenCalls.Add(1)
				if f.down.Load() {
					http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown() })
	return f
}

// upstreamRig starts mockoidc, the GitHub-shaped fake and the service
// configured for both (extra overrides the settings).
func upstreamRig(t *testing.T, provision bool, extra map[string]string) (*running, *faultyMock, *upstreamfakes.GitHub, string) {
	t.Helper()
	db := pgtest.NewDatabase(t)
	m := startFaultyMock(t)
	gh := upstreamfakes.NewGitHub(t)
	env := upstreamEnv(t, m.MockOIDC, gh, db, provision)
	for k, v := range extra {
		env[k] = v
	}
	return startService(t, env), m, gh, db
}

// register creates a password account.
func (r *running) register(email, password string) {
	r.t.Helper()
	if st, _, p := r.call("POST", "/v1/auth/register", "", map[string]string{"email": email, "password": password, "display_name": "Someone"}); st != http.StatusCreated {
		r.t.Fatalf("register %s: %d %v", email, st, p)
	}
}

// tamperedUser is a mockoidc account whose ID token the provider signs
// with claims changed by tamper: a token that is validly signed but wrong
// in one respect.
type tamperedUser struct {
	*mockoidc.MockUser
	tamper func(*mockoidc.IDTokenClaims)
}

func (u tamperedUser) Claims(scope []string, c *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	u.tamper(c)
	return u.MockUser.Claims(scope, c)
}

func expectProblem(t *testing.T, what string, st int, body string, wantStatus int, wantType string) {
	t.Helper()
	if st != wantStatus || !strings.Contains(body, wantType) {
		t.Fatalf("%s: %d %s, want %d %s", what, st, body, wantStatus, wantType)
	}
}

// The provider's answers that do not check out: a token with another
// nonce, for another audience, or expired, and a code bound to another
// PKCE challenge (an attacker's code injected into a victim's callback:
// the provider refuses our verifier). Each is refused before anyone is
// signed in or provisioned.
func TestUpstreamSignInTokenChecks(t *testing.T) {
	r, m, _, db := upstreamRig(t, true, nil)

	for _, tc := range []struct {
		name   string
		tamper func(*mockoidc.IDTokenClaims)
	}{
		{"wrong nonce", func(c *mockoidc.IDTokenClaims) { c.Nonce = "not-the-nonce-we-sent" }},
		{"no nonce", func(c *mockoidc.IDTokenClaims) { c.Nonce = "" }},
		{"another audience", func(c *mockoidc.IDTokenClaims) { c.Audience = jwt.ClaimStrings{"some-other-client"} }},
		{"expired", func(c *mockoidc.IDTokenClaims) {
			past := time.Now().Add(-2 * time.Hour)
			c.IssuedAt, c.NotBefore, c.ExpiresAt = jwt.NewNumericDate(past), jwt.NewNumericDate(past), jwt.NewNumericDate(past.Add(10*time.Minute))
		}},
		{"another issuer", func(c *mockoidc.IDTokenClaims) { c.Issuer = "http://127.0.0.1:1/elsewhere" }},
	} {
		m.QueueUser(tamperedUser{MockUser: &mockoidc.MockUser{Subject: "tampered", Email: "tampered@example.com", EmailVerified: true}, tamper: tc.tamper})
		_, st, body := newBrowser(t, r.base).signIn("mock")
		expectProblem(t, tc.name, st, body, http.StatusUnauthorized, "upstream-sign-in-failed")
	}

	// PKCE: the code was issued for another flow's challenge.
	b := newBrowser(t, r.base)
	noFollow := *b.c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	// location is where the 302 of u points.
	location := func(u string) *url.URL {
		resp, err := noFollow.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("%s: %d, no Location", u, resp.StatusCode)
		}
		return loc
	}
	authorize := location(r.base + "/v1/auth/oidc/mock/start?redirect_uri=" + url.QueryEscape(spaURL))
	q := authorize.Query()
	sum := sha256.Sum256([]byte("the attacker's own verifier, not derived from this state"))
	q.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
	authorize.RawQuery = q.Encode()
	m.QueueUser(&mockoidc.MockUser{Subject: "pkce", Email: "pkce@example.com", EmailVerified: true})
	callback := location(authorize.String())
	resp, err := noFollow.Get(r.base + callback.RequestURI())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	expectProblem(t, "code for another PKCE challenge", resp.StatusCode, string(body), http.StatusUnauthorized, "upstream-sign-in-failed")

	// Nothing of these was signed in: no sign-in and no user in the log.
	if n := countEvents(t, db, "user.external_signed_in.v1"); n != 0 {
		t.Fatalf("%d sign-ins recorded for refused tokens", n)
	}
	if n := countEvents(t, db, "user.registered.v1"); n != 0 {
		t.Fatalf("%d users provisioned for refused tokens", n)
	}
}

func countEvents(t *testing.T, db, typ string) int {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE type = $1`, typ).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// With provisioning on, an unverified address neither provisions nor
// links (the victim's address included), and each refusal is an event.
func TestUpstreamUnverifiedAddressWithProvisioning(t *testing.T) {
	r, m, gh, db := upstreamRig(t, true, nil)
	r.register("victim@example.com", "a long victim password")
	m.QueueUser(&mockoidc.MockUser{Subject: "new-unverified", Email: "new@example.com", EmailVerified: false})
	_, st, body := newBrowser(t, r.base).signIn("mock")
	expectProblem(t, "unverified, no account", st, body, http.StatusForbidden, "upstream-sign-in-refused")
	m.QueueUser(&mockoidc.MockUser{Subject: "attacker", Email: "victim@example.com", EmailVerified: false})
	_, st2, body2 := newBrowser(t, r.base).signIn("mock")
	// The same answer whether or not an account has the address.
	expectProblem(t, "unverified, victim's address", st2, body2, st, "upstream-sign-in-refused")
	gh.SignInAs(upstreamfakes.GitHubUser{ID: 99, Login: "mallory", Email: "victim@example.com", EmailVerified: false})
	_, st, body = newBrowser(t, r.base).signIn("github")
	expectProblem(t, "github unverified primary", st, body, http.StatusForbidden, "upstream-sign-in-refused")
	if n := countEvents(t, db, "external_identity.sign_in_refused.v1"); n != 3 {
		t.Fatalf("%d refusals recorded, want 3", n)
	}
	if n := countEvents(t, db, "user.registered.v1"); n != 1 {
		t.Fatalf("%d users, want only the victim", n)
	}
	// The victim's password still works.
	if st, _, _ := r.call("POST", "/v1/auth/login", "", map[string]string{"email": "victim@example.com", "password": "a long victim password"}); st != http.StatusOK {
		t.Fatalf("victim login: %d", st)
	}
}

// The provider down: its token endpoint answers 503 until the breaker
// opens; then a new sign-in with it is refused at the start, without a
// call, with a clear 503 and Retry-After. Password logins and the other
// provider are unaffected.
func TestUpstreamProviderDown(t *testing.T) {
	r, m, gh, _ := upstreamRig(t, true, map[string]string{"AUTHLEDGER_OIDC_TIMEOUT": "500ms"})
	r.register("pw@example.com", "a long enough password")
	// Up: discovery and keys are cached by a first sign-in.
	m.QueueUser(&mockoidc.MockUser{Subject: "up", Email: "up@example.com", EmailVerified: true})
	if q, st, body := newBrowser(t, r.base).signIn("mock"); st != http.StatusFound || q.Get("code") == "" {
		t.Fatalf("sign-in while up: %d %s", st, body)
	}

	m.down.Store(true)
	// Each failed callback retries (5xx); the breaker opens after a few:
	// the first sign-in that does not reach the provider is refused by it.
	for i := 0; ; i++ {
		before := m.tokenCalls.Load()
		_, st, body := newBrowser(t, r.base).signIn("mock")
		expectProblem(t, "sign-in while down", st, body, http.StatusServiceUnavailable, "auth-provider-unavailable")
		if m.tokenCalls.Load() == before {
			break
		}
		if i == 10 {
			t.Fatal("the breaker never opened")
		}
	}
	// The breaker is open now: the start answers at once, the provider
	// hears nothing.
	calls := m.tokenCalls.Load()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, r.base+"/v1/auth/oidc/mock/start?redirect_uri="+url.QueryEscape(spaURL), nil)
	resp, err := newBrowser(t, r.base).c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	expectProblem(t, "start with the breaker open", resp.StatusCode, string(b), http.StatusServiceUnavailable, "auth-provider-unavailable")
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After with the breaker open")
	}
	if n := m.tokenCalls.Load() - calls; n != 0 {
		t.Fatalf("%d calls reached the provider with the breaker open", n)
	}
	// Password login and the other provider go on.
	if st, _, tok := r.call("POST", "/v1/auth/login", "", map[string]string{"email": "pw@example.com", "password": "a long enough password"}); st != http.StatusOK || tok["access_token"] == nil {
		t.Fatalf("password login while the provider is down: %d %v", st, tok)
	}
	gh.SignInAs(upstreamfakes.GitHubUser{ID: 7, Login: "gina", Email: "gina@example.com", EmailVerified: true})
	q, st, body := newBrowser(t, r.base).signIn("github")
	if st != http.StatusFound || q.Get("code") == "" {
		t.Fatalf("github while mock is down: %d %s", st, body)
	}
	if st, m := r.exchange(q.Get("code"), ""); st != http.StatusOK {
		t.Fatalf("github exchange: %d %v", st, m)
	}
}

// GitHub with AUTHLEDGER_OIDC_GITHUB_ORG: only active members of the
// organisation sign in.
func TestUpstreamGitHubOrganisation(t *testing.T) {
	r, _, gh, _ := upstreamRig(t, true, map[string]string{"AUTHLEDGER_OIDC_GITHUB_ORG": "acme"})

	gh.SignInAs(upstreamfakes.GitHubUser{ID: 11, Login: "outsider", Email: "outsider@example.com", EmailVerified: true, Orgs: []string{"other"}})
	_, st, body := newBrowser(t, r.base).signIn("github")
	expectProblem(t, "not a member", st, body, http.StatusForbidden, "upstream-sign-in-refused")

	gh.SignInAs(upstreamfakes.GitHubUser{ID: 12, Login: "member", Email: "member@example.com", EmailVerified: true, Orgs: []string{"acme"}})
	q, st, body := newBrowser(t, r.base).signIn("github")
	if st != http.StatusFound || q.Get("code") == "" {
		t.Fatalf("member: %d %s", st, body)
	}
	st, tok := r.exchange(q.Get("code"), "")
	if st != http.StatusOK {
		t.Fatalf("member exchange: %d %v", st, tok)
	}
	if amr := jwtClaim(t, tok["access_token"].(string), "amr"); !strings.Contains(amr, "github") {
		t.Fatalf("amr %s", amr)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/authledger/authledger/test/upstreamfakes"
)

const spaURL = "http://127.0.0.1:1/app/callback"

// browser is a cookie-jar client that follows redirects up to the SPA's
// URL (which nothing serves: it stops there and reports it).
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	// The service's public URL is its default (127.0.0.1:8080): the
	// browser reaches it at the test's listener instead.
	host := strings.TrimPrefix(base, "http://")
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "127.0.0.1:8080" {
			addr = host
		}
		return d.DialContext(ctx, network, addr)
	}}
	c := &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), spaURL) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return &browser{t: t, c: c, base: base}
}

// signIn follows the flow from start to the SPA's URL and returns its
// query (or the failed answer's status and body).
func (b *browser) signIn(provider string) (url.Values, int, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+"/v1/auth/oidc/"+provider+"/start?redirect_uri="+url.QueryEscape(spaURL), nil)
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusFound {
		return nil, resp.StatusCode, string(body)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	return loc.Query(), resp.StatusCode, ""
}

func (r *running) exchange(code, password string) (int, map[string]any) {
	body := map[string]string{"code": code}
	if password != "" {
		body["password"] = password
	}
	st, _, m := r.call("POST", "/v1/auth/oidc/exchange", "", body)
	return st, m
}

func upstreamEnv(t *testing.T, m *mockoidc.MockOIDC, gh *upstreamfakes.GitHub, db string, provision bool) map[string]string {
	p := "false"
	if provision {
		p = "true"
	}
	return map[string]string{
		"DATABASE_URL": db, "AUTHLEDGER_WORKERS": "0", "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0",
		"AUTHLEDGER_MASTER_KEY":        testMasterKey,
		"AUTHLEDGER_OIDC_PROVIDERS":    "mock,github",
		"AUTHLEDGER_ALLOWED_REDIRECTS": spaURL,
		"AUTHLEDGER_OIDC_PROVISION":    p,
		"AUTHLEDGER_OIDC_TIMEOUT":      "1s",
		"AUTHLEDGER_OIDC_MOCK_ISSUER":  m.Issuer(), "AUTHLEDGER_OIDC_MOCK_CLIENT_ID": m.ClientID,
		"AUTHLEDGER_OIDC_MOCK_CLIENT_SECRET": m.ClientSecret, "AUTHLEDGER_OIDC_MOCK_ALLOW_INSECURE": "true",
		"AUTHLEDGER_OIDC_GITHUB_ISSUER": gh.URL, "AUTHLEDGER_OIDC_GITHUB_API_URL": gh.URL,
		"AUTHLEDGER_OIDC_GITHUB_CLIENT_ID": gh.ClientID, "AUTHLEDGER_OIDC_GITHUB_CLIENT_SECRET": gh.ClientSecret,
		"AUTHLEDGER_OIDC_GITHUB_ALLOW_INSECURE": "true",
	}
}

// A browser signs in with the in-process OpenID provider and the
// GitHub-shaped fake, exchanges the one-time code for the same token
// response as a password login, and reaches /v1/me; the amr names the
// provider; the identities are listed; the last way in cannot be unlinked.
func TestUpstreamSignInThroughTheBrowser(t *testing.T) {
	r, m, gh, _ := upstreamRig(t, true, nil)

	m.QueueUser(&mockoidc.MockUser{Subject: "mock-ann", Email: "ann@example.com", EmailVerified: true, PreferredUsername: "ann"})
	q, st, body := newBrowser(t, r.base).signIn("mock")
	if st != http.StatusFound || q.Get("code") == "" || q.Get("provider") != "mock" {
		t.Fatalf("sign-in: %d %s %v", st, body, q)
	}
	code, exHdr, tok := r.call("POST", "/v1/auth/oidc/exchange", "", map[string]string{"code": q.Get("code")})
	if code != http.StatusOK || tok["refresh_token"] == nil {
		t.Fatalf("exchange: %d %v", code, tok)
	}
	access := tok["access_token"].(string)
	if st, _, me := r.call("GET", "/v1/me", access, nil, "X-Consistency-Token", exHdr.Get("X-Consistency-Token")); st != http.StatusOK || me["email"] != "ann@example.com" {
		t.Fatalf("/v1/me: %d %v", st, me)
	}
	if amr := jwtClaim(t, access, "amr"); !strings.Contains(amr, "mock") {
		t.Fatalf("amr %s does not name the provider", amr)
	}
	// The code is single use.
	if code, p := r.exchange(q.Get("code"), ""); code != http.StatusBadRequest || !strings.HasSuffix(p["type"].(string), "upstream-flow-invalid") {
		t.Fatalf("replayed code: %d %v", code, p)
	}
	// The refresh rotates as a password login's does.
	if st, _, rt := r.call("POST", "/v1/auth/refresh", "", map[string]any{"refresh_token": tok["refresh_token"]}); st != http.StatusOK || rt["refresh_token"] == tok["refresh_token"] {
		t.Fatalf("refresh: %d %v", st, rt)
	}
	// Ann has no password and one identity: unlinking is refused.
	if st, _, p := r.call("DELETE", "/v1/me/identities/mock", access, nil); st != http.StatusConflict || !strings.HasSuffix(p["type"].(string), "last-sign-in-method") {
		t.Fatalf("unlink last: %d %v", st, p)
	}
	st, _, ids := r.call("GET", "/v1/me/identities", access, nil, "X-Consistency-Token", exHdr.Get("X-Consistency-Token"))
	if st != http.StatusOK || len(ids["identities"].([]any)) != 1 {
		t.Fatalf("identities: %d %v", st, ids)
	}

	// GitHub: the verified primary address, provisioned.
	gh.SignInAs(upstreamfakes.GitHubUser{ID: 4242, Login: "bob", Name: "Bob GitHub", Email: "bob@example.com", EmailVerified: true})
	q, st, body = newBrowser(t, r.base).signIn("github")
	if st != http.StatusFound || q.Get("code") == "" {
		t.Fatalf("github sign-in: %d %s %v", st, body, q)
	}
	code, exHdr, tok = r.call("POST", "/v1/auth/oidc/exchange", "", map[string]string{"code": q.Get("code")})
	if code != http.StatusOK {
		t.Fatalf("github exchange: %d %v", code, tok)
	}
	if st, _, me := r.call("GET", "/v1/me", tok["access_token"].(string), nil, "X-Consistency-Token", exHdr.Get("X-Consistency-Token")); st != http.StatusOK || me["email"] != "bob@example.com" {
		t.Fatalf("github /v1/me: %d %v", st, me)
	}
}

// The refusals: an open redirect, a wrong state, a replayed state, an
// unverified address aimed at an existing account (takeover), and an
// existing account with a password (linked only with its password).
func TestUpstreamSignInRefusals(t *testing.T) {
	r, m, _, _ := upstreamRig(t, false, nil)
	r.register("victim@example.com", "a long victim password")

	// Open redirect.
	b := newBrowser(t, r.base)
	resp, err := b.c.Get(r.base + "/v1/auth/oidc/mock/start?redirect_uri=" + url.QueryEscape("https://evil.example/cb"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("open redirect: %d", resp.StatusCode)
	}

	// A wrong state (the cookie's state is not the callback's).
	b = newBrowser(t, r.base)
	noFollow := *b.c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = noFollow.Get(r.base + "/v1/auth/oidc/mock/start?redirect_uri=" + url.QueryEscape(spaURL))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	authURL, _ := url.Parse(resp.Header.Get("Location"))
	state := authURL.Query().Get("state")
	if authURL.Query().Get("code_challenge_method") != "S256" || authURL.Query().Get("nonce") == "" {
		t.Fatalf("authorize URL lacks PKCE or nonce: %s", authURL)
	}
	cb := func(state string, accept string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, r.base+"/v1/auth/oidc/mock/callback?code=x&state="+url.QueryEscape(state), nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if st, body := cb(state+"x", ""); st != http.StatusBadRequest || !strings.Contains(body, "upstream-flow-invalid") {
		t.Fatalf("wrong state: %d %s", st, body)
	}
	if st, body := cb(state+"x", "text/html"); st != http.StatusBadRequest || !strings.Contains(body, "<h1>") {
		t.Fatalf("wrong state, browser: %d %s", st, body)
	}
	// Replayed state: the first callback uses the flow (the code is bad,
	// so it fails at the provider), the second is refused before it.
	if st, body := cb(state, ""); st != http.StatusUnauthorized || !strings.Contains(body, "upstream-sign-in-failed") {
		t.Fatalf("first use with a bad code: %d %s", st, body)
	}
	if st, body := cb(state, ""); st != http.StatusBadRequest || !strings.Contains(body, "upstream-flow-invalid") {
		t.Fatalf("replayed state: %d %s", st, body)
	}

	// Takeover: the victim's address, unverified at the provider.
	m.QueueUser(&mockoidc.MockUser{Subject: "attacker", Email: "victim@example.com", EmailVerified: false})
	_, st, body := newBrowser(t, r.base).signIn("mock")
	if st != http.StatusForbidden || !strings.Contains(body, "upstream-sign-in-refused") {
		t.Fatalf("takeover: %d %s", st, body)
	}
	// No account and no provisioning: the same answer.
	m.QueueUser(&mockoidc.MockUser{Subject: "stranger", Email: "stranger@example.com", EmailVerified: true})
	if _, st, body := newBrowser(t, r.base).signIn("mock"); st != http.StatusForbidden || !strings.Contains(body, "upstream-sign-in-refused") {
		t.Fatalf("no account: %d %s", st, body)
	}

	// The victim's own verified provider account links only with the
	// password.
	m.QueueUser(&mockoidc.MockUser{Subject: "victim-at-mock", Email: "victim@example.com", EmailVerified: true})
	q, st, body := newBrowser(t, r.base).signIn("mock")
	if st != http.StatusFound || q.Get("link") != "password_required" {
		t.Fatalf("link: %d %s %v", st, body, q)
	}
	if st, p := r.exchange(q.Get("code"), ""); st != http.StatusUnauthorized || !strings.HasSuffix(p["type"].(string), "password-required") {
		t.Fatalf("no password: %d %v", st, p)
	}
	if st, p := r.exchange(q.Get("code"), "not the password"); st != http.StatusUnauthorized || !strings.HasSuffix(p["type"].(string), "invalid-credentials") {
		t.Fatalf("wrong password: %d %v", st, p)
	}
	st, tok := r.exchange(q.Get("code"), "a long victim password")
	if st != http.StatusOK {
		t.Fatalf("right password: %d %v", st, tok)
	}
	// Linked now: the next sign-in needs no password, and the victim
	// (who has a password) may unlink.
	m.QueueUser(&mockoidc.MockUser{Subject: "victim-at-mock", Email: "victim@example.com", EmailVerified: true})
	if q, st, body := newBrowser(t, r.base).signIn("mock"); st != http.StatusFound || q.Get("link") != "" {
		t.Fatalf("second sign-in: %d %s %v", st, body, q)
	}
	if st, _, p := r.call("DELETE", "/v1/me/identities/mock", tok["access_token"].(string), nil); st != http.StatusNoContent {
		t.Fatalf("unlink: %d %v", st, p)
	}
}

// jwtClaim reads one claim of a JWT's payload, as JSON (the test checks a
// token we issued; no verification needed here).
func jwtClaim(t *testing.T, raw, name string) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT")
	}
	b, err := base64RawURL(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return string(m[name])
}

func base64RawURL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

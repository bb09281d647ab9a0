package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/authledger/authledger/test/pgtest"
)

// With AUTHLEDGER_TERMS_VERSION set, the console's register form asks for
// the terms (the API refuses a registration without them, and the page
// says so), and after new terms a right password leads back to the
// sign-in form with the box, whose tick the API records at the login.
// The console only shows the box: the API decides.
func TestConsoleAsksForTheTerms(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_DATA_DIR": t.TempDir(),
		"AUTHLEDGER_TERMS_VERSION": "2026-01", "AUTHLEDGER_WORKERS": "0", "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0"}
	r := startService(t, env)
	c := newConsoleClient(t, r.base)
	resp, body := c.do("GET", "/register", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="terms_version" type="checkbox" value="2026-01" required`) {
		t.Fatalf("register page without the terms box: %d %s", resp.StatusCode, body)
	}
	token := c.csrf("/register")
	form := url.Values{"csrf": {token}, "email": {"tom@example.com"}, "password": {"a long enough secret"}, "display_name": {"Tom"}}
	if resp, body := c.do("POST", "/register", form); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `name="terms_version"`) {
		t.Fatalf("register without ticking the terms: %d %s", resp.StatusCode, body)
	}
	form.Set("terms_version", "2026-01")
	if resp, body := c.do("POST", "/register", form); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/history") {
		t.Fatalf("register with the terms: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	r.stop()

	env["AUTHLEDGER_TERMS_VERSION"] = "2026-06"
	r = startService(t, env)
	c = newConsoleClient(t, r.base)
	token = c.csrf("/signin")
	signin := url.Values{"csrf": {token}, "email": {"tom@example.com"}, "password": {"a long enough secret"}}
	resp, body = c.do("POST", "/signin", signin)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `name="accept_terms" type="checkbox" value="2026-06" required`) {
		t.Fatalf("sign-in under new terms: %d %s", resp.StatusCode, body)
	}
	if access, _, found := sessionOf(t, r, resp); found && access != "" {
		t.Fatal("a session before the new terms were accepted")
	}
	// A wrong password is told nothing of the terms.
	wrong := url.Values{"csrf": {token}, "email": {"tom@example.com"}, "password": {"wrong wrong wrong"}}
	if resp, body := c.do("POST", "/signin", wrong); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "accept_terms") {
		t.Fatalf("wrong password under new terms: %d %s", resp.StatusCode, body)
	}
	signin.Set("accept_terms", "2026-06")
	resp, body = c.do("POST", "/signin", signin)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/history") {
		t.Fatalf("sign-in accepting the terms: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	access, _, _ := sessionOf(t, r, resp)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("ct") == "" {
		t.Fatalf("no consistency token after the sign-in: %q", resp.Header.Get("Location"))
	}
	status, _, consents := r.call("GET", "/v1/me/consents", access, nil, "X-Consistency-Token", loc.Query().Get("ct"))
	if status != http.StatusOK || consents["accepted_version"] != "2026-06" {
		t.Fatalf("consents after the console's sign-in: %d %v", status, consents)
	}
}

package main

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/authledger/authledger/test/pgtest"
)

// wrongTOTPCode is a six-digit code that is none of the codes the
// server's window accepts now (a fixed "000000" could be right).
func wrongTOTPCode(t *testing.T, secret string) string {
	t.Helper()
	near := map[string]bool{}
	for ahead := -2; ahead <= 2; ahead++ {
		near[totpCode(t, secret, ahead)] = true
	}
	for _, c := range []string{"000000", "111111", "222222", "333333", "444444", "555555"} {
		if !near[c] {
			return c
		}
	}
	t.Fatal("no wrong code")
	return ""
}

// sessionOf opens the console's cookie in a, if a set it.
func sessionOf(t *testing.T, r *running, a consoleAnswer) (access, csrf string, found bool) {
	t.Helper()
	for _, ck := range a.Cookies() {
		if ck.Name == r.console.CookieName() {
			access, _, _, csrf, err := r.console.Open(ck.Value)
			if err != nil {
				t.Fatalf("the cookie does not open: %v", err)
			}
			return access, csrf, true
		}
	}
	return "", "", false
}

// A user with an authenticator app signs in to the console in two steps,
// through the real server and its forms: the password leads to the
// second step's page (the mfa_token sealed in the cookie, never on the
// page), a wrong code is refused there with a clear message and no
// session, the right one starts the console's session with a new CSRF
// token. Both steps' forms need the CSRF token.
func TestConsoleSignInWithASecondFactor(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0"})
	tok, _ := r.loginAs("tia@example.com")
	secret, _, _ := (&accountEnv{running: r}).enrolTOTP(tok)

	c := newConsoleClient(t, r.base)
	token := c.csrf("/signin")
	resp, body := c.do("POST", "/signin", url.Values{"csrf": {token}, "email": {"tia@example.com"}, "password": {"a long enough secret"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin/mfa" {
		t.Fatalf("password step: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if access, _, found := sessionOf(t, r, resp); !found || access != "" {
		t.Fatalf("after the password: a cookie %v holding an access token %q", found, access)
	}
	resp, body = c.do("GET", "/signin/mfa", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `autocomplete="one-time-code"`) ||
		!strings.Contains(body, `value="totp" checked`) || !strings.Contains(body, `value="backup_code"`) || strings.Contains(body, "mfa_") {
		t.Fatalf("second step page: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(body, `action="/signin/mfa/send"`) {
		t.Errorf("a send button for a user with no email or sms method")
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("second step page cacheable: %q", resp.Header.Get("Cache-Control"))
	}
	if resp, _ := c.do("GET", "/history", nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Fatalf("signed in after the password alone: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	next := totpCode(t, secret, 1) // the step-0 code confirmed the app
	if resp, _ := c.do("POST", "/signin/mfa", url.Values{"method": {"totp"}, "code": {next}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("second step without the CSRF token: %d", resp.StatusCode)
	}
	resp, body = c.do("POST", "/signin/mfa", url.Values{"csrf": {token}, "method": {"totp"}, "code": {wrongTOTPCode(t, secret)}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "That code is not right") || !strings.Contains(body, `id="mfa-form"`) {
		t.Fatalf("wrong code: %d %s", resp.StatusCode, body)
	}
	if access, _, found := sessionOf(t, r, resp); found && access != "" {
		t.Fatal("a wrong code started a session")
	}

	resp, body = c.do("POST", "/signin/mfa", url.Values{"csrf": {token}, "method": {"totp"}, "code": {next}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/history") {
		t.Fatalf("right code: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	access, csrf, _ := sessionOf(t, r, resp)
	if access == "" || csrf == token {
		t.Fatalf("after the second step: access %q, CSRF token rotated %v", access, csrf != token)
	}
	if got := amrOf(t, access); strings.Join(got, ",") != "pwd,otp" {
		t.Errorf("amr %v", got)
	}
	if resp, body := c.do("GET", resp.Header.Get("Location"), nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="display-name"`) {
		t.Fatalf("history after the second step: %d", resp.StatusCode)
	}
	// The step is done: its page and form send a signed-in user on.
	if resp, _ := c.do("GET", "/signin/mfa", nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/history" {
		t.Errorf("second step page once signed in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

var backupCodeItem = regexp.MustCompile(`<li><code>[a-z0-9-]+</code></li>`)

// A role that requires a second factor (AUTHLEDGER_MFA_REQUIRED_ROLES):
// the console's second step sets up an authenticator app with the
// enrolment token (a QR code as a data: URL and the key as text), its
// first code completes the sign-in, and the first backup codes are
// shown once.
func TestConsoleSignInSetsUpARequiredSecondFactor(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0",
		"AUTHLEDGER_MFA_REQUIRED_ROLES": "admin", "AUTHLEDGER_BOOTSTRAP_ADMIN": "boss@example.com"})
	if status, _, body := r.call("POST", "/v1/auth/register", "", map[string]string{"email": "boss@example.com", "password": "a long enough secret", "display_name": "Boss"}); status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, body)
	}
	// The admin role is granted by a reactor: a little after the
	// registration.
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, _, body := r.call("POST", "/v1/auth/login", "", map[string]string{"email": "boss@example.com", "password": "a long enough secret"})
		if status == http.StatusUnauthorized && slugOf(body) == "mfa-enrollment-required" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin login: %d %v", status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c := newConsoleClient(t, r.base)
	token := c.csrf("/signin")
	if resp, body := c.do("POST", "/signin", url.Values{"csrf": {token}, "email": {"boss@example.com"}, "password": {"a long enough secret"}}); resp.Header.Get("Location") != "/signin/mfa" {
		t.Fatalf("admin sign-in: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	resp, body := c.do("GET", "/signin/mfa", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Your role requires a second factor") || !strings.Contains(body, `action="/signin/mfa/totp"`) {
		t.Fatalf("enrolment page: %d %s", resp.StatusCode, body)
	}
	resp, body = c.do("POST", "/signin/mfa/totp", url.Values{"csrf": {token}})
	secretRE := regexp.MustCompile(`<code id="totp-secret">([A-Z2-7]+)</code>`)
	m := secretRE.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil || !strings.Contains(body, `src="data:image/png;base64,`) {
		t.Fatalf("QR page: %d %s", resp.StatusCode, body)
	}
	resp, body = c.do("POST", "/signin/mfa", url.Values{"csrf": {token}, "method": {"totp"}, "code": {totpCode(t, m[1], 0)}})
	if resp.StatusCode != http.StatusOK || len(backupCodeItem.FindAllString(body, -1)) != 10 {
		t.Fatalf("first code: %d %s", resp.StatusCode, body)
	}
	if access, _, _ := sessionOf(t, r, resp); access == "" {
		t.Fatal("no session after the first code")
	}
	if resp, _ := c.do("GET", "/history", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("history: %d", resp.StatusCode)
	}
}

// The API's lockout holds on the console's second step: past
// AUTHLEDGER_LOCKOUT_MAX_FAILURES wrong codes, even the right code is
// refused (429, with the API's words) and no session starts.
func TestConsoleSecondStepKeepsTheLockout(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0",
		"AUTHLEDGER_LOCKOUT_MAX_FAILURES": "3", "AUTHLEDGER_LOCKOUT_DURATION": "1m", "AUTHLEDGER_LOCKOUT_MAX_DURATION": "10m"})
	tok, _ := r.loginAs("lou@example.com")
	secret, _, _ := (&accountEnv{running: r}).enrolTOTP(tok)
	c := newConsoleClient(t, r.base)
	token := c.csrf("/signin")
	if resp, body := c.do("POST", "/signin", url.Values{"csrf": {token}, "email": {"lou@example.com"}, "password": {"a long enough secret"}}); resp.Header.Get("Location") != "/signin/mfa" {
		t.Fatalf("password step: %d %s", resp.StatusCode, body)
	}
	wrong := wrongTOTPCode(t, secret)
	for i := range 3 {
		if resp, _ := c.do("POST", "/signin/mfa", url.Values{"csrf": {token}, "method": {"totp"}, "code": {wrong}}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: %d", i, resp.StatusCode)
		}
	}
	resp, body := c.do("POST", "/signin/mfa", url.Values{"csrf": {token}, "method": {"totp"}, "code": {totpCode(t, secret, 1)}})
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, `id="problem"`) || !strings.Contains(body, `id="mfa-form"`) {
		t.Fatalf("right code past the lockout: %d %s", resp.StatusCode, body)
	}
	if access, _, found := sessionOf(t, r, resp); found && access != "" {
		t.Fatal("a locked-out second step started a session")
	}
	if resp, _ := c.do("GET", "/history", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("history past the lockout: %d", resp.StatusCode)
	}
}

// The Security page: a user without a second factor adds an
// authenticator app from the console (QR code and key), a wrong first
// code is refused on the page, the right one confirms it and shows the
// first backup codes once; the page then lists the app, and the next
// console sign-in asks for its code.
func TestConsoleSecurityPageAddsAnAuthenticatorApp(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0"})
	c := newConsoleClient(t, r.base)
	token := c.csrf("/register")
	if resp, body := c.do("POST", "/register", url.Values{"csrf": {token}, "email": {"sam@example.com"}, "password": {"a long enough secret"}, "display_name": {"Sam"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	token = c.csrf("/security")
	resp, body := c.do("GET", "/security", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="no-mfa"`) || !strings.Contains(body, `href="/security"`) {
		t.Fatalf("security page: %d %s", resp.StatusCode, body)
	}
	resp, body = c.do("POST", "/security/totp", url.Values{"csrf": {token}})
	m := regexp.MustCompile(`<code id="totp-secret">([A-Z2-7]+)</code>`).FindStringSubmatch(body)
	id := regexp.MustCompile(`name="method_id" value="([0-9a-f-]{36})"`).FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil || id == nil || !strings.Contains(body, `src="data:image/png;base64,`) {
		t.Fatalf("add an app: %d %s", resp.StatusCode, body)
	}
	resp, body = c.do("POST", "/security/totp/confirm", url.Values{"csrf": {token}, "method_id": {id[1]}, "code": {wrongTOTPCode(t, m[1])}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `id="problem"`) || !strings.Contains(body, `id="confirm-totp"`) {
		t.Fatalf("wrong first code: %d %s", resp.StatusCode, body)
	}
	resp, body = c.do("POST", "/security/totp/confirm", url.Values{"csrf": {token}, "method_id": {id[1]}, "code": {totpCode(t, m[1], 0)}})
	if resp.StatusCode != http.StatusOK || len(backupCodeItem.FindAllString(body, -1)) != 10 || !strings.Contains(body, "Authenticator app") || !strings.Contains(body, "Active") {
		t.Fatalf("confirm: %d %s", resp.StatusCode, body)
	}
	if _, body := c.do("GET", "/security", nil); backupCodeItem.MatchString(body) {
		t.Error("the backup codes are shown twice")
	}
	if resp, _ := c.do("POST", "/signout", url.Values{"csrf": {token}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	token = c.csrf("/signin")
	if resp, body := c.do("POST", "/signin", url.Values{"csrf": {token}, "email": {"sam@example.com"}, "password": {"a long enough secret"}}); resp.Header.Get("Location") != "/signin/mfa" {
		t.Fatalf("sign-in after adding the app: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
}

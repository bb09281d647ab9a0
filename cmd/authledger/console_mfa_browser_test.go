package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/authledger/authledger/test/pgtest"
)

// The console's second step in chromium: a user with an authenticator
// app (set up through the API, codes computed as the app would) signs in
// with the password, is refused a wrong code on the second step's page
// with a clear message, and gets in with the right one (the Security
// page then lists the app); an admin whose
// role requires a second factor sets up an app on the console's page (QR
// code) and is shown the first backup codes. axe-core checks each new
// page; no page reports a console error or a CSP violation, and the
// mfa_token is nowhere the page's script can read.
func TestConsoleSecondFactorInABrowser(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{
		"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0",
		"AUTHLEDGER_MFA_REQUIRED_ROLES": "admin", "AUTHLEDGER_BOOTSTRAP_ADMIN": "boss@example.com",
	})
	tok, _ := r.loginAs("tia@example.com")
	secret, _, _ := (&accountEnv{running: r}).enrolTOTP(tok)
	b := newChromium(t, r.base)

	signIn := func(email string) {
		b.open("/signin")
		b.run(
			chromedp.SendKeys(chromedp.CSS("#email"), email),
			chromedp.SendKeys(chromedp.CSS("#password"), "a long enough secret"),
			chromedp.Click(chromedp.CSS(`#signin-form button[type=submit]`)),
		)
	}
	signIn("tia@example.com")
	b.run(chromedp.WaitVisible(chromedp.CSS("#mfa-form")))
	if loc := b.location(); !strings.HasSuffix(loc, "/signin/mfa") {
		t.Fatalf("after the password: %s", loc)
	}
	b.accessible("signin-mfa")
	readable := value(b, chromedp.Evaluate[string](`document.documentElement.outerHTML + document.cookie + JSON.stringify(Object.assign({}, localStorage, sessionStorage))`))
	if strings.Contains(readable, "mfa_") {
		t.Errorf("the mfa_token is readable by the page")
	}

	b.run(
		chromedp.SendKeys(chromedp.CSS("#code"), wrongTOTPCode(t, secret)),
		chromedp.Click(chromedp.CSS("#verify")),
		chromedp.WaitVisible(chromedp.CSS("#problem")),
	)
	if got := b.text("#problem"); !strings.Contains(got, "That code is not right") {
		t.Errorf("wrong code says %q", got)
	}
	b.accessible("signin-mfa-wrong")
	b.run(
		chromedp.SendKeys(chromedp.CSS("#code"), totpCode(t, secret, 1)),
		chromedp.Click(chromedp.CSS("#verify")),
		chromedp.WaitVisible(chromedp.CSS("#display-name")),
	)
	if loc := b.location(); !strings.Contains(loc, "/history") {
		t.Errorf("after the second step: %s", loc)
	}
	// The Security page in the user menu lists the app.
	b.run(chromedp.Click(chromedp.CSS("details.usermenu summary")), chromedp.Click(chromedp.CSS(`a[href="/security"]`)), chromedp.WaitVisible(chromedp.CSS("#mfa-methods")))
	if got := b.text("#mfa-methods tbody"); !strings.Contains(got, "Authenticator app") {
		t.Errorf("security page lists %q", got)
	}
	b.accessible("security")

	// The admin: registered, and given the role by a reactor a little
	// later.
	if status, _, body := r.call("POST", "/v1/auth/register", "", map[string]string{"email": "boss@example.com", "password": "a long enough secret", "display_name": "Boss"}); status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, body)
	}
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
	// Tia signs out by forgetting the cookies: the next visitor is new.
	if _, err := chromedp.Call(b.ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	signIn("boss@example.com")
	b.run(chromedp.WaitVisible(chromedp.CSS("#enrol-totp")))
	b.accessible("signin-mfa-enrol")
	b.run(chromedp.Click(chromedp.CSS("#enrol-totp")), chromedp.WaitVisible(chromedp.CSS("#mfa-qr img")))
	if w := value(b, chromedp.Evaluate[int](`document.querySelector("#mfa-qr img").naturalWidth`)); w < 100 {
		t.Errorf("the QR code does not draw: width %d", w)
	}
	b.accessible("signin-mfa-qr")
	b.run(
		chromedp.SendKeys(chromedp.CSS("#code"), totpCode(t, b.text("#totp-secret"), 0)),
		chromedp.Click(chromedp.CSS("#verify")),
		chromedp.WaitVisible(chromedp.CSS("#backup-codes")),
	)
	if n := value(b, chromedp.Evaluate[int](`document.querySelectorAll("#backup-codes li").length`)); n != 10 {
		t.Errorf("%d backup codes shown, want 10", n)
	}
	b.accessible("signin-mfa-backup-codes")
	b.run(chromedp.Click(chromedp.CSS("#continue")), chromedp.WaitVisible(chromedp.CSS("#display-name")))
	if got := b.text("#display-name"); got != "Boss" {
		t.Errorf("header shows %q", got)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		t.Errorf("the browser reported: %s", p)
	}
}

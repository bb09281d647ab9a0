package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	authmfa "github.com/authledger/authledger/auth/mfa"
	"github.com/authledger/authledger/reactors/outbox"
)

// totpCode is what an authenticator app shows for secret at now+ahead
// steps: a test that used the code of a step sends the next step's
// (within the server's ±1 window) rather than wait 30 seconds.
func totpCode(t *testing.T, secret string, ahead int) string {
	t.Helper()
	c, err := authmfa.TOTPCode(secret, time.Now().Add(time.Duration(ahead)*authmfa.TOTPPeriod))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrolTOTP sets up and confirms an authenticator app on the session of
// tok; it returns the app's secret and the first backup codes.
func (e *accountEnv) enrolTOTP(tok string) (secret, methodID string, backup []string) {
	e.t.Helper()
	status, _, body := e.call("POST", "/v1/me/mfa/totp", tok, nil)
	if status != http.StatusCreated {
		e.t.Fatalf("add totp: %d %v", status, body)
	}
	secret, methodID = body["secret"].(string), body["method_id"].(string)
	u, err := url.Parse(body["otpauth_uri"].(string))
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("secret") != secret || u.Query().Get("issuer") != "authledger" {
		e.t.Fatalf("otpauth uri: %v %v", body["otpauth_uri"], err)
	}
	raw, err := base64.StdEncoding.DecodeString(body["qr_png"].(string))
	if err != nil {
		e.t.Fatal(err)
	}
	if img, err := png.Decode(bytes.NewReader(raw)); err != nil || img.Bounds().Dx() < 100 {
		e.t.Fatalf("qr png: %v", err)
	}
	if status, _, body := e.call("POST", "/v1/me/mfa/totp/confirm", tok, map[string]string{"method_id": methodID, "code": "000000"}); status != http.StatusBadRequest || slugOf(body) != "invalid-confirmation-code" {
		// 000000 could be the right code once in a million runs.
		if status != http.StatusOK {
			e.t.Fatalf("wrong confirmation code: %d %v", status, body)
		}
	}
	status, _, body = e.call("POST", "/v1/me/mfa/totp/confirm", tok, map[string]string{"method_id": methodID, "code": totpCode(e.t, secret, 0)})
	if status != http.StatusOK {
		e.t.Fatalf("confirm: %d %v", status, body)
	}
	for _, c := range body["backup_codes"].([]any) {
		backup = append(backup, c.(string))
	}
	if len(backup) != 10 {
		e.t.Fatalf("first backup codes: %v", body)
	}
	return secret, methodID, backup
}

// mfaLogin logs in with the password and expects the second-factor
// challenge; it returns the mfa_token.
func (e *accountEnv) mfaLogin(email, slug string) string {
	e.t.Helper()
	status, h, body := e.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": accountPassword})
	if status != http.StatusUnauthorized || slugOf(body) != slug || h.Get("Content-Type") != "application/problem+json" {
		e.t.Fatalf("login: %d %v, want 401 %s", status, body, slug)
	}
	tok, _ := body["mfa_token"].(string)
	if !strings.HasPrefix(tok, "mfa_") || body["access_token"] != nil || body["expires_in"].(float64) < 250 {
		e.t.Fatalf("challenge: %v", body)
	}
	return tok
}

func (e *accountEnv) verify(tok, method, code string) (int, map[string]any) {
	e.t.Helper()
	status, _, body := e.call("POST", "/v1/auth/mfa/verify", "", map[string]string{"mfa_token": tok, "method": method, "code": code})
	return status, body
}

func amrOf(t *testing.T, access string) []string {
	t.Helper()
	var out []string
	for _, a := range claims(t, access)["amr"].([]any) {
		out = append(out, a.(string))
	}
	return out
}

// TOTP end to end through the real server: set up with a QR code and
// confirmed by a first code; the password then answers 401 mfa-required
// with a single-use mfa_token; a code completes the login with amr
// pwd+otp, once (the token and the code are both spent); the mfa_token
// opens nothing else; the secret is sealed, never in the log.
func TestTOTPLoginThroughTheRealServer(t *testing.T) {
	t.Parallel()
	e := startAccount(t, nil)
	e.register("tess@example.com")
	status, first := e.login("tess@example.com", accountPassword)
	if status != http.StatusOK || !slices.Equal(amrOf(t, first["access_token"].(string)), []string{"pwd"}) {
		t.Fatalf("login without a factor: %d %v", status, first)
	}
	pwdToken := first["access_token"].(string)
	secret, methodID, _ := e.enrolTOTP(pwdToken)

	status, _, list := e.call("GET", "/v1/me/mfa", pwdToken, nil)
	if status != http.StatusOK || !strings.Contains(jsonString(list), `"type":"totp"`) || !strings.Contains(jsonString(list), `"remaining":10`) {
		t.Fatalf("list: %d %v", status, list)
	}

	tok := e.mfaLogin("tess@example.com", "mfa-required")
	// The code that confirmed the app is spent: its step and every
	// earlier one.
	if status, body := e.verify(tok, "totp", totpCode(t, secret, 0)); status != http.StatusUnauthorized || slugOf(body) != "invalid-mfa-code" {
		// The step may have moved on since the confirmation: then the
		// code is a fresh one and must work.
		if status != http.StatusOK {
			t.Fatalf("confirmation code again: %d %v", status, body)
		}
		tok = e.mfaLogin("tess@example.com", "mfa-required")
	}
	next := totpCode(t, secret, 1)
	status, done := e.verify(tok, "totp", next)
	if status != http.StatusOK {
		t.Fatalf("verify: %d %v", status, done)
	}
	access := done["access_token"].(string)
	if got := amrOf(t, access); !slices.Equal(got, []string{"pwd", "otp"}) {
		t.Fatalf("amr %v", got)
	}
	if claims(t, access)["auth_time"] == nil || done["refresh_token"] == "" {
		t.Fatalf("token response: %v", done)
	}
	waitStatus(t, e.running, "GET", "/v1/me", access, http.StatusOK)
	// The mfa_token is single use, and the code too on a new token.
	if status, body := e.verify(tok, "totp", next); status != http.StatusUnauthorized || slugOf(body) != "invalid-mfa-token" {
		t.Fatalf("mfa_token reused: %d %v", status, body)
	}
	tok2 := e.mfaLogin("tess@example.com", "mfa-required")
	if status, body := e.verify(tok2, "totp", next); status != http.StatusUnauthorized || slugOf(body) != "invalid-mfa-code" {
		t.Fatalf("replayed code: %d %v", status, body)
	}
	// An mfa_token is no access or refresh token.
	if status, _, body := e.call("GET", "/v1/me", tok2, nil); status != http.StatusUnauthorized {
		t.Fatalf("/v1/me with an mfa_token: %d %v", status, body)
	}
	if status, body := e.refresh(tok2); status != http.StatusUnauthorized {
		t.Fatalf("refresh with an mfa_token: %d %v", status, body)
	}
	for _, bad := range []string{"", "mfa_garbage", "mfa_" + strings.Repeat("A", 86)} {
		if status, body := e.verify(bad, "totp", next); status != http.StatusUnauthorized || slugOf(body) != "invalid-mfa-token" {
			t.Fatalf("token %q: %d %v", bad, status, body)
		}
	}

	// The secret is in no event, and sealed in its table.
	pool, err := pgxpool.New(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var inLog int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE data::text LIKE '%' || $1 || '%' OR metadata::text LIKE '%' || $1 || '%'`, secret).Scan(&inLog); err != nil || inLog != 0 {
		t.Fatalf("the secret is in %d events (%v)", inLog, err)
	}
	var ct []byte
	if err := pool.QueryRow(context.Background(), `SELECT ciphertext FROM mfa_secrets WHERE method_id = $1`, methodID).Scan(&ct); err != nil || bytes.Contains(ct, []byte(secret)) || len(ct) < len(secret) {
		t.Fatalf("sealed secret: %v", err)
	}
}

// Backup codes: ten, shown once, each works once; regenerating needs a
// fresh second factor and replaces them all. Removing a factor needs a
// step-up too (amr with a second factor, auth_time recent): the token
// of a password-only login and a login older than the step-up age are
// refused; removing the app removes the backup codes with it, and the
// password alone logs in again.
func TestBackupCodesAndStepUpThroughTheRealServer(t *testing.T) {
	t.Parallel()
	e := startAccount(t, nil)
	e.register("bea@example.com")
	_, first := e.login("bea@example.com", accountPassword)
	pwdToken := first["access_token"].(string)
	secret, methodID, backup := e.enrolTOTP(pwdToken)

	tok := e.mfaLogin("bea@example.com", "mfa-required")
	status, done := e.verify(tok, "backup_code", strings.ToUpper(backup[0]))
	if status != http.StatusOK || !slices.Equal(amrOf(t, done["access_token"].(string)), []string{"pwd", "otp"}) {
		t.Fatalf("backup code: %d %v", status, done)
	}
	mfaToken := done["access_token"].(string)
	tok = e.mfaLogin("bea@example.com", "mfa-required")
	if status, body := e.verify(tok, "backup_code", backup[0]); status != http.StatusUnauthorized || slugOf(body) != "invalid-mfa-code" {
		t.Fatalf("backup code used twice: %d %v", status, body)
	}
	status, _, list := e.call("GET", "/v1/me/mfa", mfaToken, nil)
	if status != http.StatusOK || !strings.Contains(jsonString(list), `"remaining":9`) {
		t.Fatalf("list: %d %v", status, list)
	}

	// Step-up: a password-only session may neither regenerate nor remove.
	for _, call := range [][2]string{{"POST", "/v1/me/mfa/backup-codes"}, {"DELETE", "/v1/me/mfa/" + methodID}, {"POST", "/v1/me/mfa/totp"}} {
		if status, _, body := e.call(call[0], call[1], pwdToken, nil); status != http.StatusUnauthorized || slugOf(body) != "step-up-required" {
			t.Fatalf("%s %s without a step-up: %d %v", call[0], call[1], status, body)
		}
	}
	status, _, fresh := e.call("POST", "/v1/me/mfa/backup-codes", mfaToken, nil)
	if status != http.StatusCreated || len(fresh["backup_codes"].([]any)) != 10 {
		t.Fatalf("regenerate: %d %v", status, fresh)
	}
	if status, body := e.verify(tok, "backup_code", backup[1]); status != http.StatusUnauthorized || slugOf(body) != "invalid-mfa-code" {
		t.Fatalf("a replaced backup code: %d %v", status, body)
	}
	newCode := fresh["backup_codes"].([]any)[0].(string)
	if status, body := e.verify(tok, "backup_code", newCode); status != http.StatusOK {
		t.Fatalf("a new backup code: %d %v", status, body)
	}

	// Past the step-up age, the same token no longer may.
	e.clock.Advance(11 * time.Minute)
	if status, _, body := e.call("DELETE", "/v1/me/mfa/"+methodID, mfaToken, nil); status != http.StatusUnauthorized || slugOf(body) != "step-up-required" {
		t.Fatalf("stale step-up: %d %v", status, body)
	}
	e.clock.Advance(-11 * time.Minute)
	if status, _, body := e.call("DELETE", "/v1/me/mfa/"+strings.Repeat("0", 8)+"-0000-0000-0000-000000000000", mfaToken, nil); status != http.StatusNotFound {
		t.Fatalf("delete unknown: %d %v", status, body)
	}
	status, _, body := e.call("DELETE", "/v1/me/mfa/"+methodID, mfaToken, nil)
	if status != http.StatusNoContent {
		t.Fatalf("delete: %d %v", status, body)
	}
	status, _, list = e.call("GET", "/v1/me/mfa", mfaToken, nil)
	if status != http.StatusOK || len(list["methods"].([]any)) != 0 {
		t.Fatalf("list after removal: %d %v", status, list)
	}
	if status, body := e.login("bea@example.com", accountPassword); status != http.StatusOK {
		t.Fatalf("password login after removal: %d %v", status, body)
	}
	_ = secret
}

// A wrong second factor counts like a wrong password: past the
// threshold the source waits (429) for the code as for the password, a
// right code included; a correct password does not reset the count.
func TestFailedSecondFactorsCountTowardTheLockout(t *testing.T) {
	t.Parallel()
	e := startAccount(t, map[string]string{"AUTHLEDGER_LOCKOUT_MAX_FAILURES": "3", "AUTHLEDGER_LOCKOUT_DURATION": "1m", "AUTHLEDGER_LOCKOUT_MAX_DURATION": "10m"})
	e.register("lou@example.com")
	_, first := e.login("lou@example.com", accountPassword)
	secret, _, _ := e.enrolTOTP(first["access_token"].(string))
	// Four correct passwords, each opening a challenge: none resets the
	// count the wrong codes make.
	var toks []string
	for range 4 {
		toks = append(toks, e.mfaLogin("lou@example.com", "mfa-required"))
	}
	for i, tok := range toks[:3] {
		if status, body := e.verify(tok, "totp", "12345x"); status != http.StatusUnauthorized || slugOf(body) != "invalid-mfa-code" {
			t.Fatalf("wrong code %d: %d %v", i, status, body)
		}
	}
	// The threshold is reached: a right code waits, and so does the
	// password, however right.
	status, h, body := e.call("POST", "/v1/auth/mfa/verify", "", map[string]string{"mfa_token": toks[3], "method": "totp", "code": totpCode(t, secret, 1)})
	if status != http.StatusTooManyRequests || slugOf(body) != "rate-limited" || h.Get("Retry-After") == "" {
		t.Fatalf("right code after three wrong ones: %d %v", status, body)
	}
	status, h, body = e.call("POST", "/v1/auth/login", "", map[string]string{"email": "lou@example.com", "password": accountPassword})
	if status != http.StatusTooManyRequests || slugOf(body) != "rate-limited" || h.Get("Retry-After") == "" {
		t.Fatalf("login after three wrong codes: %d %v", status, body)
	}
	// The failures are in the log as failed logins of the second factor.
	// (appended off the response path: a few milliseconds behind).
	deadline := time.Now().Add(5 * time.Second)
	for count(t, e.db, "user.login_failed.v1") != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d failed logins recorded, want 3", count(t, e.db, "user.login_failed.v1"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// AUTHLEDGER_MFA_REQUIRED_ROLES: an admin without a factor gets an
// enrolment mfa_token at login, which can set up an app and confirm it
// (completing the login with amr pwd+otp and the first backup codes),
// and nothing else; the next login asks for the code.
func TestRequiredRoleForcesEnrolmentAtLogin(t *testing.T) {
	t.Parallel()
	e := startAccount(t, map[string]string{"AUTHLEDGER_MFA_REQUIRED_ROLES": "admin", "AUTHLEDGER_BOOTSTRAP_ADMIN": "boss@example.com"})
	e.register("boss@example.com")
	e.register("staff@example.com")
	if status, body := e.login("staff@example.com", accountPassword); status != http.StatusOK {
		t.Fatalf("a user without the role: %d %v", status, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	var tok string
	for {
		status, _, body := e.call("POST", "/v1/auth/login", "", map[string]string{"email": "boss@example.com", "password": accountPassword})
		if status == http.StatusUnauthorized && slugOf(body) == "mfa-enrollment-required" {
			tok = body["mfa_token"].(string)
			if !slices.Equal(toStrings(body["methods"]), []string{"totp"}) {
				t.Fatalf("methods: %v", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin login: %d %v", status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The enrolment token opens no API and verifies no code yet.
	if status, _, body := e.call("GET", "/v1/me", tok, nil); status != http.StatusUnauthorized {
		t.Fatalf("/v1/me with an enrolment token: %d %v", status, body)
	}
	if status, body := e.verify(tok, "backup_code", "aaaa-bbbb-cccc-dddd"); status != http.StatusUnauthorized || slugOf(body) != "invalid-mfa-code" {
		t.Fatalf("backup code on an enrolment token: %d %v", status, body)
	}
	status, _, app := e.call("POST", "/v1/auth/mfa/totp", "", map[string]string{"mfa_token": tok})
	if status != http.StatusCreated {
		t.Fatalf("enrol with the token: %d %v", status, app)
	}
	status, done := e.verify(tok, "totp", totpCode(t, app["secret"].(string), 0))
	if status != http.StatusOK || !slices.Equal(amrOf(t, done["access_token"].(string)), []string{"pwd", "otp"}) || len(toStrings(done["backup_codes"])) != 10 {
		t.Fatalf("verify enrolment: %d %v", status, done)
	}
	login := e.mfaLogin("boss@example.com", "mfa-required")
	// A login token (not an enrolment one) cannot enrol this way.
	if status, _, body := e.call("POST", "/v1/auth/mfa/totp", "", map[string]string{"mfa_token": login}); status != http.StatusUnauthorized || slugOf(body) != "invalid-mfa-token" {
		t.Fatalf("enrol with a login token: %d %v", status, body)
	}
	if status, body := e.verify(login, "totp", totpCode(t, app["secret"].(string), 1)); status != http.StatusOK {
		t.Fatalf("second login: %d %v", status, body)
	}
}

func toStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

var signInCode = regexp.MustCompile(`sign-in code is (\d{6})\.`)

// codeFrom waits for the nth sign-in code mail to addr and returns its
// code, read from the message the SMTP server received.
func (e *accountEnv) codeFrom(addr string, n int) string {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var codes []string
		for _, m := range e.smtp.Messages() {
			if len(m.To) == 1 && m.To[0] == addr && m.Subject == "Your sign-in code" {
				if s := signInCode.FindStringSubmatch(m.Text); s != nil {
					codes = append(codes, s[1])
				}
			}
		}
		if len(codes) >= n {
			return codes[n-1]
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no sign-in code %d for %s (%d so far)", n, addr, len(codes))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Email codes through the real server and a real SMTP socket: a verified
// address becomes a factor; the login's mfa_token asks for a code, which
// arrives by mail (in no event); a wrong code counts, five void the code;
// codes are rate limited per user; a new code completes the login with
// amr pwd+otp, once.
func TestEmailCodesThroughTheRealServerAndSMTP(t *testing.T) {
	t.Parallel()
	e := startAccount(t, map[string]string{"AUTHLEDGER_LOCKOUT_MAX_FAILURES": "20", "AUTHLEDGER_LOCKOUT_ACCOUNT_MAX_FAILURES": "40"})
	e.register("eve@example.com")
	_, first := e.login("eve@example.com", accountPassword)
	pwdToken := first["access_token"].(string)
	if status, _, body := e.call("POST", "/v1/me/mfa/email", pwdToken, nil); status != http.StatusConflict || slugOf(body) != "email-unverified" {
		t.Fatalf("an unverified address: %d %v", status, body)
	}
	m := e.smtp.WaitFor("eve@example.com", "Confirm your email address")
	if status, _, body := e.call("POST", "/v1/auth/verify-email", "", map[string]string{"token": m.Token()}); status != http.StatusNoContent {
		t.Fatalf("verify: %d %v", status, body)
	}
	if status, _, body := e.call("POST", "/v1/me/mfa/email", pwdToken, nil); status != http.StatusCreated {
		t.Fatalf("add email: %d %v", status, body)
	}
	if status, _, body := e.call("POST", "/v1/me/mfa/email", pwdToken, nil); status != http.StatusConflict || slugOf(body) != "already-enrolled" {
		t.Fatalf("add email twice: %d %v", status, body)
	}

	status, _, body := e.call("POST", "/v1/auth/login", "", map[string]string{"email": "eve@example.com", "password": accountPassword})
	if status != http.StatusUnauthorized || slugOf(body) != "mfa-required" || !slices.Equal(toStrings(body["methods"]), []string{"email"}) {
		t.Fatalf("login: %d %v", status, body)
	}
	tok := body["mfa_token"].(string)
	if status, body := e.verify(tok, "email", "123456"); status != http.StatusUnauthorized || slugOf(body) != "invalid-mfa-code" {
		t.Fatalf("a code before any was sent: %d %v", status, body)
	}
	send := func(tok string) (int, http.Header, map[string]any) {
		return e.call("POST", "/v1/auth/mfa/send", "", map[string]string{"mfa_token": tok, "method": "email"})
	}
	if status, _, body := send(tok); status != http.StatusAccepted {
		t.Fatalf("send: %d %v", status, body)
	}
	code := e.codeFrom("eve@example.com", 1)
	// Per user, 30 s between codes.
	if status, h, body := send(tok); status != http.StatusTooManyRequests || slugOf(body) != "rate-limited" || h.Get("Retry-After") == "" {
		t.Fatalf("a second code at once: %d %v", status, body)
	}
	// Five wrong attempts void the code, the right one included after.
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	for i := range 5 {
		if status, body := e.verify(tok, "email", wrong); status != http.StatusUnauthorized || slugOf(body) != "invalid-mfa-code" {
			t.Fatalf("wrong code %d: %d %v", i, status, body)
		}
	}
	if status, body := e.verify(tok, "email", code); status != http.StatusUnauthorized || slugOf(body) != "invalid-mfa-code" {
		t.Fatalf("the right code after five wrong ones: %d %v", status, body)
	}
	// A new code (after the interval) works, once; amr pwd+otp.
	e.clock.Advance(31 * time.Second)
	if status, _, body := send(tok); status != http.StatusAccepted {
		t.Fatalf("send again: %d %v", status, body)
	}
	code = e.codeFrom("eve@example.com", 2)
	status, done := e.verify(tok, "email", code)
	if status != http.StatusOK || !slices.Equal(amrOf(t, done["access_token"].(string)), []string{"pwd", "otp"}) {
		t.Fatalf("verify: %d %v", status, done)
	}
	if status, body := e.verify(tok, "email", code); status != http.StatusUnauthorized || slugOf(body) != "invalid-mfa-token" {
		t.Fatalf("the code twice: %d %v", status, body)
	}
	// The code is in no event.
	pool, err := pgxpool.New(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE type LIKE 'mfa.%' AND data::text LIKE '%' || $1 || '%'`, code).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the code is in %d events (%v)", n, err)
	}
	// Codes expire: one sent, then 10 minutes pass.
	e.clock.Advance(31 * time.Second)
	tok = e.mfaLogin("eve@example.com", "mfa-required")
	if status, _, body := send(tok); status != http.StatusAccepted {
		t.Fatalf("send a third: %d %v", status, body)
	}
	code = e.codeFrom("eve@example.com", 3)
	e.clock.Advance(10 * time.Minute)
	if status, body := e.verify(tok, "email", code); status != http.StatusUnauthorized {
		t.Fatalf("an expired code: %d %v", status, body)
	}
}

// fakeTwilio speaks Twilio's Messages API on a real socket (127.0.0.1):
// a third party the tests cannot run. fail answers every message with
// that status.
type fakeTwilio struct {
	mu       sync.Mutex
	fail     int
	attempts int
	bodies   map[string][]string // by To
}

func (f *fakeTwilio) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, _ := r.BasicAuth()
	if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/AC1/Messages.json" || user != "AC1" || pass != "sms-secret" || r.ParseForm() != nil {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"code":20003,"message":"Authenticate","status":401}`))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.fail != 0 {
		w.WriteHeader(f.fail)
		_, _ = w.Write([]byte(`{"code":20500,"message":"An internal server error has occurred","status":500}`))
		return
	}
	if f.bodies == nil {
		f.bodies = map[string][]string{}
	}
	to := r.PostForm.Get("To")
	f.bodies[to] = append(f.bodies[to], r.PostForm.Get("Body"))
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(`{"sid":"SM1","status":"queued"}`))
}

// codeTo waits for the nth text to number and returns its code.
func (f *fakeTwilio) codeTo(t *testing.T, number string, n int) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		bodies := slices.Clone(f.bodies[number])
		f.mu.Unlock()
		if len(bodies) >= n {
			s := signInCode.FindStringSubmatch(bodies[n-1])
			if s == nil {
				t.Fatalf("text without a code: %q", bodies[n-1])
			}
			return s[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no text %d to %s", n, number)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SMS codes through the real server, the outbox and a Twilio-shaped
// provider on a socket: a number is confirmed by the code texted to it
// (first backup codes with it); a login asks for a code by SMS and
// completes with amr pwd+sms. When the provider fails, the text is
// retried, then dead-lettered, and the login still answers.
func TestSMSCodesThroughTheRealServerAndAProvider(t *testing.T) {
	t.Parallel()
	fake := &fakeTwilio{}
	provider := httptest.NewServer(fake)
	t.Cleanup(provider.Close)
	e := startAccount(t, map[string]string{"AUTHLEDGER_SMS_URL": provider.URL, "AUTHLEDGER_SMS_ACCOUNT_SID": "AC1",
		"AUTHLEDGER_SMS_AUTH_TOKEN": "sms-secret", "AUTHLEDGER_SMS_FROM": "+15550001111"})
	e.register("sam@example.com")
	_, first := e.login("sam@example.com", accountPassword)
	tok := first["access_token"].(string)
	if status, _, body := e.call("POST", "/v1/me/mfa/sms", tok, map[string]string{"phone": "0123"}); status != http.StatusBadRequest || slugOf(body) != "invalid-input" {
		t.Fatalf("a malformed number: %d %v", status, body)
	}
	const number = "+447700900123"
	status, _, added := e.call("POST", "/v1/me/mfa/sms", tok, map[string]string{"phone": number})
	if status != http.StatusCreated || added["confirmed"] != false {
		t.Fatalf("add number: %d %v", status, added)
	}
	code := fake.codeTo(t, number, 1)
	methodID := added["method_id"].(string)
	if status, _, body := e.call("POST", "/v1/me/mfa/sms/confirm", tok, map[string]string{"method_id": methodID, "code": "99999x"}); status != http.StatusBadRequest || slugOf(body) != "invalid-confirmation-code" {
		t.Fatalf("wrong confirmation: %d %v", status, body)
	}
	status, _, confirmed := e.call("POST", "/v1/me/mfa/sms/confirm", tok, map[string]string{"method_id": methodID, "code": code})
	if status != http.StatusOK || len(toStrings(confirmed["backup_codes"])) != 10 {
		t.Fatalf("confirm: %d %v", status, confirmed)
	}
	status, _, list := e.call("GET", "/v1/me/mfa", tok, nil)
	if status != http.StatusOK || !strings.Contains(jsonString(list), `"phone":"`+number+`"`) {
		t.Fatalf("list: %d %v", status, list)
	}

	e.clock.Advance(31 * time.Second)
	status, _, body := e.call("POST", "/v1/auth/login", "", map[string]string{"email": "sam@example.com", "password": accountPassword})
	if status != http.StatusUnauthorized || !slices.Equal(toStrings(body["methods"]), []string{"backup_codes", "sms"}) {
		t.Fatalf("login: %d %v", status, body)
	}
	mfaTok := body["mfa_token"].(string)
	if status, _, body := e.call("POST", "/v1/auth/mfa/send", "", map[string]string{"mfa_token": mfaTok, "method": "sms"}); status != http.StatusAccepted {
		t.Fatalf("send: %d %v", status, body)
	}
	code = fake.codeTo(t, number, 2)
	if status, body := e.verify(mfaTok, "email", code); status != http.StatusUnauthorized || slugOf(body) != "invalid-mfa-code" {
		t.Fatalf("an SMS code as an email one: %d %v", status, body)
	}
	status, done := e.verify(mfaTok, "sms", code)
	if status != http.StatusOK || !slices.Equal(amrOf(t, done["access_token"].(string)), []string{"pwd", "sms"}) {
		t.Fatalf("verify: %d %v", status, done)
	}

	// The provider fails: retried (three attempts), dead-lettered; the
	// login is not held up by it.
	fake.mu.Lock()
	fake.fail, fake.attempts = http.StatusInternalServerError, 0
	fake.mu.Unlock()
	e.clock.Advance(31 * time.Second)
	mfaTok = e.mfaLogin("sam@example.com", "mfa-required")
	if status, _, body := e.call("POST", "/v1/auth/mfa/send", "", map[string]string{"mfa_token": mfaTok, "method": "sms"}); status != http.StatusAccepted {
		t.Fatalf("send while the provider fails: %d %v", status, body)
	}
	pool, err := pgxpool.New(t.Context(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	deadline := time.Now().Add(30 * time.Second)
	var sum outbox.Summary
	for {
		if sum, err = outbox.Summarize(t.Context(), pool); err != nil {
			t.Fatal(err)
		}
		if sum.Dead == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	fake.mu.Lock()
	attempts := fake.attempts
	fake.mu.Unlock()
	if sum.Dead != 1 || sum.DeadLetters[0].Attempts != 3 || attempts != 3 {
		t.Fatalf("outbox %+v, %d attempts at the provider", sum, attempts)
	}
	if status, body := e.login("sam@example.com", accountPassword); status != http.StatusUnauthorized || slugOf(body) != "mfa-required" {
		t.Fatalf("login while texts are dead-lettered: %d %v", status, body)
	}
}

// Racing requests with one mfa_token and one code: exactly one login
// completes (the completion is one append at the loaded revision); the
// others are refused, none with a server error.
func TestRacingVerifiesCompleteOneLogin(t *testing.T) {
	t.Parallel()
	e := startAccount(t, map[string]string{"AUTHLEDGER_LOCKOUT_MAX_FAILURES": "20", "AUTHLEDGER_LOCKOUT_ACCOUNT_MAX_FAILURES": "40"})
	e.register("rae@example.com")
	_, first := e.login("rae@example.com", accountPassword)
	secret, _, _ := e.enrolTOTP(first["access_token"].(string))
	tok := e.mfaLogin("rae@example.com", "mfa-required")
	code := totpCode(t, secret, 1)
	const n = 8
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			status, _ := e.verify(tok, "totp", code)
			statuses <- status
		})
	}
	wg.Wait()
	close(statuses)
	ok, refused := 0, 0
	for s := range statuses {
		switch s {
		case http.StatusOK:
			ok++
		case http.StatusUnauthorized:
			refused++
		default:
			t.Errorf("status %d", s)
		}
	}
	if ok != 1 || refused != n-1 {
		t.Fatalf("%d logins completed, %d refused; want 1 and %d", ok, refused, n-1)
	}
	var sessions int
	pool, err := pgxpool.New(t.Context(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE type = 'mfa.challenge_completed.v1'`).Scan(&sessions); err != nil || sessions != 1 {
		t.Fatalf("%d completions (%v)", sessions, err)
	}
}

package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/reactors/outbox"
	"github.com/authledger/authledger/test/pgtest"
	"github.com/authledger/authledger/test/smtpserver"
)

// shiftClock is a clock a test moves forward.
type shiftClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *shiftClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *shiftClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// accountEnv is a service whose mail goes to a real SMTP server on a
// socket (STARTTLS, AUTH PLAIN, the test's certificate authority).
type accountEnv struct {
	*running
	smtp  *smtpserver.Server
	db    string
	clock *shiftClock
}

func startAccount(t *testing.T, env map[string]string) *accountEnv {
	t.Helper()
	srv := smtpserver.Start(t, false)
	db := pgtest.NewDatabase(t)
	vars := map[string]string{
		"DATABASE_URL": db, "AUTHLEDGER_WORKERS": "0",
		"AUTHLEDGER_SMTP_URL": srv.URL(false), "AUTHLEDGER_SMTP_CA_FILE": srv.CAFile(), "AUTHLEDGER_MAIL_FROM": "noreply@authledger.test",
		"AUTHLEDGER_OUTBOX_RETRY_BACKOFF": "50ms", "AUTHLEDGER_OUTBOX_MAX_ATTEMPTS": "3",
	}
	for k, v := range env {
		vars[k] = v
	}
	clock := &shiftClock{}
	r := startServiceWith(t, vars, hooks{clock: clock.Now, outboxPoll: 50 * time.Millisecond})
	return &accountEnv{running: r, smtp: srv, db: db, clock: clock}
}

const accountPassword = "a long enough secret"

func (e *accountEnv) register(email string) string {
	e.t.Helper()
	status, h, body := e.call("POST", "/v1/auth/register", "", map[string]string{"email": email, "password": accountPassword, "display_name": "Ada"})
	if status != http.StatusCreated {
		e.t.Fatalf("register %s: %d %v", email, status, body)
	}
	return h.Get("X-Consistency-Token")
}

func (e *accountEnv) login(email, password string) (int, map[string]any) {
	e.t.Helper()
	status, _, body := e.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": password})
	return status, body
}

// claims decodes an access token's payload (verified by the server that
// issued it; the test only reads it).
func claims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func slugOf(body map[string]any) string {
	s, _ := body["type"].(string)
	return strings.TrimPrefix(s, "https://authledger.dev/problems/")
}

// Registration mails a verification link over SMTP; the token from the
// received mail verifies the address once; /v1/me and the access token
// say so; a resend for a verified and an unknown address answers alike.
func TestEmailVerificationThroughTheRealServerAndSMTP(t *testing.T) {
	t.Parallel()
	e := startAccount(t, nil)
	ct := e.register("ada@example.com")
	_, acc := e.login("ada@example.com", accountPassword)
	tok := acc["access_token"].(string)
	if v := claims(t, tok)["email_verified"]; v == true {
		t.Fatalf("email_verified before verification: %v", v)
	}
	if status, _, me := e.call("GET", "/v1/me", tok, nil, "X-Consistency-Token", ct); status != http.StatusOK || me["email_verified"] != false {
		t.Fatalf("/v1/me: %d %v", status, me)
	}
	m := e.smtp.WaitFor("ada@example.com", "Confirm your email address")
	if m.Token() == "" || !strings.Contains(m.HTML, "Confirm my address") || m.From != "noreply@authledger.test" {
		t.Fatalf("verification mail: %+v", m)
	}
	status, h, body := e.call("POST", "/v1/auth/verify-email", "", map[string]string{"token": m.Token()})
	if status != http.StatusNoContent {
		t.Fatalf("verify: %d %v", status, body)
	}
	if status, _, me := e.call("GET", "/v1/me", tok, nil, "X-Consistency-Token", h.Get("X-Consistency-Token")); status != http.StatusOK || me["email_verified"] != true {
		t.Fatalf("/v1/me after verification: %d %v", status, me)
	}
	// Single use.
	if status, _, body := e.call("POST", "/v1/auth/verify-email", "", map[string]string{"token": m.Token()}); status != http.StatusBadRequest || slugOf(body) != "invalid-mail-token" {
		t.Fatalf("reuse: %d %v", status, body)
	}
	for _, bad := range []string{"", "garbage", strings.Repeat("A", 86)} {
		if status, _, body := e.call("POST", "/v1/auth/verify-email", "", map[string]string{"token": bad}); status != http.StatusBadRequest || slugOf(body) != "invalid-mail-token" {
			t.Fatalf("token %q: %d %v", bad, status, body)
		}
	}
	// The session's claims follow (ADR 0006): a refresh carries it.
	st, ref := e.refresh(acc["refresh_token"].(string))
	deadline := time.Now().Add(5 * time.Second)
	for st == http.StatusOK && claims(t, ref["access_token"].(string))["email_verified"] != true && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		st, ref = e.refresh(ref["refresh_token"].(string))
	}
	if st != http.StatusOK || claims(t, ref["access_token"].(string))["email_verified"] != true {
		t.Fatalf("refreshed token: %d %v", st, ref)
	}
	_, fresh := e.login("ada@example.com", accountPassword)
	if claims(t, fresh["access_token"].(string))["email_verified"] != true {
		t.Fatal("a new login's token lacks email_verified")
	}
	// Resend: the same answer for a verified, an unknown and an
	// unverified address; only the last gets a mail.
	e.register("bob@example.com")
	var answers []map[string]any
	for _, addr := range []string{"ada@example.com", "nobody@example.com", "bob@example.com"} {
		status, h, body := e.call("POST", "/v1/auth/verify-email/resend", "", map[string]string{"email": addr})
		if status != http.StatusAccepted || h.Get("X-Consistency-Token") != "" {
			t.Fatalf("resend %s: %d %v %v", addr, status, body, h)
		}
		answers = append(answers, body)
	}
	if !reflect.DeepEqual(answers[0], answers[1]) || !reflect.DeepEqual(answers[1], answers[2]) {
		t.Fatalf("resend answers differ: %v", answers)
	}
	deadline = time.Now().Add(10 * time.Second)
	for countTo(e.smtp, "bob@example.com") < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := countTo(e.smtp, "bob@example.com"); n != 2 {
		t.Fatalf("bob got %d mails, want registration and resend", n)
	}
	if n := countTo(e.smtp, "ada@example.com"); n != 1 {
		t.Fatalf("ada got %d mails, want only the first", n)
	}
	if n := countTo(e.smtp, "nobody@example.com"); n != 0 {
		t.Fatalf("an unknown address got %d mails", n)
	}
}

func countTo(s *smtpserver.Server, to string) int {
	n := 0
	for _, m := range s.Messages() {
		if len(m.To) == 1 && m.To[0] == to {
			n++
		}
	}
	return n
}

// A reset link is mailed for a known address only, with the same answer
// for an unknown one; the token sets the password once, every session
// ends, the user is notified; the policy refuses a common password
// without using the token up.
func TestPasswordResetThroughTheRealServerAndSMTP(t *testing.T) {
	t.Parallel()
	e := startAccount(t, nil)
	e.register("cleo@example.com")
	_, before := e.login("cleo@example.com", accountPassword)
	var answers []map[string]any
	for _, addr := range []string{"cleo@example.com", "ghost@example.com"} {
		status, h, body := e.call("POST", "/v1/auth/password-reset", "", map[string]string{"email": addr})
		if status != http.StatusAccepted || h.Get("X-Consistency-Token") != "" {
			t.Fatalf("reset %s: %d %v", addr, status, body)
		}
		answers = append(answers, body)
	}
	if !reflect.DeepEqual(answers[0], answers[1]) {
		t.Fatalf("known and unknown addresses answered differently: %v", answers)
	}
	m := e.smtp.WaitFor("cleo@example.com", "Reset your password")
	if !strings.Contains(m.Text, "/reset-password#token=") {
		t.Fatalf("reset mail: %+v", m)
	}
	status, _, body := e.call("POST", "/v1/auth/password-reset/confirm", "", map[string]string{"token": m.Token(), "new_password": "password123"})
	if status != http.StatusBadRequest || slugOf(body) != "invalid-input" {
		t.Fatalf("a common password: %d %v", status, body)
	}
	status, _, body = e.call("POST", "/v1/auth/password-reset/confirm", "", map[string]string{"token": m.Token(), "new_password": "a brand new passphrase"})
	if status != http.StatusNoContent {
		t.Fatalf("confirm: %d %v", status, body)
	}
	if status, _, body := e.call("POST", "/v1/auth/password-reset/confirm", "", map[string]string{"token": m.Token(), "new_password": "yet another passphrase"}); status != http.StatusBadRequest || slugOf(body) != "invalid-mail-token" {
		t.Fatalf("reuse: %d %v", status, body)
	}
	waitStatus(t, e.running, "GET", "/v1/me", before["access_token"].(string), http.StatusUnauthorized)
	if st, body := e.refresh(before["refresh_token"].(string)); st != http.StatusUnauthorized {
		t.Fatalf("the old session refreshed: %d %v", st, body)
	}
	if st, body := e.login("cleo@example.com", accountPassword); st != http.StatusUnauthorized {
		t.Fatalf("the old password: %d %v", st, body)
	}
	if st, body := e.login("cleo@example.com", "a brand new passphrase"); st != http.StatusOK {
		t.Fatalf("the new password: %d %v", st, body)
	}
	notice := e.smtp.WaitFor("cleo@example.com", "Your password was changed")
	if !strings.Contains(notice.Text, "reset through a mailed link") {
		t.Fatalf("notice: %+v", notice)
	}
	if n := countTo(e.smtp, "ghost@example.com"); n != 0 {
		t.Fatalf("an unknown address got %d mails", n)
	}
}

// Tokens expire: a reset link after 30 minutes, a verification link after
// 24 hours (the service's clock moved forward).
func TestMailedTokensExpire(t *testing.T) {
	t.Parallel()
	e := startAccount(t, nil)
	e.register("dan@example.com")
	verify := e.smtp.WaitFor("dan@example.com", "Confirm your email address")
	e.call("POST", "/v1/auth/password-reset", "", map[string]string{"email": "dan@example.com"})
	reset := e.smtp.WaitFor("dan@example.com", "Reset your password")
	e.clock.Advance(31 * time.Minute)
	if status, _, body := e.call("POST", "/v1/auth/password-reset/confirm", "", map[string]string{"token": reset.Token(), "new_password": "a brand new passphrase"}); status != http.StatusBadRequest || slugOf(body) != "invalid-mail-token" {
		t.Fatalf("an expired reset token: %d %v", status, body)
	}
	e.clock.Advance(24 * time.Hour)
	if status, _, body := e.call("POST", "/v1/auth/verify-email", "", map[string]string{"token": verify.Token()}); status != http.StatusBadRequest || slugOf(body) != "invalid-mail-token" {
		t.Fatalf("an expired verification token: %d %v", status, body)
	}
	if st, _ := e.login("dan@example.com", accountPassword); st != http.StatusOK {
		t.Fatalf("the password changed: %d", st)
	}
}

// Changing the password needs the current one, keeps the caller's session
// and ends the others, and notifies the user.
func TestPasswordChangeEndsTheOtherSessions(t *testing.T) {
	t.Parallel()
	e := startAccount(t, nil)
	e.register("eve@example.com")
	_, mine := e.login("eve@example.com", accountPassword)
	_, other := e.login("eve@example.com", accountPassword)
	my := mine["access_token"].(string)
	status, _, body := e.call("POST", "/v1/me/password", my, map[string]string{"current_password": "not it at all", "new_password": "a brand new passphrase"})
	if status != http.StatusBadRequest || !strings.Contains(mustJSON(body), "current_password") {
		t.Fatalf("a wrong current password: %d %v", status, body)
	}
	status, _, body = e.call("POST", "/v1/me/password", my, map[string]string{"current_password": accountPassword, "new_password": "eve@example.com"})
	if status != http.StatusBadRequest || !strings.Contains(mustJSON(body), "new_password") {
		t.Fatalf("the address as a password: %d %v", status, body)
	}
	if status, _, body := e.call("POST", "/v1/me/password", my, map[string]string{"current_password": accountPassword, "new_password": "a brand new passphrase"}); status != http.StatusNoContent {
		t.Fatalf("change: %d %v", status, body)
	}
	waitStatus(t, e.running, "GET", "/v1/me", other["access_token"].(string), http.StatusUnauthorized)
	if st, body := e.refresh(other["refresh_token"].(string)); st != http.StatusUnauthorized {
		t.Fatalf("the other session refreshed: %d %v", st, body)
	}
	if status, _, body := e.call("GET", "/v1/me", my, nil); status != http.StatusOK {
		t.Fatalf("the caller's session ended: %d %v", status, body)
	}
	if st, body := e.refresh(mine["refresh_token"].(string)); st != http.StatusOK {
		t.Fatalf("the caller's session cannot refresh: %d %v", st, body)
	}
	notice := e.smtp.WaitFor("eve@example.com", "Your password was changed")
	if !strings.Contains(notice.Text, "every other session was signed out") {
		t.Fatalf("notice: %+v", notice)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// With AUTHLEDGER_REQUIRE_VERIFIED_EMAIL, registration answers a taken
// address exactly like a new one and mails the owner; login waits for
// the verification.
func TestEnumerationSafeRegistrationAndVerifiedLogin(t *testing.T) {
	t.Parallel()
	e := startAccount(t, map[string]string{"AUTHLEDGER_REQUIRE_VERIFIED_EMAIL": "true"})
	reg := map[string]string{"email": "fay@example.com", "password": accountPassword, "display_name": "Fay"}
	s1, h1, b1 := e.call("POST", "/v1/auth/register", "", reg)
	s2, h2, b2 := e.call("POST", "/v1/auth/register", "", map[string]string{"email": "FAY@example.com", "password": "another long secret", "display_name": "Mallory"})
	if s1 != http.StatusAccepted || s2 != s1 || !reflect.DeepEqual(b1, b2) || (h1.Get("X-Consistency-Token") == "") != (h2.Get("X-Consistency-Token") == "") {
		t.Fatalf("new %d %v, taken %d %v", s1, b1, s2, b2)
	}
	attempt := e.smtp.WaitFor("fay@example.com", "Someone tried to register your address")
	if !strings.Contains(attempt.Text, "Hello Fay") {
		t.Fatalf("attempt mail: %+v", attempt)
	}
	status, body := e.login("fay@example.com", accountPassword)
	if status != http.StatusUnauthorized || slugOf(body) != "email-not-verified" {
		t.Fatalf("login before verification: %d %v", status, body)
	}
	if status, body := e.login("fay@example.com", "another long secret"); status != http.StatusUnauthorized || slugOf(body) != "invalid-credentials" {
		t.Fatalf("the attacker's password: %d %v", status, body)
	}
	m := e.smtp.WaitFor("fay@example.com", "Confirm your email address")
	if status, _, body := e.call("POST", "/v1/auth/verify-email", "", map[string]string{"token": m.Token()}); status != http.StatusNoContent {
		t.Fatalf("verify: %d %v", status, body)
	}
	if status, body := e.login("fay@example.com", accountPassword); status != http.StatusOK {
		t.Fatalf("login after verification: %d %v", status, body)
	}
}

// PATCH /v1/me changes the display name at once; a new address takes
// effect only once verified from its mailbox, and an address someone else
// holds is refused only then, to that mailbox's owner.
func TestProfileUpdateWithAReverifiedAddress(t *testing.T) {
	t.Parallel()
	e := startAccount(t, nil)
	e.register("gus@example.com")
	e.register("taken@example.com")
	_, acc := e.login("gus@example.com", accountPassword)
	tok := acc["access_token"].(string)
	status, h, body := e.call("PATCH", "/v1/me", tok, map[string]any{"display_name": "Gus the Great"})
	if status != http.StatusOK || body["email_pending"] != nil {
		t.Fatalf("rename: %d %v", status, body)
	}
	if _, _, me := e.call("GET", "/v1/me", tok, nil, "X-Consistency-Token", h.Get("X-Consistency-Token")); me["display_name"] != "Gus the Great" {
		t.Fatalf("/v1/me: %v", me)
	}
	if status, _, body := e.call("PATCH", "/v1/me", tok, map[string]any{"display_name": "", "email": "not an address"}); status != http.StatusBadRequest ||
		!strings.Contains(mustJSON(body), "display_name") || !strings.Contains(mustJSON(body), "email") {
		t.Fatalf("invalid fields: %d %v", status, body)
	}
	// A taken address answers like a free one; its link is refused.
	status, _, body = e.call("PATCH", "/v1/me", tok, map[string]any{"email": "taken@example.com"})
	if status != http.StatusOK || body["email_pending"] != "taken@example.com" {
		t.Fatalf("taken address: %d %v", status, body)
	}
	takenMail := e.smtp.WaitFor("taken@example.com", "Confirm your new email address")
	if status, _, body := e.call("POST", "/v1/auth/verify-email", "", map[string]string{"token": takenMail.Token()}); status != http.StatusConflict || slugOf(body) != "email-taken" {
		t.Fatalf("verify a taken address: %d %v", status, body)
	}
	status, _, body = e.call("PATCH", "/v1/me", tok, map[string]any{"email": "gus@new.example"})
	if status != http.StatusOK || body["email_pending"] != "gus@new.example" {
		t.Fatalf("change: %d %v", status, body)
	}
	if st, _ := e.login("gus@new.example", accountPassword); st != http.StatusUnauthorized {
		t.Fatalf("the new address works before verification: %d", st)
	}
	m := e.smtp.WaitFor("gus@new.example", "Confirm your new email address")
	status, h, body = e.call("POST", "/v1/auth/verify-email", "", map[string]string{"token": m.Token()})
	if status != http.StatusNoContent {
		t.Fatalf("verify: %d %v", status, body)
	}
	if _, _, me := e.call("GET", "/v1/me", tok, nil, "X-Consistency-Token", h.Get("X-Consistency-Token")); me["email"] != "gus@new.example" || me["email_verified"] != true {
		t.Fatalf("/v1/me after the change: %v", me)
	}
	if st, _ := e.login("gus@new.example", accountPassword); st != http.StatusOK {
		t.Fatalf("the new address: %d", st)
	}
	if st, _ := e.login("gus@example.com", accountPassword); st != http.StatusUnauthorized {
		t.Fatalf("the old address still logs in: %d", st)
	}
	// The old address is told, and is free again.
	moved := e.smtp.WaitFor("gus@example.com", "email address was changed")
	if !strings.Contains(moved.Text, "now uses gus@new.example") {
		t.Fatalf("notice to the old address: %+v", moved)
	}
	e.register("gus@example.com")
}

// An SMTP server that refuses every message: the request still answers,
// the message is retried with backoff, then dead-lettered, and
// `projections status` shows it; nothing is sent after.
func TestFailingSMTPRetriesThenDeadLetters(t *testing.T) {
	t.Parallel()
	e := startAccount(t, nil)
	e.smtp.Fail(true)
	status, _, body := e.call("POST", "/v1/auth/register", "", map[string]string{"email": "hal@example.com", "password": accountPassword, "display_name": "Hal"})
	if status != http.StatusCreated {
		t.Fatalf("register while SMTP fails: %d %v", status, body)
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
	if sum.Dead != 1 || len(sum.DeadLetters) != 1 || sum.DeadLetters[0].Attempts != 3 || !strings.Contains(sum.DeadLetters[0].LastError, "451") {
		t.Fatalf("outbox: %+v", sum)
	}
	if n := e.smtp.Attempts(); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	code, out, errOut := runCmd(t, map[string]string{"DATABASE_URL": e.db}, "projections", "status")
	if code != exitOK || !strings.Contains(out, "dead-letters") || !strings.Contains(out, "dead letter "+sum.DeadLetters[0].EventID.String()) || !strings.Contains(out, "outbox") {
		t.Fatalf("projections status: %d\n%s\n%s", code, out, errOut)
	}
	e.smtp.Fail(false)
	time.Sleep(300 * time.Millisecond)
	if n := e.smtp.Attempts(); n != 3 || len(e.smtp.Messages()) != 0 {
		t.Fatalf("a dead letter was sent again: %d attempts", n)
	}
	// An operator requeues it once the server is back: it is delivered.
	if code, out, errOut := runCmd(t, map[string]string{"DATABASE_URL": e.db}, "projections", "requeue", "-all"); code != exitOK || !strings.Contains(out, "requeued 1") {
		t.Fatalf("requeue: %d %s %s", code, out, errOut)
	}
	m := e.smtp.WaitFor("hal@example.com", "Confirm your email address")
	if status, _, body := e.call("POST", "/v1/auth/verify-email", "", map[string]string{"token": m.Token()}); status != http.StatusNoContent {
		t.Fatalf("verify with the requeued mail: %d %v", status, body)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		sum, err := outbox.Summarize(t.Context(), pool)
		if err == nil && sum.Dead == 0 && sum.Sent == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the requeue: %+v %v", sum, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Without AUTHLEDGER_SMTP_URL (make run), serve says so at start-up and
// writes each message, link included, to its standard output; the link
// works.
func TestWithoutSMTPMailIsWrittenOut(t *testing.T) {
	t.Parallel()
	r := startServiceWith(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_WORKERS": "0"}, hooks{outboxPoll: 50 * time.Millisecond})
	if !strings.Contains(r.logs.String(), "no AUTHLEDGER_SMTP_URL") {
		t.Fatalf("no start-up notice:\n%s", r.logs.String())
	}
	if status, _, body := r.call("POST", "/v1/auth/register", "", map[string]string{"email": "ivy@example.com", "password": accountPassword, "display_name": "Ivy"}); status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, body)
	}
	link := regexp.MustCompile(`(?s)To: ivy@example.com\nSubject: Confirm your email address\n.*?#token=([A-Za-z0-9_-]+)`)
	deadline := time.Now().Add(10 * time.Second)
	var m []string
	for m == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		m = link.FindStringSubmatch(r.logs.String())
	}
	if m == nil {
		t.Fatalf("no mail written out:\n%s", r.logs.String())
	}
	if status, _, body := r.call("POST", "/v1/auth/verify-email", "", map[string]string{"token": m[1]}); status != http.StatusNoContent {
		t.Fatalf("verify with the written-out token: %d %v", status, body)
	}
}

package mfa_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/mfa"
	"github.com/authledger/authledger/events"
)

var (
	userID = uuid.MustParse("01900000-0000-7000-8000-000000000001")
	t0     = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
)

// given folds history, then hands the aggregate on as loaded.
func given(t *testing.T, history ...events.Event) *mfa.Factors {
	t.Helper()
	f, err := mfa.FromHistory(history)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func confirmedApp(id uuid.UUID, step int64) []events.Event {
	return []events.Event{
		mfa.TOTPAdded{UserID: userID, MethodID: id, AddedAt: t0},
		mfa.TOTPConfirmed{UserID: userID, MethodID: id, Step: step, ConfirmedAt: t0},
	}
}

func challenge(id uuid.UUID, purpose string) mfa.ChallengeIssued {
	return mfa.ChallengeIssued{UserID: userID, ChallengeID: id, Digest: "d-" + id.String(), Purpose: purpose, Method: "password",
		AMR: []string{"pwd"}, IssuedAt: t0, ExpiresAt: t0.Add(5 * time.Minute)}
}

func TestAPendingAppDoesNotEnableTheSecondFactor(t *testing.T) {
	t.Parallel()
	app := uuid.New()
	f := given(t, mfa.TOTPAdded{UserID: userID, MethodID: app, AddedAt: t0})
	if f.Enabled() {
		t.Fatal("a pending app enables the second factor")
	}
	if err := f.ConfirmTOTP(app, 100, t0); err != nil {
		t.Fatal(err)
	}
	if !f.Enabled() || f.LastStep(app) != 100 {
		t.Fatalf("enabled %v, last step %d", f.Enabled(), f.LastStep(app))
	}
	if err := f.ConfirmTOTP(app, 101, t0); !errors.Is(err, mfa.ErrAlreadyConfirmed) {
		t.Fatalf("confirm twice: %v", err)
	}
}

// A challenge is spent with the step that completed it; that step and
// every earlier one are refused after, and so is the challenge.
func TestATOTPStepAndAChallengeWorkOnce(t *testing.T) {
	t.Parallel()
	app, c1, c2 := uuid.New(), uuid.New(), uuid.New()
	f := given(t, append(confirmedApp(app, 100), challenge(c1, mfa.PurposeLogin), challenge(c2, mfa.PurposeLogin))...)
	ch, err := f.OpenChallenge(c1, "d-"+c1.String(), t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CompleteWithTOTP(ch, app, 100, t0); !errors.Is(err, mfa.ErrCodeSpent) {
		t.Fatalf("the confirmation's step: %v", err)
	}
	if err := f.CompleteWithTOTP(ch, app, 101, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.OpenChallenge(c1, "d-"+c1.String(), t0); !errors.Is(err, mfa.ErrInvalidChallenge) {
		t.Fatalf("a spent challenge opens: %v", err)
	}
	ch2, err := f.OpenChallenge(c2, "d-"+c2.String(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CompleteWithTOTP(ch2, app, 101, t0); !errors.Is(err, mfa.ErrCodeSpent) {
		t.Fatalf("a replayed step on another challenge: %v", err)
	}
	// The same holds once folded from the log.
	g := given(t, append(append(confirmedApp(app, 100), challenge(c1, mfa.PurposeLogin), challenge(c2, mfa.PurposeLogin)), f.Changes()...)...)
	if g.LastStep(app) != 101 {
		t.Fatalf("folded last step %d", g.LastStep(app))
	}
}

func TestAChallengeOpensOnlyWithItsDigestBeforeItsExpiry(t *testing.T) {
	t.Parallel()
	c := uuid.New()
	f := given(t, challenge(c, mfa.PurposeLogin))
	for name, tc := range map[string]struct {
		digest string
		at     time.Time
	}{
		"wrong digest": {"d-other", t0},
		"expired":      {"d-" + c.String(), t0.Add(5 * time.Minute)},
	} {
		if _, err := f.OpenChallenge(c, tc.digest, tc.at); !errors.Is(err, mfa.ErrInvalidChallenge) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := f.OpenChallenge(uuid.New(), "d-"+c.String(), t0); !errors.Is(err, mfa.ErrInvalidChallenge) {
		t.Errorf("unknown id: %v", err)
	}
}

func TestAnEnrolmentChallengeConfirmsAPendingApp(t *testing.T) {
	t.Parallel()
	app, c := uuid.New(), uuid.New()
	f := given(t, challenge(c, mfa.PurposeEnroll), mfa.TOTPAdded{UserID: userID, MethodID: app, AddedAt: t0})
	ch, err := f.OpenChallenge(c, "d-"+c.String(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CompleteWithBackupCode(ch, 0, t0); err == nil {
		t.Fatal("a backup code completed an enrolment")
	}
	if err := f.CompleteWithTOTP(ch, app, 7, t0); err != nil {
		t.Fatal(err)
	}
	if !f.Enabled() || len(f.Changes()) != 2 {
		t.Fatalf("enabled %v, changes %v", f.Enabled(), f.Changes())
	}
	// A login challenge does not confirm a pending app.
	app2, c2 := uuid.New(), uuid.New()
	g := given(t, challenge(c2, mfa.PurposeLogin), mfa.TOTPAdded{UserID: userID, MethodID: app2, AddedAt: t0})
	ch2, _ := g.OpenChallenge(c2, "d-"+c2.String(), t0)
	if err := g.CompleteWithTOTP(ch2, app2, 7, t0); !errors.Is(err, mfa.ErrNotFound) {
		t.Fatalf("login challenge on a pending app: %v", err)
	}
}

func digests(prefix string) []string {
	out := make([]string, mfa.BackupCodeCount)
	for i := range out {
		out[i] = prefix + string(rune('a'+i))
	}
	return out
}

func TestBackupCodesWorkOnceAndARegenerationReplacesThemAll(t *testing.T) {
	t.Parallel()
	app, set, c1, c2 := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	if err := given(t).GenerateBackupCodes(userID, set, digests("x"), t0); !errors.Is(err, mfa.ErrNoPrimaryFactor) {
		t.Fatalf("backup codes alone: %v", err)
	}
	f := given(t, append(confirmedApp(app, 1), mfa.BackupCodesGenerated{UserID: userID, MethodID: set, Digests: digests("x"), GeneratedAt: t0},
		challenge(c1, mfa.PurposeLogin), challenge(c2, mfa.PurposeLogin))...)
	i := f.BackupCodeIndex("xc")
	if i != 2 {
		t.Fatalf("index %d", i)
	}
	ch, _ := f.OpenChallenge(c1, "d-"+c1.String(), t0)
	if err := f.CompleteWithBackupCode(ch, i, t0); err != nil {
		t.Fatal(err)
	}
	if f.BackupCodeIndex("xc") != -1 {
		t.Fatal("a used code is still found")
	}
	ch2, _ := f.OpenChallenge(c2, "d-"+c2.String(), t0)
	if err := f.CompleteWithBackupCode(ch2, i, t0); !errors.Is(err, mfa.ErrCodeSpent) {
		t.Fatalf("a code twice: %v", err)
	}
	if err := f.GenerateBackupCodes(userID, uuid.New(), digests("y"), t0); err != nil {
		t.Fatal(err)
	}
	if f.BackupCodeIndex("xa") != -1 || f.BackupCodeIndex("ya") != 0 {
		t.Fatal("the old set survived the regeneration")
	}
}

func TestRemovingTheLastAppRemovesTheBackupCodes(t *testing.T) {
	t.Parallel()
	app, set := uuid.New(), uuid.New()
	f := given(t, append(confirmedApp(app, 1), mfa.BackupCodesGenerated{UserID: userID, MethodID: set, Digests: digests("x"), GeneratedAt: t0})...)
	if err := f.Remove(app, t0); err != nil {
		t.Fatal(err)
	}
	if f.Enabled() || len(f.Methods()) != 0 || len(f.Changes()) != 2 {
		t.Fatalf("after removal: %v %v", f.Methods(), f.Changes())
	}
	if err := f.Remove(app, t0); !errors.Is(err, mfa.ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
}

func TestAtMostFiveApps(t *testing.T) {
	t.Parallel()
	f := given(t)
	for range mfa.MaxTOTPMethods {
		if err := f.AddTOTP(userID, uuid.New(), t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.AddTOTP(userID, uuid.New(), t0); !errors.Is(err, mfa.ErrTooMany) {
		t.Fatalf("sixth app: %v", err)
	}
}

func TestEveryEventRoundTripsUnderItsName(t *testing.T) {
	t.Parallel()
	r := events.NewRegistry()
	if err := mfa.RegisterEvents(r); err != nil {
		t.Fatal(err)
	}
	for _, e := range mfa.AllEvents() {
		if _, err := r.Decode(e.EventName(), []byte(`{}`)); err != nil {
			t.Errorf("%s: %v", e.EventName(), err)
		}
	}
}

func emailFactor(id uuid.UUID) mfa.EmailAdded {
	return mfa.EmailAdded{UserID: userID, MethodID: id, AddedAt: t0}
}

// A mailed code belongs to its challenge: the newest one only, five
// wrong attempts void it, it expires after CodeTTL, and codes are rate
// limited per user.
func TestMailedCodesAreSupersededVoidedAndRateLimited(t *testing.T) {
	t.Parallel()
	email, c := uuid.New(), uuid.New()
	f := given(t, emailFactor(email), challenge(c, mfa.PurposeLogin))
	ch, _ := f.OpenChallenge(c, "d-"+c.String(), t0)
	if _, err := f.LiveCode(ch, t0); !errors.Is(err, mfa.ErrNoCode) {
		t.Fatalf("a code before any was sent: %v", err)
	}
	first, second := uuid.New(), uuid.New()
	if err := f.SendCode(ch, first, "a@example.com", t0); err != nil {
		t.Fatal(err)
	}
	var throttled *mfa.CodeThrottledError
	if err := f.SendCode(ch, second, "a@example.com", t0.Add(10*time.Second)); !errors.As(err, &throttled) || throttled.RetryAfter != 20*time.Second {
		t.Fatalf("a second code at once: %v", err)
	}
	at := t0.Add(mfa.CodeInterval)
	if err := f.SendCode(ch, second, "a@example.com", at); err != nil {
		t.Fatal(err)
	}
	if err := f.CompleteWithCode(ch, first, at); !errors.Is(err, mfa.ErrNoCode) {
		t.Fatalf("a superseded code: %v", err)
	}
	for range mfa.MaxCodeAttempts {
		if err := f.FailCode(ch, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.CompleteWithCode(ch, second, at); !errors.Is(err, mfa.ErrNoCode) {
		t.Fatalf("a code after five failures: %v", err)
	}
	// Folded from the log, the same.
	g := given(t, append([]events.Event{emailFactor(email), challenge(c, mfa.PurposeLogin)}, f.Changes()...)...)
	if _, err := g.LiveCode(ch, at); !errors.Is(err, mfa.ErrNoCode) {
		t.Fatalf("folded: %v", err)
	}
	// Sending extends the challenge to the code's life.
	third := uuid.New()
	at2 := at.Add(mfa.CodeInterval)
	if err := g.SendCode(ch, third, "a@example.com", at2); err != nil {
		t.Fatal(err)
	}
	late := at2.Add(mfa.CodeTTL - time.Second)
	if err := g.CompleteWithCode(ch, third, late); err != nil {
		t.Fatalf("within the code's life: %v", err)
	}
}

func TestAtMostFiveCodesAnHour(t *testing.T) {
	t.Parallel()
	email := uuid.New()
	history := []events.Event{emailFactor(email)}
	var ids []uuid.UUID
	for range mfa.MaxCodesPerWindow + 1 {
		id := uuid.New()
		ids = append(ids, id)
		history = append(history, challenge(id, mfa.PurposeLogin))
	}
	f := given(t, history...)
	for i := range mfa.MaxCodesPerWindow {
		ch, _ := f.OpenChallenge(ids[i], "d-"+ids[i].String(), t0)
		if err := f.SendCode(ch, uuid.New(), "a@example.com", t0.Add(time.Duration(i)*45*time.Second)); err != nil {
			t.Fatalf("code %d: %v", i, err)
		}
	}
	last := ids[mfa.MaxCodesPerWindow]
	ch, _ := f.OpenChallenge(last, "d-"+last.String(), t0)
	var throttled *mfa.CodeThrottledError
	if err := f.SendCode(ch, uuid.New(), "a@example.com", t0.Add(4*time.Minute)); !errors.As(err, &throttled) || throttled.RetryAfter != 56*time.Minute {
		t.Fatalf("a sixth code within the hour: %v", err)
	}
}

func TestANumberIsConfirmedByItsOwnCode(t *testing.T) {
	t.Parallel()
	f := given(t)
	phone, code := uuid.New(), uuid.New()
	if err := f.AddPhone(userID, phone, code, "+447700900123", t0); err != nil {
		t.Fatal(err)
	}
	if f.Enabled() {
		t.Fatal("a pending number enables the second factor")
	}
	if err := f.ConfirmPhone(phone, uuid.New(), t0); !errors.Is(err, mfa.ErrNoCode) {
		t.Fatalf("another code: %v", err)
	}
	if err := f.ConfirmPhone(phone, code, t0.Add(mfa.CodeTTL)); !errors.Is(err, mfa.ErrNoCode) {
		t.Fatalf("an expired code: %v", err)
	}
	if err := f.ConfirmPhone(phone, code, t0); err != nil {
		t.Fatal(err)
	}
	if !f.Enabled() || !slicesEqual(f.ConfirmedKinds(), []string{mfa.KindSMS}) {
		t.Fatalf("kinds %v", f.ConfirmedKinds())
	}
	if err := f.AddPhone(userID, uuid.New(), uuid.New(), "+447700900123", t0.Add(time.Hour)); !errors.Is(err, mfa.ErrAlreadyEnrolled) {
		t.Fatalf("the same number twice: %v", err)
	}
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

package user_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
)

var (
	tok1 = uuid.MustParse("01900000-0000-7000-8000-000000000001")
	tok2 = uuid.MustParse("01900000-0000-7000-8000-000000000002")
	dig1 = user.Digest{1}
	dig2 = user.Digest{2}
)

func verificationRequested(id uuid.UUID, d user.Digest, email string, at time.Time) user.EmailVerificationRequested {
	return user.EmailVerificationRequested{UserID: userID, TokenID: id, Digest: d, Email: email, RequestedAt: at, ExpiresAt: at.Add(user.VerificationTTL)}
}

func TestVerifyEmailUsesTheTokenOnce(t *testing.T) {
	t.Parallel()
	u := registeredUser(t, verificationRequested(tok1, dig1, "alice@example.com", t0))
	if err := u.VerifyEmail(tok1, dig2, t0); !errors.Is(err, user.ErrInvalidToken) {
		t.Fatalf("a wrong digest: %v", err)
	}
	if err := u.VerifyEmail(tok1, dig1, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	thenEvents(t, u, user.EmailVerified{UserID: userID, TokenID: tok1, Email: "alice@example.com", VerifiedAt: t0.Add(time.Hour)})
	if !u.EmailVerified() {
		t.Fatal("not verified")
	}
	if err := u.VerifyEmail(tok1, dig1, t0.Add(time.Hour)); !errors.Is(err, user.ErrInvalidToken) {
		t.Fatalf("reuse: %v", err)
	}
	// A verified address asks for nothing more.
	if err := u.RequestEmailVerification(tok2, dig2, "alice@example.com", t0); err != nil || len(u.Changes()) != 1 {
		t.Fatalf("request for a verified address: %v %v", err, u.Changes())
	}
}

func TestVerificationTokensExpireAndAreSuperseded(t *testing.T) {
	t.Parallel()
	u := registeredUser(t, verificationRequested(tok1, dig1, "alice@example.com", t0), verificationRequested(tok2, dig2, "alice@example.com", t0.Add(time.Minute)))
	if err := u.VerifyEmail(tok1, dig1, t0.Add(2*time.Minute)); !errors.Is(err, user.ErrInvalidToken) {
		t.Fatalf("a superseded token: %v", err)
	}
	if err := u.VerifyEmail(tok2, dig2, t0.Add(time.Minute+user.VerificationTTL)); !errors.Is(err, user.ErrInvalidToken) {
		t.Fatalf("an expired token: %v", err)
	}
}

func TestAVerifiedNewAddressChangesTheEmail(t *testing.T) {
	t.Parallel()
	u := registeredUser(t, verificationRequested(tok1, dig1, "new@example.com", t0))
	if u.Email() != "alice@example.com" {
		t.Fatal("the request changed the address")
	}
	if err := u.VerifyEmail(tok1, dig1, t0); err != nil {
		t.Fatal(err)
	}
	thenEvents(t, u, user.EmailChanged{UserID: userID, TokenID: tok1, OldEmail: "alice@example.com", Email: "new@example.com", ChangedAt: t0})
	if u.Email() != "new@example.com" || !u.EmailVerified() {
		t.Fatalf("after the change: %s %v", u.Email(), u.EmailVerified())
	}
}

func TestResetTokenIsSingleUseAndVoidedByAnyNewPassword(t *testing.T) {
	t.Parallel()
	reset := user.PasswordResetRequested{UserID: userID, TokenID: tok1, Digest: dig1, RequestedAt: t0, ExpiresAt: t0.Add(user.ResetTTL)}
	u := registeredUser(t, reset)
	if err := u.ResetPassword(tok1, dig1, hash, t0.Add(user.ResetTTL)); !errors.Is(err, user.ErrInvalidToken) {
		t.Fatalf("expired: %v", err)
	}
	if err := u.ResetPassword(tok1, dig1, "not a hash", t0); err == nil {
		t.Fatal("a raw password was recorded")
	}
	if err := u.ResetPassword(tok1, dig1, hash, t0); err != nil {
		t.Fatal(err)
	}
	id := tok1
	thenEvents(t, u, user.PasswordChanged{UserID: userID, PasswordHash: hash, ChangedAt: t0, Reason: user.PasswordReasonReset, TokenID: &id})
	if err := u.CheckResetToken(tok1, dig1, t0); !errors.Is(err, user.ErrInvalidToken) {
		t.Fatalf("reuse: %v", err)
	}
	keep := uuid.New()
	changed := registeredUser(t, reset, user.PasswordChanged{UserID: userID, PasswordHash: hash, ChangedAt: t0, Reason: user.PasswordReasonChanged, KeepSession: &keep})
	if err := changed.CheckResetToken(tok1, dig1, t0); !errors.Is(err, user.ErrInvalidToken) {
		t.Fatalf("a reset link outlived a password change: %v", err)
	}
}

func TestDigestsAreHexInTheLog(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(verificationRequested(tok1, user.Digest{0xab}, "a@example.com", t0))
	if err != nil {
		t.Fatal(err)
	}
	var back user.EmailVerificationRequested
	if err := json.Unmarshal(b, &back); err != nil || back.Digest != (user.Digest{0xab}) {
		t.Fatalf("%s: %v %v", b, back, err)
	}
	if err := json.Unmarshal([]byte(`{"digest":"zz"}`), &back); err == nil {
		t.Fatal("a bad digest decoded")
	}
}

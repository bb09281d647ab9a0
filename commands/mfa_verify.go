package commands

import (
	"context"
	"crypto/subtle"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/mailtoken"
	authmfa "github.com/authledger/authledger/auth/mfa"
	"github.com/authledger/authledger/domain/mfa"
	"github.com/authledger/authledger/domain/user"
)

// VerifySecondFactor completes a login stopped at its first factor.
// Method is mfa.KindTOTP, mfa.KindEmail (the code mailed by SendCode) or
// "backup_code".
type VerifySecondFactor struct {
	Token  string
	Method string
	Code   string
	// Credential is the assertion (PublicKeyCredential JSON) of method
	// mfa.KindWebAuthn, answering BeginPasskeySecondFactor.
	Credential []byte
	Meta       Meta
}

// MethodBackupCode is the verify request's name of a backup code.
const MethodBackupCode = "backup_code"

// VerifiedLogin is a completed login; BackupCodes is the first set of
// backup codes when the login set up the user's first factor (an
// enrolment challenge), shown once.
type VerifiedLogin struct {
	LoginResult
	BackupCodes []string
}

// VerifySecondFactor checks the code against the challenge's user, the
// way a password is checked: the login throttle first (a throttled
// attempt checks nothing), a wrong code recorded as a failed login of
// the client's source. A right one spends the challenge and the code in
// one append (so a token and a code each work once however requests
// race), clears the source's failures and starts the session with the
// first factor's amr and the second's.
func (h *LoginHandler) VerifySecondFactor(ctx context.Context, cmd VerifySecondFactor) (VerifiedLogin, error) {
	s := h.MFA
	if s == nil {
		return VerifiedLogin{}, ErrInvalidMFAToken
	}
	now := s.now()
	tok, f, c, err := s.openChallenge(ctx, cmd.Token, "")
	if err != nil {
		return VerifiedLogin{}, err
	}
	u, err := h.Users.Load(ctx, user.StreamName(tok.UserID))
	if err != nil {
		return VerifiedLogin{}, err
	}
	if !u.Registered() {
		return VerifiedLogin{}, ErrInvalidMFAToken
	}
	attempt := user.LoginAttempt{Source: user.Source(cmd.Meta.ClientIP), Method: "mfa"}
	if wait := u.LoginRetryAfterPending(h.failureLog().pending(u.ID(), u.Version()), attempt, now, h.Throttle); wait > 0 {
		return VerifiedLogin{}, &user.ThrottledError{RetryAfter: wait}
	}
	var decide func(*mfa.Factors) error
	amr := AMROTP
	switch cmd.Method {
	case mfa.KindSMS:
		amr = AMRSMS
	case mfa.KindWebAuthn:
		amr = AMRHardwareKey
	}
	switch {
	case cmd.Method == mfa.KindTOTP:
		methods := f.TOTPMethods(true)
		if c.Purpose == mfa.PurposeEnroll {
			methods = f.TOTPMethods(false)
		}
		id, step, err := s.matchTOTP(ctx, u.ID(), methods, cmd.Code, now)
		if err != nil {
			return VerifiedLogin{}, err
		}
		if step != 0 {
			decide = func(f *mfa.Factors) error { return f.CompleteWithTOTP(c, id, step, now) }
		}
	case (cmd.Method == mfa.KindEmail || cmd.Method == mfa.KindSMS) && c.Purpose == mfa.PurposeLogin && s.Minter != nil:
		code, err := f.LiveCode(c, now)
		if err == nil && code.Channel == cmd.Method {
			want := s.Minter.Mint(mailtoken.MFACode, u.ID(), code.ID).Code()
			if subtle.ConstantTimeCompare([]byte(want), []byte(cmd.Code)) == 1 {
				decide = func(f *mfa.Factors) error { return f.CompleteWithCode(c, code.ID, now) }
			} else {
				// The code's own count (MaxCodeAttempts voids it), beside
				// the login throttle's.
				_, _ = s.Factors.Update(ctx, mfa.StreamName(u.ID()), cmd.Meta, func(f *mfa.Factors) error { return f.FailCode(c, now) })
			}
		}
	case cmd.Method == mfa.KindWebAuthn:
		if decide, err = s.matchPasskey(ctx, u, f, c, cmd.Credential); err != nil {
			return VerifiedLogin{}, err
		}
	case cmd.Method == MethodBackupCode && c.Purpose == mfa.PurposeLogin:
		if i := f.BackupCodeIndex(authmfa.BackupCodeDigest(cmd.Code)); i >= 0 {
			decide = func(f *mfa.Factors) error { return f.CompleteWithBackupCode(c, i, now) }
		}
	}
	var codes []string
	if decide != nil && c.Purpose == mfa.PurposeEnroll {
		// The first factor comes with its backup codes, in the same append.
		var digests []string
		if codes, digests, err = authmfa.NewBackupCodes(mfa.BackupCodeCount); err != nil {
			return VerifiedLogin{}, err
		}
		first := decide
		decide = func(f *mfa.Factors) error {
			if err := first(f); err != nil {
				return err
			}
			id, err := newID()
			if err != nil {
				return err
			}
			return f.GenerateBackupCodes(u.ID(), id, digests, now)
		}
	}
	if decide != nil {
		_, err = s.Factors.Update(ctx, mfa.StreamName(u.ID()), cmd.Meta, decide)
		switch {
		case errors.Is(err, mfa.ErrInvalidChallenge):
			return VerifiedLogin{}, ErrInvalidMFAToken // spent by a racing request
		case errors.Is(err, mfa.ErrCodeSpent), errors.Is(err, mfa.ErrNotFound), errors.Is(err, mfa.ErrNoCode),
			errors.Is(err, mfa.ErrSignCountRegressed):
			decide = nil // a replayed code: a failure like a wrong one
		case err != nil:
			return VerifiedLogin{}, err
		}
	}
	if decide == nil {
		h.failureLog().record(ctx, u.ID(), attempt, now, h.Throttle, cmd.Meta)
		return VerifiedLogin{}, ErrInvalidSecondFactor
	}
	h.clearFailures(ctx, u, attempt, cmd.Meta, now)
	r, err := h.startSessionAMR(ctx, u, cmd.Meta, now, c.Method, append(slices.Clone(c.AMR), amr))
	if err != nil {
		return VerifiedLogin{}, err
	}
	return VerifiedLogin{LoginResult: r, BackupCodes: codes}, nil
}

// clearFailures forgets the source's failed logins after a completed
// second factor (best effort, as afterSuccess: the login goes on).
func (h *LoginHandler) clearFailures(ctx context.Context, u *user.User, a user.LoginAttempt, meta Meta, now time.Time) {
	if !u.HasLoginFailuresPending(h.failureLog().pending(u.ID(), u.Version()), a) {
		return
	}
	// The clearing must follow the failures it clears in the stream.
	h.failureLog().wait(ctx, u.ID())
	_, _ = h.Users.Update(ctx, user.StreamName(u.ID()), meta, func(u *user.User) error { return u.RecordLoginSuccess(a, now) })
}

// newID is a new time-ordered id.
func newID() (uuid.UUID, error) { return uuid.NewV7() }

package commands

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/mailtoken"
	authmfa "github.com/authledger/authledger/auth/mfa"
	"github.com/authledger/authledger/domain/mfa"
	"github.com/authledger/authledger/domain/user"
)

// The second-factor answers (the error table maps them; docs/adr/0032).
var (
	// ErrMFARequired answers a correct first factor of a user with a
	// second factor: *MFARequiredError carries the mfa_token.
	ErrMFARequired = errors.New("commands: a second factor is required")
	// ErrMFAEnrollmentRequired answers a correct first factor of a user
	// whose role requires a second factor not set up yet
	// (AUTHLEDGER_MFA_REQUIRED_ROLES); the mfa_token only sets one up.
	ErrMFAEnrollmentRequired = errors.New("commands: a second factor must be set up")
	// ErrInvalidMFAToken: the mfa_token is malformed, unknown, expired,
	// used, or not for this request. Never counted as a failed login: a
	// 256-bit token is not guessed.
	ErrInvalidMFAToken = errors.New("commands: invalid mfa_token")
	// ErrInvalidSecondFactor: the code is wrong, spent, or of a method the
	// user does not have. Counted like a wrong password.
	ErrInvalidSecondFactor = errors.New("commands: invalid second factor")
	// ErrInvalidConfirmationCode: the first code of a new authenticator
	// app is wrong (the caller is signed in: a 400, not a failed login).
	ErrInvalidConfirmationCode = errors.New("commands: invalid confirmation code")
	// ErrStepUpRequired: removing or adding a factor, or new backup
	// codes, needs a login with a second factor within the step-up age.
	ErrStepUpRequired = errors.New("commands: a recent login with a second factor is required")
	// ErrMFAMethodNotFound: no such method of the caller.
	ErrMFAMethodNotFound = errors.New("commands: no such second factor")
	// ErrMFATooMany: mfa.MaxTOTPMethods reached.
	ErrMFATooMany = errors.New("commands: too many authenticator apps")
	// ErrMFANoPrimaryFactor: backup codes without a confirmed factor.
	ErrMFANoPrimaryFactor = errors.New("commands: backup codes need a confirmed second factor")
	// ErrMFAEmailUnverified: the email factor needs a verified address.
	ErrMFAEmailUnverified = errors.New("commands: the address must be verified to receive codes")
	// ErrMFAAlreadyEnrolled: the email factor is on already.
	ErrMFAAlreadyEnrolled = errors.New("commands: the email factor is on already")
	// ErrInvalidPhone: not an E.164 number.
	ErrInvalidPhone = errors.New("commands: the phone number must be in E.164 form (+ and 7 to 15 digits)")
	// ErrMFACodeThrottled is matched by *MFACodeThrottledError.
	ErrMFACodeThrottled = errors.New("commands: codes asked too often")
)

// MFACodeThrottledError: a mailed code was asked for too soon (per user,
// which for the email factor is per address: one account per address).
type MFACodeThrottledError struct{ RetryAfter time.Duration }

func (e *MFACodeThrottledError) Error() string { return ErrMFACodeThrottled.Error() }

// Is matches ErrMFACodeThrottled.
func (e *MFACodeThrottledError) Is(target error) bool { return target == ErrMFACodeThrottled }

// MFARequiredError is a login stopped at its first factor: the client
// completes it with Token (POST /v1/auth/mfa/verify) or, when Enrollment,
// sets up a factor with it first.
type MFARequiredError struct {
	Token      string
	Methods    []string
	ExpiresAt  time.Time
	Enrollment bool
}

func (e *MFARequiredError) Error() string {
	if e.Enrollment {
		return ErrMFAEnrollmentRequired.Error()
	}
	return ErrMFARequired.Error()
}

// Is matches ErrMFARequired or ErrMFAEnrollmentRequired.
func (e *MFARequiredError) Is(target error) bool {
	if e.Enrollment {
		return target == ErrMFAEnrollmentRequired
	}
	return target == ErrMFARequired
}

// The second-factor amr values (RFC 8176).
const (
	AMROTP = "otp"
	AMRSMS = "sms"
)

// secondFactorAMR are the amr values that prove a second factor.
var secondFactorAMR = []string{AMROTP, AMRSMS, "hwk", "swk", "mfa"}

// DefaultMFAChallengeTTL is how long an mfa_token lasts.
const DefaultMFAChallengeTTL = 5 * time.Minute

// DefaultStepUpMaxAge is how recent a login with a second factor must be
// for the step-up checks.
const DefaultStepUpMaxAge = 10 * time.Minute

// SecretStore keeps TOTP secrets sealed (auth/mfa.Secrets).
type SecretStore interface {
	Put(ctx context.Context, method, user uuid.UUID, secret string) error
	Get(ctx context.Context, method, user uuid.UUID) (string, error)
	Delete(ctx context.Context, method uuid.UUID) error
}

// SecondFactors are the second-factor commands and the login's second
// step. A login handler with one (LoginHandler.MFA) stops at the first
// factor of a user who has one.
type SecondFactors struct {
	Factors *Repository[*mfa.Factors]
	Users   *Repository[*user.User]
	Secrets SecretStore
	// Issuer labels the authenticator app's entry (the otpauth issuer).
	Issuer string
	// ChallengeTTL is an mfa_token's life (DefaultMFAChallengeTTL when 0).
	ChallengeTTL time.Duration
	// RequiredRoles must have a second factor: a login of a user holding
	// one of them without a factor answers ErrMFAEnrollmentRequired.
	RequiredRoles []string
	// StepUpMaxAge bounds a step-up login's age (DefaultStepUpMaxAge
	// when 0).
	StepUpMaxAge time.Duration
	// Minter derives the mailed codes (purpose mailtoken.MFACode); nil
	// turns the email factor off. Filled in from IdentityConfig.Minter.
	Minter *mailtoken.Minter
	// Passkeys runs the WebAuthn ceremonies (docs/adr/0037); nil turns
	// passkeys off.
	Passkeys PasskeyCeremonies
	Now      func() time.Time
}

func (s *SecondFactors) now() time.Time { return nowOf(s.Now) }

func (s *SecondFactors) challengeTTL() time.Duration {
	if s.ChallengeTTL > 0 {
		return s.ChallengeTTL
	}
	return DefaultMFAChallengeTTL
}

// StepUp is what the caller's access token proves: how it logged in
// (amr) and when (auth_time).
type StepUp struct {
	AMR      []string
	AuthTime time.Time
}

// fresh reports whether st proves a second factor within the step-up age.
func (s *SecondFactors) fresh(st StepUp, now time.Time) bool {
	age := s.StepUpMaxAge
	if age <= 0 {
		age = DefaultStepUpMaxAge
	}
	hasSecond := slices.ContainsFunc(st.AMR, func(a string) bool { return slices.Contains(secondFactorAMR, a) })
	return hasSecond && !st.AuthTime.IsZero() && now.Sub(st.AuthTime) <= age
}

// required returns the purpose of the challenge user u's correct first
// factor must meet ("" for none) and the kinds it may be met with.
func (s *SecondFactors) required(ctx context.Context, u *user.User, now time.Time) (string, []string, error) {
	f, err := s.Factors.Load(ctx, mfa.StreamName(u.ID()))
	if err != nil {
		return "", nil, err
	}
	if f.Enabled() {
		return mfa.PurposeLogin, f.ConfirmedKinds(), nil
	}
	for _, r := range u.ActiveRoles(now) {
		if slices.Contains(s.RequiredRoles, r) {
			return mfa.PurposeEnroll, []string{mfa.KindTOTP}, nil
		}
	}
	return "", nil, nil
}

// challenge opens a challenge of purpose for u after its first factor
// (method, amr) and returns it as the login's answer.
func (s *SecondFactors) challenge(ctx context.Context, u *user.User, meta Meta, purpose string, kinds []string, method string, amr []string) error {
	now := s.now()
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	tok, err := authmfa.NewChallengeToken(u.ID(), id)
	if err != nil {
		return err
	}
	ttl := s.challengeTTL()
	if _, err := s.Factors.Update(ctx, mfa.StreamName(u.ID()), meta, func(f *mfa.Factors) error {
		f.IssueChallenge(u.ID(), id, tok.Digest(), purpose, method, amr, now, ttl)
		return nil
	}); err != nil {
		return err
	}
	return &MFARequiredError{Token: tok.Encode(), Methods: kinds, ExpiresAt: now.Add(ttl), Enrollment: purpose == mfa.PurposeEnroll}
}

// openChallenge parses raw, loads its user's factors and returns the
// open challenge it names, of purpose when purpose is not "".
func (s *SecondFactors) openChallenge(ctx context.Context, raw, purpose string) (authmfa.ChallengeToken, *mfa.Factors, mfa.Challenge, error) {
	tok, err := authmfa.ParseChallengeToken(raw)
	if err != nil {
		return tok, nil, mfa.Challenge{}, ErrInvalidMFAToken
	}
	f, err := s.Factors.Load(ctx, mfa.StreamName(tok.UserID))
	if err != nil {
		return tok, nil, mfa.Challenge{}, err
	}
	c, err := f.OpenChallenge(tok.ChallengeID, tok.Digest(), s.now())
	if err != nil || (purpose != "" && c.Purpose != purpose) {
		return tok, nil, mfa.Challenge{}, ErrInvalidMFAToken
	}
	return tok, f, c, nil
}

// matchTOTP finds which of methods code belongs to, and its step; a
// zero step means none.
func (s *SecondFactors) matchTOTP(ctx context.Context, userID uuid.UUID, methods []uuid.UUID, code string, now time.Time) (uuid.UUID, int64, error) {
	for _, id := range methods {
		secret, err := s.Secrets.Get(ctx, id, userID)
		if errors.Is(err, authmfa.ErrSecretNotFound) {
			continue
		}
		if err != nil {
			return uuid.Nil, 0, err
		}
		step, err := authmfa.MatchTOTP(secret, code, now)
		if err != nil {
			return uuid.Nil, 0, err
		}
		if step != 0 {
			return id, step, nil
		}
	}
	return uuid.Nil, 0, nil
}

// mapFactorError turns the aggregate's refusals into the commands'.
func mapFactorError(err error) error {
	switch {
	case errors.Is(err, mfa.ErrNotFound):
		return ErrMFAMethodNotFound
	case errors.Is(err, mfa.ErrTooMany):
		return ErrMFATooMany
	case errors.Is(err, mfa.ErrNoPrimaryFactor):
		return ErrMFANoPrimaryFactor
	case errors.Is(err, mfa.ErrAlreadyConfirmed):
		return ErrMFAMethodNotFound
	case errors.Is(err, mfa.ErrAlreadyEnrolled):
		return ErrMFAAlreadyEnrolled
	}
	var ct *mfa.CodeThrottledError
	if errors.As(err, &ct) {
		return &MFACodeThrottledError{RetryAfter: ct.RetryAfter}
	}
	return err
}

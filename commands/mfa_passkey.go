package commands

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	authmfa "github.com/authledger/authledger/auth/mfa"
	"github.com/authledger/authledger/auth/passkey"
	"github.com/authledger/authledger/domain/mfa"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// Passkey answers (docs/adr/0037).
var (
	// ErrInvalidPasskey: a signed-in user's registration answer does not
	// verify, or answers no open registration.
	ErrInvalidPasskey = errors.New("commands: the passkey registration does not verify")
	// ErrPasskeyLogin: a passwordless login failed, whatever the reason
	// (no such credential or user, bad signature, wrong origin, replayed
	// or expired challenge, a cloned authenticator): one answer, so it
	// tells nothing about accounts.
	ErrPasskeyLogin = errors.New("commands: the passkey login does not verify")
	// ErrPasskeysOff: no relying party is configured.
	ErrPasskeysOff = errors.New("commands: passkeys are not configured")
)

// AMRHardwareKey is the amr of a passkey (RFC 8176 "hwk"): the key is
// held by the authenticator and proved by a signature (docs/adr/0037).
const AMRHardwareKey = "hwk"

// MethodPasskey is the session method of a passwordless login.
const MethodPasskey = "passkey"

// PasskeyCeremonies runs WebAuthn ceremonies (auth/passkey.RelyingParty).
type PasskeyCeremonies interface {
	BeginRegistration(ctx context.Context, a passkey.Account) (json.RawMessage, error)
	FinishRegistration(ctx context.Context, a passkey.Account, answer []byte) (passkey.Credential, error)
	BeginLogin(ctx context.Context, a passkey.Account, subject string) (json.RawMessage, error)
	FinishLogin(ctx context.Context, a passkey.Account, subject string, answer []byte) (passkey.Credential, error)
	BeginPasswordless(ctx context.Context) (json.RawMessage, error)
	FinishPasswordless(ctx context.Context, answer []byte, lookup func(uuid.UUID) (passkey.Account, error)) (uuid.UUID, passkey.Credential, error)
}

// maxPasskeyName bounds a passkey's label.
const maxPasskeyName = 64

// passkeyAccount is the ceremony's view of u and its passkeys.
func passkeyAccount(u *user.User, f *mfa.Factors) passkey.Account {
	name := u.Email()
	if name == "" {
		name = u.DisplayName()
	}
	display := u.DisplayName()
	if display == "" {
		display = name
	}
	a := passkey.Account{UserID: u.ID(), Name: name, DisplayName: display}
	for _, p := range f.Passkeys() {
		a.Credentials = append(a.Credentials, passkey.Credential{ID: p.CredentialID, PublicKey: p.PublicKey, SignCount: p.SignCount,
			AAGUID: p.AAGUID, AttestationFormat: p.AttestationFormat, Transports: p.Transports, UserVerified: p.UserVerified,
			BackupEligible: p.BackupEligible, BackupState: p.BackupState})
	}
	return a
}

// passkeyEnrolment loads userID and its factors and holds the step-up
// rule of adding a factor.
func (s *SecondFactors) passkeyEnrolment(ctx context.Context, userID uuid.UUID, st StepUp) (*user.User, *mfa.Factors, error) {
	if s.Passkeys == nil {
		return nil, nil, ErrPasskeysOff
	}
	u, err := s.Users.Load(ctx, user.StreamName(userID))
	if err != nil {
		return nil, nil, err
	}
	if !u.Registered() {
		return nil, nil, ErrUserNotFound
	}
	f, err := s.Factors.Load(ctx, mfa.StreamName(userID))
	if err != nil {
		return nil, nil, err
	}
	if f.Enabled() && !s.fresh(st, s.now()) {
		return nil, nil, ErrStepUpRequired
	}
	return u, f, nil
}

// BeginPasskeyRegistration returns the creation options of a new passkey
// of userID. Like adding an app, it needs a step-up when the user has a
// factor already.
func (s *SecondFactors) BeginPasskeyRegistration(ctx context.Context, userID uuid.UUID, st StepUp) (json.RawMessage, error) {
	u, f, err := s.passkeyEnrolment(ctx, userID, st)
	if err != nil {
		return nil, err
	}
	if len(f.Passkeys()) >= mfa.MaxPasskeys {
		return nil, ErrMFATooMany
	}
	return s.Passkeys.BeginRegistration(ctx, passkeyAccount(u, f))
}

// RegisteredPasskey is a new passkey; BackupCodes is the user's first
// set when it is their first factor, shown once.
type RegisteredPasskey struct {
	MethodID    uuid.UUID
	Name        string
	BackupCodes []string
	Position    eventstore.Position
}

// FinishPasskeyRegistration checks answer (the PublicKeyCredential JSON
// of navigator.credentials.create) and records the credential as a
// confirmed method named name.
func (s *SecondFactors) FinishPasskeyRegistration(ctx context.Context, userID uuid.UUID, st StepUp, name string, answer []byte, meta Meta) (RegisteredPasskey, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		name = "Passkey"
	}
	if utf8.RuneCountInString(name) > maxPasskeyName {
		return RegisteredPasskey{}, &user.InvalidInputError{Field: "name", Message: "must be at most 64 characters"}
	}
	u, f, err := s.passkeyEnrolment(ctx, userID, st)
	if err != nil {
		return RegisteredPasskey{}, err
	}
	cred, err := s.Passkeys.FinishRegistration(ctx, passkeyAccount(u, f), answer)
	if errors.Is(err, passkey.ErrChallenge) || errors.Is(err, passkey.ErrInvalidResponse) {
		return RegisteredPasskey{}, ErrInvalidPasskey
	}
	if err != nil {
		return RegisteredPasskey{}, err
	}
	id, err := newID()
	if err != nil {
		return RegisteredPasskey{}, err
	}
	now := s.now()
	var codes []string
	res, err := s.Factors.Update(ctx, mfa.StreamName(userID), meta, func(f *mfa.Factors) error {
		codes = nil
		hadBackup := slices.ContainsFunc(f.Methods(), func(m mfa.Method) bool { return m.Kind == mfa.KindBackupCodes })
		if err := f.AddPasskey(userID, name, mfa.Passkey{MethodID: id, CredentialID: cred.ID, PublicKey: cred.PublicKey,
			SignCount: cred.SignCount, AAGUID: cred.AAGUID, AttestationFormat: cred.AttestationFormat, Transports: cred.Transports,
			UserVerified: cred.UserVerified, BackupEligible: cred.BackupEligible, BackupState: cred.BackupState}, now); err != nil {
			return err
		}
		if hadBackup {
			return nil
		}
		// The first factor comes with its backup codes, as an app's does.
		c, digests, err := authmfa.NewBackupCodes(mfa.BackupCodeCount)
		if err != nil {
			return err
		}
		bid, err := newID()
		if err != nil {
			return err
		}
		codes = c
		return f.GenerateBackupCodes(userID, bid, digests, now)
	})
	if errors.Is(err, mfa.ErrAlreadyEnrolled) {
		return RegisteredPasskey{}, ErrInvalidPasskey
	}
	if err != nil {
		return RegisteredPasskey{}, mapFactorError(err)
	}
	return RegisteredPasskey{MethodID: id, Name: name, BackupCodes: codes, Position: res.Position}, nil
}

// BeginPasskeySecondFactor returns the request options with which a
// login stopped at its first factor is completed by a passkey (then
// VerifySecondFactor, method mfa.KindWebAuthn).
func (s *SecondFactors) BeginPasskeySecondFactor(ctx context.Context, token string) (json.RawMessage, error) {
	if s.Passkeys == nil {
		return nil, ErrPasskeysOff
	}
	tok, f, c, err := s.openChallenge(ctx, token, mfa.PurposeLogin)
	if err != nil {
		return nil, err
	}
	if len(f.Passkeys()) == 0 {
		return nil, ErrMFAMethodNotFound
	}
	u, err := s.Users.Load(ctx, user.StreamName(tok.UserID))
	if err != nil {
		return nil, err
	}
	if !u.Registered() {
		return nil, ErrInvalidMFAToken
	}
	return s.Passkeys.BeginLogin(ctx, passkeyAccount(u, f), c.ID.String())
}

// matchPasskey checks a second factor's assertion against login
// challenge c: the decision to append, or nil when it does not verify.
func (s *SecondFactors) matchPasskey(ctx context.Context, u *user.User, f *mfa.Factors, c mfa.Challenge, answer []byte) (func(*mfa.Factors) error, error) {
	if s.Passkeys == nil || c.Purpose != mfa.PurposeLogin || len(answer) == 0 {
		return nil, nil
	}
	cred, err := s.Passkeys.FinishLogin(ctx, passkeyAccount(u, f), c.ID.String(), answer)
	if errors.Is(err, passkey.ErrChallenge) || errors.Is(err, passkey.ErrInvalidResponse) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p, ok := f.PasskeyByCredential(cred.ID)
	if !ok {
		return nil, nil
	}
	now := s.now()
	return func(f *mfa.Factors) error { return f.CompleteWithPasskey(c, p.MethodID, cred.SignCount, now) }, nil
}

// BeginPasskeyLogin returns the request options of a passwordless login:
// no user named, any discoverable passkey of this relying party.
func (h *LoginHandler) BeginPasskeyLogin(ctx context.Context) (json.RawMessage, error) {
	if h.MFA == nil || h.MFA.Passkeys == nil {
		return nil, ErrPasskeysOff
	}
	return h.MFA.Passkeys.BeginPasswordless(ctx)
}

// FinishPasskeyLogin completes a passwordless login with answer (the
// PublicKeyCredential JSON of navigator.credentials.get): the user the
// credential names, verified by the authenticator, with a counter above
// the stored one. Every refusal is ErrPasskeyLogin. The session's amr is
// hwk alone: the passkey with user verification is the whole login
// (possession, and the PIN or biometric the authenticator checked).
func (h *LoginHandler) FinishPasskeyLogin(ctx context.Context, answer []byte, meta Meta) (LoginResult, error) {
	s := h.MFA
	if s == nil || s.Passkeys == nil {
		return LoginResult{}, ErrPasskeysOff
	}
	var u *user.User
	var f *mfa.Factors
	lookup := func(id uuid.UUID) (passkey.Account, error) {
		var err error
		if u, err = h.Users.Load(ctx, user.StreamName(id)); err != nil {
			return passkey.Account{}, err
		}
		if !u.Registered() {
			return passkey.Account{}, passkey.ErrInvalidResponse
		}
		if f, err = s.Factors.Load(ctx, mfa.StreamName(id)); err != nil {
			return passkey.Account{}, err
		}
		return passkeyAccount(u, f), nil
	}
	_, cred, err := s.Passkeys.FinishPasswordless(ctx, answer, lookup)
	if errors.Is(err, passkey.ErrChallenge) || errors.Is(err, passkey.ErrInvalidResponse) {
		return LoginResult{}, ErrPasskeyLogin
	}
	if err != nil {
		return LoginResult{}, err
	}
	p, ok := f.PasskeyByCredential(cred.ID)
	if !ok {
		return LoginResult{}, ErrPasskeyLogin
	}
	now := s.now()
	_, err = s.Factors.Update(ctx, mfa.StreamName(u.ID()), meta, func(f *mfa.Factors) error {
		return f.SignInWithPasskey(p.MethodID, cred.SignCount, now)
	})
	if errors.Is(err, mfa.ErrSignCountRegressed) || errors.Is(err, mfa.ErrNotFound) {
		return LoginResult{}, ErrPasskeyLogin
	}
	if err != nil {
		return LoginResult{}, err
	}
	if h.RequireVerifiedEmail && !u.EmailVerified() {
		return LoginResult{}, ErrEmailNotVerified
	}
	return h.startSessionAMR(ctx, u, meta, now, MethodPasskey, []string{AMRHardwareKey})
}

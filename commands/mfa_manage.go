package commands

import (
	"context"
	"crypto/subtle"
	"errors"
	"regexp"
	"slices"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/mailtoken"
	authmfa "github.com/authledger/authledger/auth/mfa"
	"github.com/authledger/authledger/domain/mfa"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// TOTPEnrolment is a new authenticator app, pending until its first code
// (ConfirmTOTP); the secret is shown only in this answer.
type TOTPEnrolment struct {
	MethodID uuid.UUID
	authmfa.Enrolment
	Position eventstore.Position
}

// AddTOTP sets up a new authenticator app for userID: the secret is
// sealed in the secret table first, then the method is recorded (an
// append that fails leaves a row no event names, never an event without
// its secret). A user who has a factor already needs a step-up: a stolen
// access token must not add an attacker's app.
func (s *SecondFactors) AddTOTP(ctx context.Context, userID uuid.UUID, st StepUp, meta Meta) (TOTPEnrolment, error) {
	now := s.now()
	u, err := s.Users.Load(ctx, user.StreamName(userID))
	if err != nil {
		return TOTPEnrolment{}, err
	}
	if !u.Registered() {
		return TOTPEnrolment{}, ErrUserNotFound
	}
	f, err := s.Factors.Load(ctx, mfa.StreamName(userID))
	if err != nil {
		return TOTPEnrolment{}, err
	}
	if f.Enabled() && !s.fresh(st, now) {
		return TOTPEnrolment{}, ErrStepUpRequired
	}
	return s.addTOTP(ctx, u, meta)
}

func (s *SecondFactors) addTOTP(ctx context.Context, u *user.User, meta Meta) (TOTPEnrolment, error) {
	now := s.now()
	id, err := newID()
	if err != nil {
		return TOTPEnrolment{}, err
	}
	account := u.Email()
	if account == "" {
		account = u.DisplayName()
	}
	en, err := authmfa.NewTOTP(s.Issuer, account)
	if err != nil {
		return TOTPEnrolment{}, err
	}
	if err := s.Secrets.Put(ctx, id, u.ID(), en.Secret); err != nil {
		return TOTPEnrolment{}, err
	}
	res, err := s.Factors.Update(ctx, mfa.StreamName(u.ID()), meta, func(f *mfa.Factors) error { return f.AddTOTP(u.ID(), id, now) })
	if err != nil {
		_ = s.Secrets.Delete(ctx, id)
		return TOTPEnrolment{}, mapFactorError(err)
	}
	return TOTPEnrolment{MethodID: id, Enrolment: en, Position: res.Position}, nil
}

// EnrollTOTPWithChallenge is AddTOTP for the holder of an enrolment
// mfa_token (a required role, no factor yet): the token's first factor
// is the proof; the app is confirmed by completing the challenge with
// its first code (VerifySecondFactor).
func (s *SecondFactors) EnrollTOTPWithChallenge(ctx context.Context, token string, meta Meta) (TOTPEnrolment, error) {
	tok, _, _, err := s.openChallenge(ctx, token, mfa.PurposeEnroll)
	if err != nil {
		return TOTPEnrolment{}, err
	}
	u, err := s.Users.Load(ctx, user.StreamName(tok.UserID))
	if err != nil {
		return TOTPEnrolment{}, err
	}
	if !u.Registered() {
		return TOTPEnrolment{}, ErrInvalidMFAToken
	}
	return s.addTOTP(ctx, u, meta)
}

// ConfirmedTOTP is a confirmed app; BackupCodes is the user's first set
// of backup codes when they had none, shown once.
type ConfirmedTOTP struct {
	BackupCodes []string
	Position    eventstore.Position
}

// ConfirmTOTP confirms userID's pending app methodID with its first code
// (which is spent by it). The user's first factor comes with a first set
// of backup codes, in the same append.
func (s *SecondFactors) ConfirmTOTP(ctx context.Context, userID, methodID uuid.UUID, code string, meta Meta) (ConfirmedTOTP, error) {
	now := s.now()
	f, err := s.Factors.Load(ctx, mfa.StreamName(userID))
	if err != nil {
		return ConfirmedTOTP{}, err
	}
	pending := false
	for _, id := range f.TOTPMethods(false) {
		pending = pending || id == methodID
	}
	if !pending {
		return ConfirmedTOTP{}, ErrMFAMethodNotFound
	}
	_, step, err := s.matchTOTP(ctx, userID, []uuid.UUID{methodID}, code, now)
	if err != nil {
		return ConfirmedTOTP{}, err
	}
	if step == 0 {
		return ConfirmedTOTP{}, ErrInvalidConfirmationCode
	}
	var codes []string
	res, err := s.Factors.Update(ctx, mfa.StreamName(userID), meta, func(f *mfa.Factors) error {
		hadBackup := false
		for _, m := range f.Methods() {
			hadBackup = hadBackup || m.Kind == mfa.KindBackupCodes
		}
		if err := f.ConfirmTOTP(methodID, step, now); err != nil {
			return err
		}
		if hadBackup {
			codes = nil
			return nil
		}
		var digests []string
		var err error
		if codes, digests, err = authmfa.NewBackupCodes(mfa.BackupCodeCount); err != nil {
			return err
		}
		id, err := newID()
		if err != nil {
			return err
		}
		return f.GenerateBackupCodes(userID, id, digests, now)
	})
	if err != nil {
		return ConfirmedTOTP{}, mapFactorError(err)
	}
	return ConfirmedTOTP{BackupCodes: codes, Position: res.Position}, nil
}

// BackupCodes is a new set of backup codes, shown once.
type BackupCodes struct {
	Codes    []string
	Position eventstore.Position
}

// RegenerateBackupCodes replaces every backup code of userID. It needs a
// step-up: the codes are a way in.
func (s *SecondFactors) RegenerateBackupCodes(ctx context.Context, userID uuid.UUID, st StepUp, meta Meta) (BackupCodes, error) {
	now := s.now()
	if !s.fresh(st, now) {
		return BackupCodes{}, ErrStepUpRequired
	}
	codes, digests, err := authmfa.NewBackupCodes(mfa.BackupCodeCount)
	if err != nil {
		return BackupCodes{}, err
	}
	id, err := newID()
	if err != nil {
		return BackupCodes{}, err
	}
	res, err := s.Factors.Update(ctx, mfa.StreamName(userID), meta, func(f *mfa.Factors) error {
		return f.GenerateBackupCodes(userID, id, digests, now)
	})
	if err != nil {
		return BackupCodes{}, mapFactorError(err)
	}
	return BackupCodes{Codes: codes, Position: res.Position}, nil
}

// RemoveMethod removes userID's method id. A confirmed one needs a
// step-up; a pending app never protected anything and goes without. The
// sealed secret is deleted after the append (a failed delete leaves a
// row no method names).
func (s *SecondFactors) RemoveMethod(ctx context.Context, userID, id uuid.UUID, st StepUp, meta Meta) (eventstore.AppendResult, error) {
	now := s.now()
	res, err := s.Factors.Update(ctx, mfa.StreamName(userID), meta, func(f *mfa.Factors) error {
		for _, m := range f.Methods() {
			if m.ID == id && m.Confirmed && !s.fresh(st, now) {
				return ErrStepUpRequired
			}
		}
		return f.Remove(id, now)
	})
	if err != nil {
		return eventstore.AppendResult{}, mapFactorError(err)
	}
	_ = s.Secrets.Delete(ctx, id) // a row left behind is named by no method: it opens nothing
	return res, nil
}

// ListMethods returns userID's methods, read from the log (one short
// stream: never behind, unlike a read model).
func (s *SecondFactors) ListMethods(ctx context.Context, userID uuid.UUID) ([]mfa.Method, error) {
	f, err := s.Factors.Load(ctx, mfa.StreamName(userID))
	if err != nil {
		return nil, err
	}
	return f.Methods(), nil
}

// AddEmail turns userID's verified address into a second factor: a code
// mailed at each login. Verifying the address proved the mailbox, so it
// needs no confirmation round. Like AddTOTP, a user with a factor needs a
// step-up.
func (s *SecondFactors) AddEmail(ctx context.Context, userID uuid.UUID, st StepUp, meta Meta) (uuid.UUID, eventstore.Position, error) {
	now := s.now()
	if s.Minter == nil {
		return uuid.Nil, eventstore.Position{}, ErrMFAMethodNotFound
	}
	u, err := s.Users.Load(ctx, user.StreamName(userID))
	if err != nil {
		return uuid.Nil, eventstore.Position{}, err
	}
	if !u.Registered() {
		return uuid.Nil, eventstore.Position{}, ErrUserNotFound
	}
	if !u.EmailVerified() {
		return uuid.Nil, eventstore.Position{}, ErrMFAEmailUnverified
	}
	id, err := newID()
	if err != nil {
		return uuid.Nil, eventstore.Position{}, err
	}
	res, err := s.Factors.Update(ctx, mfa.StreamName(userID), meta, func(f *mfa.Factors) error {
		if f.EmailMethod() != uuid.Nil {
			return ErrMFAAlreadyEnrolled
		}
		if f.Enabled() && !s.fresh(st, now) {
			return ErrStepUpRequired
		}
		return f.AddEmail(userID, id, now)
	})
	if err != nil {
		return uuid.Nil, eventstore.Position{}, mapFactorError(err)
	}
	return id, res.Position, nil
}

// SendCode mails a code for the login challenge of token (method
// mfa.KindEmail), superseding any earlier code of it; the outbox sends it
// (at least once; a retried mail carries the same code, derived from the
// code id). Rate limited per user (*MFACodeThrottledError).
func (s *SecondFactors) SendCode(ctx context.Context, token, method string, meta Meta) error {
	if (method != mfa.KindEmail && method != mfa.KindSMS) || s.Minter == nil {
		return ErrInvalidSecondFactor
	}
	tok, _, c, err := s.openChallenge(ctx, token, mfa.PurposeLogin)
	if err != nil {
		return err
	}
	u, err := s.Users.Load(ctx, user.StreamName(tok.UserID))
	if err != nil {
		return err
	}
	if !u.Registered() {
		return ErrInvalidMFAToken
	}
	id, err := newID()
	if err != nil {
		return err
	}
	now := s.now()
	_, err = s.Factors.Update(ctx, mfa.StreamName(u.ID()), meta, func(f *mfa.Factors) error {
		if method == mfa.KindSMS {
			return f.SendSMSCode(c, id, now)
		}
		return f.SendCode(c, id, u.Email(), now)
	})
	switch {
	case errors.Is(err, mfa.ErrInvalidChallenge):
		return ErrInvalidMFAToken
	case errors.Is(err, mfa.ErrNotFound):
		return ErrInvalidSecondFactor
	}
	return mapFactorError(err)
}

// e164 is a phone number in E.164 form.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// PhoneEnrolment is a new number, pending until the code texted to it is
// typed back (ConfirmPhone).
type PhoneEnrolment struct {
	MethodID uuid.UUID
	Position eventstore.Position
}

// AddPhone records a number for SMS codes and texts it a confirmation
// code (through the outbox), rate limited like login codes. Like AddTOTP,
// a user with a factor needs a step-up.
func (s *SecondFactors) AddPhone(ctx context.Context, userID uuid.UUID, phone string, st StepUp, meta Meta) (PhoneEnrolment, error) {
	now := s.now()
	if s.Minter == nil {
		return PhoneEnrolment{}, ErrMFAMethodNotFound
	}
	if !e164.MatchString(phone) {
		return PhoneEnrolment{}, ErrInvalidPhone
	}
	id, err := newID()
	if err != nil {
		return PhoneEnrolment{}, err
	}
	codeID, err := newID()
	if err != nil {
		return PhoneEnrolment{}, err
	}
	res, err := s.Factors.Update(ctx, mfa.StreamName(userID), meta, func(f *mfa.Factors) error {
		if f.Enabled() && !s.fresh(st, now) {
			return ErrStepUpRequired
		}
		return f.AddPhone(userID, id, codeID, phone, now)
	})
	if err != nil {
		return PhoneEnrolment{}, mapFactorError(err)
	}
	return PhoneEnrolment{MethodID: id, Position: res.Position}, nil
}

// ConfirmPhone confirms userID's pending number methodID with the code
// texted to it (five attempts). The user's first factor comes with its
// backup codes, in the same append, as ConfirmTOTP.
func (s *SecondFactors) ConfirmPhone(ctx context.Context, userID, methodID uuid.UUID, code string, meta Meta) (ConfirmedTOTP, error) {
	now := s.now()
	if s.Minter == nil {
		return ConfirmedTOTP{}, ErrMFAMethodNotFound
	}
	f, err := s.Factors.Load(ctx, mfa.StreamName(userID))
	if err != nil {
		return ConfirmedTOTP{}, err
	}
	pending, err := f.PendingCode(methodID, now)
	if errors.Is(err, mfa.ErrNoCode) {
		return ConfirmedTOTP{}, ErrInvalidConfirmationCode
	}
	if err != nil {
		return ConfirmedTOTP{}, mapFactorError(err)
	}
	want := s.Minter.Mint(mailtoken.MFACode, userID, pending.ID).Code()
	if subtle.ConstantTimeCompare([]byte(want), []byte(code)) != 1 {
		_, _ = s.Factors.Update(ctx, mfa.StreamName(userID), meta, func(f *mfa.Factors) error { return f.FailPendingCode(methodID, now) })
		return ConfirmedTOTP{}, ErrInvalidConfirmationCode
	}
	var codes []string
	res, err := s.Factors.Update(ctx, mfa.StreamName(userID), meta, func(f *mfa.Factors) error {
		codes = nil
		hadBackup := slices.ContainsFunc(f.Methods(), func(m mfa.Method) bool { return m.Kind == mfa.KindBackupCodes })
		if err := f.ConfirmPhone(methodID, pending.ID, now); err != nil {
			return err
		}
		if hadBackup {
			return nil
		}
		var digests []string
		var err error
		if codes, digests, err = authmfa.NewBackupCodes(mfa.BackupCodeCount); err != nil {
			return err
		}
		id, err := newID()
		if err != nil {
			return err
		}
		return f.GenerateBackupCodes(userID, id, digests, now)
	})
	if errors.Is(err, mfa.ErrNoCode) {
		return ConfirmedTOTP{}, ErrInvalidConfirmationCode
	}
	if err != nil {
		return ConfirmedTOTP{}, mapFactorError(err)
	}
	return ConfirmedTOTP{BackupCodes: codes, Position: res.Position}, nil
}

package mfa

import (
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/events"
)

// Event names. They are data in the log: never change one; add a .v2 type
// and an upcaster instead.
const (
	EventTOTPAdded            = "mfa.totp_added.v1"
	EventTOTPConfirmed        = "mfa.totp_confirmed.v1"
	EventBackupCodesGenerated = "mfa.backup_codes_generated.v1"
	EventMethodRemoved        = "mfa.method_removed.v1"
	EventChallengeIssued      = "mfa.challenge_issued.v1"
	EventChallengeCompleted   = "mfa.challenge_completed.v1"
	EventEmailAdded           = "mfa.email_added.v1"
	EventCodeSent             = "mfa.code_sent.v1"
	EventCodeFailed           = "mfa.code_failed.v1"
	EventPhoneAdded           = "mfa.phone_added.v1"
	EventPhoneConfirmed       = "mfa.phone_confirmed.v1"
)

// TOTPAdded records an authenticator app being set up: pending until a
// first code confirms it (TOTPConfirmed). The shared secret is never in
// the log: it is sealed in the secret table under MethodID.
type TOTPAdded struct {
	UserID   uuid.UUID `json:"user_id"`
	MethodID uuid.UUID `json:"method_id"`
	AddedAt  time.Time `json:"added_at"`
}

// TOTPConfirmed records the first code of an authenticator app. Step is
// the time step (RFC 6238 counter) of that code: it and every earlier
// step are spent, so the same code never works twice.
type TOTPConfirmed struct {
	UserID      uuid.UUID `json:"user_id"`
	MethodID    uuid.UUID `json:"method_id"`
	Step        int64     `json:"step"`
	ConfirmedAt time.Time `json:"confirmed_at"`
}

// BackupCodesGenerated replaces every earlier backup code with a new set.
// Digests are the SHA-256 (hex) of each code, in the order shown to the
// user; the codes themselves were shown once and are nowhere.
type BackupCodesGenerated struct {
	UserID      uuid.UUID `json:"user_id"`
	MethodID    uuid.UUID `json:"method_id"`
	Digests     []string  `json:"digests"`
	GeneratedAt time.Time `json:"generated_at"`
}

// MethodRemoved ends a method (a TOTP app, the backup codes).
type MethodRemoved struct {
	UserID    uuid.UUID `json:"user_id"`
	MethodID  uuid.UUID `json:"method_id"`
	RemovedAt time.Time `json:"removed_at"`
}

// ChallengeIssued records an mfa_token handed out after a correct first
// factor. Digest is the SHA-256 (hex) of the token's secret. Purpose is
// PurposeLogin (a second factor completes the login) or PurposeEnroll (a
// role requires a second factor the user has not set up: the token can
// only set one up). Method and AMR are the first factor's, which the
// session completed from it carries.
type ChallengeIssued struct {
	UserID      uuid.UUID `json:"user_id"`
	ChallengeID uuid.UUID `json:"challenge_id"`
	Digest      string    `json:"digest"`
	Purpose     string    `json:"purpose"`
	Method      string    `json:"method"`
	AMR         []string  `json:"amr"`
	IssuedAt    time.Time `json:"issued_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// ChallengeCompleted spends a challenge and the factor that completed it,
// in one event: a TOTP step (Step, which with all earlier steps can no
// longer be used on MethodID) or a backup code (CodeIndex into the set's
// digests). The session the login starts is on its own stream.
type ChallengeCompleted struct {
	UserID      uuid.UUID `json:"user_id"`
	ChallengeID uuid.UUID `json:"challenge_id"`
	MethodID    uuid.UUID `json:"method_id"`
	Kind        string    `json:"kind"`
	Step        *int64    `json:"step,omitempty"`
	CodeIndex   *int      `json:"code_index,omitempty"`
	// CodeID is the emailed code that completed it (KindEmail).
	CodeID *uuid.UUID `json:"code_id,omitempty"`
	// SignCount is the passkey's signature counter (KindWebAuthn).
	SignCount   *uint32   `json:"sign_count,omitempty"`
	CompletedAt time.Time `json:"completed_at"`
}

// EmailAdded records the account's (verified) address as a second
// factor: a code mailed to it at each login. Confirmed at once, since
// verifying the address proved the mailbox.
type EmailAdded struct {
	UserID   uuid.UUID `json:"user_id"`
	MethodID uuid.UUID `json:"method_id"`
	AddedAt  time.Time `json:"added_at"`
}

// CodeSent asks the outbox to mail a code for a challenge. The code is
// in no event: the outbox and the verify command derive it from CodeID
// under a key from the master key (auth/mailtoken, purpose MFACode). A
// newer code of the same challenge supersedes it. Sending extends the
// challenge to ExpiresAt.
type CodeSent struct {
	UserID      uuid.UUID `json:"user_id"`
	ChallengeID uuid.UUID `json:"challenge_id"`
	MethodID    uuid.UUID `json:"method_id"`
	CodeID      uuid.UUID `json:"code_id"`
	Email       string    `json:"email,omitempty"`
	// Phone is the number of an SMS code (Channel KindSMS); ChallengeID
	// is uuid.Nil for the code that confirms a new number.
	Phone     string    `json:"phone,omitempty"`
	Channel   string    `json:"channel,omitempty"` // "" is KindEmail
	SentAt    time.Time `json:"sent_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// PhoneAdded records a number for SMS codes, pending until the code
// sent to it is typed back (TOTPConfirmed's counterpart is
// PhoneConfirmed).
type PhoneAdded struct {
	UserID   uuid.UUID `json:"user_id"`
	MethodID uuid.UUID `json:"method_id"`
	Phone    string    `json:"phone"`
	AddedAt  time.Time `json:"added_at"`
}

// PhoneConfirmed confirms a number with the code sent to it.
type PhoneConfirmed struct {
	UserID      uuid.UUID `json:"user_id"`
	MethodID    uuid.UUID `json:"method_id"`
	CodeID      uuid.UUID `json:"code_id"`
	ConfirmedAt time.Time `json:"confirmed_at"`
}

// CodeFailed counts a wrong attempt at a mailed code; MaxCodeAttempts of
// them void it.
type CodeFailed struct {
	UserID      uuid.UUID `json:"user_id"`
	ChallengeID uuid.UUID `json:"challenge_id"`
	CodeID      uuid.UUID `json:"code_id"`
	FailedAt    time.Time `json:"failed_at"`
}

// EventName implements events.Event.
func (TOTPAdded) EventName() string { return EventTOTPAdded }

// EventName implements events.Event.
func (TOTPConfirmed) EventName() string { return EventTOTPConfirmed }

// EventName implements events.Event.
func (BackupCodesGenerated) EventName() string { return EventBackupCodesGenerated }

// EventName implements events.Event.
func (MethodRemoved) EventName() string { return EventMethodRemoved }

// EventName implements events.Event.
func (ChallengeIssued) EventName() string { return EventChallengeIssued }

// EventName implements events.Event.
func (ChallengeCompleted) EventName() string { return EventChallengeCompleted }

// EventName implements events.Event.
func (EmailAdded) EventName() string { return EventEmailAdded }

// EventName implements events.Event.
func (CodeSent) EventName() string { return EventCodeSent }

// EventName implements events.Event.
func (CodeFailed) EventName() string { return EventCodeFailed }

// EventName implements events.Event.
func (PhoneAdded) EventName() string { return EventPhoneAdded }

// EventName implements events.Event.
func (PhoneConfirmed) EventName() string { return EventPhoneConfirmed }

// AllEvents lists one zero value of every event type of this package.
func AllEvents() []events.Event {
	return []events.Event{TOTPAdded{}, TOTPConfirmed{}, BackupCodesGenerated{}, MethodRemoved{}, ChallengeIssued{}, ChallengeCompleted{},
		EmailAdded{}, CodeSent{}, CodeFailed{}, PhoneAdded{}, PhoneConfirmed{}, PasskeyAdded{}, PasskeySignedIn{}}
}

// RegisterEvents adds the second-factor events to r.
func RegisterEvents(r *events.Registry) error { return r.Register(AllEvents()...) }

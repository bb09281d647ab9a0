package mfa

import (
	"bytes"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"
)

// KindWebAuthn is a passkey (a WebAuthn credential), as GET /v1/me/mfa
// and the login's methods name it.
const KindWebAuthn = "webauthn"

// MaxPasskeys bounds the passkeys of a user: the allow list of a login
// names each of them.
const MaxPasskeys = 10

// ErrSignCountRegressed: an assertion's signature counter is not above
// the stored one (WebAuthn §7.2 step 21): two copies of the private key
// exist, one of them a clone. Refused, and the counter is left alone.
var ErrSignCountRegressed = errors.New("mfa: passkey signature counter went back (a cloned authenticator)")

// Event names of passkeys. Data in the log: never change one.
const (
	EventPasskeyAdded    = "mfa.passkey_added.v1"     //nolint:gosec // an event name, not a credential
	EventPasskeySignedIn = "mfa.passkey_signed_in.v1" //nolint:gosec // an event name, not a credential
)

// PasskeyAdded records a WebAuthn credential as a second factor (and a
// passwordless login). The public key is public: it verifies, it does
// not sign, so it belongs in the log like a password hash does not need
// to. SignCount is the authenticator's counter at registration; the
// flags are the ones the library compares at each login.
type PasskeyAdded struct {
	UserID            uuid.UUID `json:"user_id"`
	MethodID          uuid.UUID `json:"method_id"`
	Name              string    `json:"name"`
	CredentialID      []byte    `json:"credential_id"`
	PublicKey         []byte    `json:"public_key"`
	SignCount         uint32    `json:"sign_count"`
	AAGUID            []byte    `json:"aaguid,omitempty"`
	AttestationFormat string    `json:"attestation_format,omitempty"`
	Transports        []string  `json:"transports,omitempty"`
	UserVerified      bool      `json:"user_verified"`
	BackupEligible    bool      `json:"backup_eligible"`
	BackupState       bool      `json:"backup_state"`
	AddedAt           time.Time `json:"added_at"`
}

// PasskeySignedIn records a passwordless login with a passkey: the new
// signature counter (a challenge-completed event carries it for a second
// factor).
type PasskeySignedIn struct {
	UserID     uuid.UUID `json:"user_id"`
	MethodID   uuid.UUID `json:"method_id"`
	SignCount  uint32    `json:"sign_count"`
	SignedInAt time.Time `json:"signed_in_at"`
}

// EventName implements events.Event.
func (PasskeyAdded) EventName() string { return EventPasskeyAdded }

// EventName implements events.Event.
func (PasskeySignedIn) EventName() string { return EventPasskeySignedIn }

// Passkey is a registered WebAuthn credential, what the library needs to
// check an assertion.
type Passkey struct {
	MethodID          uuid.UUID
	CredentialID      []byte
	PublicKey         []byte
	SignCount         uint32
	AAGUID            []byte
	AttestationFormat string
	Transports        []string
	UserVerified      bool
	BackupEligible    bool
	BackupState       bool
}

// Passkeys lists the user's passkeys (copies).
func (f *Factors) Passkeys() []Passkey {
	var out []Passkey
	for _, m := range f.methods {
		if m.Kind == KindWebAuthn && m.passkey != nil {
			p := *m.passkey
			p.CredentialID, p.PublicKey = slices.Clone(p.CredentialID), slices.Clone(p.PublicKey)
			out = append(out, p)
		}
	}
	return out
}

// PasskeyByCredential returns the passkey whose credential id is id.
func (f *Factors) PasskeyByCredential(id []byte) (Passkey, bool) {
	for _, p := range f.Passkeys() {
		if bytes.Equal(p.CredentialID, id) {
			return p, true
		}
	}
	return Passkey{}, false
}

// AddPasskey records credential p (its MethodID chosen by the caller),
// confirmed at once: the registration ceremony proved the authenticator.
func (f *Factors) AddPasskey(userID uuid.UUID, name string, p Passkey, now time.Time) error {
	keys := f.Passkeys()
	if len(keys) >= MaxPasskeys {
		return ErrTooMany
	}
	if _, dup := f.PasskeyByCredential(p.CredentialID); dup {
		return ErrAlreadyEnrolled
	}
	f.record(PasskeyAdded{UserID: userID, MethodID: p.MethodID, Name: name, CredentialID: slices.Clone(p.CredentialID),
		PublicKey: slices.Clone(p.PublicKey), SignCount: p.SignCount, AAGUID: slices.Clone(p.AAGUID),
		AttestationFormat: p.AttestationFormat, Transports: slices.Clone(p.Transports), UserVerified: p.UserVerified,
		BackupEligible: p.BackupEligible, BackupState: p.BackupState, AddedAt: now.UTC()})
	return nil
}

// CompleteWithPasskey spends login challenge c with an assertion of
// passkey id whose counter is signCount.
func (f *Factors) CompleteWithPasskey(c Challenge, id uuid.UUID, signCount uint32, now time.Time) error {
	if err := f.open(c, now); err != nil {
		return err
	}
	if c.Purpose != PurposeLogin {
		return ErrInvalidChallenge
	}
	if err := f.checkCounter(id, signCount); err != nil {
		return err
	}
	f.record(ChallengeCompleted{UserID: f.userID, ChallengeID: c.ID, MethodID: id, Kind: KindWebAuthn, SignCount: &signCount, CompletedAt: now.UTC()})
	return nil
}

// SignInWithPasskey records a passwordless login with passkey id.
func (f *Factors) SignInWithPasskey(id uuid.UUID, signCount uint32, now time.Time) error {
	if err := f.checkCounter(id, signCount); err != nil {
		return err
	}
	f.record(PasskeySignedIn{UserID: f.userID, MethodID: id, SignCount: signCount, SignedInAt: now.UTC()})
	return nil
}

// checkCounter holds WebAuthn's clone rule: an authenticator without a
// counter sends 0 forever; one with a counter must move it forward.
func (f *Factors) checkCounter(id uuid.UUID, signCount uint32) error {
	m := f.method(id)
	if m == nil || m.Kind != KindWebAuthn || m.passkey == nil {
		return ErrNotFound
	}
	stored := m.passkey.SignCount
	if (signCount != 0 || stored != 0) && signCount <= stored {
		return ErrSignCountRegressed
	}
	return nil
}

func (f *Factors) applyPasskey(e PasskeyAdded) {
	f.userID = e.UserID
	f.methods = append(f.methods, &Method{ID: e.MethodID, Kind: KindWebAuthn, Name: e.Name, Confirmed: true, AddedAt: e.AddedAt,
		ConfirmedAt: e.AddedAt, passkey: &Passkey{MethodID: e.MethodID, CredentialID: e.CredentialID, PublicKey: e.PublicKey,
			SignCount: e.SignCount, AAGUID: e.AAGUID, AttestationFormat: e.AttestationFormat, Transports: e.Transports,
			UserVerified: e.UserVerified, BackupEligible: e.BackupEligible, BackupState: e.BackupState}})
}

func (f *Factors) advanceCounter(id uuid.UUID, signCount uint32, at time.Time) {
	if m := f.method(id); m != nil && m.passkey != nil {
		m.LastUsedAt = at
		if signCount > m.passkey.SignCount {
			m.passkey.SignCount = signCount
		}
	}
}

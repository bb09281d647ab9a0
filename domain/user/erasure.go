package user

import (
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/authledger/authledger/events"
)

// Event names of erasure and consent.
const (
	// EventErased: the user's data key was destroyed (crypto-shredding,
	// ADR 0034). The account is gone for good.
	EventErased = "user.erased.v1"
	// EventTermsAccepted records the terms version the user accepted.
	EventTermsAccepted = "user.terms_accepted.v1"
)

// ErrErased: the account was erased; nothing can be done with it any more.
var ErrErased = errors.New("user: account erased")

// MaxTermsVersionLength bounds a terms version, in bytes.
const MaxTermsVersionLength = 64

// Erased records the erasure of the account: its data key was destroyed
// before this was appended, so its personal data in the log no longer
// opens, and read models show the account as erased. By is who asked (the
// user, or an administrator with AsAdmin).
type Erased struct {
	UserID   uuid.UUID `json:"user_id"`
	By       uuid.UUID `json:"by"`
	AsAdmin  bool      `json:"as_admin,omitempty"`
	ErasedAt time.Time `json:"erased_at"`
}

// TermsAccepted records the user accepting a version of the terms of
// service: at registration, at a login that had to accept a new version,
// or through POST /v1/me/consents.
type TermsAccepted struct {
	UserID     uuid.UUID `json:"user_id"`
	Version    string    `json:"version"`
	AcceptedAt time.Time `json:"accepted_at"`
}

func (Erased) EventName() string        { return EventErased }
func (TermsAccepted) EventName() string { return EventTermsAccepted }

// IsErased reports whether the account was erased.
func (u *User) IsErased() bool { return u.erased }

// TermsVersion is the last terms version the user accepted ("" for none).
func (u *User) TermsVersion() string { return u.termsVersion }

// Consent is one acceptance of the terms.
type Consent struct {
	Version    string
	AcceptedAt time.Time
}

// Consents lists the user's acceptances, oldest first.
func (u *User) Consents() []Consent { return append([]Consent(nil), u.consents...) }

// Erase records the erasure; an erased account records nothing.
func (u *User) Erase(by uuid.UUID, asAdmin bool, now time.Time) error {
	if !u.registered {
		return ErrNotRegistered
	}
	if u.erased {
		return nil
	}
	u.record(Erased{UserID: u.id, By: by, AsAdmin: asAdmin, ErasedAt: now.UTC()})
	return nil
}

// ValidateTermsVersion checks a terms version: 1 to 64 bytes of printable
// text without spaces at either end.
func ValidateTermsVersion(v string) error {
	if v == "" || len(v) > MaxTermsVersionLength || !utf8.ValidString(v) || strings.TrimSpace(v) != v {
		return invalid("terms_version", "must be 1 to 64 characters without leading or trailing spaces")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return invalid("terms_version", "must be printable")
		}
	}
	return nil
}

// AcceptTerms records the acceptance of version; accepting the version
// already accepted last records nothing.
func (u *User) AcceptTerms(version string, now time.Time) error {
	if !u.registered {
		return ErrNotRegistered
	}
	if u.erased {
		return ErrErased
	}
	if err := ValidateTermsVersion(version); err != nil {
		return err
	}
	if u.termsVersion == version {
		return nil
	}
	u.record(TermsAccepted{UserID: u.id, Version: version, AcceptedAt: now.UTC()})
	return nil
}

func (u *User) applyErasure(e events.Event) {
	switch e := e.(type) {
	case Erased:
		u.erased, u.disabled = true, true
		u.email, u.displayName, u.passwordHash = "", "", ""
		u.external = nil
	case TermsAccepted:
		u.termsVersion = e.Version
		u.consents = append(u.consents, Consent{Version: e.Version, AcceptedAt: e.AcceptedAt})
	}
}

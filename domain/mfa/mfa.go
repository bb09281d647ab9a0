// Package mfa is the second-factor aggregate of one user: the stream
// "mfa-<user id>" holds the user's second factors (authenticator apps,
// backup codes) and the challenges (mfa_tokens) a correct first factor
// opened.
//
// Challenges live on the same stream as the factors on purpose: the event
// that spends a challenge also spends the TOTP step or the backup code
// that completed it, so one append at the loaded revision makes both
// single use, however many requests race (ARCHITECTURE rule 1).
//
// The package is pure: codes are checked outside (auth/mfa); what comes
// in is which step or which code index matched, and when.
package mfa

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/events"
)

// StreamPrefix starts every second-factor stream name.
const StreamPrefix = "mfa-"

// StreamName is the user's second-factor stream.
func StreamName(userID uuid.UUID) string { return StreamPrefix + userID.String() }

// Method kinds, as GET /v1/me/mfa and the verify request name them.
const (
	KindTOTP        = "totp"
	KindBackupCodes = "backup_codes"
	KindEmail       = "email"
	KindSMS         = "sms"
)

// MaxPhones bounds the numbers of a user, pending ones included.
const MaxPhones = 3

// The mailed codes' rules.
const (
	// CodeTTL is a mailed code's life.
	CodeTTL = 10 * time.Minute
	// MaxCodeAttempts wrong attempts void a code.
	MaxCodeAttempts = 5
	// CodeInterval is the least time between two codes of one user.
	CodeInterval = 30 * time.Second
	// MaxCodesPerWindow codes at most per CodeWindow and user.
	MaxCodesPerWindow = 5
	CodeWindow        = time.Hour
)

// Challenge purposes.
const (
	// PurposeLogin: a second factor completes the login.
	PurposeLogin = "login"
	// PurposeEnroll: the user must set up a second factor (a required
	// role); the token serves only to set up and confirm one.
	PurposeEnroll = "enroll"
)

// MaxTOTPMethods bounds the authenticator apps of a user, pending ones
// included: enough for a phone and a spare, few enough that a login
// tries each quickly.
const MaxTOTPMethods = 5

// BackupCodeCount is how many backup codes a set holds.
const BackupCodeCount = 10

// maxOpenChallenges bounds the challenges kept in state; an older one
// still open is forgotten (it fails like an expired one).
const maxOpenChallenges = 16

var (
	// ErrNotFound: no such method (or another user's).
	ErrNotFound = errors.New("mfa: no such method")
	// ErrTooMany: MaxTOTPMethods reached.
	ErrTooMany = errors.New("mfa: too many authenticator apps")
	// ErrAlreadyConfirmed: confirming a method already confirmed.
	ErrAlreadyConfirmed = errors.New("mfa: method already confirmed")
	// ErrNoPrimaryFactor: backup codes recover another factor, so they
	// need a confirmed one; alone they would be a second password on
	// paper.
	ErrNoPrimaryFactor = errors.New("mfa: backup codes need a confirmed second factor")
	// ErrInvalidChallenge: the mfa_token is unknown, expired, already
	// used, or not for this purpose.
	ErrInvalidChallenge = errors.New("mfa: invalid challenge")
	// ErrCodeSpent: the TOTP step or backup code was used already.
	ErrCodeSpent = errors.New("mfa: code already used")
	// ErrAlreadyEnrolled: the email factor is on already.
	ErrAlreadyEnrolled = errors.New("mfa: the email factor is on already")
	// ErrNoCode: no live code for the challenge (none sent, expired,
	// superseded or out of attempts).
	ErrNoCode = errors.New("mfa: no live code")
)

// CodeThrottledError: a code was asked for too soon; RetryAfter says
// when the next may be.
type CodeThrottledError struct{ RetryAfter time.Duration }

func (e *CodeThrottledError) Error() string {
	return fmt.Sprintf("mfa: codes asked too often; retry after %s", e.RetryAfter)
}

// Code is a challenge's live mailed code.
type Code struct {
	ID        uuid.UUID
	MethodID  uuid.UUID
	Channel   string // KindEmail or KindSMS
	ExpiresAt time.Time
	Failures  int
}

// Method is one second factor, as a list shows it.
type Method struct {
	ID          uuid.UUID
	Kind        string
	Confirmed   bool
	AddedAt     time.Time
	ConfirmedAt time.Time
	// LastUsedAt is the last completed challenge (zero: never).
	LastUsedAt time.Time
	// Remaining counts the unused backup codes (KindBackupCodes).
	Remaining int
	// Phone is the number of a KindSMS method.
	Phone string
	// Name is the label a user gave a KindWebAuthn method.
	Name string

	passkey *Passkey

	// pending is the code that confirms a new number.
	pending *Code

	lastStep int64
	digests  []string
	used     []bool
}

// Challenge is an open mfa_token.
type Challenge struct {
	ID        uuid.UUID
	Purpose   string
	Method    string
	AMR       []string
	ExpiresAt time.Time
	digest    string
	code      *Code
}

// Factors is the aggregate. The zero value is a user without factors.
type Factors struct {
	userID     uuid.UUID
	methods    []*Method // in the order added
	challenges []*Challenge
	// sent are the times of the last codes sent (the rate limit).
	sent []time.Time

	version int
	changes []events.Event
}

// FromHistory folds a second-factor stream, oldest first.
func FromHistory(history []events.Event) (*Factors, error) {
	f := &Factors{}
	for _, e := range history {
		if err := f.apply(e); err != nil {
			return nil, err
		}
		f.version++
	}
	return f, nil
}

// Version is the number of events folded (not counting Changes).
func (f *Factors) Version() int { return f.version }

// Changes are the events recorded since loading, to append.
func (f *Factors) Changes() []events.Event { return slices.Clone(f.changes) }

// Methods returns every method, pending ones included, in the order
// added (copies).
func (f *Factors) Methods() []Method {
	out := make([]Method, 0, len(f.methods))
	for _, m := range f.methods {
		c := *m
		c.digests, c.used, c.pending, c.passkey = nil, nil, nil, nil
		out = append(out, c)
	}
	return out
}

// Enabled reports whether a login needs a second factor: some method is
// confirmed.
func (f *Factors) Enabled() bool {
	for _, m := range f.methods {
		if m.Confirmed {
			return true
		}
	}
	return false
}

// ConfirmedKinds lists the kinds a login may complete with, sorted, each
// once.
func (f *Factors) ConfirmedKinds() []string {
	var out []string
	for _, m := range f.methods {
		if m.Confirmed && !slices.Contains(out, m.Kind) {
			out = append(out, m.Kind)
		}
	}
	slices.Sort(out)
	return out
}

// TOTPMethods returns the ids of the authenticator apps a code may be
// checked against: the confirmed ones, or (confirmed false) the pending
// ones.
func (f *Factors) TOTPMethods(confirmed bool) []uuid.UUID {
	var out []uuid.UUID
	for _, m := range f.methods {
		if m.Kind == KindTOTP && m.Confirmed == confirmed {
			out = append(out, m.ID)
		}
	}
	return out
}

// LastStep is the last spent TOTP step of method id (0: none).
func (f *Factors) LastStep(id uuid.UUID) int64 {
	if m := f.method(id); m != nil {
		return m.lastStep
	}
	return 0
}

// BackupCodeIndex returns the index of the unused backup code whose
// digest is digest (hex SHA-256), compared in constant time, or -1.
func (f *Factors) BackupCodeIndex(digest string) int {
	m := f.backupCodes()
	if m == nil {
		return -1
	}
	found := -1
	for i, d := range m.digests {
		if subtle.ConstantTimeCompare([]byte(d), []byte(digest)) == 1 && !m.used[i] {
			found = i
		}
	}
	return found
}

// AddTOTP records a pending authenticator app whose secret was sealed
// under id.
func (f *Factors) AddTOTP(userID, id uuid.UUID, now time.Time) error {
	if len(f.TOTPMethods(true))+len(f.TOTPMethods(false)) >= MaxTOTPMethods {
		return ErrTooMany
	}
	f.record(TOTPAdded{UserID: userID, MethodID: id, AddedAt: now.UTC()})
	return nil
}

// ConfirmTOTP confirms pending method id with a code of time step step.
func (f *Factors) ConfirmTOTP(id uuid.UUID, step int64, now time.Time) error {
	m := f.method(id)
	if m == nil || m.Kind != KindTOTP {
		return ErrNotFound
	}
	if m.Confirmed {
		return ErrAlreadyConfirmed
	}
	f.record(TOTPConfirmed{UserID: f.userID, MethodID: id, Step: step, ConfirmedAt: now.UTC()})
	return nil
}

// GenerateBackupCodes replaces the backup codes with a set of digests
// (hex SHA-256 of BackupCodeCount codes), under a new method id.
func (f *Factors) GenerateBackupCodes(userID, id uuid.UUID, digests []string, now time.Time) error {
	if len(digests) != BackupCodeCount {
		return fmt.Errorf("mfa: a backup code set has %d codes, not %d", BackupCodeCount, len(digests))
	}
	if !f.hasPrimary() {
		return ErrNoPrimaryFactor
	}
	f.record(BackupCodesGenerated{UserID: userID, MethodID: id, Digests: slices.Clone(digests), GeneratedAt: now.UTC()})
	return nil
}

// Remove ends method id. Removing the last confirmed factor that is not
// a backup code set removes the backup codes too: they would otherwise
// be the account's only second factor (ErrNoPrimaryFactor).
func (f *Factors) Remove(id uuid.UUID, now time.Time) error {
	m := f.method(id)
	if m == nil {
		return ErrNotFound
	}
	f.record(MethodRemoved{UserID: f.userID, MethodID: id, RemovedAt: now.UTC()})
	if b := f.backupCodes(); b != nil && !f.hasPrimary() {
		f.record(MethodRemoved{UserID: f.userID, MethodID: b.ID, RemovedAt: now.UTC()})
	}
	return nil
}

// IssueChallenge opens challenge id (an mfa_token whose secret has digest
// digest) for purpose, valid until now+ttl.
func (f *Factors) IssueChallenge(userID, id uuid.UUID, digest, purpose, method string, amr []string, now time.Time, ttl time.Duration) {
	f.record(ChallengeIssued{UserID: userID, ChallengeID: id, Digest: digest, Purpose: purpose, Method: method,
		AMR: slices.Clone(amr), IssuedAt: now.UTC(), ExpiresAt: now.Add(ttl).UTC()})
}

// OpenChallenge returns challenge id when its digest matches (constant
// time), it is not expired at now and not spent; else
// ErrInvalidChallenge.
func (f *Factors) OpenChallenge(id uuid.UUID, digest string, now time.Time) (Challenge, error) {
	for _, c := range f.challenges {
		if c.ID != id {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(c.digest), []byte(digest)) != 1 || !now.Before(c.ExpiresAt) {
			return Challenge{}, ErrInvalidChallenge
		}
		out := *c
		out.code = nil // LiveCode reads the current state, not a copy
		return out, nil
	}
	return Challenge{}, ErrInvalidChallenge
}

// CompleteWithTOTP spends challenge c with a code of step on method id. A
// login challenge needs a confirmed app; an enrolment challenge confirms
// a pending one (which the same step then spends). A step not after the
// method's last spent one is ErrCodeSpent.
func (f *Factors) CompleteWithTOTP(c Challenge, id uuid.UUID, step int64, now time.Time) error {
	if err := f.open(c, now); err != nil {
		return err
	}
	m := f.method(id)
	if m == nil || m.Kind != KindTOTP {
		return ErrNotFound
	}
	if step <= m.lastStep {
		return ErrCodeSpent
	}
	switch {
	case c.Purpose == PurposeEnroll && !m.Confirmed:
		f.record(TOTPConfirmed{UserID: f.userID, MethodID: id, Step: step, ConfirmedAt: now.UTC()})
	case !m.Confirmed:
		return ErrNotFound
	}
	f.record(ChallengeCompleted{UserID: f.userID, ChallengeID: c.ID, MethodID: id, Kind: KindTOTP, Step: &step, CompletedAt: now.UTC()})
	return nil
}

// CompleteWithBackupCode spends login challenge c with backup code index
// (BackupCodeIndex).
func (f *Factors) CompleteWithBackupCode(c Challenge, index int, now time.Time) error {
	if err := f.open(c, now); err != nil {
		return err
	}
	if c.Purpose != PurposeLogin {
		return ErrInvalidChallenge
	}
	m := f.backupCodes()
	if m == nil || index < 0 || index >= len(m.used) {
		return ErrNotFound
	}
	if m.used[index] {
		return ErrCodeSpent
	}
	f.record(ChallengeCompleted{UserID: f.userID, ChallengeID: c.ID, MethodID: m.ID, Kind: KindBackupCodes, CodeIndex: &index, CompletedAt: now.UTC()})
	return nil
}

// AddEmail turns the account's address into a second factor (method id).
func (f *Factors) AddEmail(userID, id uuid.UUID, now time.Time) error {
	for _, m := range f.methods {
		if m.Kind == KindEmail {
			return ErrAlreadyEnrolled
		}
	}
	f.record(EmailAdded{UserID: userID, MethodID: id, AddedAt: now.UTC()})
	return nil
}

// EmailMethod is the id of the confirmed email factor, or uuid.Nil.
func (f *Factors) EmailMethod() uuid.UUID {
	for _, m := range f.methods {
		if m.Kind == KindEmail && m.Confirmed {
			return m.ID
		}
	}
	return uuid.Nil
}

// SendCode records code id for login challenge c, to email, unless the
// user asked for one less than CodeInterval ago or MaxCodesPerWindow in
// CodeWindow (*CodeThrottledError).
func (f *Factors) SendCode(c Challenge, id uuid.UUID, email string, now time.Time) error {
	return f.sendCode(c, KindEmail, id, email, now)
}

// SendSMSCode is SendCode to the user's confirmed number.
func (f *Factors) SendSMSCode(c Challenge, id uuid.UUID, now time.Time) error {
	return f.sendCode(c, KindSMS, id, "", now)
}

func (f *Factors) sendCode(c Challenge, channel string, id uuid.UUID, email string, now time.Time) error {
	if err := f.open(c, now); err != nil {
		return err
	}
	var m *Method
	for _, x := range f.methods {
		if x.Kind == channel && x.Confirmed && m == nil {
			m = x
		}
	}
	if c.Purpose != PurposeLogin || m == nil {
		return ErrNotFound
	}
	if wait := f.codeWait(now); wait > 0 {
		return &CodeThrottledError{RetryAfter: wait}
	}
	e := CodeSent{UserID: f.userID, ChallengeID: c.ID, MethodID: m.ID, CodeID: id, Email: email, SentAt: now.UTC(), ExpiresAt: now.Add(CodeTTL).UTC()}
	if channel == KindSMS {
		e.Channel, e.Phone, e.Email = KindSMS, m.Phone, ""
	}
	f.record(e)
	return nil
}

// AddPhone records a pending number (method id) and the code (code id)
// that confirms it, under the same rate limit as login codes.
func (f *Factors) AddPhone(userID, id, codeID uuid.UUID, phone string, now time.Time) error {
	n := 0
	for _, m := range f.methods {
		if m.Kind == KindSMS {
			n++
			if m.Phone == phone {
				return ErrAlreadyEnrolled
			}
		}
	}
	if n >= MaxPhones {
		return ErrTooMany
	}
	if wait := f.codeWait(now); wait > 0 {
		return &CodeThrottledError{RetryAfter: wait}
	}
	f.record(PhoneAdded{UserID: userID, MethodID: id, Phone: phone, AddedAt: now.UTC()})
	f.record(CodeSent{UserID: userID, MethodID: id, CodeID: codeID, Phone: phone, Channel: KindSMS, SentAt: now.UTC(), ExpiresAt: now.Add(CodeTTL).UTC()})
	return nil
}

// PendingCode is the live code confirming number id, or ErrNoCode.
func (f *Factors) PendingCode(id uuid.UUID, now time.Time) (Code, error) {
	m := f.method(id)
	if m == nil || m.Kind != KindSMS || m.Confirmed {
		return Code{}, ErrNotFound
	}
	if m.pending == nil || !now.Before(m.pending.ExpiresAt) || m.pending.Failures >= MaxCodeAttempts {
		return Code{}, ErrNoCode
	}
	return *m.pending, nil
}

// ConfirmPhone confirms number id with its live code codeID.
func (f *Factors) ConfirmPhone(id, codeID uuid.UUID, now time.Time) error {
	code, err := f.PendingCode(id, now)
	if err != nil {
		return err
	}
	if code.ID != codeID {
		return ErrNoCode
	}
	f.record(PhoneConfirmed{UserID: f.userID, MethodID: id, CodeID: codeID, ConfirmedAt: now.UTC()})
	return nil
}

// FailPendingCode counts a wrong attempt at number id's confirmation.
func (f *Factors) FailPendingCode(id uuid.UUID, now time.Time) error {
	code, err := f.PendingCode(id, now)
	if err != nil {
		return err
	}
	f.record(CodeFailed{UserID: f.userID, CodeID: code.ID, FailedAt: now.UTC()})
	return nil
}

func (f *Factors) codeWait(now time.Time) time.Duration {
	var wait time.Duration
	inWindow := 0
	for _, t := range f.sent {
		if d := t.Add(CodeInterval).Sub(now); d > wait {
			wait = d
		}
		if now.Sub(t) < CodeWindow {
			inWindow++
		}
	}
	if inWindow >= MaxCodesPerWindow {
		// The oldest in the window must leave it.
		for _, t := range f.sent {
			if now.Sub(t) < CodeWindow {
				if d := t.Add(CodeWindow).Sub(now); d > wait {
					wait = d
				}
				break
			}
		}
	}
	return wait
}

// LiveCode returns challenge c's live code at now, or ErrNoCode.
func (f *Factors) LiveCode(c Challenge, now time.Time) (Code, error) {
	for _, ch := range f.challenges {
		if ch.ID == c.ID && ch.code != nil && now.Before(ch.code.ExpiresAt) && ch.code.Failures < MaxCodeAttempts {
			return *ch.code, nil
		}
	}
	return Code{}, ErrNoCode
}

// FailCode counts a wrong attempt at challenge c's live code.
func (f *Factors) FailCode(c Challenge, now time.Time) error {
	code, err := f.LiveCode(c, now)
	if err != nil {
		return err
	}
	f.record(CodeFailed{UserID: f.userID, ChallengeID: c.ID, CodeID: code.ID, FailedAt: now.UTC()})
	return nil
}

// CompleteWithCode spends login challenge c with its live code id.
func (f *Factors) CompleteWithCode(c Challenge, id uuid.UUID, now time.Time) error {
	if err := f.open(c, now); err != nil {
		return err
	}
	code, err := f.LiveCode(c, now)
	if err != nil || code.ID != id {
		return ErrNoCode
	}
	f.record(ChallengeCompleted{UserID: f.userID, ChallengeID: c.ID, MethodID: code.MethodID, Kind: code.Channel, CodeID: &id, CompletedAt: now.UTC()})
	return nil
}

// open checks that c is still open in this state (a racing request may
// have spent it since it was read).
func (f *Factors) open(c Challenge, now time.Time) error {
	_, err := f.OpenChallenge(c.ID, c.digest, now)
	return err
}

func (f *Factors) hasPrimary() bool {
	for _, m := range f.methods {
		if m.Confirmed && m.Kind != KindBackupCodes {
			return true
		}
	}
	return false
}

func (f *Factors) method(id uuid.UUID) *Method {
	for _, m := range f.methods {
		if m.ID == id {
			return m
		}
	}
	return nil
}

func (f *Factors) backupCodes() *Method {
	for _, m := range f.methods {
		if m.Kind == KindBackupCodes {
			return m
		}
	}
	return nil
}

func (f *Factors) record(e events.Event) {
	if err := f.apply(e); err != nil {
		panic(err) // only this package's own events reach here
	}
	f.changes = append(f.changes, e)
}

func (f *Factors) apply(e events.Event) error {
	switch e := e.(type) {
	case TOTPAdded:
		f.userID = e.UserID
		f.methods = append(f.methods, &Method{ID: e.MethodID, Kind: KindTOTP, AddedAt: e.AddedAt})
	case TOTPConfirmed:
		if m := f.method(e.MethodID); m != nil {
			m.Confirmed, m.ConfirmedAt, m.lastStep = true, e.ConfirmedAt, e.Step
		}
	case BackupCodesGenerated:
		f.userID = e.UserID
		f.methods = slices.DeleteFunc(f.methods, func(m *Method) bool { return m.Kind == KindBackupCodes })
		f.methods = append(f.methods, &Method{ID: e.MethodID, Kind: KindBackupCodes, Confirmed: true, AddedAt: e.GeneratedAt,
			ConfirmedAt: e.GeneratedAt, Remaining: len(e.Digests), digests: slices.Clone(e.Digests), used: make([]bool, len(e.Digests))})
	case MethodRemoved:
		f.methods = slices.DeleteFunc(f.methods, func(m *Method) bool { return m.ID == e.MethodID })
	case ChallengeIssued:
		f.userID = e.UserID
		f.challenges = append(f.challenges, &Challenge{ID: e.ChallengeID, Purpose: e.Purpose, Method: e.Method,
			AMR: slices.Clone(e.AMR), ExpiresAt: e.ExpiresAt, digest: e.Digest})
		if len(f.challenges) > maxOpenChallenges {
			f.challenges = f.challenges[1:]
		}
	case EmailAdded:
		f.userID = e.UserID
		f.methods = append(f.methods, &Method{ID: e.MethodID, Kind: KindEmail, Confirmed: true, AddedAt: e.AddedAt, ConfirmedAt: e.AddedAt})
	case PhoneAdded:
		f.userID = e.UserID
		f.methods = append(f.methods, &Method{ID: e.MethodID, Kind: KindSMS, AddedAt: e.AddedAt, Phone: e.Phone})
	case PhoneConfirmed:
		if m := f.method(e.MethodID); m != nil {
			m.Confirmed, m.ConfirmedAt, m.pending = true, e.ConfirmedAt, nil
		}
	case CodeSent:
		f.sent = append(f.sent, e.SentAt)
		if len(f.sent) > MaxCodesPerWindow {
			f.sent = f.sent[1:]
		}
		channel := e.Channel
		if channel == "" {
			channel = KindEmail
		}
		if e.ChallengeID == uuid.Nil {
			if m := f.method(e.MethodID); m != nil {
				m.pending = &Code{ID: e.CodeID, MethodID: e.MethodID, Channel: channel, ExpiresAt: e.ExpiresAt}
			}
		}
		for _, c := range f.challenges {
			if c.ID == e.ChallengeID {
				c.code = &Code{ID: e.CodeID, MethodID: e.MethodID, Channel: channel, ExpiresAt: e.ExpiresAt}
				if e.ExpiresAt.After(c.ExpiresAt) {
					c.ExpiresAt = e.ExpiresAt
				}
			}
		}
	case CodeFailed:
		for _, m := range f.methods {
			if m.pending != nil && m.pending.ID == e.CodeID {
				m.pending.Failures++
			}
		}
		for _, c := range f.challenges {
			if c.ID == e.ChallengeID && c.code != nil && c.code.ID == e.CodeID {
				c.code.Failures++
			}
		}
	case PasskeyAdded:
		f.applyPasskey(e)
	case PasskeySignedIn:
		f.advanceCounter(e.MethodID, e.SignCount, e.SignedInAt)
	case ChallengeCompleted:
		f.challenges = slices.DeleteFunc(f.challenges, func(c *Challenge) bool { return c.ID == e.ChallengeID })
		if e.SignCount != nil {
			f.advanceCounter(e.MethodID, *e.SignCount, e.CompletedAt)
		}
		m := f.method(e.MethodID)
		if m == nil {
			break
		}
		m.LastUsedAt = e.CompletedAt
		if e.Step != nil && *e.Step > m.lastStep {
			m.lastStep = *e.Step
		}
		if e.CodeIndex != nil && *e.CodeIndex >= 0 && *e.CodeIndex < len(m.used) && !m.used[*e.CodeIndex] {
			m.used[*e.CodeIndex] = true
			m.Remaining--
		}
	default:
		return fmt.Errorf("mfa: unexpected event %T on a second-factor stream", e)
	}
	return nil
}

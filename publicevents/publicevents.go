// Package publicevents is the public event schema: the versioned
// integration events that authledger publishes to the outside world
// (the analytics stream, later webhooks), derived from the internal events
// of the log (docs/adr/0030, docs/events/).
//
// Each published type is a CloudEvents 1.0 event in the JSON format: id is
// the internal event id (so a consumer, or JetStream's de-duplication,
// recognises a republished event), source is the server's public URL, type
// is "authledger." + the internal name ("authledger.session.started.v1"),
// time is when the event entered the log, subject is the entity the event
// is about, and data is a public shape of its own, never the internal
// JSON: a field added to an internal event does not reach consumers until
// someone adds it here, to its JSON Schema and to the docs.
//
// No secret and no digest of one is published (password hashes, refresh
// and device digests, provider token fingerprints, key material), nor the
// user's personal data (email, display name, IP address, user agent, file
// names, OCR text): every published type names users, sessions and tasks
// by id only. Internal events not published are listed in InternalOnly,
// each with the reason; a test fails when a registered event is in
// neither table.
package publicevents

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"

	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/domain/apikey"
	"github.com/authledger/authledger/domain/auditarchive"
	"github.com/authledger/authledger/domain/mfa"
	"github.com/authledger/authledger/domain/rollout"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/signin"
	"github.com/authledger/authledger/domain/signingkey"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/domain/webhook"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
)

// TypePrefix starts every published type: "authledger." + the internal name.
const TypePrefix = "authledger."

// ContentType is the media type of one event in the CloudEvents JSON
// format (structured mode), as published.
const ContentType = "application/cloudevents+json"

// Type is the public type of the internal event name.
func Type(internal string) string { return TypePrefix + internal }

// mapping turns one decoded internal event into its subject and public data.
type mapping func(e events.Event) (subject string, data any)

// published is the table of published types, by internal name. Adding a
// type means adding its JSON Schema under docs/events/ and its row in
// docs/events/README.md; renaming or reshaping one means a .v2.
var published = map[string]mapping{
	user.EventRegistered: func(e events.Event) (string, any) {
		r := e.(user.Registered)
		return r.UserID.String(), UserRegistered{UserID: r.UserID.String(), Roles: nonNil(r.Roles), Local: r.PasswordHash != "", RegisteredAt: r.RegisteredAt}
	},
	user.EventPasswordChanged: func(e events.Event) (string, any) {
		r := e.(user.PasswordChanged)
		return r.UserID.String(), UserPasswordChanged{UserID: r.UserID.String(), ChangedAt: r.ChangedAt}
	},
	user.EventErased: func(e events.Event) (string, any) {
		r := e.(user.Erased)
		return r.UserID.String(), UserErased{UserID: r.UserID.String(), ErasedAt: r.ErasedAt}
	},
	user.EventLoginFailed: func(e events.Event) (string, any) {
		r := e.(user.LoginFailed)
		m := r.Method
		if m == "" {
			m = "password" // recorded before the method was: all were local
		}
		return r.UserID.String(), UserLoginFailed{UserID: r.UserID.String(), Method: m, FailedAt: r.FailedAt}
	},
	user.EventRoleGranted: func(e events.Event) (string, any) {
		r := e.(user.RoleGranted)
		return r.UserID.String(), UserRoleChanged{UserID: r.UserID.String(), Role: r.Role, At: r.GrantedAt}
	},
	user.EventRoleRevoked: func(e events.Event) (string, any) {
		r := e.(user.RoleRevoked)
		return r.UserID.String(), UserRoleChanged{UserID: r.UserID.String(), Role: r.Role, At: r.RevokedAt}
	},
	session.EventStarted: func(e events.Event) (string, any) {
		r := e.(session.Started)
		return r.SessionID.String(), SessionStarted{SessionID: r.SessionID.String(), UserID: r.UserID.String(), Method: r.Method,
			AMR: nonNil(r.AMR), StartedAt: r.StartedAt, ExpiresAt: r.ExpiresAt}
	},
	session.EventRevoked: func(e events.Event) (string, any) {
		r := e.(session.Revoked)
		return r.SessionID.String(), SessionRevoked{SessionID: r.SessionID.String(), UserID: r.UserID.String(), Reason: string(r.Reason), RevokedAt: r.RevokedAt}
	},
	session.EventReuseDetected: func(e events.Event) (string, any) {
		r := e.(session.ReuseDetected)
		return r.SessionID.String(), SessionReuseDetected{SessionID: r.SessionID.String(), Generation: r.Generation, DetectedAt: r.DetectedAt}
	},
	task.EventCreated: func(e events.Event) (string, any) {
		r := e.(task.Created)
		return r.TaskID.String(), TaskCreated{TaskID: r.TaskID.String(), OwnerID: r.OwnerID.String(), MaxAttempts: r.MaxAttempts, CreatedAt: r.CreatedAt}
	},
	task.EventCompleted: func(e events.Event) (string, any) {
		r := e.(task.Completed)
		return r.TaskID.String(), TaskCompleted{TaskID: r.TaskID.String(), OwnerID: r.OwnerID.String(), ProcessingMS: r.ProcessingMS, CompletedAt: r.CompletedAt}
	},
	task.EventFailed: func(e events.Event) (string, any) {
		r := e.(task.Failed)
		return r.TaskID.String(), TaskFailed{TaskID: r.TaskID.String(), OwnerID: r.OwnerID.String(), Attempt: r.Attempt, Final: r.Final,
			ProcessingMS: r.ProcessingMS, FailedAt: r.FailedAt}
	},
	task.EventRetried: func(e events.Event) (string, any) {
		r := e.(task.Retried)
		return r.TaskID.String(), TaskTransition{TaskID: r.TaskID.String(), OwnerID: r.OwnerID.String(), At: r.RetriedAt}
	},
	task.EventCancelled: func(e events.Event) (string, any) {
		r := e.(task.Cancelled)
		return r.TaskID.String(), TaskTransition{TaskID: r.TaskID.String(), OwnerID: r.OwnerID.String(), At: r.CancelledAt}
	},
	task.EventDeleted: func(e events.Event) (string, any) {
		r := e.(task.Deleted)
		return r.TaskID.String(), TaskDeleted{TaskID: r.TaskID.String(), OwnerID: r.OwnerID.String(), ByAdmin: r.AsAdmin, DeletedAt: r.DeletedAt}
	},
	task.EventExpired: func(e events.Event) (string, any) {
		r := e.(task.Expired)
		return r.TaskID.String(), TaskTransition{TaskID: r.TaskID.String(), OwnerID: r.OwnerID.String(), At: r.ExpiredAt}
	},
}

// InternalOnly lists every internal event that is not published, with the
// reason. An event type registered by a domain package must be either
// published or listed here (the package's tests walk the registry).
var InternalOnly = map[string]string{
	user.EventPasswordRehashed:           "the same password under new hash parameters: nothing changed for a consumer; carries the hash",
	user.EventLoginFailuresCleared:       "the login throttle's bookkeeping; carries the client network",
	user.EventLocked:                     "no longer recorded (the former lockout policy)",
	user.EventUnlocked:                   "the login throttle's bookkeeping",
	user.EventDisplayNameChanged:         "personal data only (the display name); consumers read profiles from the API",
	user.EventEmailReserved:              "the email reservation stream's uniqueness guard",
	user.EventEmailReleased:              "the email reservation stream's uniqueness guard",
	user.EventExternalIdentityLinked:     "carries the provider's user id and address; kept internal until a consumer needs linking",
	user.EventExternalIdentityReserved:   "the external identity reservation stream's uniqueness guard",
	user.EventExternalIdentityUnlinked:   "carries the provider's user id; kept internal until a consumer needs linking",
	user.EventExternalSignedIn:           "the upstream provider's side of a login that session.started.v1 already publishes",
	user.EventExternalIdentityReleased:   "the external identity reservation stream's uniqueness guard",
	user.EventExternalSignInRefused:      "security detail with the provider's user id; the audit trail keeps it",
	session.EventRefreshed:               "token rotation bookkeeping (digests of refresh tokens), the log's most frequent event",
	session.EventClaimsUpdated:           "copies the user's email and name into the session (personal data)",
	session.EventExternalTokensStored:    "fingerprints of the provider's tokens (digests of secrets)",
	session.EventExternalTokensRefreshed: "fingerprints of the provider's tokens (digests of secrets)",
	task.EventFileAttached:               "the client's file name and the content's digest (personal data)",
	task.EventClaimed:                    "the worker's lease: scheduling, not an outcome",
	task.EventClaimRenewed:               "the worker's heartbeat",
	task.EventClaimReleased:              "the worker's lease: scheduling, not an outcome",
	task.EventFileAccessed:               "the audit trail's record of a download (IP, request id)",
	task.EventViewed:                     "the audit trail's record of an administrator's read",
	task.EventAccessDenied:               "the audit trail's record of a refused read",
	task.EventDenialsCounted:             "the audit trail's record of refused reads",
	task.EventQuotaReserved:              "the quota counter stream",
	task.EventQuotaReleased:              "the quota counter stream",
	task.EventQuotaSummarized:            "the quota counter stream's snapshot",
	auditarchive.EventArchived:           "the audit trail's own retention bookkeeping (rows moved to an archive file); no consumer's business",
	signingkey.EventAdded:                "key material (sealed private key)",
	signingkey.EventActivated:            "key rotation; the JWKS publishes the public keys",
	signingkey.EventRetired:              "key rotation; the JWKS publishes the public keys",
	rollout.EventConfigured:              "operator settings with email addresses of the allowlist",
	signin.EventFlowStarted:              "the upstream sign-in's state, nonce and PKCE bookkeeping",
	signin.EventFlowCompleted:            "the upstream sign-in's state bookkeeping",
	signin.EventCodeIssued:               "digest of a one-time code (a secret)",
	signin.EventCodeRedeemed:             "the one-time code's single use",
	user.EventLockedByAdmin:              "administration (the audit trail has it); kept internal until a consumer needs account states",
	user.EventDisabled:                   "administration (the audit trail has it); kept internal until a consumer needs account states",
	user.EventEnabled:                    "administration (the audit trail has it); kept internal until a consumer needs account states",
	session.EventRevokedBefore:           "a bulk revocation's cutoff; the sessions it ends publish no revoked event of their own, consumers wanting it need a new type",
	access.EventRoleCreated:              "the role catalog's administration (the audit trail has it)",
	access.EventRoleChanged:              "the role catalog's administration (the audit trail has it)",
	access.EventRoleDeleted:              "the role catalog's administration (the audit trail has it)",
	access.EventBootstrapAdminApplied:    "the once-only record of AUTHLEDGER_BOOTSTRAP_ADMIN; the grant itself is role_granted",
	apikey.EventCreated:                  "carries the key's digest (of a secret)",
	apikey.EventRevoked:                  "API key bookkeeping, kept internal with its creation",
	user.EventEmailVerificationRequested: "a mailed link's token id and digest (of a secret) and the address (personal data)",
	user.EventEmailVerified:              "carries the address (personal data); kept internal until a consumer needs verification states",
	user.EventEmailChanged:               "the old and new addresses (personal data)",
	user.EventPasswordResetRequested:     "a mailed link's token id and digest (of a secret)",
	user.EventRegistrationAttempted:      "the enumeration-safe mode's notice to an address's owner (personal data)",
	mfa.EventTOTPAdded:                   "second-factor bookkeeping (an id); kept internal until a consumer needs factor states",
	mfa.EventTOTPConfirmed:               "second-factor bookkeeping (an id and a spent time step)",
	mfa.EventBackupCodesGenerated:        "carries the digests of the backup codes (of secrets)",
	mfa.EventMethodRemoved:               "second-factor bookkeeping (an id); the audit trail has it",
	mfa.EventChallengeIssued:             "an mfa_token's digest (of a secret); the login it leads to publishes the session's start",
	mfa.EventChallengeCompleted:          "the single use of an mfa_token and of its code; the session's start is the public event",
	mfa.EventEmailAdded:                  "second-factor bookkeeping (an id); kept internal until a consumer needs factor states",
	mfa.EventCodeSent:                    "a mailed code's id and the address (personal data); the outbox's input",
	mfa.EventPhoneAdded:                  "the number (personal data) of an SMS factor",
	mfa.EventPhoneConfirmed:              "second-factor bookkeeping (an id)",
	mfa.EventCodeFailed:                  "the mailed code's attempt count; the failed login is user.login_failed.v1",
	mfa.EventPasskeyAdded:                "second-factor bookkeeping: a credential id, public key and counter; kept internal until a consumer needs factor states",
	mfa.EventPasskeySignedIn:             "a passkey's signature counter (clone detection); the session's start is the public event",
	webhook.EventRegistered:              "webhook administration: the receiver's address (the audit trail has it)",
	webhook.EventDisabled:                "webhook administration (the audit trail has it); the owner reads it from GET /v1/admin/webhooks/{id}",
	webhook.EventEnabled:                 "webhook administration (the audit trail has it)",
	webhook.EventDeleted:                 "webhook administration (the audit trail has it)",
	webhook.EventSecretRotated:           "webhook administration (the version of a derived secret; the audit trail has it)",
	user.EventTermsAccepted:              "a user's consent to a version of the terms: account state the API serves (GET /v1/me/consents)",
}

// RegisterEvents registers every domain package's events into r: the
// whole internal vocabulary, which the publisher decodes through (ADR
// 0022). A new domain package with events is added here.
func RegisterEvents(r *events.Registry) error {
	for _, f := range []func(*events.Registry) error{
		user.RegisterEvents, session.RegisterEvents, task.RegisterEvents,
		signingkey.RegisterEvents, rollout.RegisterEvents, signin.RegisterEvents,
		access.RegisterEvents, apikey.RegisterEvents, auditarchive.RegisterEvents,
		mfa.RegisterEvents, webhook.RegisterEvents,
	} {
		if err := f(r); err != nil {
			return err
		}
	}
	return nil
}

// Published lists the internal names of the published types, sorted.
func Published() []string { return slices.Sorted(maps.Keys(published)) }

// IsPublished reports whether the internal event name is published.
func IsPublished(internal string) bool { _, ok := published[internal]; return ok }

// Filter selects the published internal events from the log.
func Filter() eventstore.Filter { return eventstore.Filter{EventTypes: Published()} }

// Mapper turns recorded events into public CloudEvents.
type Mapper struct {
	registry *events.Registry
	source   string
}

// NewMapper returns a mapper decoding through a registry of every domain
// package's events (RegisterEvents) and stamping source, the server's
// public URL, on every event.
func NewMapper(source string) (*Mapper, error) {
	if source == "" {
		return nil, errors.New("publicevents: a mapper needs a source")
	}
	registry := events.NewRegistry()
	if err := RegisterEvents(registry); err != nil {
		return nil, err
	}
	return &Mapper{registry: registry, source: source}, nil
}

// Map returns the public event of ev, and false for an event that is not
// published. An error means the event could not be decoded: a bug or a
// corrupt log, never an outage.
func (m *Mapper) Map(ev eventstore.RecordedEvent) (ce.Event, bool, error) {
	if !IsPublished(ev.Type) {
		return ce.Event{}, false, nil
	}
	decoded, err := m.registry.Decode(ev.Type, ev.Data)
	if err != nil {
		return ce.Event{}, false, fmt.Errorf("publicevents: decode %s %s: %w", ev.Type, ev.ID, err)
	}
	// An upcaster may have turned an old name into a newer one: the
	// public type follows what was decoded.
	name := decoded.EventName()
	f, ok := published[name]
	if !ok {
		return ce.Event{}, false, nil
	}
	subject, data := f(decoded)
	out := ce.New(ce.CloudEventsVersionV1)
	out.SetID(ev.ID.String())
	out.SetSource(m.source)
	out.SetType(Type(name))
	out.SetTime(ev.RecordedAt.UTC())
	out.SetSubject(subject)
	if err := out.SetData(ce.ApplicationJSON, data); err != nil {
		return ce.Event{}, false, fmt.Errorf("publicevents: encode %s %s: %w", ev.Type, ev.ID, err)
	}
	if err := out.Validate(); err != nil {
		return ce.Event{}, false, fmt.Errorf("publicevents: %s %s: %w", ev.Type, ev.ID, err)
	}
	return out, true, nil
}

// InternalName is the internal name of a public type, and false for a
// type that is not "authledger." followed by a published name.
func InternalName(publicType string) (string, bool) {
	name, ok := strings.CutPrefix(publicType, TypePrefix)
	return name, ok && IsPublished(name)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// The public data shapes. Field names are part of the published contract
// (docs/events/*.json): never rename one; add a .v2 type instead.

// UserRegistered is the data of authledger.user.registered.v1. Local is
// true for an account with a local password, false for one created by an
// external or upstream sign-in.
type UserRegistered struct {
	UserID       string    `json:"user_id"`
	Roles        []string  `json:"roles"`
	Local        bool      `json:"local_password"`
	RegisteredAt time.Time `json:"registered_at"`
}

// UserPasswordChanged is the data of authledger.user.password_changed.v1:
// that it changed and when, never the hash.
type UserPasswordChanged struct {
	UserID    string    `json:"user_id"`
	ChangedAt time.Time `json:"changed_at"`
}

// UserErased is the data of authledger.user.erased.v1: the user's
// account was erased (ADR 0034); a consumer deletes what it keeps of them.
type UserErased struct {
	UserID   string    `json:"user_id"`
	ErasedAt time.Time `json:"erased_at"`
}

// UserLoginFailed is the data of authledger.user.login_failed.v1 (a wrong
// password for an existing account; the client's network stays inside).
type UserLoginFailed struct {
	UserID   string    `json:"user_id"`
	Method   string    `json:"method"`
	FailedAt time.Time `json:"failed_at"`
}

// UserRoleChanged is the data of authledger.user.role_granted.v1 and
// authledger.user.role_revoked.v1.
type UserRoleChanged struct {
	UserID string    `json:"user_id"`
	Role   string    `json:"role"`
	At     time.Time `json:"at"`
}

// SessionStarted is the data of authledger.session.started.v1: one
// successful login.
type SessionStarted struct {
	SessionID string    `json:"session_id"`
	UserID    string    `json:"user_id"`
	Method    string    `json:"method"`
	AMR       []string  `json:"amr"`
	StartedAt time.Time `json:"started_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// SessionRevoked is the data of authledger.session.revoked.v1.
type SessionRevoked struct {
	SessionID string    `json:"session_id"`
	UserID    string    `json:"user_id"`
	Reason    string    `json:"reason"`
	RevokedAt time.Time `json:"revoked_at"`
}

// SessionReuseDetected is the data of authledger.session.reuse_detected.v1:
// a rotated refresh token presented again (the session is revoked with it).
type SessionReuseDetected struct {
	SessionID  string    `json:"session_id"`
	Generation int       `json:"generation"`
	DetectedAt time.Time `json:"detected_at"`
}

// TaskCreated is the data of authledger.task.created.v1.
type TaskCreated struct {
	TaskID      string    `json:"task_id"`
	OwnerID     string    `json:"owner_id"`
	MaxAttempts int       `json:"max_attempts"`
	CreatedAt   time.Time `json:"created_at"`
}

// TaskCompleted is the data of authledger.task.completed.v1: the outcome,
// never the OCR text.
type TaskCompleted struct {
	TaskID       string    `json:"task_id"`
	OwnerID      string    `json:"owner_id"`
	ProcessingMS int64     `json:"processing_ms"`
	CompletedAt  time.Time `json:"completed_at"`
}

// TaskFailed is the data of authledger.task.failed.v1. Final is true when
// no retry is left. The error text stays inside (it may quote the file).
type TaskFailed struct {
	TaskID       string    `json:"task_id"`
	OwnerID      string    `json:"owner_id"`
	Attempt      int       `json:"attempt"`
	Final        bool      `json:"final"`
	ProcessingMS int64     `json:"processing_ms"`
	FailedAt     time.Time `json:"failed_at"`
}

// TaskTransition is the data of authledger.task.retried.v1 (queued
// again), authledger.task.cancelled.v1 and authledger.task.expired.v1:
// which task, whose, and when.
type TaskTransition struct {
	TaskID  string    `json:"task_id"`
	OwnerID string    `json:"owner_id"`
	At      time.Time `json:"at"`
}

// TaskDeleted is the data of authledger.task.deleted.v1; by_admin is true
// when an administrator deleted another user's task.
type TaskDeleted struct {
	TaskID    string    `json:"task_id"`
	OwnerID   string    `json:"owner_id"`
	ByAdmin   bool      `json:"by_admin"`
	DeletedAt time.Time `json:"deleted_at"`
}

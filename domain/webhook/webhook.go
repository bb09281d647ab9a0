// Package webhook is the webhook endpoint aggregate: an https address an
// administrator registers to receive some public event types
// (publicevents), signed with a secret shown once (Standard Webhooks),
// which can be disabled (by an administrator, or by the deliverer after
// persistent failure, with the reason), enabled again, given a new secret
// version (rotated) and deleted. One
// stream per endpoint ("webhook-<id>").
//
// No secret is in any event: the secret is derived from the master key,
// the endpoint id and SecretVersion (notify/webhook), so the log records
// only which version is current.
//
// The package is pure: time, the known public types and the rule for
// plain-http hosts come in as arguments.
package webhook

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
)

// StreamPrefix starts every endpoint's stream name.
const StreamPrefix = "webhook-"

// StreamName is the endpoint's stream.
func StreamName(id uuid.UUID) string { return StreamPrefix + id.String() }

// Limits of a registration.
const (
	MaxURLLength   = 2048
	MaxEventTypes  = 64
	MaxReasonBytes = 500
	// MaxDescriptionLength bounds a description, in code points.
	MaxDescriptionLength = 200
)

// ErrNotFound: no such endpoint (or a deleted one).
var ErrNotFound = errors.New("webhook: not found")

// Event names: data in the log, never renamed.
const (
	EventRegistered = "webhook.registered.v1"
	EventDisabled   = "webhook.disabled.v1"
	EventEnabled    = "webhook.enabled.v1"
	EventDeleted    = "webhook.deleted.v1"
	// EventSecretRotated: a new secret version signs from then on.
	EventSecretRotated = "webhook.secret_rotated.v1"
)

// Registered starts an endpoint's stream. EventTypes are public type
// names (authledger.user.registered.v1), sorted. SecretVersion names the
// derived secret in force (1 at registration).
type Registered struct {
	WebhookID     uuid.UUID `json:"webhook_id"`
	URL           string    `json:"url"`
	EventTypes    []string  `json:"event_types"`
	Description   string    `json:"description"`
	SecretVersion int       `json:"secret_version"`
	RegisteredBy  uuid.UUID `json:"registered_by"`
	RegisteredAt  time.Time `json:"registered_at"`
}

// Disabled stops deliveries to the endpoint. Automatic is true when the
// deliverer disabled it after persistent failure; Reason says why.
type Disabled struct {
	WebhookID  uuid.UUID `json:"webhook_id"`
	Reason     string    `json:"reason"`
	Automatic  bool      `json:"automatic"`
	DisabledAt time.Time `json:"disabled_at"`
}

// Enabled resumes deliveries of the events recorded from then on.
type Enabled struct {
	WebhookID uuid.UUID `json:"webhook_id"`
	EnabledAt time.Time `json:"enabled_at"`
}

// Deleted ends the endpoint for good.
type Deleted struct {
	WebhookID uuid.UUID `json:"webhook_id"`
	DeletedAt time.Time `json:"deleted_at"`
}

// SecretRotated makes SecretVersion the endpoint's secret; the previous
// version still signs too (a second signature) until PreviousValidUntil,
// so that the receiver can switch without losing a delivery.
type SecretRotated struct {
	WebhookID          uuid.UUID `json:"webhook_id"`
	SecretVersion      int       `json:"secret_version"`
	PreviousValidUntil time.Time `json:"previous_valid_until"`
	RotatedAt          time.Time `json:"rotated_at"`
}

// RotationOverlap is how long the previous secret keeps signing after a
// rotation.
const RotationOverlap = 24 * time.Hour

func (Registered) EventName() string    { return EventRegistered }
func (Disabled) EventName() string      { return EventDisabled }
func (Enabled) EventName() string       { return EventEnabled }
func (Deleted) EventName() string       { return EventDeleted }
func (SecretRotated) EventName() string { return EventSecretRotated }

// AllEvents lists one zero value of every event type of this package.
func AllEvents() []events.Event {
	return []events.Event{Registered{}, Disabled{}, Enabled{}, Deleted{}, SecretRotated{}}
}

// RegisterEvents adds the webhook events to r.
func RegisterEvents(r *events.Registry) error { return r.Register(AllEvents()...) }

// View is an endpoint as listed (never its secret).
type View struct {
	ID            uuid.UUID `json:"id"`
	URL           string    `json:"url"`
	EventTypes    []string  `json:"event_types"`
	Description   string    `json:"description"`
	SecretVersion int       `json:"secret_version"`
	// PreviousSecretValidUntil: after a rotation, the previous secret
	// signs too until then.
	PreviousSecretValidUntil *time.Time `json:"previous_secret_valid_until,omitempty"`
	RegisteredBy             uuid.UUID  `json:"registered_by"`
	CreatedAt                time.Time  `json:"created_at"`
	Enabled                  bool       `json:"enabled"`
	DisabledReason           string     `json:"disabled_reason,omitempty"`
	DisabledAt               *time.Time `json:"disabled_at,omitempty"`
	Deleted                  bool       `json:"-"`
}

// Spec is what an endpoint is registered with.
type Spec struct {
	ID          uuid.UUID
	URL         string
	EventTypes  []string
	Description string
	By          uuid.UUID
}

// Rules are the deployment's checks of a registration: Known reports a
// published public type; PlainHTTP reports a host that may be reached
// over http (an allowlisted test receiver; nil: none).
type Rules struct {
	Known     func(publicType string) bool
	PlainHTTP func(host string) bool
}

// Endpoint is the aggregate; build one with FromHistory.
type Endpoint struct {
	view    View
	version int
	changes []events.Event
}

// FromHistory folds an endpoint's stream, oldest first.
func FromHistory(history []events.Event) (*Endpoint, error) {
	e := &Endpoint{}
	for _, ev := range history {
		if err := Apply(&e.view, ev); err != nil {
			return nil, err
		}
		e.version++
	}
	return e, nil
}

// Version is the number of events folded (see commands.Aggregate).
func (e *Endpoint) Version() int { return e.version }

// Changes are the events recorded since loading.
func (e *Endpoint) Changes() []events.Event { return slices.Clone(e.changes) }

// Exists reports whether the endpoint is registered and not deleted.
func (e *Endpoint) Exists() bool { return e.view.ID != uuid.Nil && !e.view.Deleted }

// View is the endpoint as listed.
func (e *Endpoint) View() View { return e.view }

// Register records a new endpoint after checking s against rules.
func (e *Endpoint) Register(s Spec, rules Rules, now time.Time) error {
	if e.view.ID != uuid.Nil {
		return fmt.Errorf("webhook: endpoint %s exists", s.ID)
	}
	if s.ID == uuid.Nil || rules.Known == nil {
		return errors.New("webhook: Register needs an id and the known types")
	}
	u, urlErr := NormalizeURL(s.URL, rules.PlainHTTP)
	types, typesErr := normalizeTypes(s.EventTypes, rules.Known)
	desc := strings.TrimSpace(s.Description)
	var descErr error
	if !utf8.ValidString(desc) || utf8.RuneCountInString(desc) > MaxDescriptionLength {
		descErr = invalid("description", fmt.Sprintf("must be valid UTF-8 and at most %d characters long", MaxDescriptionLength))
	}
	if err := errors.Join(urlErr, typesErr, descErr); err != nil {
		return err
	}
	e.record(Registered{WebhookID: s.ID, URL: u, EventTypes: types, Description: desc, SecretVersion: 1, RegisteredBy: s.By, RegisteredAt: now.UTC()})
	return nil
}

// Disable stops deliveries, with reason (cut to MaxReasonBytes). A
// disabled endpoint records nothing: the first reason stands.
func (e *Endpoint) Disable(reason string, automatic bool, now time.Time) error {
	if !e.Exists() {
		return ErrNotFound
	}
	if !e.view.Enabled {
		return nil
	}
	reason = strings.ToValidUTF8(strings.TrimSpace(reason), "")
	for len(reason) > MaxReasonBytes {
		_, size := utf8.DecodeLastRuneInString(reason)
		reason = reason[:len(reason)-size]
	}
	if reason == "" {
		reason = "disabled by an administrator"
	}
	e.record(Disabled{WebhookID: e.view.ID, Reason: reason, Automatic: automatic, DisabledAt: now.UTC()})
	return nil
}

// Enable resumes deliveries; an enabled endpoint records nothing.
func (e *Endpoint) Enable(now time.Time) error {
	if !e.Exists() {
		return ErrNotFound
	}
	if e.view.Enabled {
		return nil
	}
	e.record(Enabled{WebhookID: e.view.ID, EnabledAt: now.UTC()})
	return nil
}

// Delete ends the endpoint; a deleted one is ErrNotFound.
func (e *Endpoint) Delete(now time.Time) error {
	if !e.Exists() {
		return ErrNotFound
	}
	e.record(Deleted{WebhookID: e.view.ID, DeletedAt: now.UTC()})
	return nil
}

// RotateSecret makes the next secret version current; the current one
// keeps signing beside it for RotationOverlap.
func (e *Endpoint) RotateSecret(now time.Time) error {
	if !e.Exists() {
		return ErrNotFound
	}
	now = now.UTC()
	e.record(SecretRotated{WebhookID: e.view.ID, SecretVersion: e.view.SecretVersion + 1, PreviousValidUntil: now.Add(RotationOverlap), RotatedAt: now})
	return nil
}

// Apply folds one event into v (the reactor keeps rows, not aggregates).
func Apply(v *View, ev events.Event) error {
	switch ev := ev.(type) {
	case Registered:
		*v = View{ID: ev.WebhookID, URL: ev.URL, EventTypes: slices.Clone(ev.EventTypes), Description: ev.Description,
			SecretVersion: ev.SecretVersion, RegisteredBy: ev.RegisteredBy, CreatedAt: ev.RegisteredAt, Enabled: true}
	case Disabled:
		at := ev.DisabledAt
		v.Enabled, v.DisabledReason, v.DisabledAt = false, ev.Reason, &at
	case Enabled:
		v.Enabled, v.DisabledReason, v.DisabledAt = true, "", nil
	case Deleted:
		v.Enabled, v.Deleted = false, true
	case SecretRotated:
		until := ev.PreviousValidUntil
		v.SecretVersion, v.PreviousSecretValidUntil = ev.SecretVersion, &until
	default:
		return fmt.Errorf("webhook: unexpected event %T on an endpoint stream", ev)
	}
	return nil
}

// NormalizeURL checks an endpoint address: absolute https (http only for
// a host plainHTTP allows), a host, no user name or password (they would
// be in the log), no fragment, at most MaxURLLength bytes. Addresses are
// checked again when delivering (the host's addresses after DNS
// resolution, notify/webhook): a name is not refused here for what it
// resolves to now.
func NormalizeURL(raw string, plainHTTP func(host string) bool) (string, error) {
	raw = strings.TrimSpace(raw)
	const field = "url"
	if raw == "" || len(raw) > MaxURLLength {
		return "", invalid(field, fmt.Sprintf("is required and at most %d bytes long", MaxURLLength))
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Hostname() == "" || u.Opaque != "" {
		return "", invalid(field, "must be an absolute https URL")
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && plainHTTP != nil && plainHTTP(u.Hostname()):
	default:
		return "", invalid(field, "must be an https URL")
	}
	if u.User != nil {
		return "", invalid(field, "must not hold a user name or password (the signature authenticates the sender)")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return "", invalid(field, "must not have a fragment")
	}
	u.Host = strings.ToLower(u.Host)
	return u.String(), nil
}

func normalizeTypes(ts []string, known func(string) bool) ([]string, error) {
	const field = "event_types"
	if len(ts) == 0 || len(ts) > MaxEventTypes {
		return nil, invalid(field, fmt.Sprintf("from 1 to %d public event types are required", MaxEventTypes))
	}
	var errs []error
	for _, t := range ts {
		if !known(t) {
			errs = append(errs, invalid(field, fmt.Sprintf("%q is not a published event type (docs/events/README.md)", t)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return slices.Compact(slices.Sorted(slices.Values(ts))), nil
}

func (e *Endpoint) record(ev events.Event) {
	if err := Apply(&e.view, ev); err != nil {
		panic(err)
	}
	e.changes = append(e.changes, ev)
}

// invalid is the user package's field error, so that one 400
// invalid-input answer lists every broken field.
func invalid(field, msg string) error { return &user.InvalidInputError{Field: field, Message: msg} }

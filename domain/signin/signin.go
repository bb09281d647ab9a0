// Package signin holds the two short-lived aggregates of a sign-in with an
// upstream provider (issue 19): the authorization flow, started when the
// browser is sent to the provider and completed once at the callback, and
// the one-time code the callback hands the SPA, redeemed once for the
// session's tokens. Each is a stream of its own, named by the SHA-256 of
// its high-entropy secret (the state, the code), so the stream's expected
// revision makes each single use on every instance and with either store,
// and the log holds neither secret.
package signin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/events"
)

// Event names: data in the log, never renamed.
const (
	EventFlowStarted   = "signin.flow_started.v1"
	EventFlowCompleted = "signin.flow_completed.v1"
	EventCodeIssued    = "signin.code_issued.v1"
	EventCodeRedeemed  = "signin.code_redeemed.v1"
)

var (
	// ErrUsed: the flow was completed, or the code redeemed, already.
	ErrUsed = errors.New("signin: already used")
	// ErrExpired: past its expiry, or never started.
	ErrExpired = errors.New("signin: expired or unknown")
)

// FlowStream is the stream of the flow whose state is state.
func FlowStream(state string) string { return "signin_flow-" + digest(state) }

// CodeStream is the stream of the one-time code code.
func CodeStream(code string) string { return "signin_code-" + digest(code) }

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// FlowStarted records a browser sent to Provider. LinkUserID is set when
// an authenticated user asked to link the provider to their account.
type FlowStarted struct {
	Provider    string     `json:"provider"`
	RedirectURI string     `json:"redirect_uri"`
	LinkUserID  *uuid.UUID `json:"link_user_id,omitempty"`
	StartedAt   time.Time  `json:"started_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
}

// FlowCompleted records the callback that used the flow, with its outcome.
type FlowCompleted struct {
	Outcome     string    `json:"outcome"`
	CompletedAt time.Time `json:"completed_at"`
}

// Code kinds.
const (
	// KindSignIn: the code is exchanged for a session of UserID.
	KindSignIn = "sign_in"
	// KindLink: the identity is linked to UserID, whose local password
	// the exchange must present first (anti-takeover), then the session
	// starts.
	KindLink = "link"
)

// CodeIssued records a one-time code for a sign-in resolved at the
// callback.
type CodeIssued struct {
	Kind           string    `json:"kind"`
	UserID         uuid.UUID `json:"user_id"`
	Provider       string    `json:"provider"`
	ExternalUserID string    `json:"external_user_id"`
	ProviderEmail  string    `json:"provider_email,omitempty"`
	DisplayName    string    `json:"display_name,omitempty"`
	IssuedAt       time.Time `json:"issued_at"`
	ExpiresAt      time.Time `json:"expires_at"`
}

// CodeRedeemed records the exchange of the code.
type CodeRedeemed struct {
	RedeemedAt time.Time `json:"redeemed_at"`
}

func (FlowStarted) EventName() string   { return EventFlowStarted }
func (FlowCompleted) EventName() string { return EventFlowCompleted }
func (CodeIssued) EventName() string    { return EventCodeIssued }
func (CodeRedeemed) EventName() string  { return EventCodeRedeemed }

// RegisterEvents adds the package's events to r.
func RegisterEvents(r *events.Registry) error {
	return r.Register(FlowStarted{}, FlowCompleted{}, CodeIssued{}, CodeRedeemed{})
}

// Flow is one authorization flow.
type Flow struct {
	started   *FlowStarted
	completed bool
	version   int
	changes   []events.Event
}

// FlowFromHistory folds a flow stream.
func FlowFromHistory(history []events.Event) (*Flow, error) {
	f := &Flow{}
	for _, e := range history {
		switch e := e.(type) {
		case FlowStarted:
			f.started = &e
		case FlowCompleted:
			f.completed = true
		default:
			return nil, fmt.Errorf("signin: unexpected event %T on a flow stream", e)
		}
		f.version++
	}
	return f, nil
}

// StartFlow records a new flow, valid for ttl.
func StartFlow(provider, redirectURI string, linkUser *uuid.UUID, now time.Time, ttl time.Duration) *Flow {
	f := &Flow{}
	e := FlowStarted{Provider: provider, RedirectURI: redirectURI, LinkUserID: linkUser, StartedAt: now.UTC(), ExpiresAt: now.Add(ttl).UTC()}
	f.started = &e
	f.changes = append(f.changes, e)
	return f
}

// Complete uses the flow: it must have been started for provider, not be
// used, nor expired. It returns the start.
func (f *Flow) Complete(provider, outcome string, now time.Time) (FlowStarted, error) {
	switch {
	case f.started == nil || f.started.Provider != provider || !now.Before(f.started.ExpiresAt):
		return FlowStarted{}, ErrExpired
	case f.completed:
		return FlowStarted{}, ErrUsed
	}
	f.completed = true
	f.changes = append(f.changes, FlowCompleted{Outcome: outcome, CompletedAt: now.UTC()})
	return *f.started, nil
}

// Version is the number of events folded.
func (f *Flow) Version() int { return f.version }

// Changes are the events to append.
func (f *Flow) Changes() []events.Event { return slices.Clone(f.changes) }

// Code is one one-time code.
type Code struct {
	issued   *CodeIssued
	redeemed bool
	version  int
	changes  []events.Event
}

// CodeFromHistory folds a code stream.
func CodeFromHistory(history []events.Event) (*Code, error) {
	c := &Code{}
	for _, e := range history {
		switch e := e.(type) {
		case CodeIssued:
			c.issued = &e
		case CodeRedeemed:
			c.redeemed = true
		default:
			return nil, fmt.Errorf("signin: unexpected event %T on a code stream", e)
		}
		c.version++
	}
	return c, nil
}

// IssueCode records a code valid for ttl.
func IssueCode(e CodeIssued, now time.Time, ttl time.Duration) *Code {
	e.IssuedAt, e.ExpiresAt = now.UTC(), now.Add(ttl).UTC()
	return &Code{issued: &e, changes: []events.Event{e}}
}

// Issued is the code's issue, if any.
func (c *Code) Issued() (CodeIssued, bool) {
	if c.issued == nil {
		return CodeIssued{}, false
	}
	return *c.issued, true
}

// Redeem uses the code once, before it expires.
func (c *Code) Redeem(now time.Time) (CodeIssued, error) {
	switch {
	case c.issued == nil || !now.Before(c.issued.ExpiresAt):
		return CodeIssued{}, ErrExpired
	case c.redeemed:
		return CodeIssued{}, ErrUsed
	}
	c.redeemed = true
	c.changes = append(c.changes, CodeRedeemed{RedeemedAt: now.UTC()})
	return *c.issued, nil
}

// Version is the number of events folded.
func (c *Code) Version() int { return c.version }

// Changes are the events to append.
func (c *Code) Changes() []events.Event { return slices.Clone(c.changes) }

package session

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
)

// CutoffStream is the one stream of bulk revocations (Cutoffs).
const CutoffStream = "session-cutoffs"

// EventRevokedBefore is the name of RevokedBefore.
const EventRevokedBefore = "sessions.revoked_before.v1"

// RevokedBefore ends, at once, every session that started before Before:
// everyone's, or only UserID's, or only those of the users holding Role
// when a token is checked. No session stream is written: the token check
// refuses an access token whose session (auth_time) started before the
// cutoff, and a refresh of such a session is refused and revokes it. It
// is the security-incident button, and a force logout (UserID, Before
// the moment of the request).
type RevokedBefore struct {
	Before time.Time `json:"before"`
	// UserID and Role narrow it; neither set: every session.
	UserID    uuid.UUID `json:"user_id,omitzero"`
	Role      string    `json:"role,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	RevokedAt time.Time `json:"revoked_at"`
}

// EventName implements events.Event.
func (RevokedBefore) EventName() string { return EventRevokedBefore }

// Applies reports whether c ends a session of userID that started at
// started, for a user holding roles now.
func (c RevokedBefore) Applies(userID uuid.UUID, roles []string, started time.Time) bool {
	if !started.Before(c.Before) {
		return false
	}
	switch {
	case c.UserID != uuid.Nil:
		return c.UserID == userID
	case c.Role != "":
		return slices.Contains(roles, c.Role)
	}
	return true
}

// Cutoffs is the aggregate of CutoffStream: it only validates (the
// stream has no rule across its events) and records.
type Cutoffs struct {
	version int
	changes []events.Event
}

// CutoffsFromHistory folds the cutoff stream.
func CutoffsFromHistory(history []events.Event) (*Cutoffs, error) {
	for _, e := range history {
		if _, ok := e.(RevokedBefore); !ok {
			return nil, fmt.Errorf("session: unexpected event %T on %s", e, CutoffStream)
		}
	}
	return &Cutoffs{version: len(history)}, nil
}

// Version is the number of events folded.
func (c *Cutoffs) Version() int { return c.version }

// Changes are the events recorded since loading.
func (c *Cutoffs) Changes() []events.Event { return slices.Clone(c.changes) }

// MaxCutoffReason bounds a cutoff's reason, in code points.
const MaxCutoffReason = 500

// RevokeBefore records a cutoff. before may not be after now (a cutoff in
// the future would end sessions not yet started); at most one of userID
// and role narrows it.
func (c *Cutoffs) RevokeBefore(before time.Time, userID uuid.UUID, role, reason string, now time.Time) error {
	if before.IsZero() || before.After(now) {
		return &user.InvalidInputError{Field: "before", Message: "must be a time not after now"}
	}
	if userID != uuid.Nil && role != "" {
		return &user.InvalidInputError{Field: "role", Message: "name a user or a role, not both"}
	}
	reason = strings.TrimSpace(reason)
	if !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > MaxCutoffReason {
		return &user.InvalidInputError{Field: "reason", Message: "must be valid UTF-8 and at most 500 characters long"}
	}
	// Access tokens carry auth_time in whole seconds: the cutoff is
	// rounded up to one, so that a session started in the same second
	// before it is ended too (and one started in the rest of that second,
	// just after it, with it).
	if t := before.Truncate(time.Second); t.Before(before) {
		before = t.Add(time.Second)
	}
	e := RevokedBefore{Before: before.UTC(), UserID: userID, Role: role, Reason: reason, RevokedAt: now.UTC()}
	c.changes = append(c.changes, e)
	return nil
}

// Package rollout is the staged rollout of external login (issue 18 item
// 3): which logins go to the external auth API. One stream, "rollout",
// holds every change (who made it is in the metadata, when in the event),
// so one command appends to one stream and every instance folds the same
// state from it.
//
// The mode is off (every login local), on (every login external) or
// staged: external for an allowlisted address or one whose bucket is
// below the percentage. The bucket is computed from the address alone
// (Bucket), before anything tells whether an account has it, so that an
// unknown address takes the external path exactly as often as a known
// one and the path's latency tells nothing.
package rollout

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/authledger/authledger/events"
)

// StreamName is the one rollout stream.
const StreamName = "rollout"

// EventConfigured is the name of Configured: data in the log, never
// renamed.
const EventConfigured = "rollout.configured.v1"

// The modes.
const (
	ModeOff    = "off"
	ModeOn     = "on"
	ModeStaged = "staged"
)

// MaxAllowlist bounds the allowlist (it is held in memory by every
// instance and folded at each change).
const MaxAllowlist = 10_000

// ErrInvalidInput: a mode, percentage or address the rollout refuses.
var ErrInvalidInput = errors.New("rollout: invalid input")

// Configured changes the rollout: the mode and percentage as they are
// after the change, and the addresses (normalised, user.NormalizeEmail)
// added to and removed from the allowlist by it.
type Configured struct {
	Mode             string    `json:"mode"`
	Percentage       int       `json:"percentage"`
	AllowlistAdded   []string  `json:"allowlist_added,omitempty"`
	AllowlistRemoved []string  `json:"allowlist_removed,omitempty"`
	ConfiguredAt     time.Time `json:"configured_at"`
}

// EventName implements events.Event.
func (Configured) EventName() string { return EventConfigured }

// AllEvents lists one zero value of every event type of this package.
func AllEvents() []events.Event { return []events.Event{Configured{}} }

// RegisterEvents adds the rollout events to r as value types.
func RegisterEvents(r *events.Registry) error { return r.Register(AllEvents()...) }

// Settings are the rollout's current state.
type Settings struct {
	Mode       string
	Percentage int
	// Allowlist holds normalised addresses.
	Allowlist map[string]bool
	// Configured is false until the stream has an event: the deployment's
	// AUTHLEDGER_USE_EXTERNAL_AUTH applies until then.
	Configured bool
	// At is when the last change was made.
	At time.Time
}

// External reports whether a login for the normalised address email,
// whose bucket is bucket (Bucket), goes to the external API.
func (s Settings) External(email string, bucket int) bool {
	switch s.Mode {
	case ModeOn:
		return true
	case ModeStaged:
		return s.Allowlist[email] || bucket < s.Percentage
	}
	return false
}

// AllowlistSorted is the allowlist in order.
func (s Settings) AllowlistSorted() []string { return slices.Sorted(maps.Keys(s.Allowlist)) }

// Bucket is the address's stable bucket, 0 to 99: an HMAC of the
// normalised address under key (never stored), so it is the same on
// every instance and for every login of the address, whether an account
// has it or not, and nobody without the key can choose an address for a
// bucket.
func Bucket(key []byte, email string) int {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("rollout bucket v1\x00" + email))
	return int(binary.BigEndian.Uint64(m.Sum(nil)[:8]) % 100)
}

// Rollout is the aggregate of the rollout stream.
type Rollout struct {
	s       Settings
	version int
	changes []events.Event
}

// FromHistory folds the rollout stream.
func FromHistory(history []events.Event) (*Rollout, error) {
	r := &Rollout{s: Settings{Mode: ModeOff, Allowlist: map[string]bool{}}}
	for _, e := range history {
		if err := r.apply(e); err != nil {
			return nil, err
		}
		r.version++
	}
	return r, nil
}

// Settings returns a copy of the current state.
func (r *Rollout) Settings() Settings {
	s := r.s
	s.Allowlist = maps.Clone(r.s.Allowlist)
	return s
}

// Version is the number of events folded.
func (r *Rollout) Version() int { return r.version }

// Changes are the events to append.
func (r *Rollout) Changes() []events.Event { return slices.Clone(r.changes) }

// Change is one configuration request. Mode "" keeps the mode, Percentage
// nil keeps the percentage. Addresses must be normalised by the caller.
type Change struct {
	Mode       string
	Percentage *int
	Allow      []string
	Disallow   []string
	// Unconfigured is the mode a change without Mode keeps on a stream
	// with no event yet: the deployment's AUTHLEDGER_USE_EXTERNAL_AUTH,
	// which applied until then.
	Unconfigured string
}

// Configure applies c. A change that changes nothing records nothing (on
// a stream that has no event yet it records the settings, so that the
// stream, not the environment, decides from then on).
func (r *Rollout) Configure(c Change, now time.Time) error {
	mode, pct := r.s.Mode, r.s.Percentage
	if !r.s.Configured && c.Unconfigured != "" {
		mode = c.Unconfigured
	}
	if c.Mode != "" {
		mode = c.Mode
	}
	if c.Percentage != nil {
		pct = *c.Percentage
	}
	var errs []error
	if mode != ModeOff && mode != ModeOn && mode != ModeStaged {
		errs = append(errs, fmt.Errorf("%w: mode %q is not off, on or staged", ErrInvalidInput, mode))
	}
	if pct < 0 || pct > 100 {
		errs = append(errs, fmt.Errorf("%w: percentage %d is not within 0 to 100", ErrInvalidInput, pct))
	}
	for _, e := range append(slices.Clone(c.Allow), c.Disallow...) {
		if e == "" || len(e) > 254 {
			errs = append(errs, fmt.Errorf("%w: an allowlist address is empty or too long", ErrInvalidInput))
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var added, removed []string
	for _, e := range slices.Compact(slices.Sorted(slices.Values(c.Allow))) {
		if !r.s.Allowlist[e] && !slices.Contains(c.Disallow, e) {
			added = append(added, e)
		}
	}
	for _, e := range slices.Compact(slices.Sorted(slices.Values(c.Disallow))) {
		if r.s.Allowlist[e] {
			removed = append(removed, e)
		}
	}
	if len(r.s.Allowlist)+len(added) > MaxAllowlist {
		return fmt.Errorf("%w: the allowlist would exceed %d addresses", ErrInvalidInput, MaxAllowlist)
	}
	if r.s.Configured && mode == r.s.Mode && pct == r.s.Percentage && len(added) == 0 && len(removed) == 0 {
		return nil
	}
	r.record(Configured{Mode: mode, Percentage: pct, AllowlistAdded: added, AllowlistRemoved: removed, ConfiguredAt: now.UTC()})
	return nil
}

func (r *Rollout) record(e events.Event) {
	if err := r.apply(e); err != nil {
		panic(err) // only this aggregate's own events reach here
	}
	r.changes = append(r.changes, e)
}

func (r *Rollout) apply(e events.Event) error {
	c, ok := e.(Configured)
	if !ok {
		return fmt.Errorf("rollout: unexpected event %T on the rollout stream", e)
	}
	r.s.Apply(c)
	return nil
}

// Apply folds one change into s (the live state each instance keeps).
func (s *Settings) Apply(c Configured) {
	if s.Allowlist == nil {
		s.Allowlist = map[string]bool{}
	}
	s.Mode, s.Percentage, s.Configured, s.At = c.Mode, c.Percentage, true, c.ConfiguredAt
	for _, e := range c.AllowlistAdded {
		s.Allowlist[e] = true
	}
	for _, e := range c.AllowlistRemoved {
		delete(s.Allowlist, e)
	}
}

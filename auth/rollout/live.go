// Package rollout keeps, in every instance, the live settings of the
// staged rollout of external login (domain/rollout), folded from the
// rollout stream by a local log follower, and answers which path a login
// takes. A change appended on any instance is applied on every one
// within the follower's lag (well under a second).
package rollout

import (
	"context"
	"errors"
	"fmt"
	"sync"

	domain "github.com/authledger/authledger/domain/rollout"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
)

// FollowerName is the local follower's name (readiness, status).
const FollowerName = "rollout"

// Live is the rollout as this instance knows it. Safe for concurrent use.
type Live struct {
	reg *events.Registry
	key []byte
	// fallback is the mode until the stream has an event
	// (AUTHLEDGER_USE_EXTERNAL_AUTH).
	fallback string

	mu sync.RWMutex
	s  domain.Settings
	// next is the revision of the next rollout event to apply: Start and
	// the follower may both hold one event, which is applied once.
	next uint64
}

// NewLive returns the rollout state before any event: fallback mode
// (domain.ModeOn or domain.ModeStaged; staged with no event routes
// nobody), buckets keyed by key (the reservation key; the bucket of an
// address is the same on every instance).
func NewLive(key []byte, fallback string) (*Live, error) {
	if len(key) < 32 {
		return nil, errors.New("rollout: the bucket key must be at least 32 bytes")
	}
	if fallback != domain.ModeOn && fallback != domain.ModeStaged && fallback != domain.ModeOff {
		return nil, fmt.Errorf("rollout: fallback mode %q is not off, on or staged", fallback)
	}
	reg := events.NewRegistry()
	if err := domain.RegisterEvents(reg); err != nil {
		return nil, err
	}
	return &Live{reg: reg, key: key, fallback: fallback, s: domain.Settings{Mode: fallback, Allowlist: map[string]bool{}}}, nil
}

// Filter is the follower's filter: the rollout's events.
func (l *Live) Filter() eventstore.Filter {
	return eventstore.Filter{EventTypes: []string{domain.EventConfigured}}
}

// Start is the follower's Start: it folds the rollout stream as it is
// (one indexed read, however long the log) and has the follower deliver
// what comes after the head it took first, so that no change falls
// between the two; an event both deliver is applied once.
func (l *Live) Start(ctx context.Context, store eventstore.Store) (eventstore.Position, error) {
	head, err := store.Head(ctx)
	if err != nil {
		return eventstore.Position{}, err
	}
	recs, err := store.ReadStream(ctx, domain.StreamName, eventstore.ReadStreamOptions{})
	if err != nil && !errors.Is(err, eventstore.ErrStreamNotFound) {
		return eventstore.Position{}, fmt.Errorf("rollout: read %s: %w", domain.StreamName, err)
	}
	for _, rec := range recs {
		if err := l.Apply(ctx, rec); err != nil {
			return eventstore.Position{}, err
		}
	}
	return head, nil
}

// Apply folds one event (the follower's Handle).
func (l *Live) Apply(_ context.Context, ev eventstore.RecordedEvent) error {
	if ev.Stream != domain.StreamName {
		return nil
	}
	l.mu.RLock()
	seen := ev.Revision < l.next
	l.mu.RUnlock()
	if seen {
		return nil
	}
	e, err := l.reg.Decode(ev.Type, ev.Data)
	if err != nil {
		return fmt.Errorf("rollout: decode %s@%d: %w", ev.Stream, ev.Revision, err)
	}
	c, ok := e.(domain.Configured)
	if !ok {
		return fmt.Errorf("rollout: unexpected %T on the rollout stream", e)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ev.Revision < l.next {
		return nil
	}
	l.s.Apply(c)
	l.next = ev.Revision + 1
	return nil
}

// Settings returns a copy of the current settings.
func (l *Live) Settings() domain.Settings {
	l.mu.RLock()
	defer l.mu.RUnlock()
	s := l.s
	s.Allowlist = make(map[string]bool, len(l.s.Allowlist))
	for k, v := range l.s.Allowlist {
		s.Allowlist[k] = v
	}
	return s
}

// External reports whether a login with the typed address goes to the
// external API. It reads nothing but memory and costs the same for an
// address with an account and one without.
func (l *Live) External(email string) bool {
	n, err := user.NormalizeEmail(email)
	if err != nil {
		n = email
	}
	b := domain.Bucket(l.key, n)
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.s.External(n, b)
}

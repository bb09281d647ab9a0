// Package authn is the authentication middleware: it verifies the Bearer
// access token with our key ring and rejects tokens of revoked sessions,
// fed by the event log so that a revocation on any instance bites on every
// instance within one second, and read from the session's stream while
// that feed cannot vouch for itself.
package authn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi"
)

// FeedName is the name of the revocation feed: the local log follower
// (projections/projector.Follower) that fills a Revocations set.
const FeedName = "revocations"

// DefaultFreshness is how long after its feed was last vouched for a set
// is trusted alone. With the runner's vouching every 200ms it is passed
// only when the feed is stalled or the log unreachable; the rest of the
// one-second revocation bound is the feed's own delivery.
const DefaultFreshness = 750 * time.Millisecond

// RevocationsConfig configures a Revocations set.
type RevocationsConfig struct {
	// TTL is how long an entry is kept after its revocation: the
	// access-token lifetime plus leeway (after that no token of the
	// session can still be valid). Required.
	TTL time.Duration
	// Store is read directly (the session's stream) while the feed cannot
	// vouch for the set. Required.
	Store eventstore.Store
	// Registry decodes session.revoked.v1 (session.RegisterEvents). Required.
	Registry *events.Registry
	// Freshness: DefaultFreshness when 0.
	Freshness time.Duration
}

// Revocations is the set of revoked session ids the token check consults,
// fed by the log (Apply, run as the local follower FeedName). An entry is
// kept for TTL after the revocation, so the set stays bounded.
//
// It fails closed: while its feed has not been vouched for within
// Freshness (the feed is retrying, or the log is unreachable), Check reads
// the session's stream instead of trusting the set, and an error from that
// read fails the request (503) rather than accepting a token that may have
// been revoked. See docs/adr (revocation feed fails closed).
type Revocations struct {
	cfg RevocationsConfig

	mu    sync.RWMutex
	until map[uuid.UUID]time.Time
	now   func() time.Time
	// vouchedAt reports when the feed last had every revocation committed
	// before it (the runner's VouchedAt); nil: never.
	vouchedAt func() time.Time
}

// NewRevocations returns an empty set.
func NewRevocations(cfg RevocationsConfig) (*Revocations, error) {
	var errs []error
	if cfg.TTL <= 0 {
		errs = append(errs, errors.New("authn: Revocations TTL must be positive"))
	}
	if cfg.Store == nil || cfg.Registry == nil {
		errs = append(errs, errors.New("authn: Revocations needs a Store and a Registry"))
	}
	if cfg.Freshness < 0 {
		errs = append(errs, errors.New("authn: Revocations Freshness must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Freshness == 0 {
		cfg.Freshness = DefaultFreshness
	}
	return &Revocations{cfg: cfg, until: make(map[uuid.UUID]time.Time), now: time.Now}, nil
}

// Watch tells the set how recent its feed is: vouchedAt returns the time
// before which every revocation committed had been applied (the zero time
// while none is known). Until Watch is called the set is never trusted
// alone.
func (r *Revocations) Watch(vouchedAt func() time.Time) {
	r.mu.Lock()
	r.vouchedAt = vouchedAt
	r.mu.Unlock()
}

// Filter selects the events Apply needs.
func (r *Revocations) Filter() eventstore.Filter {
	return eventstore.Filter{EventTypes: []string{session.EventRevoked}}
}

// Apply adds the session a session.revoked.v1 event revokes. Its feed
// starts at the start of the log: revocations older than TTL expire at
// once.
func (r *Revocations) Apply(_ context.Context, e eventstore.RecordedEvent) error {
	ev, err := r.cfg.Registry.Decode(e.Type, e.Data)
	if err != nil {
		return fmt.Errorf("authn: decode %s@%d: %w", e.Stream, e.Revision, err)
	}
	rv, ok := ev.(session.Revoked)
	if !ok {
		return fmt.Errorf("authn: %s@%d is a %T, not a revocation", e.Stream, e.Revision, ev)
	}
	r.Add(rv.SessionID, rv.RevokedAt)
	return nil
}

// Add marks sid revoked at revokedAt. An entry already past its TTL is
// not kept.
func (r *Revocations) Add(sid uuid.UUID, revokedAt time.Time) {
	until := revokedAt.Add(r.cfg.TTL)
	now := r.now()
	if !until.After(now) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.until[sid] = until
	// Sweep now and then so the map stays bounded without a goroutine.
	if len(r.until)%1024 == 0 {
		for id, u := range r.until {
			if !u.After(now) {
				delete(r.until, id)
			}
		}
	}
}

// Revoked reports whether sid is in the set (whatever the feed's state).
func (r *Revocations) Revoked(sid uuid.UUID) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.until[sid]
	return ok
}

// Check reports whether sid is revoked. It answers from the set while the
// feed was vouched for within Freshness; otherwise from the session's
// stream, whose read error it returns (the caller must refuse the token).
func (r *Revocations) Check(ctx context.Context, sid uuid.UUID) (bool, error) {
	if r.Revoked(sid) {
		return true, nil
	}
	r.mu.RLock()
	vouched := r.vouchedAt
	r.mu.RUnlock()
	if vouched != nil {
		if at := vouched(); !at.IsZero() && r.now().Sub(at) <= r.cfg.Freshness {
			return false, nil
		}
	}
	return r.streamRevoked(ctx, sid)
}

// streamRevoked reads the session's stream backwards until it finds the
// revocation or an event only an open session records. A revocation is
// final: after it a stream can only gain claim updates.
func (r *Revocations) streamRevoked(ctx context.Context, sid uuid.UUID) (bool, error) {
	const page = 8
	from := eventstore.End
	for {
		evs, err := r.cfg.Store.ReadStream(ctx, session.StreamName(sid), eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: from, Limit: page})
		switch {
		case errors.Is(err, eventstore.ErrStreamNotFound), errors.Is(err, eventstore.ErrStreamDeleted):
			// A token we signed for a session the log does not have:
			// refuse it.
			return true, nil
		case err != nil:
			return false, fmt.Errorf("authn: revocation feed is behind and the session cannot be read: %w", err)
		}
		for _, e := range evs {
			switch e.Type {
			case session.EventRevoked:
				// Keep it in the set too; revoked either way (the feed
				// reports an event it cannot decode).
				_ = r.Apply(ctx, e)
				return true, nil
			case session.EventStarted, session.EventRefreshed:
				return false, nil
			}
		}
		if len(evs) < page || evs[len(evs)-1].Revision == 0 {
			return false, nil
		}
		from = evs[len(evs)-1].Revision - 1
	}
}

// Middleware requires a valid Bearer access token of a session not
// revoked, and records its caller (httpapi.SetPrincipal) for the handlers
// (httpapi.Caller) and the access log. Without a token it answers 401
// unauthenticated; with an invalid, expired or revoked one, 401
// invalid-token (the error table's answer to token.ErrInvalidToken).
// WithProviderTokens also accepts the external provider's tokens, chosen
// by their iss; WithAPIKeys API keys, chosen by their al_ prefix.
func Middleware(v *token.Verifier, rev *Revocations, opts ...Option) gin.HandlerFunc {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return func(c *gin.Context) {
		raw := bearer(c)
		if raw == "" {
			c.Header("WWW-Authenticate", `Bearer`)
			httpapi.WriteError(c, httpapi.ErrUnauthenticated)
			return
		}
		if o.apiKeys != nil && strings.HasPrefix(raw, keyPrefix) {
			p, ok := o.apiKeyPrincipal(c, raw)
			if !ok {
				return
			}
			httpapi.SetPrincipal(c, p)
			c.Next()
			return
		}
		if o.provider != nil && unverifiedIssuer(raw) == o.provider.Issuer {
			p, ok := o.provider.providerPrincipal(c, raw)
			if !ok || !o.resolve(c, &p) {
				return
			}
			httpapi.SetPrincipal(c, p)
			c.Next()
			return
		}
		cl, err := v.Verify(raw, time.Now())
		if err != nil {
			c.Header("WWW-Authenticate", `Bearer error="invalid_token"`)
			httpapi.WriteError(c, err)
			return
		}
		if rev != nil {
			revoked, err := rev.Check(c.Request.Context(), cl.SessionID)
			if err != nil {
				// Fail closed: the token may belong to a session revoked
				// since the feed last vouched (503, retry).
				httpapi.WriteError(c, err)
				return
			}
			if revoked {
				c.Header("WWW-Authenticate", `Bearer error="invalid_token"`)
				httpapi.WriteError(c, fmt.Errorf("%w: its session %s is revoked", token.ErrInvalidToken, cl.SessionID))
				return
			}
		}
		if o.cutoffs != nil {
			started := cl.AuthTime
			if started.IsZero() {
				started = cl.IssuedAt
			}
			ended, err := o.cutoffs.Ended(c.Request.Context(), cl.UserID, started)
			if err != nil {
				httpapi.WriteError(c, err)
				return
			}
			if ended {
				c.Header("WWW-Authenticate", `Bearer error="invalid_token"`)
				httpapi.WriteError(c, fmt.Errorf("%w: its session %s was revoked in bulk", token.ErrInvalidToken, cl.SessionID))
				return
			}
		}
		p := httpapi.Principal{UserID: cl.UserID, SessionID: cl.SessionID, Roles: cl.Roles, AMR: cl.AMR, AuthTime: cl.AuthTime}
		if !o.resolve(c, &p) {
			return
		}
		httpapi.SetPrincipal(c, p)
		c.Next()
	}
}

// resolve fills p's permissions; an error (the log unreadable while the
// access follower is behind) answers the request (503), never a guess.
func (o *options) resolve(c *gin.Context, p *httpapi.Principal) bool {
	if o.permissions == nil {
		return true
	}
	perms, err := o.permissions.Permissions(c.Request.Context(), p.UserID)
	if err != nil {
		httpapi.WriteError(c, err)
		return false
	}
	p.Permissions = perms
	return true
}

// Package authn is the authentication middleware: it verifies the Bearer
// access token with our key ring and rejects tokens of revoked sessions,
// fed by the event log so that a revocation on any instance bites on every
// instance within one second.
package authn

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
	"github.com/authledger/authledger/readapi"
)

// Revocations is the in-memory set of revoked session ids. An entry is
// kept for TTL after the revocation (the access-token lifetime plus
// leeway): after that no token of the session can still be valid, so the
// set stays bounded.
type Revocations struct {
	mu    sync.RWMutex
	until map[uuid.UUID]time.Time
	ttl   time.Duration
	now   func() time.Time
}

// NewRevocations returns an empty set keeping entries for ttl.
func NewRevocations(ttl time.Duration) *Revocations {
	return &Revocations{until: make(map[uuid.UUID]time.Time), ttl: ttl, now: time.Now}
}

// Add marks sid revoked at revokedAt. An entry already past its TTL is
// not kept.
func (r *Revocations) Add(sid uuid.UUID, revokedAt time.Time) {
	until := revokedAt.Add(r.ttl)
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

// Revoked reports whether sid is revoked.
func (r *Revocations) Revoked(sid uuid.UUID) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.until[sid]
	return ok
}

// Run feeds the set from the log until ctx ends: every session.revoked.v1
// from the start of the log (older ones expire at once), then live ones.
// Run it in a goroutine before serving; it returns ctx.Err() or the
// subscription's error.
func (r *Revocations) Run(ctx context.Context, store eventstore.Store) error {
	return store.Subscribe(ctx, eventstore.SubscribeOptions{
		Filter: eventstore.Filter{EventTypes: []string{session.EventRevoked}},
	}, func(_ context.Context, e eventstore.RecordedEvent) error {
		var ev session.Revoked
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			return fmt.Errorf("authn: decode %s@%d: %w", e.Stream, e.Revision, err)
		}
		r.Add(ev.SessionID, ev.RevokedAt)
		return nil
	})
}

const claimsKey = "authledger.authn.claims"

// Claims returns the verified claims the middleware stored.
func Claims(c *gin.Context) (token.Claims, bool) {
	v, ok := c.Get(claimsKey)
	if !ok {
		return token.Claims{}, false
	}
	cl, ok := v.(token.Claims)
	return cl, ok
}

// Middleware requires a valid Bearer access token of a session not
// revoked; it answers 401 problem+json otherwise. It sets readapi's
// Principal and httpapi's user id.
func Middleware(v *token.Verifier, rev *Revocations) gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.GetHeader("Authorization")
		scheme, raw, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
			c.Header("WWW-Authenticate", `Bearer`)
			httpapi.WriteError(c, problem.Unauthenticated("", "A Bearer access token is required."))
			return
		}
		cl, err := v.Verify(strings.TrimSpace(raw), time.Now())
		if err != nil {
			c.Header("WWW-Authenticate", `Bearer error="invalid_token"`)
			httpapi.WriteError(c, problem.Unauthenticated("invalid-token", "The access token is invalid or expired.").WithCause(err))
			return
		}
		if rev != nil && rev.Revoked(cl.SessionID) {
			c.Header("WWW-Authenticate", `Bearer error="invalid_token"`)
			httpapi.WriteError(c, problem.Unauthenticated("invalid-token", "The access token is invalid or expired."))
			return
		}
		c.Set(claimsKey, cl)
		readapi.SetPrincipal(c, readapi.Principal{UserID: cl.UserID.String(), SessionID: cl.SessionID.String(), Roles: cl.Roles})
		httpapi.SetUserID(c, cl.UserID.String())
		c.Next()
	}
}

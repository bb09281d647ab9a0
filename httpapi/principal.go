package httpapi

import (
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/httpapi/problem"
)

// Principal is the authenticated caller of a request, as the
// authentication middleware (httpapi/authn) established it from a
// verified access token. It is the only record of the caller on a
// request: handlers read it with Caller, the access log with it.
type Principal struct {
	// UserID is the token's subject.
	UserID uuid.UUID
	// SessionID is the session the access token belongs to (the sid
	// claim): logout ends it, a session list marks it as the caller's own.
	// uuid.Nil for a token of the external provider (authn
	// WithProviderTokens), which names no session of ours: its logout
	// finds no session.
	SessionID uuid.UUID
	// Roles are the token's roles claim, as the session carried them at
	// issue: informational, never consulted to authorize (an access token
	// outlives a role change by up to its lifetime).
	Roles []string
	// Permissions are what the caller holds now, resolved per request by
	// the authentication middleware from the log-fed role and grant
	// state (auth/access.Live), not from the token: a change of role or
	// grant counts on the next request. Authorize decides with them.
	Permissions access.Set
	// APIKeyID is the API key the caller presented instead of an access
	// token (uuid.Nil for a token): UserID is then the key's owner, a
	// person or a service account, SessionID is uuid.Nil, and Permissions
	// are the owner's now intersected with the key's scopes.
	APIKeyID uuid.UUID
	// AMR and AuthTime are the access token's amr and auth_time claims:
	// how and when its session logged in, what the step-up checks read
	// (empty and zero for an API key).
	AMR      []string
	AuthTime time.Time
}

// Actor is p as the actor of the events its requests append.
func (p Principal) Actor() events.Actor {
	return events.Actor{Kind: events.ActorUser, ID: p.UserID.String()}
}

const keyPrincipal = "authledger.principal"

// SetPrincipal records the caller of the request. Only the authentication
// middleware calls it, once, after verifying the access token; p.UserID is
// never uuid.Nil.
func SetPrincipal(c *gin.Context, p Principal) { c.Set(keyPrincipal, p) }

// ErrUnauthenticated is the answer to a request without a caller: no
// Bearer token, or a route that is not behind the authentication
// middleware (a wiring mistake, refused rather than served anonymously).
var ErrUnauthenticated = problem.Unauthenticated("", "A Bearer access token is required.")

// Caller returns the authenticated caller of the request, or
// ErrUnauthenticated when it has none.
func Caller(c *gin.Context) (Principal, error) {
	p, ok := principal(c)
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	return p, nil
}

func principal(c *gin.Context) (Principal, bool) {
	v, ok := c.Get(keyPrincipal)
	if !ok {
		return Principal{}, false
	}
	p, ok := v.(Principal)
	return p, ok && p.UserID != uuid.Nil
}

// Package readapi serves queries over the read models (never the command
// side: it imports no command package). It holds the read-your-writes
// middleware (Consistency) and the audit trail endpoints (Mount).
package readapi

import "github.com/gin-gonic/gin"

// Principal is the authenticated caller, as the authentication middleware
// establishes it.
type Principal struct {
	UserID string
	// SessionID is the session the access token belongs to (the sid
	// claim), so that a session list can mark the caller's own.
	SessionID string
	Roles     []string
}

// HasRole reports whether p has one of roles.
func (p Principal) HasRole(roles ...string) bool {
	for _, have := range p.Roles {
		for _, want := range roles {
			if have == want {
				return true
			}
		}
	}
	return false
}

const principalKey = "authledger.readapi.principal"

// SetPrincipal records the authenticated caller on the request; the
// authentication middleware calls it after verifying the access token.
func SetPrincipal(c *gin.Context, p Principal) { c.Set(principalKey, p) }

// PrincipalFrom returns the caller recorded by SetPrincipal; ok is false
// for an unauthenticated request.
func PrincipalFrom(c *gin.Context) (Principal, bool) {
	v, ok := c.Get(principalKey)
	if !ok {
		return Principal{}, false
	}
	p, ok := v.(Principal)
	return p, ok && p.UserID != ""
}

package httpapi

import (
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/httpapi/problem"
)

// Authorize is the one authorization decision of the service, and the
// only place that answers 403: may p do what need names, on a resource
// of owner? owner is uuid.Nil for a resource no user owns (the audit
// trail, the user list: need alone decides); for an owned one, the
// owner needs need (or need.Any()), anyone else need.Any()
// (access.Set.Allows). The answer is nil or a 403 forbidden problem
// naming the permission (never whether the resource exists: routes that
// hide another user's resource ask Permitted and answer 404 themselves).
func Authorize(p Principal, need access.Permission, owner uuid.UUID) error {
	if p.Permissions.Allows(need, p.UserID, owner) {
		return nil
	}
	if owner != uuid.Nil && owner != p.UserID {
		need = need.Any()
	}
	return problem.Forbidden("This request needs the permission " + string(need) + ".")
}

// Permitted is Authorize as a yes or no, for a route that acts on
// another user's resource only if the caller may (a task read or delete
// with tasks:read:any or tasks:delete:any) and otherwise answers as if
// the resource were not there.
func Permitted(p Principal, need access.Permission, owner uuid.UUID) bool {
	return Authorize(p, need, owner) == nil
}

// Require is the declaration every authenticated route starts with,
// after the authentication middleware: the permission the route needs
// (for the caller's own resources; the handler asks Permitted for
// another's). It answers 401 without a caller and Authorize's 403
// without the permission, before the route waits for a read model or
// reads a body. A route without Require is either public (listed in
// cmd/authledger's route test) or a failing test.
func Require(need access.Permission) gin.HandlerFunc {
	if !access.Known(need) {
		// Constant arguments: a typo fails every test that builds the
		// engine.
		panic("httpapi: Require(" + string(need) + "): not a permission of access.Table")
	}
	return func(c *gin.Context) {
		p, err := Caller(c)
		if err != nil {
			WriteError(c, err)
			return
		}
		// The caller's own (or no owner): an owner's route needs need on
		// the caller's own things at least.
		if err := Authorize(p, need, p.UserID); err != nil {
			WriteError(c, err)
			return
		}
		c.Next()
	}
}

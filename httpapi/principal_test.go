package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
)

// A handler outside the authentication middleware has no caller: Caller
// refuses it with 401 unauthenticated rather than serving a zero one.
func TestCallerWithoutPrincipalIsUnauthenticated(t *testing.T) {
	t.Parallel()
	f := newEngine(t, nil)
	f.engine.GET("/who", func(c *gin.Context) {
		if _, err := httpapi.Caller(c); err != nil {
			httpapi.WriteError(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	})
	f.engine.GET("/nil", func(c *gin.Context) {
		httpapi.SetPrincipal(c, httpapi.Principal{Roles: []string{user.RoleAdmin}})
		if _, err := httpapi.Caller(c); err != nil {
			httpapi.WriteError(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	})
	for _, path := range []string{"/who", "/nil"} {
		rec := f.do(t, http.MethodGet, path, nil)
		if p := decodeProblem(t, rec); rec.Code != http.StatusUnauthorized || p["type"] != problem.TypeBase+"unauthenticated" {
			t.Errorf("%s: %d %v, want 401 unauthenticated", path, rec.Code, p)
		}
	}
}

func TestPrincipalRoles(t *testing.T) {
	t.Parallel()
	p := httpapi.Principal{UserID: uuid.New(), Roles: []string{user.DefaultRole, user.RoleAuditor}}
	if !p.HasRole(user.RoleAdmin, user.RoleAuditor) || p.HasRole(user.RoleAdmin) || p.Admin() {
		t.Errorf("auditor %+v: HasRole/Admin wrong", p)
	}
	if a := p.Actor(); a.ID != p.UserID.String() || a.Kind != "user" {
		t.Errorf("actor %+v", a)
	}
	p.Roles = append(p.Roles, user.RoleAdmin)
	if !p.Admin() {
		t.Errorf("admin %+v is not Admin", p)
	}
}

package httpapi_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/access"
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
		httpapi.SetPrincipal(c, httpapi.Principal{Roles: []string{"admin"}})
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

func TestPrincipalActor(t *testing.T) {
	t.Parallel()
	p := httpapi.Principal{UserID: uuid.New()}
	if a := p.Actor(); a.ID != p.UserID.String() || a.Kind != "user" {
		t.Errorf("actor %+v", a)
	}
}

// Authorize decides on the caller's permissions alone: need for a
// resource without owner, need or need:any for the caller's own, only
// need:any for another's; its refusal is the 403 forbidden naming the
// permission.
func TestAuthorize(t *testing.T) {
	t.Parallel()
	me, other := uuid.New(), uuid.New()
	cases := []struct {
		name  string
		perms []access.Permission
		need  access.Permission
		owner uuid.UUID
		ok    bool
	}{
		{"no owner, held", []access.Permission{access.AuditRead}, access.AuditRead, uuid.Nil, true},
		{"no owner, not held", []access.Permission{access.TasksRead}, access.AuditRead, uuid.Nil, false},
		{"own, held", []access.Permission{access.TasksRead}, access.TasksRead, me, true},
		{"own, any held", []access.Permission{access.TasksReadAny}, access.TasksRead, me, true},
		{"another's, own only", []access.Permission{access.TasksRead}, access.TasksRead, other, false},
		{"another's, any held", []access.Permission{access.TasksReadAny}, access.TasksRead, other, true},
		{"nothing held", nil, access.AccountRead, me, false},
	}
	for _, tc := range cases {
		p := httpapi.Principal{UserID: me, Permissions: access.NewSet(tc.perms...)}
		err := httpapi.Authorize(p, tc.need, tc.owner)
		if (err == nil) != tc.ok {
			t.Errorf("%s: Authorize = %v, want allowed %v", tc.name, err, tc.ok)
		}
		var pe *problem.Error
		if err != nil && (!errors.As(err, &pe) || pe.Kind != problem.KindForbidden) {
			t.Errorf("%s: refusal %v is not a forbidden problem", tc.name, err)
		}
		if httpapi.Permitted(p, tc.need, tc.owner) != tc.ok {
			t.Errorf("%s: Permitted disagrees with Authorize", tc.name)
		}
	}
}

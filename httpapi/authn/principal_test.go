package authn_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	authaccess "github.com/authledger/authledger/auth/access"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/authn"
	"github.com/authledger/authledger/httpapi/errtable"
	"github.com/authledger/authledger/test/identitytest"
	"github.com/authledger/authledger/test/pgtest"
)

// The middleware records the caller once, as the token names it: user and
// session ids as UUIDs, the roles claim, and the permissions the log
// gives the user now.
func TestMiddlewareRecordsTheCaller(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pgtest.NewDatabase(t))
	engine, err := httpapi.New(httpapi.Config{Logger: slog.New(slog.DiscardHandler), OpenAPI: []byte("openapi: 3.1.0"), Errors: errtable.Table()})
	if err != nil {
		t.Fatal(err)
	}
	// Permissions come from the log: the user is an admin there (the
	// token's roles claim is not consulted).
	uid, sid := uuid.New(), uuid.New()
	identitytest.RegisterInLog(t, e.store, uid, user.RoleAdmin)
	perms, err := authaccess.New(authaccess.Config{Store: e.store})
	if err != nil {
		t.Fatal(err)
	}
	engine.GET("/caller", authn.Middleware(e.st.Verifier, nil, authn.WithPermissions(perms)), func(c *gin.Context) {
		p, err := httpapi.Caller(c)
		if err != nil {
			httpapi.WriteError(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"user": p.UserID, "session": p.SessionID, "roles": p.Roles, "admin": p.Permissions.Has(access.UsersWrite)})
	})
	access, _, err := e.st.TokenIssuer.Issue(token.Subject{UserID: uid, SessionID: sid, AMR: []string{"pwd"}, Roles: []string{user.DefaultRole}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/caller", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	rec := httptest.NewRecorder()
	engine.ServeHTTP(rec, req)
	var got struct {
		User, Session uuid.UUID
		Roles         []string
		Admin         bool
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if got.User != uid || got.Session != sid || len(got.Roles) != 1 || !got.Admin {
		t.Errorf("caller = %+v, want user %s session %s, roles user and admin", got, uid, sid)
	}
}

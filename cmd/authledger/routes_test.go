package main

import (
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/test/pgtest"
)

// publicRoutes are the routes that answer without a caller, listed here
// on purpose: every other route must declare the permission it needs
// (httpapi.Require), which TestEveryRouteDeclaresItsPermission checks
// by calling it.
var publicRoutes = []string{
	"GET /healthz",
	"GET /readyz",
	"GET /metrics",
	"GET /openapi.yaml",
	"GET /.well-known/jwks.json",
	"GET /.well-known/openid-configuration",
	"POST /v1/auth/register",
	"POST /v1/auth/login",
	"POST /v1/auth/refresh",
	"POST /v1/auth/verify-email",
	"POST /v1/auth/mfa/verify",
	"POST /v1/auth/mfa/totp",
	"POST /v1/auth/mfa/send",
	"POST /v1/auth/mfa/webauthn/begin",
	"POST /v1/auth/passkey/begin",
	"POST /v1/auth/passkey/finish",
	"POST /v1/auth/verify-email/resend",
	"POST /v1/auth/password-reset",
	"POST /v1/auth/password-reset/confirm",
	"GET /v1/auth/oidc/:provider/start",
	"GET /v1/auth/oidc/:provider/callback",
	"POST /v1/auth/oidc/exchange",
}

var pathParam = regexp.MustCompile(`:[a-z_]+`)

// Every route of the real engine is walked: a public one must be in
// publicRoutes; every other one answers 401 without a token and 403 to a
// caller who holds no permission at all (a user whose every role was
// revoked), before it reads a body, a parameter or a read model. A route
// that declares nothing lets that caller through and fails here.
func TestEveryRouteDeclaresItsPermission(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	r := startService(t, map[string]string{"DATABASE_URL": db})
	tok, id := r.loginAs("nobody@example.com")
	changeRoles(t, db, id, nil, []string{"user"})
	waitStatus(t, r, "GET", "/v1/me", tok, http.StatusForbidden)

	var routes []string
	for _, rt := range r.routes {
		routes = append(routes, rt.Method+" "+rt.Path)
	}
	sort.Strings(routes)
	for _, p := range publicRoutes {
		if !slices.Contains(routes, p) {
			t.Errorf("public route %s is not registered", p)
		}
	}
	for _, rt := range routes {
		if slices.Contains(publicRoutes, rt) || r.consoleRoutes[rt] {
			continue
		}
		method, path, _ := strings.Cut(rt, " ")
		path = pathParam.ReplaceAllStringFunc(path, func(string) string { return uuid.NewString() })
		if status, _, body := r.call(method, path, "", nil); status != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d %v, want 401", rt, status, body)
		}
		if status, _, body := r.call(method, path, tok, nil); status != http.StatusForbidden {
			t.Errorf("%s by a caller without permissions: %d %v, want 403 (does it declare its permission?)", rt, status, body)
		}
	}
}

// waitStatus polls until method path answers want (a change reaching
// the access follower), failing after a few seconds.
func waitStatus(t *testing.T, r *running, method, path, tok string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, _, body := r.call(method, path, tok, nil)
		if status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s: %d %v, want %d", method, path, status, body, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

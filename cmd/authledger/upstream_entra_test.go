package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/authledger/authledger/test/pgtest"
	"github.com/authledger/authledger/test/upstreamfakes"
)

// Microsoft Entra through its multi-tenant authority (/common, whose
// discovery publishes {tenantid} in the issuer): a work account of a
// configured tenant and a personal account (the consumers tenant) sign in
// through the browser and reach /v1/me; a tenant not configured is
// refused; a token whose iss is another tenant's than its tid is refused,
// even between two admitted tenants.
func TestUpstreamEntraMultiTenant(t *testing.T) {
	const (
		workTenant  = "72f988bf-86f1-41af-91ab-2d7cd011db47"
		otherTenant = "0d7b8f7c-1f6a-4f7e-9d36-3a2b1c0e9f11"
	)
	db := pgtest.NewDatabase(t)
	e := upstreamfakes.NewEntra(t)
	r := startService(t, map[string]string{
		"DATABASE_URL": db, "AUTHLEDGER_WORKERS": "0", "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0",
		"AUTHLEDGER_MASTER_KEY":        testMasterKey,
		"AUTHLEDGER_OIDC_PROVIDERS":    "entra",
		"AUTHLEDGER_ALLOWED_REDIRECTS": spaURL,
		"AUTHLEDGER_OIDC_PROVISION":    "true",
		"AUTHLEDGER_OIDC_ENTRA_KIND":   "entra", "AUTHLEDGER_OIDC_ENTRA_ISSUER": e.Authority("common"),
		"AUTHLEDGER_OIDC_ENTRA_CLIENT_ID": e.ClientID, "AUTHLEDGER_OIDC_ENTRA_CLIENT_SECRET": e.ClientSecret,
		"AUTHLEDGER_OIDC_ENTRA_TENANTS":        workTenant + "," + upstreamfakes.ConsumersTenant,
		"AUTHLEDGER_OIDC_ENTRA_ALLOW_INSECURE": "true",
	})

	signInToMe := func(what string, a upstreamfakes.EntraAccount) {
		t.Helper()
		e.SignInAs(a)
		q, st, body := newBrowser(t, r.base).signIn("entra")
		if st != http.StatusFound || q.Get("code") == "" {
			t.Fatalf("%s: %d %s %v", what, st, body, q)
		}
		st, hdr, tok := r.call("POST", "/v1/auth/oidc/exchange", "", map[string]string{"code": q.Get("code")})
		if st != http.StatusOK {
			t.Fatalf("%s exchange: %d %v", what, st, tok)
		}
		access := tok["access_token"].(string)
		if st, _, me := r.call("GET", "/v1/me", access, nil, "X-Consistency-Token", hdr.Get("X-Consistency-Token")); st != http.StatusOK || me["email"] != a.Email {
			t.Fatalf("%s /v1/me: %d %v", what, st, me)
		}
		if amr := jwtClaim(t, access, "amr"); !strings.Contains(amr, "entra") {
			t.Fatalf("%s: amr %s", what, amr)
		}
		// The link is keyed by tid:oid, Microsoft's stable pair.
		st, _, ids := r.call("GET", "/v1/me/identities", access, nil, "X-Consistency-Token", hdr.Get("X-Consistency-Token"))
		list, _ := ids["identities"].([]any)
		if st != http.StatusOK || len(list) != 1 || list[0].(map[string]any)["external_user_id"] != a.TenantID+":"+a.ObjectID {
			t.Fatalf("%s identities: %d %v", what, st, ids)
		}
	}
	signInToMe("work account", upstreamfakes.EntraAccount{TenantID: workTenant, ObjectID: "11111111-1111-1111-1111-111111111111",
		Email: "ada@contoso.example", Name: "Ada", DomainVerified: true})
	signInToMe("personal account", upstreamfakes.EntraAccount{TenantID: upstreamfakes.ConsumersTenant, ObjectID: "00000000-0000-0000-0009-abcdefabcdef",
		Email: "bea@outlook.example", Name: "Bea", DomainVerified: true})

	refused := func(what string, a upstreamfakes.EntraAccount, status int, typ string) {
		t.Helper()
		e.SignInAs(a)
		_, st, body := newBrowser(t, r.base).signIn("entra")
		expectProblem(t, what, st, body, status, typ)
	}
	refused("tenant not configured", upstreamfakes.EntraAccount{TenantID: otherTenant, ObjectID: "22222222-2222-2222-2222-222222222222",
		Email: "eve@fabrikam.example", DomainVerified: true}, http.StatusForbidden, "upstream-sign-in-refused")
	refused("iss of another tenant than tid", upstreamfakes.EntraAccount{TenantID: workTenant, ObjectID: "33333333-3333-3333-3333-333333333333",
		Email: "mallory@contoso.example", DomainVerified: true, Issuer: e.TenantIssuer(upstreamfakes.ConsumersTenant)}, http.StatusUnauthorized, "upstream-sign-in-failed")
	refused("iss of an unconfigured tenant", upstreamfakes.EntraAccount{TenantID: workTenant, ObjectID: "44444444-4444-4444-4444-444444444444",
		Email: "mallory@contoso.example", DomainVerified: true, Issuer: e.TenantIssuer(otherTenant)}, http.StatusUnauthorized, "upstream-sign-in-failed")
	// Without xms_edov the address is not taken as verified: no account
	// is provisioned for it.
	refused("address not verified by the domain's owner", upstreamfakes.EntraAccount{TenantID: workTenant, ObjectID: "55555555-5555-5555-5555-555555555555",
		Email: "unverified@contoso.example"}, http.StatusForbidden, "upstream-sign-in-refused")
}

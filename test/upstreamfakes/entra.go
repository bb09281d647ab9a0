package upstreamfakes

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// ConsumersTenant is the tenant id of personal Microsoft accounts.
const ConsumersTenant = "9188040d-6c67-4c5b-b112-36a304b66dad"

// EntraAccount is an account of the Entra-shaped fake.
type EntraAccount struct {
	TenantID, ObjectID string
	Email, Name        string
	// DomainVerified is the xms_edov claim.
	DomainVerified bool
	// Issuer, when set, is the token's iss instead of the tenant's own
	// (a token whose iss does not match its tid).
	Issuer string
}

// Entra is a Microsoft-Entra-shaped OpenID provider: the multi-tenant
// authorities (/common/v2.0, /organizations/v2.0, /consumers/v2.0) whose
// discovery publishes https://…/{tenantid}/v2.0 as the issuer, one JWKS,
// authorize (approves at once) and token (checks the client and the PKCE
// S256 verifier, answers an RS256 ID token with tid, oid and xms_edov
// signed by lestrrat-go/jwx).
type Entra struct {
	URL          string
	ClientID     string
	ClientSecret string

	key jwk.Key
	pub jwk.Set

	mu     sync.Mutex
	next   EntraAccount
	grants map[string]entraGrant
	n      int
}

type entraGrant struct {
	account          EntraAccount
	challenge, nonce string
}

// NewEntra starts the fake until the test ends.
func NewEntra(t testing.TB) *Entra {
	raw, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	_ = key.Set(jwk.KeyIDKey, "entra-fake-1")
	_ = key.Set(jwk.AlgorithmKey, jwa.RS256())
	pub, err := jwk.PublicSetOf(mustSet(t, key))
	if err != nil {
		t.Fatal(err)
	}
	e := &Entra{ClientID: "entra-client", ClientSecret: "entra-secret", key: key, pub: pub, grants: map[string]entraGrant{},
		next: EntraAccount{TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47", ObjectID: "00000000-0000-0000-0000-000000000001", Email: "worker@contoso.example", Name: "Worker", DomainVerified: true}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{authority}/v2.0/.well-known/openid-configuration", e.discovery)
	mux.HandleFunc("GET /{authority}/oauth2/v2.0/authorize", e.authorize)
	mux.HandleFunc("POST /{authority}/oauth2/v2.0/token", e.token)
	mux.HandleFunc("GET /common/discovery/v2.0/keys", e.keys)
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	e.URL = s.URL
	return e
}

func mustSet(t testing.TB, k jwk.Key) jwk.Set {
	set := jwk.NewSet()
	if err := set.AddKey(k); err != nil {
		t.Fatal(err)
	}
	return set
}

// Authority is the multi-tenant authority's issuer URL to configure
// (common, organizations or consumers).
func (e *Entra) Authority(name string) string { return e.URL + "/" + name + "/v2.0" }

// TenantIssuer is the issuer of tokens of tenant tid.
func (e *Entra) TenantIssuer(tid string) string { return e.URL + "/" + tid + "/v2.0" }

// SignInAs makes the next authorization sign in a.
func (e *Entra) SignInAs(a EntraAccount) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.next = a
}

func (e *Entra) discovery(w http.ResponseWriter, r *http.Request) {
	authority := r.PathValue("authority")
	issuer := e.URL + "/{tenantid}/v2.0"
	switch authority {
	case "common", "organizations":
	case "consumers":
		issuer = e.TenantIssuer(ConsumersTenant)
	default:
		issuer = e.TenantIssuer(authority)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                issuer,
		"authorization_endpoint":                e.URL + "/" + authority + "/oauth2/v2.0/authorize",
		"token_endpoint":                        e.URL + "/" + authority + "/oauth2/v2.0/token",
		"jwks_uri":                              e.URL + "/common/discovery/v2.0/keys",
		"response_types_supported":              []string{"code", "id_token", "code id_token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"tenant_region_scope":                   nil,
	})
}

func (e *Entra) keys(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(e.pub)
}

func (e *Entra) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != e.ClientID || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" {
		http.Error(w, "AADSTS900144: bad request", http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	e.n++
	code := "entra-code-" + strconv.Itoa(e.n)
	e.grants[code] = entraGrant{account: e.next, challenge: q.Get("code_challenge"), nonce: q.Get("nonce")}
	e.mu.Unlock()
	to, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	v := to.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	to.RawQuery = v.Encode()
	http.Redirect(w, r, to.String(), http.StatusFound)
}

func (e *Entra) token(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.Form.Get("client_id"), r.Form.Get("client_secret")
	}
	e.mu.Lock()
	g, found := e.grants[r.Form.Get("code")]
	delete(e.grants, r.Form.Get("code"))
	e.mu.Unlock()
	sum := sha256.Sum256([]byte(r.Form.Get("code_verifier")))
	switch {
	case id != e.ClientID || secret != e.ClientSecret:
		tokenError(w, http.StatusUnauthorized, "invalid_client")
		return
	case !found || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
		tokenError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	a := g.account
	iss := a.Issuer
	if iss == "" {
		iss = e.TenantIssuer(a.TenantID)
	}
	now := time.Now()
	tok, err := jwt.NewBuilder().Issuer(iss).Audience([]string{e.ClientID}).Subject("pairwise-"+a.ObjectID).
		IssuedAt(now).NotBefore(now).Expiration(now.Add(time.Hour)).
		Claim("nonce", g.nonce).Claim("tid", a.TenantID).Claim("oid", a.ObjectID).Claim("email", a.Email).
		Claim("name", a.Name).Claim("preferred_username", a.Email).Claim("xms_edov", a.DomainVerified).Claim("ver", "2.0").Build()
	if err != nil {
		tokenError(w, http.StatusInternalServerError, "server_error")
		return
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.RS256(), e.key))
	if err != nil {
		tokenError(w, http.StatusInternalServerError, "server_error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3600, "access_token": "entra-at-" + strconv.Itoa(e.n),
		"id_token": string(signed), "scope": "openid profile email"})
}

func tokenError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

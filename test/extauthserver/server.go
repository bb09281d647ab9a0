// Package extauthserver is a test provider that speaks the external auth
// API (login, refresh, me) and is the OpenID provider of its tokens
// (discovery, JWKS, RS256-signed access and ID tokens), on a real socket
// on 127.0.0.1, over TLS by default. Switches add latency, answer 5xx,
// hang, drop connections and sign with a key it does not publish, so
// that every resilience path of auth/external is tested as it happens in
// production: over HTTP, not through a fake transport.
//
// Tokens are signed with go-jose (the JOSE library of zitadel/oidc's
// provider) while auth/external verifies them with jwx: two independent
// implementations, so a mistake shared by signer and verifier cannot hide.
// An OP library's flows (authorize, token endpoint, PKCE, its storage
// interface) have no use here: the external auth API is a password API
// whose tokens merely come from an OpenID issuer, and that issuer's
// surface is discovery, JWKS and signed tokens, which this package serves.
package extauthserver

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/authledger/authledger/auth/external"
)

// User is an account of the provider.
type User struct {
	ID       string
	Email    string
	Name     string
	Password string
}

// Config configures a Server. Zero values take the defaults.
type Config struct {
	// Users are the accounts that can log in.
	Users []User
	// Audience is the aud of the tokens (default "authledger-test").
	Audience string
	// TokenTTL is the access and ID tokens' lifetime, and the expires_in
	// of answers (default 1h).
	TokenTTL time.Duration
	// RotateRefreshTokens issues a new refresh token at each refresh (the
	// old one stays valid, as with Azure AD); otherwise the refresh
	// answer carries none.
	RotateRefreshTokens bool
	// Plain serves http:// instead of https://.
	Plain bool
	// Alternate speaks a differently shaped API (AlternateMapping):
	// nested members, camelCase names, expires_in as a string, no user in
	// the login answer, the user id in the oid claim.
	Alternate bool
	// KeysWithoutAlg publishes keys without "alg", as Azure AD does.
	KeysWithoutAlg bool
	// ReuseTokens signs each user's access and ID tokens once and answers
	// every later login and refresh with them: for benchmarks, so that the
	// provider's RSA signatures (on the same cores as the client here, on
	// its own machines in production) do not count as the client's
	// overhead.
	ReuseTokens bool
}

// AlternateMapping is the external.Mapping of a Server with Alternate.
var AlternateMapping = external.Mapping{
	LoginEmail:     "credentials.username",
	LoginPassword:  "credentials.secret",
	RefreshRequest: "grant.refreshToken",
	AccessToken:    "data.accessToken",
	IDToken:        "data.idToken",
	RefreshToken:   "data.refreshToken",
	TokenType:      "data.tokenType",
	ExpiresIn:      "data.expiresIn",
	LoginUser:      "data.profile", // absent: the client asks me
	MeUser:         "profile",
	UserID:         "objectId",
	UserEmail:      "mail",
	UserName:       "displayName",
	SubjectClaim:   "oid",
}

// Fault is what the provider does instead of answering normally.
type Fault struct {
	// Latency is added before every answer (and before the other faults).
	Latency time.Duration
	// Status, when not 0, is answered instead (a JSON error body).
	Status int
	// Hang never answers: the request waits until the client gives up.
	Hang bool
	// Drop hijacks the connection and closes it without a byte.
	Drop bool
	// Count limits the fault to the next Count requests; 0 is until
	// SetFault changes it.
	Count int
}

// The endpoints Hits counts.
const (
	Login     = "login"
	Refresh   = "refresh"
	Me        = "me"
	Discovery = "discovery"
	JWKS      = "jwks"
)

// Paths of the API (the defaults of auth/external) and of the issuer.
const (
	LoginPath   = external.DefaultLoginPath
	RefreshPath = external.DefaultRefreshPath
	MePath      = external.DefaultMePath
	issuerPath  = "/tenant-0/v2.0"
	jwksPath    = "/tenant-0/discovery/v2.0/keys"
)

// Server is a running test provider.
type Server struct {
	// URL is the API's base URL; Issuer the OpenID issuer of its tokens.
	URL    string
	Issuer string

	t       T
	cfg     Config
	srv     *httptest.Server
	closing chan struct{}

	mu        sync.Mutex
	users     map[string]User   // by email
	refresh   map[string]string // refresh token → user email
	hits      map[string]int
	fault     Fault // on the API endpoints
	oidcFault Fault // on discovery and JWKS
	key       *rsa.PrivateKey
	kid       string
	wrongKey  *rsa.PrivateKey // signs when wrongSig; never published
	wrongSig  bool
	reused    map[string][2]string // ReuseTokens: user email → access, ID token
}

// T is what a Server needs of whoever runs it: testing.TB satisfies it,
// and so does the benchmark command's run (bench/external.go), which
// measures external logins against this provider since no real one can
// run here.
type T interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Start starts a provider for the test; it stops when the test ends.
func Start(t T, cfg Config) *Server {
	t.Helper()
	if cfg.Audience == "" {
		cfg.Audience = "authledger-test"
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Hour
	}
	s := &Server{
		t: t, cfg: cfg, closing: make(chan struct{}),
		users: map[string]User{}, refresh: map[string]string{}, hits: map[string]int{},
		reused: map[string][2]string{},
	}
	for _, u := range cfg.Users {
		s.users[strings.ToLower(u.Email)] = u
	}
	s.key, s.wrongKey = sharedKeys(t)
	s.kid = randomString(8)

	mux := http.NewServeMux()
	mux.HandleFunc("POST "+LoginPath, s.api(Login, s.login))
	mux.HandleFunc("POST "+RefreshPath, s.api(Refresh, s.refreshTokens))
	mux.HandleFunc("GET "+MePath, s.api(Me, s.me))
	mux.HandleFunc("GET "+issuerPath+"/.well-known/openid-configuration", s.oidc(Discovery, s.discovery))
	mux.HandleFunc("GET "+jwksPath, s.oidc(JWKS, s.jwks))
	s.srv = httptest.NewUnstartedServer(mux)
	if cfg.Plain {
		s.srv.Start()
	} else {
		s.srv.StartTLS()
	}
	s.URL = s.srv.URL
	s.Issuer = s.srv.URL + issuerPath
	t.Cleanup(s.Close)
	return s
}

// Close releases hung requests and stops the server (Start's cleanup
// does it; calling it twice is fine).
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.closing:
		s.mu.Unlock()
		return
	default:
		close(s.closing)
	}
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// CertPool trusts the server's certificate (nil when Plain).
func (s *Server) CertPool() *x509.CertPool {
	if s.cfg.Plain {
		return nil
	}
	p := x509.NewCertPool()
	p.AddCert(s.srv.Certificate())
	return p
}

// CertificatePEM is the server's certificate in PEM, as a CA file holds
// it (nil when Plain).
func (s *Server) CertificatePEM() []byte {
	if s.cfg.Plain {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// ClientConfig is an external.Config pointed at the server: URL, issuer,
// audience, certificates (AllowInsecure when Plain), and the mapping of
// its shape. Tests add their resilience settings.
func (s *Server) ClientConfig() external.Config {
	c := external.Config{
		URL: s.URL, Issuer: s.Issuer, Audience: s.cfg.Audience,
		RootCAs: s.CertPool(), AllowInsecure: s.cfg.Plain,
	}
	if s.cfg.Alternate {
		c.Mapping = AlternateMapping
	}
	return c
}

// AddUser adds or replaces an account.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[strings.ToLower(u.Email)] = u
}

// SetFault sets what the API endpoints (login, refresh, me) do.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// SetOIDCFault sets what discovery and JWKS do.
func (s *Server) SetOIDCFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oidcFault = f
}

// SignWithWrongKey makes new tokens carry the published kid but a
// signature by another key (a forgery, or a provider's botched rotation).
func (s *Server) SignWithWrongKey(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wrongSig = on
}

// RotateKey replaces the signing key by a new one with a new kid; the
// JWKS publishes only the new key from now on. It returns the new kid.
func (s *Server) RotateKey() string {
	k, kid := newKey(s.t)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key, s.kid = k, kid
	return kid
}

// RevokeRefreshTokens makes every refresh token issued so far invalid.
func (s *Server) RevokeRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.refresh)
}

// Hits is how many requests reached an endpoint (Login, Refresh, Me,
// Discovery, JWKS), faulted ones included.
func (s *Server) Hits(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[endpoint]
}

// AllHits is a copy of every endpoint's count.
func (s *Server) AllHits() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.hits)
}

// TokenOptions change a token that Token issues, to forge bad ones.
type TokenOptions struct {
	Issuer   string        // default the server's
	Audience string        // default the configured one
	TTL      time.Duration // default TokenTTL; negative issues an expired token
	KeyID    string        // default the current kid
	// Key signs instead of the current key (nil: the current key, or the
	// wrong key while SignWithWrongKey is on).
	Key *rsa.PrivateKey
	// Claims are added (or override the standard ones); a nil value
	// removes the claim.
	Claims map[string]any
	// Algorithm signs with another RSA algorithm (default RS256; RS384,
	// RS512, PS256 and so on), under the same key.
	Algorithm jose.SignatureAlgorithm
}

// Token issues an access token for u as the provider would, changed by
// opts.
func (s *Server) Token(u User, opts TokenOptions) string {
	s.t.Helper()
	tok, err := s.sign(u, "access", opts)
	if err != nil {
		s.t.Fatalf("extauthserver: %v", err)
	}
	return tok
}

// NewKey is an RSA key of the kind the provider uses, for forging.
func NewKey(t T) *rsa.PrivateKey {
	k, _ := newKey(t)
	return k
}

// shared are two keys every Server of the process starts with (each under
// its own kid): RSA key generation takes a second under the race
// detector, and a test that needs a fresh key calls RotateKey or NewKey.
var shared struct {
	once sync.Once
	key  [2]*rsa.PrivateKey
	err  error
}

func sharedKeys(t T) (signing, wrong *rsa.PrivateKey) {
	t.Helper()
	shared.once.Do(func() {
		for i := range shared.key {
			if shared.key[i], shared.err = rsa.GenerateKey(rand.Reader, 2048); shared.err != nil {
				return
			}
		}
	})
	if shared.err != nil {
		t.Fatalf("extauthserver: %v", shared.err)
	}
	return shared.key[0], shared.key[1]
}

func newKey(t T) (*rsa.PrivateKey, string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("extauthserver: %v", err)
	}
	return k, randomString(8)
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) sign(u User, use string, o TokenOptions) (string, error) {
	s.mu.Lock()
	key, kid := s.key, s.kid
	if s.wrongSig {
		key = s.wrongKey
	}
	s.mu.Unlock()
	if o.Key != nil {
		key = o.Key
	}
	if o.KeyID != "" {
		kid = o.KeyID
	}
	iss := s.Issuer
	if o.Issuer != "" {
		iss = o.Issuer
	}
	aud := s.cfg.Audience
	if o.Audience != "" {
		aud = o.Audience
	}
	ttl := s.cfg.TokenTTL
	if o.TTL != 0 {
		ttl = o.TTL
	}
	now := time.Now()
	iat := now
	if ttl < 0 {
		iat = now.Add(2 * ttl) // an expired token was issued before it expired
	}
	claims := map[string]any{
		"iss": iss, "sub": u.ID, "oid": u.ID, "tid": "tenant-0", "aud": aud,
		"iat": iat.Unix(), "nbf": iat.Unix(), "exp": now.Add(ttl).Unix(),
		"email": u.Email, "name": u.Name, "ver": "2.0", "uti": randomString(8), "token_use": use,
	}
	maps.Copy(claims, o.Claims)
	maps.DeleteFunc(claims, func(_ string, v any) bool { return v == nil })
	alg := jose.RS256
	if o.Algorithm != "" {
		alg = o.Algorithm
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	return josejwt.Signed(signer).Claims(claims).Serialize()
}

// api wraps an endpoint of the external auth API: counts it, applies the
// fault.
func (s *Server) api(name string, h http.HandlerFunc) http.HandlerFunc {
	return s.faulted(name, &s.fault, h)
}

// oidc wraps an endpoint of the issuer.
func (s *Server) oidc(name string, h http.HandlerFunc) http.HandlerFunc {
	return s.faulted(name, &s.oidcFault, h)
}

func (s *Server) faulted(name string, fault *Fault, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[name]++
		f := *fault
		if fault.Count > 0 {
			if fault.Count--; fault.Count == 0 {
				*fault = Fault{}
			}
		}
		s.mu.Unlock()
		if f.Latency > 0 && !s.wait(r, f.Latency) {
			return
		}
		switch {
		case f.Hang:
			s.wait(r, -1)
			return
		case f.Drop:
			hj, ok := w.(http.Hijacker)
			if !ok {
				s.t.Errorf("extauthserver: cannot hijack a %T", w)
				return
			}
			conn, _, err := hj.Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		case f.Status != 0:
			writeJSON(w, f.Status, map[string]any{"error": "injected", "status": f.Status})
			return
		}
		h(w, r)
	}
}

// wait sleeps d (forever when negative) unless the client goes away or
// the server closes; it reports whether the full time passed.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	var timer <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-timer:
		return true
	case <-r.Context().Done():
	case <-s.closing:
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func unauthorized(w http.ResponseWriter) {
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_credentials"})
}

// readField decodes the request into a map and reads the member at path.
func readField(w http.ResponseWriter, r *http.Request, path string) (string, bool) {
	var m map[string]any
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&m); err != nil {
		return "", false
	}
	return field(m, path)
}

func field(m map[string]any, path string) (string, bool) {
	var cur any = m
	for p := range strings.SplitSeq(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		cur = obj[p]
	}
	s, ok := cur.(string)
	return s, ok
}

func (s *Server) mapping() external.Mapping {
	if s.cfg.Alternate {
		return AlternateMapping
	}
	return external.DefaultMapping
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	m := s.mapping()
	var body map[string]any
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad_request"})
		return
	}
	email, _ := field(body, m.LoginEmail)
	password, _ := field(body, m.LoginPassword)
	s.mu.Lock()
	u, ok := s.users[strings.ToLower(email)]
	s.mu.Unlock()
	if !ok || u.Password != password {
		unauthorized(w)
		return
	}
	s.answerTokens(w, u, true)
}

func (s *Server) refreshTokens(w http.ResponseWriter, r *http.Request) {
	rt, _ := readField(w, r, s.mapping().RefreshRequest)
	s.mu.Lock()
	email, ok := s.refresh[rt]
	u := s.users[email]
	s.mu.Unlock()
	if !ok || rt == "" {
		unauthorized(w)
		return
	}
	s.answerTokens(w, u, s.cfg.RotateRefreshTokens)
}

// issue signs u's access and ID tokens (or reuses them, with ReuseTokens).
func (s *Server) issue(u User) (access, id string, err error) {
	key := strings.ToLower(u.Email)
	s.mu.Lock()
	r, ok := s.reused[key]
	s.mu.Unlock()
	if ok {
		return r[0], r[1], nil
	}
	if access, err = s.sign(u, "access", TokenOptions{}); err != nil {
		return "", "", err
	}
	if id, err = s.sign(u, "id", TokenOptions{}); err != nil {
		return "", "", err
	}
	if s.cfg.ReuseTokens {
		s.mu.Lock()
		s.reused[key] = [2]string{access, id}
		s.mu.Unlock()
	}
	return access, id, nil
}

// answerTokens issues tokens for u in the configured shape.
func (s *Server) answerTokens(w http.ResponseWriter, u User, withRefresh bool) {
	access, id, err := s.issue(u)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	var refresh string
	if withRefresh {
		refresh = "rt_" + randomString(24)
		s.mu.Lock()
		s.refresh[refresh] = strings.ToLower(u.Email)
		s.mu.Unlock()
	}
	secs := int(s.cfg.TokenTTL / time.Second)
	if s.cfg.Alternate {
		data := map[string]any{"accessToken": access, "idToken": id, "tokenType": "bearer", "expiresIn": fmt.Sprint(secs)}
		if refresh != "" {
			data["refreshToken"] = refresh
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": data})
		return
	}
	body := map[string]any{
		"access_token": access, "id_token": id, "token_type": "Bearer", "expires_in": secs,
		"user": map[string]string{"id": u.ID, "email": u.Email, "name": u.Name},
	}
	if refresh != "" {
		body["refresh_token"] = refresh
	}
	writeJSON(w, http.StatusOK, body)
}

// me verifies the bearer access token with the current public key.
func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		unauthorized(w)
		return
	}
	tok, err := josejwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		unauthorized(w)
		return
	}
	s.mu.Lock()
	pub := &s.key.PublicKey
	s.mu.Unlock()
	var c josejwt.Claims
	var extra struct {
		Email string `json:"email"`
		Name  string `json:"name"`
	}
	if err := tok.Claims(pub, &c, &extra); err != nil {
		unauthorized(w)
		return
	}
	if err := c.ValidateWithLeeway(josejwt.Expected{Issuer: s.Issuer, Time: time.Now()}, 0); err != nil {
		unauthorized(w)
		return
	}
	if s.cfg.Alternate {
		writeJSON(w, http.StatusOK, map[string]any{"profile": map[string]string{"objectId": c.Subject, "mail": extra.Email, "displayName": extra.Name}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": c.Subject, "email": extra.Email, "name": extra.Name})
}

func (s *Server) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.Issuer,
		"jwks_uri":                              s.URL + jwksPath,
		"token_endpoint":                        s.URL + issuerPath + "/oauth2/token",
		"authorization_endpoint":                s.URL + issuerPath + "/oauth2/authorize",
		"response_types_supported":              []string{"code", "id_token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	})
}

func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	k := jose.JSONWebKey{Key: &s.key.PublicKey, KeyID: s.kid, Use: "sig"}
	s.mu.Unlock()
	if !s.cfg.KeysWithoutAlg {
		k.Algorithm = string(jose.RS256)
	}
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k}})
}

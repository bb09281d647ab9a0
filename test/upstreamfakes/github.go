// Package upstreamfakes are GitHub- and Entra-shaped fakes for the
// upstream sign-in tests: the real OAuth 2.0, OpenID and REST wire shapes
// on 127.0.0.1 (neither service can run here). The OpenID provider of the tests is
// github.com/oauth2-proxy/mockoidc, a maintained library.
package upstreamfakes

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
)

// GitHubUser is an account of the fake.
type GitHubUser struct {
	ID            int64
	Login, Name   string
	Email         string
	EmailVerified bool
	Orgs          []string
}

// GitHub is a GitHub-shaped OAuth server and API: /login/oauth/authorize
// (approves at once, as GitHub does for an authorised app),
// /login/oauth/access_token (checks the client and the PKCE S256
// verifier), /user, /user/emails, /user/memberships/orgs/{org}.
type GitHub struct {
	URL          string
	ClientID     string
	ClientSecret string

	mu     sync.Mutex
	next   *GitHubUser
	codes  map[string]grant
	tokens map[string]GitHubUser
	n      int
}

type grant struct {
	user      GitHubUser
	challenge string
}

// NewGitHub starts the fake until the test ends.
func NewGitHub(t testing.TB) *GitHub {
	g := &GitHub{ClientID: "gh-client", ClientSecret: "gh-secret", codes: map[string]grant{}, tokens: map[string]GitHubUser{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", g.authorize)
	mux.HandleFunc("POST /login/oauth/access_token", g.token)
	mux.HandleFunc("GET /user", g.user)
	mux.HandleFunc("GET /user/emails", g.emails)
	mux.HandleFunc("GET /user/memberships/orgs/{org}", g.membership)
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	g.URL = s.URL
	return g
}

// SignInAs makes the next authorization sign in u.
func (g *GitHub) SignInAs(u GitHubUser) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.next = &u
}

func (g *GitHub) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != g.ClientID || q.Get("code_challenge_method") != "S256" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	g.n++
	code := "ghcode" + strconv.Itoa(g.n)
	u := GitHubUser{ID: 1, Login: "octocat", Email: "octocat@example.com", EmailVerified: true}
	if g.next != nil {
		u = *g.next
	}
	g.codes[code] = grant{user: u, challenge: q.Get("code_challenge")}
	g.mu.Unlock()
	to, _ := url.Parse(q.Get("redirect_uri"))
	v := to.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	to.RawQuery = v.Encode()
	http.Redirect(w, r, to.String(), http.StatusFound)
}

func (g *GitHub) token(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	w.Header().Set("Content-Type", "application/json")
	g.mu.Lock()
	defer g.mu.Unlock()
	gr, ok := g.codes[r.Form.Get("code")]
	delete(g.codes, r.Form.Get("code"))
	sum := sha256.Sum256([]byte(r.Form.Get("code_verifier")))
	switch {
	case r.Form.Get("client_id") != g.ClientID || r.Form.Get("client_secret") != g.ClientSecret:
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "incorrect_client_credentials"})
	case !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != gr.challenge:
		// GitHub answers 200 with an error member.
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "bad_verification_code"})
	default:
		g.n++
		tok := "gho_" + strconv.Itoa(g.n)
		g.tokens[tok] = gr.user
		_ = json.NewEncoder(w).Encode(map[string]string{"access_token": tok, "token_type": "bearer", "scope": "read:user,user:email"})
	}
}

func (g *GitHub) caller(w http.ResponseWriter, r *http.Request) (GitHubUser, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	tok := r.Header.Get("Authorization")
	u, ok := g.tokens[tok[min(len(tok), len("Bearer ")):]]
	if !ok {
		http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
	}
	return u, ok
}

func (g *GitHub) user(w http.ResponseWriter, r *http.Request) {
	if u, ok := g.caller(w, r); ok {
		_ = json.NewEncoder(w).Encode(map[string]any{"id": u.ID, "login": u.Login, "name": u.Name})
	}
}

func (g *GitHub) emails(w http.ResponseWriter, r *http.Request) {
	if u, ok := g.caller(w, r); ok {
		_ = json.NewEncoder(w).Encode([]map[string]any{
			{"email": "noreply-" + u.Login + "@users.noreply.example", "primary": false, "verified": true},
			{"email": u.Email, "primary": true, "verified": u.EmailVerified},
		})
	}
}

func (g *GitHub) membership(w http.ResponseWriter, r *http.Request) {
	u, ok := g.caller(w, r)
	if !ok {
		return
	}
	for _, o := range u.Orgs {
		if o == r.PathValue("org") {
			_ = json.NewEncoder(w).Encode(map[string]string{"state": "active", "role": "member"})
			return
		}
	}
	http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
}

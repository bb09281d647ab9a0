package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/oauth2"

	"github.com/authledger/authledger/auth/external"
)

// GitHub's defaults.
const (
	DefaultGitHubURL    = "https://github.com"
	DefaultGitHubAPIURL = "https://api.github.com"
)

// githubProvider is GitHub's OAuth 2.0 (not OpenID: no ID token, no
// nonce): the account from /user, the verified primary address from
// /user/emails, and, with Org, membership from
// /user/memberships/orgs/{org}.
type githubProvider struct {
	base
	oauth oauth2.Config
	api   string
}

func newGitHub(cfg Config, t *external.Transport) *githubProvider {
	web := strings.TrimRight(cfg.Issuer, "/")
	if web == "" {
		web = DefaultGitHubURL
	}
	api := strings.TrimRight(cfg.APIURL, "/")
	if api == "" {
		api = DefaultGitHubAPIURL
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{"read:user", "user:email"}
		if cfg.Org != "" {
			cfg.Scopes = append(cfg.Scopes, "read:org")
		}
	}
	return &githubProvider{
		base: base{cfg: cfg, transport: t},
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL, Scopes: cfg.Scopes,
			Endpoint: oauth2.Endpoint{AuthURL: web + "/login/oauth/authorize", TokenURL: web + "/login/oauth/access_token", AuthStyle: oauth2.AuthStyleInParams}},
		api: api,
	}
}

// Prepare implements Provider: GitHub has no discovery; only an open
// breaker stops a flow from starting.
func (g *githubProvider) Prepare(context.Context) error { return g.transport.Refusing("start") }

// AuthCodeURL implements Provider (GitHub has no nonce).
func (g *githubProvider) AuthCodeURL(state, _, verifier string) string {
	return g.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
}

// Exchange implements Provider. GitHub's token is used for the three API
// calls and dropped: nothing of it is kept.
func (g *githubProvider) Exchange(ctx context.Context, code, verifier, _ string) (Identity, error) {
	ctx = g.ctx(ctx)
	tok, err := g.oauth.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Identity{}, exchangeError(err)
	}
	var u struct {
		ID    int64  `json:"id"`
		Login string `json:"login"`
		Name  string `json:"name"`
	}
	if err := g.get(ctx, tok.AccessToken, "/user", &u); err != nil {
		return Identity{}, err
	}
	if u.ID == 0 {
		return Identity{}, fmt.Errorf("%w: /user has no id", ErrInvalidToken)
	}
	var emails []struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	if err := g.get(ctx, tok.AccessToken, "/user/emails", &emails); err != nil {
		return Identity{}, err
	}
	id := Identity{Provider: g.cfg.Name, Subject: strconv.FormatInt(u.ID, 10), Name: u.Name}
	if id.Name == "" {
		id.Name = u.Login
	}
	for _, e := range emails {
		if e.Primary {
			id.Email, id.EmailVerified = e.Email, e.Verified
		}
	}
	if id.Email == "" {
		return Identity{}, ErrNoEmail
	}
	if g.cfg.Org != "" {
		var m struct {
			State string `json:"state"`
		}
		err := g.get(ctx, tok.AccessToken, "/user/memberships/orgs/"+url.PathEscape(g.cfg.Org), &m)
		if errors.Is(err, errNotFound) || (err == nil && m.State != "active") {
			return Identity{}, fmt.Errorf("%w: not an active member of %s", ErrNotAllowed, g.cfg.Org)
		}
		if err != nil {
			return Identity{}, err
		}
	}
	return id, g.admitted(id)
}

var errNotFound = errors.New("not found")

// get reads one API resource as JSON.
func (g *githubProvider) get(ctx context.Context, token, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.api+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := g.transport.Client().Do(req)
	if err != nil {
		return err // an *external.Error: unavailable
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden:
		return errNotFound
	case resp.StatusCode != http.StatusOK:
		return &external.Error{Op: "GET " + path, Kind: external.ErrProviderFailure, Reason: external.ReasonUnexpectedStatus, Status: resp.StatusCode}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &external.Error{Op: "GET " + path, Kind: external.ErrProviderFailure, Reason: external.ReasonBadBody, Status: resp.StatusCode, Err: err}
	}
	return nil
}

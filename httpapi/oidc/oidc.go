// Package oidc serves sign-in with upstream providers (docs/oidc-providers.md,
// ADR 0027): the start and callback of the authorization code flow, the
// exchange of the one-time code for the session's tokens, and linking and
// unlinking from an authenticated session.
//
// The state is bound to the browser by a signed, HttpOnly, SameSite=Lax
// cookie; the nonce and the PKCE verifier are derived from the state under
// a server key (HMAC), so nothing secret is stored anywhere, and the
// state's stream in the log makes it single use.
package oidc

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/authledger/authledger/auth/external"
	"github.com/authledger/authledger/auth/upstream"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
	"github.com/authledger/authledger/httpapi/ratelimit"
)

// Deps are what the endpoints need, built by cmd/.
type Deps struct {
	// Providers are the configured providers by name.
	Providers map[string]upstream.Provider
	Handler   *commands.UpstreamSignInHandler
	// Key signs the flow cookie and derives nonces and PKCE verifiers
	// (32 bytes or more, the same on every instance).
	Key []byte
	// AllowedRedirects are the redirect_uri values a flow may return to
	// (AUTHLEDGER_ALLOWED_REDIRECTS), compared exactly.
	AllowedRedirects []string
	// PublicURL is our base URL (the cookie's path and Secure follow it).
	PublicURL string
	// Authenticated is the chain of the authenticated routes
	// (identity.Deps.Authenticated).
	Authenticated []gin.HandlerFunc
	// TokenResponse writes a session's token response, exactly as a
	// password login's (identity.WriteTokenResponse).
	TokenResponse func(*gin.Context, commands.LoginResult)
	Metrics       *upstream.Metrics
	// RateLimit guards the anonymous routes per client network.
	RateLimit *ratelimit.Limiter
	Logger    *slog.Logger
}

// Validate reports every missing dependency at once.
func (d Deps) Validate() error {
	var errs []error
	if d.Handler == nil || d.TokenResponse == nil || len(d.Authenticated) == 0 {
		errs = append(errs, errors.New("httpapi/oidc: Deps needs the handler, TokenResponse and the Authenticated chain"))
	}
	if len(d.Key) < 32 {
		errs = append(errs, errors.New("httpapi/oidc: the cookie key must be at least 32 bytes"))
	}
	if d.PublicURL == "" {
		errs = append(errs, errors.New("httpapi/oidc: Deps needs the PublicURL"))
	}
	return errors.Join(errs...)
}

// Mount registers the routes on rg, the engine's root group.
func Mount(rg *gin.RouterGroup, d Deps) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	h := &handlers{d: d}
	rl := d.RateLimit.Anonymous()
	rg.GET("/v1/auth/oidc/:provider/start", rl, h.start)
	rg.GET("/v1/auth/oidc/:provider/callback", rl, h.callback)
	rg.POST("/v1/auth/oidc/exchange", rl, h.exchange)
	identities := append(slices.Clone(d.Authenticated), httpapi.Require(access.AccountIdentities))
	rg.POST("/v1/me/identities/:provider/link", append(slices.Clone(identities), h.link)...)
	rg.DELETE("/v1/me/identities/:provider", append(identities, h.unlink)...)
	return nil
}

type handlers struct{ d Deps }

func httpapiNotFound() error { return problem.NotFound("No such sign-in provider.") }

func invalidRedirect() error {
	return &problem.Error{Kind: problem.KindInvalidInput, Slug: "redirect-not-allowed",
		Detail: "redirect_uri is not one of the allowed redirects (AUTHLEDGER_ALLOWED_REDIRECTS)."}
}

func (h *handlers) provider(c *gin.Context) (upstream.Provider, bool) {
	p, ok := h.d.Providers[c.Param("provider")]
	if !ok {
		httpapi.WriteError(c, httpapiNotFound())
		return nil, false
	}
	return p, true
}

func anonymous(c *gin.Context) commands.Meta {
	return commands.AnonymousMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent())
}

// redirectAllowed holds the allowlist: an exact match of an absolute URL,
// so no open redirect can be built from a prefix or a path trick.
func (h *handlers) redirectAllowed(raw string) bool {
	return raw != "" && slices.Contains(h.d.AllowedRedirects, raw)
}

func (h *handlers) start(c *gin.Context) {
	p, ok := h.provider(c)
	if !ok {
		return
	}
	h.begin(c, p, nil)
}

// begin starts a flow and sends the browser to the provider (or, for a
// link request, answers with where to send it).
func (h *handlers) begin(c *gin.Context, p upstream.Provider, caller *httpapi.Principal) {
	redirect := c.Query("redirect_uri")
	if !h.redirectAllowed(redirect) {
		h.d.Metrics.Observe(p.Name(), "redirect_refused")
		httpapi.WriteError(c, invalidRedirect())
		return
	}
	if err := p.Prepare(c.Request.Context()); err != nil {
		h.d.Metrics.Observe(p.Name(), "unavailable")
		h.d.Logger.WarnContext(c, "upstream sign-in: provider unavailable", slog.String("provider", p.Name()), slog.String("error", err.Error()))
		httpapi.WriteError(c, &commands.ProviderUnavailableError{RetryAfter: external.RetryAfter(err), Cause: err})
		return
	}
	meta := anonymous(c)
	var state string
	var err error
	if caller != nil {
		uid := caller.UserID
		meta = commands.RequestMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent(), caller.Actor())
		state, err = h.d.Handler.StartFlow(c.Request.Context(), p.Name(), redirect, &uid, meta)
	} else {
		state, err = h.d.Handler.StartFlow(c.Request.Context(), p.Name(), redirect, nil, meta)
	}
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	h.setCookie(c, p.Name(), state)
	target := p.AuthCodeURL(state, h.derive("nonce", state), h.derive("pkce", state))
	h.d.Metrics.Observe(p.Name(), "started")
	c.Header("Cache-Control", "no-store")
	if caller != nil {
		c.JSON(http.StatusOK, gin.H{"authorization_url": target})
		return
	}
	redirect302(c, target)
}

// redirect302 answers 302 with no body (gin's Redirect writes an HTML
// link, which the API does not describe).
func redirect302(c *gin.Context, target string) {
	c.Header("Location", target)
	c.Status(http.StatusFound)
}

// derive is the flow's nonce or PKCE verifier: an HMAC of the state under
// the server key (43 base64url characters, a valid RFC 7636 verifier).
func (h *handlers) derive(purpose, state string) string {
	m := hmac.New(sha256.New, h.d.Key)
	m.Write([]byte("oidc " + purpose + " v1\x00" + state))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func cookieName(provider string) string {
	return "authledger_oidc_" + strings.ReplaceAll(provider, "-", "_")
}

func (h *handlers) cookiePath(provider string) (string, bool) {
	path, secure := "/v1/auth/oidc/"+provider+"/callback", false
	if u, err := url.Parse(h.d.PublicURL); err == nil {
		path, secure = strings.TrimRight(u.Path, "/")+path, u.Scheme == "https"
	}
	return path, secure
}

// setCookie binds the state to this browser: the state and its HMAC,
// HttpOnly, SameSite=Lax (the provider's redirect back is a top-level
// GET from another site, which Strict would strip), for the flow's life,
// sent only to the provider's callback.
func (h *handlers) setCookie(c *gin.Context, provider, state string) {
	path, secure := h.cookiePath(provider)
	http.SetCookie(c.Writer, &http.Cookie{ //nolint:gosec // Secure is set behind https
		Name: cookieName(provider), Value: state + "." + h.derive("cookie "+provider, state), Path: path,
		MaxAge: int(commands.UpstreamFlowTTL.Seconds()), Secure: secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

func (h *handlers) clearCookie(c *gin.Context, provider string) {
	path, secure := h.cookiePath(provider)
	http.SetCookie(c.Writer, &http.Cookie{ //nolint:gosec // Secure is set behind https
		Name: cookieName(provider), Value: "", Path: path, MaxAge: -1, Secure: secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

// browserState is the state this browser's cookie vouches for, if it is
// the one in the callback.
func (h *handlers) browserState(c *gin.Context, provider, state string) bool {
	v, err := c.Cookie(cookieName(provider))
	if err != nil || state == "" {
		return false
	}
	got, sig, ok := strings.Cut(v, ".")
	return ok && hmac.Equal([]byte(got), []byte(state)) && hmac.Equal([]byte(sig), []byte(h.derive("cookie "+provider, state)))
}

// fail answers a failed callback: a page for a browser, problem+json for
// an API client; logged and counted.
func (h *handlers) fail(c *gin.Context, provider, outcome string, err error) {
	h.d.Metrics.Observe(provider, outcome)
	h.d.Logger.WarnContext(c, "upstream sign-in failed", slog.String("provider", provider), slog.String("outcome", outcome), slog.String("error", err.Error()))
	if strings.Contains(c.GetHeader("Accept"), "text/html") {
		httpapi.WriteErrorPage(c, err)
		return
	}
	httpapi.WriteError(c, err)
}

func (h *handlers) callback(c *gin.Context) {
	p, ok := h.provider(c)
	if !ok {
		return
	}
	name := p.Name()
	state := c.Query("state")
	if e := c.Query("error"); e != "" {
		outcome := "provider_error"
		if e == "access_denied" {
			outcome = "access_denied"
		}
		h.clearCookie(c, name)
		h.fail(c, name, outcome, fmt.Errorf("%w: the provider answered %s", commands.ErrUpstreamFailed, e))
		return
	}
	if !h.browserState(c, name, state) {
		h.fail(c, name, "bad_state", fmt.Errorf("%w: the state is not this browser's", commands.ErrUpstreamFlowInvalid))
		return
	}
	h.clearCookie(c, name)
	ctx := c.Request.Context()
	meta := anonymous(c)
	flow, err := h.d.Handler.CompleteFlow(ctx, name, state, meta)
	if err != nil {
		h.fail(c, name, "bad_state", err)
		return
	}
	id, err := p.Exchange(ctx, c.Query("code"), h.derive("pkce", state), h.derive("nonce", state))
	if err != nil {
		outcome, mapped := classify(err)
		h.fail(c, name, outcome, mapped)
		return
	}
	out, err := h.d.Handler.Resolve(ctx, flow, id, meta)
	if err != nil {
		h.fail(c, name, "refused", err)
		return
	}
	target, _ := url.Parse(flow.RedirectURI) // on the allowlist: parsed at start
	q := target.Query()
	switch out.Kind {
	case "linked":
		q.Set("linked", name)
		h.d.Metrics.Observe(name, "linked")
	default:
		q.Set("code", out.Code)
		if out.Kind != "sign_in" {
			q.Set("link", "password_required")
			h.d.Metrics.Observe(name, "link_password_required")
		} else {
			h.d.Metrics.Observe(name, "signed_in")
		}
	}
	q.Set("provider", name)
	target.RawQuery = q.Encode()
	httpapi.SetConsistencyToken(c, out.Position)
	c.Header("Cache-Control", "no-store")
	redirect302(c, target.String())
}

// classify maps a provider's failure to an outcome label and the error
// the table answers.
func classify(err error) (string, error) {
	switch {
	case errors.Is(err, external.ErrUnavailable):
		return "unavailable", &commands.ProviderUnavailableError{RetryAfter: external.RetryAfter(err), Cause: err}
	case errors.Is(err, upstream.ErrNotAllowed):
		return "not_allowed", fmt.Errorf("%w: %w", commands.ErrUpstreamRefused, err)
	case errors.Is(err, upstream.ErrCodeRejected):
		return "code_rejected", fmt.Errorf("%w: %w", commands.ErrUpstreamFailed, err)
	default:
		return "invalid_token", fmt.Errorf("%w: %w", commands.ErrUpstreamFailed, err)
	}
}

func (h *handlers) exchange(c *gin.Context) {
	var body struct {
		Code     string `json:"code"`
		Password string `json:"password"`
	}
	if err := httpapi.BindJSON(c, &body); err != nil {
		httpapi.WriteError(c, err)
		return
	}
	if body.Code == "" {
		httpapi.WriteError(c, fmt.Errorf("%w: no code", commands.ErrUpstreamFlowInvalid))
		return
	}
	r, err := h.d.Handler.Exchange(c.Request.Context(), body.Code, body.Password, anonymous(c))
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	h.d.TokenResponse(c, r)
}

func (h *handlers) link(c *gin.Context) {
	caller, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	p, ok := h.provider(c)
	if !ok {
		return
	}
	h.begin(c, p, &caller)
}

func (h *handlers) unlink(c *gin.Context) {
	caller, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	meta := commands.RequestMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent(), caller.Actor())
	pos, err := h.d.Handler.UnlinkExternalIdentity(c.Request.Context(), caller.UserID, c.Param("provider"), meta)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	httpapi.SetConsistencyToken(c, pos)
	c.Status(http.StatusNoContent)
}

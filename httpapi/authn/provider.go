package authn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/authledger/authledger/auth/external"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
)

// ProviderValidator verifies the external provider's JWTs
// (*external.TokenValidator).
type ProviderValidator interface {
	Validate(ctx context.Context, raw string) (*external.Claims, error)
}

// LinkedUser is the local user a provider subject is linked to.
type LinkedUser struct {
	UserID uuid.UUID
	Roles  []string
}

// LinkedUsers finds the local user linked to a provider subject, from the
// event store (strongly consistent: a link made by a login just now is
// found). ok is false for a subject no user is linked to.
type LinkedUsers interface {
	Linked(ctx context.Context, subject string) (u LinkedUser, ok bool, err error)
}

// ProviderTokens makes the middleware accept the external identity
// provider's access tokens beside ours (issue 18 item 6).
type ProviderTokens struct {
	// Issuer is the provider's iss (AUTHLEDGER_EXTERNAL_AUTH_ISSUER): a
	// token claiming it is verified by Validator, any other by our key
	// ring.
	Issuer    string
	Validator ProviderValidator
	Users     LinkedUsers
}

// Option adjusts Middleware.
type Option func(*options)

type options struct {
	provider    *ProviderTokens
	permissions PermissionSource
	cutoffs     *Cutoffs
	apiKeys     APIKeys
	keyUsed     func(keyID uuid.UUID, at time.Time)
}

// APIKeys checks a presented API key (auth/apikey.Keys.Authenticate
// behind a small adapter): the key and its owner, the key's scopes, or
// an error wrapping ErrInvalidAPIKey for any refusal.
type APIKeys interface {
	AuthenticateKey(ctx context.Context, raw string, now time.Time) (keyID, owner uuid.UUID, scopes access.Set, err error)
}

// ErrInvalidAPIKey is what an APIKeys refusal wraps: the middleware
// answers it as an invalid token.
var ErrInvalidAPIKey = errors.New("authn: invalid API key")

// WithAPIKeys accepts API keys (a Bearer credential with the al_ prefix)
// beside access tokens: the caller is the key's owner holding the
// intersection of the owner's permissions now and the key's scopes.
// used is told of each accepted key (auth/apikey.Usage.Touch), in
// memory: no write per request.
func WithAPIKeys(keys APIKeys, used func(keyID uuid.UUID, at time.Time)) Option {
	return func(o *options) { o.apiKeys, o.keyUsed = keys, used }
}

// keyPrefix tells an API key from a JWT (auth/apikey.Prefix; a JWT
// starts with "ey", its header's base64).
const keyPrefix = "al_"

// apiKeyPrincipal authenticates an API key; false when it has answered.
func (o *options) apiKeyPrincipal(c *gin.Context, raw string) (httpapi.Principal, bool) {
	now := time.Now()
	keyID, owner, scopes, err := o.apiKeys.AuthenticateKey(c.Request.Context(), raw, now)
	if errors.Is(err, ErrInvalidAPIKey) {
		c.Header("WWW-Authenticate", `Bearer error="invalid_token"`)
		httpapi.WriteError(c, fmt.Errorf("%w: %w", token.ErrInvalidToken, err))
		return httpapi.Principal{}, false
	}
	if err != nil {
		// Fail closed: the key may have been revoked since the follower
		// last vouched (503, retry).
		httpapi.WriteError(c, err)
		return httpapi.Principal{}, false
	}
	p := httpapi.Principal{UserID: owner, APIKeyID: keyID}
	if !o.resolve(c, &p) {
		return p, false
	}
	p.Permissions = p.Permissions.Intersect(scopes)
	if o.keyUsed != nil {
		o.keyUsed(keyID, now)
	}
	return p, true
}

// WithCutoffs refuses (401 invalid-token) an access token whose session
// a bulk revocation ended: its auth_time (its iat when it has none) is
// before a cutoff that applies to its user.
func WithCutoffs(c *Cutoffs) Option {
	return func(o *options) { o.cutoffs = c }
}

// PermissionSource answers what a user holds now (auth/access.Live).
type PermissionSource interface {
	Permissions(ctx context.Context, userID uuid.UUID) (access.Set, error)
}

// WithPermissions resolves each caller's permissions per request from
// src (httpapi.Principal.Permissions). Without it every caller holds
// none, and every route that requires one answers 403.
func WithPermissions(src PermissionSource) Option {
	return func(o *options) { o.permissions = src }
}

// WithProviderTokens accepts the provider's tokens as p says. A provider
// token names no session of ours, so a revocation (logout) does not reach
// it: it is accepted until its own exp (about an hour with Azure AD).
func WithProviderTokens(p ProviderTokens) Option {
	return func(o *options) { o.provider = &p }
}

// providerKeysRetry is the Retry-After of an answer given while the
// provider's keys cannot be fetched: the validator tries again at most
// once a minute for an unknown kid, sooner for no keys at all.
const providerKeysRetry = 5 * time.Second

// unverifiedIssuer reads a JWT's iss without verifying anything, only to
// choose the key set that will (jwx, never a hand-made parser); "" when
// raw is not a JWT with an issuer.
func unverifiedIssuer(raw string) string {
	tok, err := jwt.ParseInsecure([]byte(raw))
	if err != nil {
		return ""
	}
	iss, _ := tok.Issuer()
	return iss
}

// providerPrincipal verifies a provider token and finds its linked user.
// A token that does not verify and a subject linked to nobody are both
// 401 invalid-token, the same answer as a bad token of ours; keys that
// cannot be had are 503 (fail closed: the token may be valid).
func (p *ProviderTokens) providerPrincipal(c *gin.Context, raw string) (httpapi.Principal, bool) {
	ctx := c.Request.Context()
	cl, err := p.Validator.Validate(ctx, raw)
	if errors.Is(err, external.ErrKeysUnavailable) {
		httpapi.WriteError(c, problem.Unavailable(providerKeysRetry, "The identity provider's keys cannot be fetched to check this token; retry later.").WithCause(err))
		return httpapi.Principal{}, false
	}
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer error="invalid_token"`)
		httpapi.WriteError(c, fmt.Errorf("%w: provider token: %w", token.ErrInvalidToken, err))
		return httpapi.Principal{}, false
	}
	u, ok, err := p.Users.Linked(ctx, cl.Subject)
	if err != nil {
		httpapi.WriteError(c, err)
		return httpapi.Principal{}, false
	}
	if !ok {
		c.Header("WWW-Authenticate", `Bearer error="invalid_token"`)
		httpapi.WriteError(c, fmt.Errorf("%w: the provider's subject is linked to no user", token.ErrInvalidToken))
		return httpapi.Principal{}, false
	}
	return httpapi.Principal{UserID: u.UserID, Roles: u.Roles}, true
}

// bearer extracts the Bearer token of the request, "" when there is none.
func bearer(c *gin.Context) string {
	scheme, raw, ok := strings.Cut(c.GetHeader("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(raw)
}

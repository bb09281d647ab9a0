// Package oauth2 serves token introspection (RFC 7662, POST
// /oauth2/introspect) and token revocation (RFC 7009, POST
// /oauth2/revoke) for other services: form-encoded requests, as the
// RFCs say, by a caller holding tokens:introspect (a service account's
// API key, typically). Introspection answers from the same checks the
// authentication middleware makes (signature and expiry, the session
// revocation set, the API key view), so a revoked session's token is
// inactive at once (docs/adr/0007, 0029).
package oauth2

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	authapikey "github.com/authledger/authledger/auth/apikey"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/access"
	domain "github.com/authledger/authledger/domain/apikey"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/httpapi"
)

// The endpoints' paths (the discovery document names them).
const (
	IntrospectPath = "/oauth2/introspect"
	RevokePath     = "/oauth2/revoke"
)

// maxForm bounds a request's form: a token and a hint.
const maxForm = 16 << 10

// Revocations is the session revocation set (httpapi/authn.Revocations).
type Revocations interface {
	Check(ctx context.Context, sid uuid.UUID) (bool, error)
	// Add marks a session this instance has just revoked, so that its
	// tokens are refused and inactive here at once, before the feed
	// delivers the event (other instances: within its lag).
	Add(sid uuid.UUID, revokedAt time.Time)
}

// Keys checks API keys (auth/apikey.Keys).
type Keys interface {
	Authenticate(ctx context.Context, raw string, now time.Time) (authapikey.Caller, error)
	Observe(e events.Event)
}

// Permissions is what a user holds now (auth/access.Live).
type Permissions interface {
	Permissions(ctx context.Context, userID uuid.UUID) (access.Set, error)
}

// Deps are what the endpoints need, built by cmd/.
type Deps struct {
	// Authenticated is the chain of an authenticated route (the Bearer
	// middleware and the per-user limit).
	Authenticated []gin.HandlerFunc
	Verifier      *token.Verifier
	Revocations   Revocations
	Keys          Keys
	Permissions   Permissions
	RevokeSession *commands.RevokeSessionHandler
	RevokeRefresh *commands.RevokeRefreshTokenHandler
	RevokeKey     *commands.RevokeAPIKeyHandler
	// InspectRefresh answers for refresh tokens (their session's stream).
	InspectRefresh *commands.InspectRefreshTokenHandler
}

// Validate reports every missing dependency at once.
func (d Deps) Validate() error {
	if len(d.Authenticated) == 0 || d.Verifier == nil || d.Revocations == nil || d.Keys == nil || d.Permissions == nil ||
		d.RevokeSession == nil || d.RevokeRefresh == nil || d.RevokeKey == nil || d.InspectRefresh == nil {
		return errors.New("httpapi/oauth2: Deps needs Authenticated, the Verifier, Revocations, Keys, Permissions, the three revoke handlers and InspectRefresh")
	}
	return nil
}

// Mount registers the endpoints on rg, the engine's root group.
func Mount(rg *gin.RouterGroup, d Deps) error {
	if err := d.Validate(); err != nil {
		return err
	}
	h := &handlers{d: d}
	chain := func(f gin.HandlerFunc) []gin.HandlerFunc {
		return append(append([]gin.HandlerFunc{}, d.Authenticated...), httpapi.Require(access.TokensIntrospect), f)
	}
	rg.POST(IntrospectPath, chain(h.introspect)...)
	rg.POST(RevokePath, chain(h.revoke)...)
	return nil
}

type handlers struct{ d Deps }

// form reads the request's token and hint; false after answering 400.
func form(c *gin.Context) (tok, hint string, ok bool) {
	ct := strings.ToLower(strings.TrimSpace(strings.Split(c.GetHeader("Content-Type"), ";")[0]))
	if ct != "application/x-www-form-urlencoded" {
		httpapi.WriteError(c, &user.InvalidInputError{Field: "Content-Type", Message: "must be application/x-www-form-urlencoded (RFC 7662, RFC 7009)"})
		return "", "", false
	}
	// The body only: a token in the query string would be logged by
	// every proxy on the way (RFC 7662 section 2.1 says POST form).
	raw, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxForm))
	var vals url.Values
	if err == nil {
		vals, err = url.ParseQuery(string(raw))
	}
	if err != nil {
		httpapi.WriteError(c, &user.InvalidInputError{Field: "token", Message: "the form cannot be read (at most 16 KiB, URL-encoded)"})
		return "", "", false
	}
	tok = vals.Get("token")
	if tok == "" {
		httpapi.WriteError(c, &user.InvalidInputError{Field: "token", Message: "is required"})
		return "", "", false
	}
	return tok, vals.Get("token_type_hint"), true
}

// inactive is the one answer for a token that is not active, whatever
// the reason (RFC 7662 section 2.2: nothing more may be told).
var inactive = gin.H{"active": false}

func (h *handlers) introspect(c *gin.Context) {
	raw, _, ok := form(c)
	if !ok {
		return
	}
	ctx, now := c.Request.Context(), time.Now()
	c.Header("Cache-Control", "no-store")
	if authapikey.IsKey(raw) {
		k, err := h.d.Keys.Authenticate(ctx, raw, now)
		if errors.Is(err, domain.ErrInvalid) {
			c.JSON(http.StatusOK, inactive)
			return
		}
		if err != nil {
			httpapi.WriteError(c, err)
			return
		}
		held, err := h.d.Permissions.Permissions(ctx, k.OwnerID)
		if err != nil {
			httpapi.WriteError(c, err)
			return
		}
		scope := make([]string, 0, len(k.Scopes))
		for _, p := range held.Intersect(k.Scopes).Sorted() {
			scope = append(scope, string(p))
		}
		c.JSON(http.StatusOK, gin.H{"active": true, "token_type": "api_key", "sub": k.OwnerID, "client_id": k.KeyID,
			"scope": strings.Join(scope, " "), "exp": k.ExpiresAt.Unix(), "iat": k.CreatedAt.Unix()})
		return
	}
	if strings.Count(raw, ".") != 2 {
		// Not a JWT's shape: a refresh token, or garbage.
		h.introspectRefresh(c, raw)
		return
	}
	cl, err := h.d.Verifier.Verify(raw, now)
	if err != nil {
		// Malformed, forged or expired.
		c.JSON(http.StatusOK, inactive)
		return
	}
	revoked, err := h.d.Revocations.Check(ctx, cl.SessionID)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	if revoked {
		c.JSON(http.StatusOK, inactive)
		return
	}
	held, err := h.d.Permissions.Permissions(ctx, cl.UserID)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	scope := make([]string, 0, len(held))
	for _, p := range held.Sorted() {
		scope = append(scope, string(p))
	}
	body := gin.H{"active": true, "token_type": "access_token", "sub": cl.UserID, "sid": cl.SessionID,
		"iss": cl.Issuer, "exp": cl.ExpiresAt.Unix(), "iat": cl.IssuedAt.Unix(), "jti": cl.ID,
		"scope": strings.Join(scope, " "), "roles": cl.Roles}
	if len(cl.Audience) == 1 {
		body["aud"] = cl.Audience[0]
	} else if len(cl.Audience) > 1 {
		body["aud"] = cl.Audience
	}
	c.JSON(http.StatusOK, body)
}

// introspectRefresh answers for a refresh token: active while it is its
// session's current one and the session can be refreshed.
func (h *handlers) introspectRefresh(c *gin.Context, raw string) {
	st, err := h.d.InspectRefresh.Handle(c.Request.Context(), raw)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	if !st.Active {
		c.JSON(http.StatusOK, inactive)
		return
	}
	c.JSON(http.StatusOK, gin.H{"active": true, "token_type": "refresh_token", "sub": st.UserID, "sid": st.SessionID,
		"exp": st.ExpiresAt.Unix(), "iat": st.StartedAt.Unix()})
}

// revoke ends what the token names: a refresh token's session, an access
// token's session (our access tokens cannot be revoked one by one, and
// RFC 7009 section 2.1 lets the server revoke the grant behind one),
// an API key. An invalid token is answered 200 like a revoked one (RFC
// 7009 section 2.2).
func (h *handlers) revoke(c *gin.Context) {
	// The hint is not needed: the token's shape tells its type (RFC 7009
	// section 2.1 lets the server look beyond the hint).
	raw, _, ok := form(c)
	if !ok {
		return
	}
	p, _ := httpapi.Caller(c)
	ctx, now := c.Request.Context(), time.Now()
	m := commands.RequestMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent(), p.Actor())
	var err error
	switch {
	case authapikey.IsKey(raw):
		var k authapikey.Caller
		if k, err = h.d.Keys.Authenticate(ctx, raw, now); err == nil {
			var res commands.RevokeAPIKeyResult
			if res, err = h.d.RevokeKey.Handle(ctx, commands.RevokeAPIKey{KeyID: k.KeyID, OwnerID: k.OwnerID, Meta: m}); err == nil && res.Revoked.KeyID != uuid.Nil {
				h.d.Keys.Observe(res.Revoked)
			}
		}
		if errors.Is(err, domain.ErrInvalid) {
			err = nil
		}
	case strings.Count(raw, ".") == 2:
		// A JWT's shape: an access token.
		if cl, verr := h.d.Verifier.Verify(raw, now); verr == nil {
			_, err = h.d.RevokeSession.Handle(ctx, commands.RevokeSession{SessionID: cl.SessionID, UserID: cl.UserID, Reason: session.ReasonTokenRevoked, Meta: m})
			switch {
			case errors.Is(err, commands.ErrSessionNotFound):
				err = nil
			case err == nil:
				h.d.Revocations.Add(cl.SessionID, now)
			}
		}
	default:
		var res commands.RevokeRefreshTokenResult
		if res, err = h.d.RevokeRefresh.Handle(ctx, commands.RevokeRefreshToken{RefreshToken: raw, Meta: m}); err == nil && res.SessionID != uuid.Nil {
			h.d.Revocations.Add(res.SessionID, res.RevokedAt)
		}
	}
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusOK)
}

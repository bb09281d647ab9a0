// Package identity serves the Identity endpoints of API.md that write
// (register, login, refresh, logout, delete session) and the well-known
// documents. Every command response carries X-Consistency-Token.
package identity

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/password"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/authn"
	"github.com/authledger/authledger/httpapi/problem"
	"github.com/authledger/authledger/httpapi/ratelimit"
)

// ConsistencyHeader carries the log position a command wrote.
const ConsistencyHeader = "X-Consistency-Token"

// Deps are what the endpoints need, built by cmd/.
type Deps struct {
	Register   *commands.RegisterHandler
	Login      *commands.LoginHandler
	Refresh    *commands.RefreshHandler
	Revoke     *commands.RevokeSessionHandler
	Auth       gin.HandlerFunc // authn.Middleware
	Ring       *keys.RingHolder
	PublicURL  string // issuer, base of jwks_uri
	Algorithms []string
	AccessTTL  time.Duration
	// RateLimit guards register, login and refresh per client network
	// (user.Source of the client IP); nil means no limit.
	RateLimit *ratelimit.Limiter
	// UserRateLimit guards every authenticated route per user (the
	// token's subject), after Auth; nil means no limit.
	UserRateLimit *ratelimit.Limiter
}

// Mount registers the endpoints on e.
func Mount(e *gin.Engine, d Deps) {
	rl := d.RateLimit.Middleware(clientNetwork, "Too many requests from this address; retry later.")
	e.POST("/v1/auth/register", rl, d.register)
	e.POST("/v1/auth/login", rl, d.login)
	e.POST("/v1/auth/refresh", rl, d.refresh)
	e.POST("/v1/auth/logout", append(d.Authenticated(), d.logout)...)
	e.DELETE("/v1/auth/sessions/:id", append(d.Authenticated(), d.deleteSession)...)
	e.GET("/.well-known/jwks.json", d.jwks)
	e.GET("/.well-known/openid-configuration", d.discovery)
}

// Authenticated is the chain every authenticated route starts with: the
// Bearer middleware, then the per-user rate limit. Mount the /v1 group
// with it.
func (d Deps) Authenticated() []gin.HandlerFunc {
	return []gin.HandlerFunc{d.Auth, d.UserRateLimit.Middleware(subject, "Too many requests for this account; retry later.")}
}

// clientNetwork keys the anonymous routes' limit: an IPv6 client is one
// /64, as in the login throttle, or a single client could spread over
// 2^64 buckets.
func clientNetwork(c *gin.Context) (string, bool) { return user.Source(c.ClientIP()), true }

// subject keys the authenticated routes' limit by user; a request the
// Bearer middleware let through without claims is not limited here.
func subject(c *gin.Context) (string, bool) {
	cl, ok := authn.Claims(c)
	if !ok {
		return "", false
	}
	return cl.UserID.String(), true
}

func anonymous(c *gin.Context) commands.Meta {
	return commands.AnonymousMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent())
}

func authenticated(c *gin.Context) commands.Meta {
	m := anonymous(c)
	if cl, ok := authn.Claims(c); ok {
		m.Actor = events.Actor{Kind: events.ActorUser, ID: cl.UserID.String()}
	}
	return m
}

func consistency(c *gin.Context, p eventstore.Position) {
	if !p.IsZero() {
		c.Header(ConsistencyHeader, p.String())
	}
}

func bind(c *gin.Context, v any) bool {
	if err := httpapi.BindJSON(c, v); err != nil {
		httpapi.WriteError(c, err)
		return false
	}
	return true
}

func (d Deps) register(c *gin.Context) {
	var body struct {
		Email       string `json:"email"`
		Password    string `json:"password"`
		DisplayName string `json:"display_name"`
	}
	if !bind(c, &body) {
		return
	}
	res, err := d.Register.Handle(c.Request.Context(), commands.Register{Email: body.Email, Password: body.Password, DisplayName: body.DisplayName, Meta: anonymous(c)})
	switch {
	case errors.Is(err, user.ErrInvalidInput) || errors.Is(err, password.ErrPolicy):
		var fields []problem.FieldError
		for _, fe := range user.FieldErrors(err) {
			fields = append(fields, problem.FieldError{Field: fe.Field, Message: fe.Message})
		}
		var pe *password.PolicyError
		if errors.As(err, &pe) {
			fields = append(fields, problem.FieldError{Field: "password", Message: pe.Message})
		}
		httpapi.WriteError(c, problem.Invalid("Some fields are invalid.", fields...))
	case errors.Is(err, user.ErrEmailTaken):
		httpapi.WriteError(c, problem.Conflict("email-taken", "This email address is already registered."))
	case err != nil:
		httpapi.WriteError(c, err)
	default:
		consistency(c, res.Position)
		c.JSON(http.StatusCreated, gin.H{"user_id": res.UserID})
	}
}

func (d Deps) tokenResponse(c *gin.Context, r commands.LoginResult) {
	consistency(c, r.Position)
	c.Header("Cache-Control", "no-store")
	body := gin.H{
		"access_token":  r.AccessToken,
		"token_type":    "Bearer",
		"expires_in":    int(time.Until(r.Claims.ExpiresAt).Round(time.Second).Seconds()),
		"refresh_token": r.RefreshToken,
		"session_id":    r.SessionID,
		"user":          gin.H{"id": r.User.ID, "email": r.User.Email, "display_name": r.User.DisplayName},
	}
	if r.DeviceToken != "" {
		body["device_token"] = r.DeviceToken
		d.setDeviceCookie(c, r)
	}
	c.JSON(http.StatusOK, body)
}

// DeviceCookie carries the known-device token of a browser between logins
// (a client without cookies sends the login's device_token back instead).
const DeviceCookie = "authledger_device"

// setDeviceCookie keeps the device token where only the login endpoint
// sees it: HttpOnly, SameSite=Strict, Secure behind an https public URL.
func (d Deps) setDeviceCookie(c *gin.Context, r commands.LoginResult) {
	path, secure := "/v1/auth/login", false
	if u, err := url.Parse(d.PublicURL); err == nil {
		path, secure = strings.TrimRight(u.Path, "/")+path, u.Scheme == "https"
	}
	// Secure follows the public URL: a development server on plain http
	// would otherwise hand out a cookie its clients never send back.
	http.SetCookie(c.Writer, &http.Cookie{ //nolint:gosec // Secure is set behind https, see above
		Name: DeviceCookie, Value: r.DeviceToken, Path: path, Expires: r.DeviceExpiresAt,
		MaxAge: int(time.Until(r.DeviceExpiresAt).Seconds()), Secure: secure, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

func (d Deps) login(c *gin.Context) {
	var body struct {
		Email       string `json:"email"`
		Password    string `json:"password"`
		DeviceToken string `json:"device_token"`
	}
	if !bind(c, &body) {
		return
	}
	device := body.DeviceToken
	if device == "" {
		device, _ = c.Cookie(DeviceCookie)
	}
	r, err := d.Login.Handle(c.Request.Context(), commands.Login{Email: body.Email, Password: body.Password, DeviceToken: device, Meta: anonymous(c)})
	var throttled *user.ThrottledError
	switch {
	case errors.Is(err, commands.ErrInvalidCredentials):
		httpapi.WriteError(c, problem.Unauthenticated("invalid-credentials", "The email or password is incorrect."))
	case errors.As(err, &throttled):
		// Answered at once, never by holding the request: a waiting
		// attacker costs nothing but this response.
		httpapi.WriteError(c, problem.RateLimited("rate-limited", throttled.RetryAfter, "Too many failed logins from here; retry later."))
	case err != nil:
		httpapi.WriteError(c, err)
	default:
		d.tokenResponse(c, r)
	}
}

func (d Deps) refresh(c *gin.Context) {
	var body struct {
		RefreshToken string `json:"refresh_token"`
	}
	if !bind(c, &body) {
		return
	}
	r, err := d.Refresh.Handle(c.Request.Context(), commands.Refresh{RefreshToken: body.RefreshToken, Meta: anonymous(c)})
	if errors.Is(err, commands.ErrInvalidToken) {
		httpapi.WriteError(c, problem.Unauthenticated("invalid-token", "The refresh token is invalid, expired or revoked."))
		return
	}
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	d.tokenResponse(c, r)
}

func (d Deps) revoke(c *gin.Context, sid uuid.UUID, reason session.Reason) {
	cl, _ := authn.Claims(c)
	res, err := d.Revoke.Handle(c.Request.Context(), commands.RevokeSession{SessionID: sid, UserID: cl.UserID, Reason: reason, Meta: authenticated(c)})
	if errors.Is(err, commands.ErrSessionNotFound) {
		httpapi.WriteError(c, problem.NotFound("No such session."))
		return
	}
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	consistency(c, res.Position)
	c.Status(http.StatusNoContent)
}

func (d Deps) logout(c *gin.Context) {
	cl, _ := authn.Claims(c)
	d.revoke(c, cl.SessionID, session.ReasonLogout)
}

func (d Deps) deleteSession(c *gin.Context) {
	sid, err := uuid.Parse(c.Param("id"))
	if err != nil {
		httpapi.WriteError(c, problem.NotFound("No such session."))
		return
	}
	d.revoke(c, sid, session.ReasonDeleted)
}

func (d Deps) jwks(c *gin.Context) {
	b, err := d.Ring.Load().JWKSJSON(time.Now())
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	c.Header("Cache-Control", "public, max-age=300")
	c.Data(http.StatusOK, "application/json", b)
}

func (d Deps) discovery(c *gin.Context) {
	base := strings.TrimRight(d.PublicURL, "/")
	c.Header("Cache-Control", "public, max-age=300")
	c.JSON(http.StatusOK, gin.H{
		"issuer":                                base,
		"jwks_uri":                              base + "/.well-known/jwks.json",
		"token_endpoint":                        base + "/v1/auth/login",
		"userinfo_endpoint":                     base + "/v1/me",
		"response_types_supported":              []string{"token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": d.Algorithms,
		"token_endpoint_auth_methods_supported": []string{"none"},
		"grant_types_supported":                 []string{"password", "refresh_token"},
		"claims_supported":                      []string{"iss", "sub", "aud", "exp", "iat", "jti", "sid", "amr", "roles", "name"},
	})
}

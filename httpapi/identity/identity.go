// Package identity serves the Identity endpoints of API.md that write
// (register, login, refresh, logout, delete session) and the well-known
// documents. Every command response carries X-Consistency-Token; every
// error goes to httpapi.WriteError as the command returned it (the error
// table decides the answer).
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
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/ratelimit"
)

// Deps are what the endpoints need, built by cmd/.
type Deps struct {
	Register *commands.RegisterHandler
	Login    *commands.LoginHandler
	Refresh  *commands.RefreshHandler
	Revoke   *commands.RevokeSessionHandler
	// Auth is authn.Middleware: it verifies the Bearer token and records
	// the caller.
	Auth       gin.HandlerFunc
	Ring       *keys.RingHolder
	PublicURL  string // issuer, base of jwks_uri
	Algorithms []string
	// RateLimit is every rate limit (docs/adr/0026): per client network
	// on register, login and refresh, per account on login, per
	// credential and route class on every authenticated route, after
	// Auth; nil means no limit.
	RateLimit *ratelimit.Limiter
	// Rollout and RolloutState, when both set, serve GET and PUT
	// /v1/admin/rollout (rollout:read, rollout:write); ExternalAuthMode is
	// AUTHLEDGER_USE_EXTERNAL_AUTH, shown beside them.
	Rollout          *commands.ConfigureRolloutHandler
	RolloutState     RolloutState
	ExternalAuthMode string
	// Account, when set, serves email verification, password reset and
	// change, and PATCH /v1/me (account.go).
	Account *AccountDeps
	// MFA, when set, serves the second-factor routes (mfa.go); the login
	// handler must carry the same commands (LoginHandler.MFA).
	MFA *commands.SecondFactors
}

// Validate reports every missing dependency at once.
func (d Deps) Validate() error {
	var errs []error
	if d.Register == nil || d.Login == nil || d.Refresh == nil || d.Revoke == nil {
		errs = append(errs, errors.New("httpapi/identity: Deps needs the register, login, refresh and revoke handlers"))
	}
	if d.Auth == nil {
		errs = append(errs, errors.New("httpapi/identity: Deps needs Auth (authn.Middleware)"))
	}
	if d.Ring == nil {
		errs = append(errs, errors.New("httpapi/identity: Deps needs the key Ring"))
	}
	if d.PublicURL == "" {
		errs = append(errs, errors.New("httpapi/identity: Deps needs the PublicURL"))
	}
	errs = append(errs, d.Account.validate())
	return errors.Join(errs...)
}

// Mount registers the endpoints on rg, the engine's root group: the
// /v1/auth routes and the well-known documents.
func Mount(rg *gin.RouterGroup, d Deps) error {
	if err := d.Validate(); err != nil {
		return err
	}
	h := &handlers{d: d}
	rl := d.RateLimit.Anonymous()
	rg.POST("/v1/auth/register", rl, h.register)
	rg.POST("/v1/auth/login", rl, h.login)
	rg.POST("/v1/auth/refresh", rl, h.refresh)
	rg.POST("/v1/auth/logout", d.authenticated(access.AccountSessionsRevoke, h.logout)...)
	rg.DELETE("/v1/auth/sessions/:id", d.authenticated(access.AccountSessionsRevoke, h.deleteSession)...)
	if d.Account != nil {
		h.mountAccount(rg)
	}
	if d.MFA != nil {
		h.mountMFA(rg)
		h.mountPasskeys(rg)
	}
	if d.Rollout != nil && d.RolloutState != nil {
		rg.GET("/v1/admin/rollout", d.authenticated(access.RolloutRead, h.getRollout)...)
		rg.PUT("/v1/admin/rollout", d.authenticated(access.RolloutWrite, h.putRollout)...)
	}
	rg.GET("/.well-known/jwks.json", h.jwks)
	rg.GET("/.well-known/openid-configuration", h.discovery)
	return nil
}

// Authenticated is the chain every authenticated route starts with: the
// Bearer middleware, then the per-credential and per-route-class rate
// limits. Mount the /v1 group with it.
func (d Deps) Authenticated() []gin.HandlerFunc {
	return []gin.HandlerFunc{d.Auth, d.RateLimit.Authenticated()}
}

// authenticated is the chain of one authenticated route: Authenticated,
// the permission it needs, then h.
func (d Deps) authenticated(need access.Permission, h gin.HandlerFunc) []gin.HandlerFunc {
	return append(d.Authenticated(), httpapi.Require(need), h)
}

type handlers struct{ d Deps }

func anonymous(c *gin.Context) commands.Meta {
	return commands.AnonymousMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent())
}

func bind(c *gin.Context, v any) bool {
	if err := httpapi.BindJSON(c, v); err != nil {
		httpapi.WriteError(c, err)
		return false
	}
	return true
}

func (h *handlers) register(c *gin.Context) {
	var body struct {
		Email       string `json:"email"`
		Password    string `json:"password"`
		DisplayName string `json:"display_name"`
		// TermsVersion accepts that version of the terms (required when
		// AUTHLEDGER_TERMS_VERSION is set).
		TermsVersion string `json:"terms_version"`
	}
	if !bind(c, &body) {
		return
	}
	res, err := h.d.Register.Handle(c.Request.Context(), commands.Register{Email: body.Email, Password: body.Password, DisplayName: body.DisplayName,
		TermsVersion: body.TermsVersion, Meta: anonymous(c)})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	httpapi.SetConsistencyToken(c, res.Position)
	if h.d.Account != nil && h.d.Account.EnumerationSafe {
		// The same answer for a new address and a taken one, whose owner
		// is mailed instead (the consistency token is set for both).
		c.JSON(http.StatusAccepted, acceptedBody)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"user_id": res.UserID})
}

func (h *handlers) tokenResponse(c *gin.Context, r commands.LoginResult) {
	WriteTokenResponse(c, h.d.PublicURL, r)
}

// WriteTokenResponse answers with a session's tokens: the one
// TokenResponse of every login (password, external, upstream).
func WriteTokenResponse(c *gin.Context, publicURL string, r commands.LoginResult) {
	WriteTokenResponseWith(c, publicURL, r, nil)
}

// WriteTokenResponseWith is WriteTokenResponse with extra members (the
// backup codes of a login that set up its first factor); a nil value is
// left out.
func WriteTokenResponseWith(c *gin.Context, publicURL string, r commands.LoginResult, extra gin.H) {
	httpapi.SetConsistencyToken(c, r.Position)
	c.Header("Cache-Control", "no-store")
	body := gin.H{
		"access_token":  r.AccessToken,
		"token_type":    "Bearer",
		"expires_in":    int(time.Until(r.Claims.ExpiresAt).Round(time.Second).Seconds()),
		"refresh_token": r.RefreshToken,
		"session_id":    r.SessionID,
		"user":          gin.H{"id": r.User.ID, "email": r.User.Email, "display_name": r.User.DisplayName},
	}
	for k, v := range extra {
		if v != nil {
			body[k] = v
		}
	}
	if r.DeviceToken != "" {
		body["device_token"] = r.DeviceToken
		setDeviceCookie(c, publicURL, r)
	}
	c.JSON(http.StatusOK, body)
}

// DeviceCookie carries the known-device token of a browser between logins
// (a client without cookies sends the login's device_token back instead).
const DeviceCookie = "authledger_device"

// setDeviceCookie keeps the device token where only the login endpoint
// sees it: HttpOnly, SameSite=Strict, Secure behind an https public URL.
func setDeviceCookie(c *gin.Context, publicURL string, r commands.LoginResult) {
	path, secure := "/v1/auth/login", false
	if u, err := url.Parse(publicURL); err == nil {
		path, secure = strings.TrimRight(u.Path, "/")+path, u.Scheme == "https"
	}
	// Secure follows the public URL: a development server on plain http
	// would otherwise hand out a cookie its clients never send back.
	http.SetCookie(c.Writer, &http.Cookie{ //nolint:gosec // Secure is set behind https, see above
		Name: DeviceCookie, Value: r.DeviceToken, Path: path, Expires: r.DeviceExpiresAt,
		MaxAge: int(time.Until(r.DeviceExpiresAt).Seconds()), Secure: secure, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

func (h *handlers) login(c *gin.Context) {
	var body struct {
		Email       string `json:"email"`
		Password    string `json:"password"`
		DeviceToken string `json:"device_token"`
		// AcceptTerms accepts that version of the terms at this login
		// (after a 403 terms-acceptance-required).
		AcceptTerms string `json:"accept_terms"`
	}
	if !bind(c, &body) {
		return
	}
	device := body.DeviceToken
	if device == "" {
		device, _ = c.Cookie(DeviceCookie)
	}
	if !h.d.RateLimit.Account(c, body.Email, device != "") {
		return
	}
	// A throttled login is answered at once (429 with the wait), never by
	// holding the request: a waiting attacker costs nothing but this
	// response.
	r, err := h.d.Login.Handle(c.Request.Context(), commands.Login{Email: body.Email, Password: body.Password, DeviceToken: device,
		AcceptTerms: body.AcceptTerms, Meta: anonymous(c)})
	if err != nil {
		writeLoginError(c, err)
		return
	}
	h.tokenResponse(c, r)
}

func (h *handlers) refresh(c *gin.Context) {
	var body struct {
		RefreshToken string `json:"refresh_token"`
	}
	if !bind(c, &body) {
		return
	}
	r, err := h.d.Refresh.Handle(c.Request.Context(), commands.Refresh{RefreshToken: body.RefreshToken, Meta: anonymous(c)})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	h.tokenResponse(c, r)
}

// revoke ends session sid of the caller; a session of anyone else is not
// found, like a missing one.
func (h *handlers) revoke(c *gin.Context, p httpapi.Principal, sid uuid.UUID, reason session.Reason) {
	meta := commands.RequestMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent(), p.Actor())
	res, err := h.d.Revoke.Handle(c.Request.Context(), commands.RevokeSession{SessionID: sid, UserID: p.UserID, Reason: reason, Meta: meta})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	httpapi.SetConsistencyToken(c, res.Position)
	c.Status(http.StatusNoContent)
}

func (h *handlers) logout(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	h.revoke(c, p, p.SessionID, session.ReasonLogout)
}

func (h *handlers) deleteSession(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	sid, err := uuid.Parse(c.Param("id"))
	if err != nil {
		// No session can have this id: the answer of a missing one.
		httpapi.WriteError(c, commands.ErrSessionNotFound)
		return
	}
	h.revoke(c, p, sid, session.ReasonDeleted)
}

func (h *handlers) jwks(c *gin.Context) {
	b, err := h.d.Ring.Load().JWKSJSON(time.Now())
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	c.Header("Cache-Control", "public, max-age=300")
	c.Data(http.StatusOK, "application/json", b)
}

func (h *handlers) discovery(c *gin.Context) {
	base := strings.TrimRight(h.d.PublicURL, "/")
	c.Header("Cache-Control", "public, max-age=300")
	c.JSON(http.StatusOK, gin.H{
		"issuer":                                base,
		"jwks_uri":                              base + "/.well-known/jwks.json",
		"token_endpoint":                        base + "/v1/auth/login",
		"userinfo_endpoint":                     base + "/v1/me",
		"response_types_supported":              []string{"token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": h.d.Algorithms,
		"token_endpoint_auth_methods_supported": []string{"none"},
		"grant_types_supported":                 []string{"password", "refresh_token"},
		"claims_supported":                      []string{"iss", "sub", "aud", "exp", "iat", "jti", "sid", "amr", "roles", "name"},
		// RFC 8414: the endpoints other services call with an API key
		// holding tokens:introspect (a Bearer credential).
		"introspection_endpoint":                        base + "/oauth2/introspect",
		"revocation_endpoint":                           base + "/oauth2/revoke",
		"introspection_endpoint_auth_methods_supported": []string{"bearer"},
		"revocation_endpoint_auth_methods_supported":    []string{"bearer"},
	})
}

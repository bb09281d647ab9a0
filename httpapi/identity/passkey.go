package identity

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/domain/mfa"
	"github.com/authledger/authledger/httpapi"
)

// mountPasskeys registers the passkey routes (docs/adr/0037): the
// caller's registration ceremony, the second factor's options (the
// answer goes to POST /v1/auth/mfa/verify, method webauthn) and the
// passwordless login, the last two anonymous.
func (h *handlers) mountPasskeys(rg *gin.RouterGroup) {
	rl := h.d.RateLimit.Anonymous()
	rg.POST("/v1/me/mfa/webauthn/register/begin", h.d.authenticated(access.AccountWrite, h.beginPasskeyRegistration)...)
	rg.POST("/v1/me/mfa/webauthn/register/finish", h.d.authenticated(access.AccountWrite, h.finishPasskeyRegistration)...)
	rg.POST("/v1/auth/mfa/webauthn/begin", rl, h.beginPasskeySecondFactor)
	rg.POST("/v1/auth/passkey/begin", rl, h.beginPasskeyLogin)
	rg.POST("/v1/auth/passkey/finish", rl, h.finishPasskeyLogin)
}

// writeOptions answers a ceremony's options: the JSON a browser passes
// to navigator.credentials.create or .get ({"publicKey": {...}}).
func writeOptions(c *gin.Context, options json.RawMessage) {
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "application/json; charset=utf-8", options)
}

func (h *handlers) beginPasskeyRegistration(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	options, err := h.d.MFA.BeginPasskeyRegistration(c.Request.Context(), p.UserID, stepUp(p))
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	writeOptions(c, options)
}

func (h *handlers) finishPasskeyRegistration(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	var body struct {
		Name       string          `json:"name"`
		Credential json.RawMessage `json:"credential"`
	}
	if !bind(c, &body) {
		return
	}
	r, err := h.d.MFA.FinishPasskeyRegistration(c.Request.Context(), p.UserID, stepUp(p), body.Name, body.Credential, callerMeta(c, p))
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	httpapi.SetConsistencyToken(c, r.Position)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, gin.H{"method_id": r.MethodID, "type": mfa.KindWebAuthn, "name": r.Name, "confirmed": true,
		"backup_codes": nonEmpty(r.BackupCodes)})
}

func (h *handlers) beginPasskeySecondFactor(c *gin.Context) {
	var body struct {
		MFAToken string `json:"mfa_token"`
	}
	if !bind(c, &body) {
		return
	}
	options, err := h.d.MFA.BeginPasskeySecondFactor(c.Request.Context(), body.MFAToken)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	writeOptions(c, options)
}

func (h *handlers) beginPasskeyLogin(c *gin.Context) {
	options, err := h.d.Login.BeginPasskeyLogin(c.Request.Context())
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	writeOptions(c, options)
}

func (h *handlers) finishPasskeyLogin(c *gin.Context) {
	var body struct {
		Credential json.RawMessage `json:"credential"`
	}
	if !bind(c, &body) {
		return
	}
	r, err := h.d.Login.FinishPasskeyLogin(c.Request.Context(), body.Credential, anonymous(c))
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	WriteTokenResponse(c, h.d.PublicURL, r)
}

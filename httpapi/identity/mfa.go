package identity

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/domain/mfa"
	"github.com/authledger/authledger/httpapi"
)

// mountMFA registers the second-factor routes (docs/adr/0032): the
// login's second step and the enrolment an mfa_token allows, both
// anonymous (the token is the credential), and the caller's own methods.
func (h *handlers) mountMFA(rg *gin.RouterGroup) {
	rl := h.d.RateLimit.Anonymous()
	rg.POST("/v1/auth/mfa/verify", rl, h.verifyMFA)
	rg.POST("/v1/auth/mfa/totp", rl, h.enrollTOTPWithToken)
	rg.POST("/v1/auth/mfa/send", rl, h.sendCode)
	rg.GET("/v1/me/mfa", h.d.authenticated(access.AccountRead, h.listMFA)...)
	rg.POST("/v1/me/mfa/totp", h.d.authenticated(access.AccountWrite, h.addTOTP)...)
	rg.POST("/v1/me/mfa/totp/confirm", h.d.authenticated(access.AccountWrite, h.confirmMethod(h.d.MFA.ConfirmTOTP))...)
	rg.POST("/v1/me/mfa/email", h.d.authenticated(access.AccountWrite, h.addEmail)...)
	rg.POST("/v1/me/mfa/sms", h.d.authenticated(access.AccountWrite, h.addPhone)...)
	rg.POST("/v1/me/mfa/sms/confirm", h.d.authenticated(access.AccountWrite, h.confirmMethod(h.d.MFA.ConfirmPhone))...)
	rg.POST("/v1/me/mfa/backup-codes", h.d.authenticated(access.AccountWrite, h.regenerateBackupCodes)...)
	rg.DELETE("/v1/me/mfa/:id", h.d.authenticated(access.AccountWrite, h.removeMFA)...)
}

// writeLoginError answers a refused login; a login stopped at its first
// factor carries the mfa_token, the methods and the token's expiry as
// extension members of its problem.
func writeLoginError(c *gin.Context, err error) {
	var mr *commands.MFARequiredError
	if errors.As(err, &mr) {
		c.Header("Cache-Control", "no-store")
		httpapi.WriteErrorMembers(c, err, map[string]any{
			"mfa_token": mr.Token, "methods": mr.Methods,
			"expires_in": int(time.Until(mr.ExpiresAt).Round(time.Second).Seconds()),
		})
		return
	}
	httpapi.WriteError(c, err)
}

func (h *handlers) verifyMFA(c *gin.Context) {
	var body struct {
		MFAToken string `json:"mfa_token"`
		Method   string `json:"method"`
		Code     string `json:"code"`
		// Credential is the passkey's assertion (method webauthn).
		Credential json.RawMessage `json:"credential"`
	}
	if !bind(c, &body) {
		return
	}
	r, err := h.d.Login.VerifySecondFactor(c.Request.Context(), commands.VerifySecondFactor{
		Token: body.MFAToken, Method: body.Method, Code: body.Code, Credential: body.Credential, Meta: anonymous(c)})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	WriteTokenResponseWith(c, h.d.PublicURL, r.LoginResult, gin.H{"backup_codes": nonEmpty(r.BackupCodes)})
}

func nonEmpty(codes []string) any {
	if len(codes) == 0 {
		return nil
	}
	return codes
}

func enrolmentBody(e commands.TOTPEnrolment) gin.H {
	return gin.H{"method_id": e.MethodID, "secret": e.Secret, "otpauth_uri": e.URI, "qr_png": e.QRPNG}
}

func (h *handlers) enrollTOTPWithToken(c *gin.Context) {
	var body struct {
		MFAToken string `json:"mfa_token"`
	}
	if !bind(c, &body) {
		return
	}
	e, err := h.d.MFA.EnrollTOTPWithChallenge(c.Request.Context(), body.MFAToken, anonymous(c))
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, enrolmentBody(e))
}

func callerMeta(c *gin.Context, p httpapi.Principal) commands.Meta {
	return commands.RequestMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent(), p.Actor())
}

func stepUp(p httpapi.Principal) commands.StepUp {
	return commands.StepUp{AMR: p.AMR, AuthTime: p.AuthTime}
}

func (h *handlers) listMFA(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	methods, err := h.d.MFA.ListMethods(c.Request.Context(), p.UserID)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	out := make([]gin.H, 0, len(methods))
	for _, m := range methods {
		item := gin.H{"id": m.ID, "type": m.Kind, "confirmed": m.Confirmed, "created_at": m.AddedAt}
		if m.Confirmed {
			item["confirmed_at"] = m.ConfirmedAt
		}
		if !m.LastUsedAt.IsZero() {
			item["last_used_at"] = m.LastUsedAt
		}
		if m.Kind == mfa.KindBackupCodes {
			item["remaining"] = m.Remaining
		}
		if m.Kind == mfa.KindSMS {
			item["phone"] = m.Phone
		}
		if m.Kind == mfa.KindWebAuthn {
			item["name"] = m.Name
		}
		out = append(out, item)
	}
	c.JSON(http.StatusOK, gin.H{"methods": out})
}

func (h *handlers) addTOTP(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	e, err := h.d.MFA.AddTOTP(c.Request.Context(), p.UserID, stepUp(p), callerMeta(c, p))
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	httpapi.SetConsistencyToken(c, e.Position)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, enrolmentBody(e))
}

// confirmMethod answers the confirmations of a new method by its first
// code: an authenticator app's (ConfirmTOTP) or a number's texted code
// (ConfirmPhone). Both answer the first backup codes when the method is
// the user's first.
func (h *handlers) confirmMethod(confirm func(ctx context.Context, userID, methodID uuid.UUID, code string, meta commands.Meta) (commands.ConfirmedTOTP, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, err := httpapi.Caller(c)
		if err != nil {
			httpapi.WriteError(c, err)
			return
		}
		var body struct {
			MethodID string `json:"method_id"`
			Code     string `json:"code"`
		}
		if !bind(c, &body) {
			return
		}
		id, err := uuid.Parse(body.MethodID)
		if err != nil {
			httpapi.WriteError(c, commands.ErrMFAMethodNotFound)
			return
		}
		r, err := confirm(c.Request.Context(), p.UserID, id, body.Code, callerMeta(c, p))
		if err != nil {
			httpapi.WriteError(c, err)
			return
		}
		httpapi.SetConsistencyToken(c, r.Position)
		c.Header("Cache-Control", "no-store")
		c.JSON(http.StatusOK, gin.H{"method_id": id, "confirmed": true, "backup_codes": nonEmpty(r.BackupCodes)})
	}
}

func (h *handlers) regenerateBackupCodes(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	r, err := h.d.MFA.RegenerateBackupCodes(c.Request.Context(), p.UserID, stepUp(p), callerMeta(c, p))
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	httpapi.SetConsistencyToken(c, r.Position)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, gin.H{"backup_codes": r.Codes})
}

func (h *handlers) removeMFA(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		httpapi.WriteError(c, commands.ErrMFAMethodNotFound)
		return
	}
	res, err := h.d.MFA.RemoveMethod(c.Request.Context(), p.UserID, id, stepUp(p), callerMeta(c, p))
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	httpapi.SetConsistencyToken(c, res.Position)
	c.Status(http.StatusNoContent)
}

// sendCode mails a code for a login's mfa_token (method email); 202 with
// the one body whatever happens next at the mail server.
func (h *handlers) sendCode(c *gin.Context) {
	var body struct {
		MFAToken string `json:"mfa_token"`
		Method   string `json:"method"`
	}
	if !bind(c, &body) {
		return
	}
	if err := h.d.MFA.SendCode(c.Request.Context(), body.MFAToken, body.Method, anonymous(c)); err != nil {
		httpapi.WriteError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, acceptedBody)
}

func (h *handlers) addEmail(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	id, pos, err := h.d.MFA.AddEmail(c.Request.Context(), p.UserID, stepUp(p), callerMeta(c, p))
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	httpapi.SetConsistencyToken(c, pos)
	c.JSON(http.StatusCreated, gin.H{"method_id": id, "type": mfa.KindEmail, "confirmed": true})
}

func (h *handlers) addPhone(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	var body struct {
		Phone string `json:"phone"`
	}
	if !bind(c, &body) {
		return
	}
	// Per number as well as per user: one number may be typed into many
	// accounts (the account level of the rate limit, keyed by an HMAC).
	if !h.d.RateLimit.Account(c, "sms:"+body.Phone, false) {
		return
	}
	e, err := h.d.MFA.AddPhone(c.Request.Context(), p.UserID, body.Phone, stepUp(p), callerMeta(c, p))
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	httpapi.SetConsistencyToken(c, e.Position)
	c.JSON(http.StatusCreated, gin.H{"method_id": e.MethodID, "type": mfa.KindSMS, "confirmed": false})
}

package identity

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/httpapi"
)

// AccountDeps are the account-security commands: email verification,
// password reset and change, profile update. Mounted only when all are
// set (commands.IdentityHandlers builds them together).
type AccountDeps struct {
	VerifyEmail        *commands.VerifyEmailHandler
	ResendVerification *commands.RequestEmailVerificationHandler
	RequestReset       *commands.RequestPasswordResetHandler
	ResetPassword      *commands.ResetPasswordHandler
	ChangePassword     *commands.ChangePasswordHandler
	UpdateProfile      *commands.UpdateProfileHandler
	// EnumerationSafe answers every registration 202 with the same body
	// (AUTHLEDGER_REQUIRE_VERIFIED_EMAIL).
	EnumerationSafe bool
}

func (a *AccountDeps) validate() error {
	if a == nil {
		return nil
	}
	if a.VerifyEmail == nil || a.ResendVerification == nil || a.RequestReset == nil || a.ResetPassword == nil ||
		a.ChangePassword == nil || a.UpdateProfile == nil {
		return errors.New("httpapi/identity: AccountDeps needs every account-security handler")
	}
	return nil
}

// acceptedBody is the one answer of the requests whose outcome must not
// tell whether an account exists.
var acceptedBody = gin.H{"status": "accepted"}

func (h *handlers) mountAccount(rg *gin.RouterGroup) {
	rl := h.d.RateLimit.Anonymous()
	rg.POST("/v1/auth/verify-email", rl, h.verifyEmail)
	rg.POST("/v1/auth/verify-email/resend", rl, h.resendVerification)
	rg.POST("/v1/auth/password-reset", rl, h.requestReset)
	rg.POST("/v1/auth/password-reset/confirm", rl, h.confirmReset)
	rg.POST("/v1/me/password", h.d.authenticated(access.AccountWrite, h.changePassword)...)
	rg.PATCH("/v1/me", h.d.authenticated(access.AccountWrite, h.updateProfile)...)
}

func (h *handlers) verifyEmail(c *gin.Context) {
	var body struct {
		Token string `json:"token"`
	}
	if !bind(c, &body) {
		return
	}
	res, err := h.d.Account.VerifyEmail.Handle(c.Request.Context(), commands.VerifyEmail{Token: body.Token, Meta: anonymous(c)})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	httpapi.SetConsistencyToken(c, res.Position)
	c.Status(http.StatusNoContent)
}

// emailRequest reads {"email"} and applies the account level of the rate
// limit to it, as a login does; false when it answered.
func (h *handlers) emailRequest(c *gin.Context) (string, bool) {
	var body struct {
		Email string `json:"email"`
	}
	if !bind(c, &body) {
		return "", false
	}
	return body.Email, h.d.RateLimit.Account(c, body.Email, false)
}

// resendVerification and requestReset answer 202 with the same body for
// a known and an unknown address (and no consistency token, which would
// differ); an outage still answers 503.
func (h *handlers) resendVerification(c *gin.Context) {
	email, ok := h.emailRequest(c)
	if !ok {
		return
	}
	if err := h.d.Account.ResendVerification.Handle(c.Request.Context(), commands.RequestEmailVerification{Email: email, Meta: anonymous(c)}); err != nil {
		httpapi.WriteError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, acceptedBody)
}

func (h *handlers) requestReset(c *gin.Context) {
	email, ok := h.emailRequest(c)
	if !ok {
		return
	}
	if err := h.d.Account.RequestReset.Handle(c.Request.Context(), commands.RequestPasswordReset{Email: email, Meta: anonymous(c)}); err != nil {
		httpapi.WriteError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, acceptedBody)
}

func (h *handlers) confirmReset(c *gin.Context) {
	var body struct {
		Token       string `json:"token"`
		NewPassword string `json:"new_password"`
	}
	if !bind(c, &body) {
		return
	}
	res, err := h.d.Account.ResetPassword.Handle(c.Request.Context(), commands.ResetPassword{Token: body.Token, NewPassword: body.NewPassword, Meta: anonymous(c)})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	httpapi.SetConsistencyToken(c, res.Position)
	c.Status(http.StatusNoContent)
}

func (h *handlers) changePassword(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	var body struct {
		CurrentPassword string `json:"current_password"`
		NewPassword     string `json:"new_password"`
	}
	if !bind(c, &body) {
		return
	}
	meta := commands.RequestMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent(), p.Actor())
	res, err := h.d.Account.ChangePassword.Handle(c.Request.Context(), commands.ChangePassword{UserID: p.UserID, SessionID: p.SessionID,
		CurrentPassword: body.CurrentPassword, NewPassword: body.NewPassword, Meta: meta})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	httpapi.SetConsistencyToken(c, res.Position)
	c.Status(http.StatusNoContent)
}

func (h *handlers) updateProfile(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	var body struct {
		DisplayName *string `json:"display_name"`
		Email       *string `json:"email"`
	}
	if !bind(c, &body) {
		return
	}
	meta := commands.RequestMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent(), p.Actor())
	res, err := h.d.Account.UpdateProfile.Handle(c.Request.Context(), commands.UpdateProfile{UserID: p.UserID,
		DisplayName: body.DisplayName, Email: body.Email, Meta: meta})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	httpapi.SetConsistencyToken(c, res.Position)
	var pending *string
	if res.EmailPending != "" {
		pending = &res.EmailPending
	}
	c.JSON(http.StatusOK, gin.H{"email_pending": pending})
}

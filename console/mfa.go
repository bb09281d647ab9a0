package console

// mfa.go is the sign-in's second step (docs/adr/0032): a login the API
// stops at its first factor (401 mfa-required or mfa-enrollment-required)
// goes on to a page asking for a code. The mfa_token stays in the sealed
// cookie; every check, the lockout included, is the API's.

import (
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

const problemBase = "https://authledger.dev/problems/"

// methodLabels name the methods the API's challenge lists (its kinds),
// in the order the page offers them; Value is the verify request's name
// of each (backup codes are the kind backup_codes, one is a backup_code).
var methodLabels = []struct{ Kind, Value, Label string }{
	{"totp", "totp", "Authenticator app"},
	{"email", "email", "Code by email"},
	{"sms", "sms", "Code by text message"},
	{"backup_codes", "backup_code", "Backup code"},
}

type mfaMethod struct {
	Value, Label string
	Checked      bool
}

// mfaView is the second step's page.
type mfaView struct {
	Methods []mfaMethod
	// Sendable are the methods whose code the server sends (email, sms).
	Sendable []mfaMethod
	// Enrol is a challenge that only sets up an authenticator app.
	Enrol bool
	// QR (a data: URL) and Secret are a new app's, shown once after
	// "Set up an authenticator app".
	QR     template.URL
	Secret string
	// BackupCodes are the first backup codes, shown once after the first
	// factor is set up; Continue is where the user goes next.
	BackupCodes []string
	Continue    string
}

// holdSecondStep keeps the mfa_token of a login stopped at its first
// factor and sends the browser to the second step; false for any other
// refusal.
func (c *Console) holdSecondStep(ctx *gin.Context, r reply) bool {
	if r.status != http.StatusUnauthorized {
		return false
	}
	var ch struct {
		Type      string   `json:"type"`
		Token     string   `json:"mfa_token"`
		Methods   []string `json:"methods"`
		ExpiresIn int64    `json:"expires_in"`
	}
	if err := r.decode(&ch); err != nil || ch.Token == "" {
		return false
	}
	enrol := ch.Type == problemBase+"mfa-enrollment-required"
	if !enrol && ch.Type != problemBase+"mfa-required" {
		return false
	}
	st := c.readState(ctx)
	c.writeState(ctx, state{CSRF: st.CSRF, MFA: ch.Token, MFAMethods: strings.Join(ch.Methods, ","), MFAEnrol: enrol,
		MFAExpires: c.cfg.Now().Add(time.Duration(ch.ExpiresIn) * time.Second).Unix()})
	ctx.Redirect(http.StatusSeeOther, "/signin/mfa")
	return true
}

// pendingSecondStep is the request's waiting second step; without one
// (never signed in, expired) the browser goes back to the sign-in page
// and false is returned.
func (c *Console) pendingSecondStep(ctx *gin.Context) (state, bool) {
	st := c.readState(ctx)
	switch {
	case st.signedIn():
		ctx.Redirect(http.StatusSeeOther, "/history")
		return st, false
	case st.MFA == "":
		ctx.Redirect(http.StatusSeeOther, "/signin")
		return st, false
	case c.cfg.Now().Unix() >= st.MFAExpires:
		c.abandonSecondStep(ctx, st)
		return st, false
	}
	return st, true
}

// abandonSecondStep forgets a spent or expired mfa_token: the user signs
// in again from the password.
func (c *Console) abandonSecondStep(ctx *gin.Context, st state) {
	c.writeState(ctx, state{CSRF: st.CSRF})
	ctx.Redirect(http.StatusSeeOther, "/signin?done=mfaexpired")
}

func (c *Console) secondStepView(st state, chosen string) *mfaView {
	v := &mfaView{Enrol: st.MFAEnrol}
	allowed := strings.Split(st.MFAMethods, ",")
	for _, m := range methodLabels {
		if !slices.Contains(allowed, m.Kind) {
			continue
		}
		mm := mfaMethod{Value: m.Value, Label: m.Label}
		v.Methods = append(v.Methods, mm)
		if m.Value == "email" || m.Value == "sms" {
			v.Sendable = append(v.Sendable, mm)
		}
	}
	if !slices.ContainsFunc(v.Methods, func(m mfaMethod) bool { return m.Value == chosen }) && len(v.Methods) > 0 {
		chosen = v.Methods[0].Value
	}
	for i := range v.Methods {
		v.Methods[i].Checked = v.Methods[i].Value == chosen
	}
	return v
}

func (c *Console) secondStepPage(ctx *gin.Context) {
	st, ok := c.pendingSecondStep(ctx)
	if !ok {
		return
	}
	ctx.Header("Cache-Control", "no-store")
	c.render(ctx, "mfa", page{Title: "Second step", MFA: c.secondStepView(st, ctx.Query("method"))})
}

// verifySecondStep sends the code to the API's verify; a right one
// starts the console's session as a password login does.
func (c *Console) verifySecondStep(ctx *gin.Context) {
	st, ok := c.pendingSecondStep(ctx)
	if !ok {
		return
	}
	method, code := ctx.PostForm("method"), strings.TrimSpace(ctx.PostForm("code"))
	r, err := c.anonymous(ctx, http.MethodPost, "/v1/auth/mfa/verify", map[string]string{"mfa_token": st.MFA, "method": method, "code": code})
	p := page{Title: "Second step", MFA: c.secondStepView(st, method)}
	ctx.Header("Cache-Control", "no-store")
	if err != nil {
		p.Error = &problem{}
		c.renderStatus(ctx, http.StatusServiceUnavailable, "mfa", p)
		return
	}
	if r.status == http.StatusOK {
		var done struct {
			BackupCodes []string `json:"backup_codes"`
		}
		_ = r.decode(&done)
		if !c.keepSession(ctx, r) {
			return
		}
		if len(done.BackupCodes) == 0 {
			ctx.Redirect(http.StatusSeeOther, afterSignIn(r, ""))
			return
		}
		// The first factor's backup codes: shown this once.
		c.render(ctx, "mfa", page{Title: "Your backup codes", MFA: &mfaView{BackupCodes: done.BackupCodes, Continue: afterSignIn(r, "")}})
		return
	}
	pr := r.problem()
	if pr.Type == problemBase+"invalid-mfa-token" {
		c.abandonSecondStep(ctx, st)
		return
	}
	p.Error = pr
	if pr.Type == problemBase+"invalid-mfa-code" {
		pr.Detail = "That code is not right, or was already used. Check it and try again."
	}
	c.renderStatus(ctx, r.status, "mfa", p)
}

// sendSecondStepCode asks the API to send a code by email or text
// message for the waiting sign-in.
func (c *Console) sendSecondStepCode(ctx *gin.Context) {
	st, ok := c.pendingSecondStep(ctx)
	if !ok {
		return
	}
	method := ctx.PostForm("method")
	p := page{Title: "Second step", MFA: c.secondStepView(st, method)}
	ctx.Header("Cache-Control", "no-store")
	r, err := c.anonymous(ctx, http.MethodPost, "/v1/auth/mfa/send", map[string]string{"mfa_token": st.MFA, "method": method})
	switch {
	case err != nil:
		p.Error = &problem{}
		c.renderStatus(ctx, http.StatusServiceUnavailable, "mfa", p)
	case r.status == http.StatusAccepted:
		p.Notice = "A code is on its way. Enter it below."
		c.render(ctx, "mfa", p)
	case r.problem().Type == problemBase+"invalid-mfa-token":
		c.abandonSecondStep(ctx, st)
	default:
		p.Error = r.problem()
		c.renderStatus(ctx, r.status, "mfa", p)
	}
}

// enrolSecondStep sets up an authenticator app with an enrolment
// challenge (a role that requires a second factor) and shows its QR
// code; its first code, sent to verifySecondStep, completes the sign-in.
func (c *Console) enrolSecondStep(ctx *gin.Context) {
	st, ok := c.pendingSecondStep(ctx)
	if !ok {
		return
	}
	p := page{Title: "Set up an authenticator app", MFA: c.secondStepView(st, "totp")}
	ctx.Header("Cache-Control", "no-store")
	r, err := c.anonymous(ctx, http.MethodPost, "/v1/auth/mfa/totp", map[string]string{"mfa_token": st.MFA})
	if err != nil {
		p.Error = &problem{}
		c.renderStatus(ctx, http.StatusServiceUnavailable, "mfa", p)
		return
	}
	if r.status != http.StatusCreated {
		if r.problem().Type == problemBase+"invalid-mfa-token" {
			c.abandonSecondStep(ctx, st)
			return
		}
		p.Error = r.problem()
		c.renderStatus(ctx, r.status, "mfa", p)
		return
	}
	var app struct {
		Secret string `json:"secret"`
		QRPNG  string `json:"qr_png"`
	}
	if err := r.decode(&app); err != nil {
		p.Error = &problem{}
		c.renderStatus(ctx, http.StatusBadGateway, "mfa", p)
		return
	}
	p.MFA.Secret = app.Secret
	// The API's base64 PNG as it is: the CSP allows img-src data:.
	p.MFA.QR = template.URL("data:image/png;base64," + app.QRPNG) //nolint:gosec // the API's own base64 PNG, not user input
	c.render(ctx, "mfa", p)
}

package console

// security.go is the Security page: the user's second factors as the API
// lists them, and adding an authenticator app (QR code, confirmation by
// its first code, the backup codes shown once).

import (
	"html/template"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
)

type mfaListed struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	Confirmed   bool   `json:"confirmed"`
	CreatedAt   string `json:"created_at"`
	LastUsedAt  string `json:"last_used_at"`
	Remaining   *int   `json:"remaining"`
	Phone       string `json:"phone"`
	ConfirmedAt string `json:"confirmed_at"`
}

// Label is the method's name on the page.
func (m mfaListed) Label() string {
	for _, l := range methodLabels {
		if l.Kind == m.Type {
			return l.Label
		}
	}
	return m.Type
}

// securityView is the Security page.
type securityView struct {
	Methods []mfaListed
	// MethodID, QR and Secret are a new authenticator app's, waiting for
	// its first code (MethodID alone after a wrong one: the app is
	// scanned already).
	MethodID string
	QR       template.URL
	Secret   string
	// BackupCodes are shown once, after the first factor is confirmed.
	BackupCodes []string
}

func (c *Console) securityList(r *Request, v *securityView) error {
	var res struct {
		Methods []mfaListed `json:"methods"`
	}
	_, err := c.callJSON(r.Ctx, http.MethodGet, "/v1/me/mfa", nil, &res, readAfter(r.Ctx)...)
	v.Methods = res.Methods
	return err
}

// renderSecurity draws the page with the list read after the command.
func (c *Console) renderSecurity(r *Request, status int, v *securityView, err error) {
	r.Ctx.Header("Cache-Control", "no-store")
	p := page{Title: "Security", Security: v}
	c.fail(r, &p, err)
	if err != nil {
		p.Retry = "" // a POST is not repeated by a link
	}
	lerr := c.securityList(r, v)
	if c.sessionOver(r, lerr) {
		return
	}
	c.fail(r, &p, lerr)
	if !c.header(r, &p) {
		return
	}
	c.renderStatus(r.Ctx, status, "security", p)
}

func (c *Console) securityPage(r *Request) {
	c.renderSecurity(r, http.StatusOK, &securityView{}, nil)
}

func (c *Console) addTOTP(r *Request) {
	var app struct {
		MethodID string `json:"method_id"`
		Secret   string `json:"secret"`
		QRPNG    string `json:"qr_png"`
	}
	if _, err := c.callJSON(r.Ctx, http.MethodPost, "/v1/me/mfa/totp", nil, &app); err != nil {
		if !c.sessionOver(r, err) {
			c.renderSecurity(r, statusOf(err), &securityView{}, err)
		}
		return
	}
	c.renderSecurity(r, http.StatusOK, &securityView{MethodID: app.MethodID, Secret: app.Secret,
		QR: template.URL("data:image/png;base64," + app.QRPNG)}, nil) //nolint:gosec // the API's own base64 PNG, not user input
}

func (c *Console) confirmTOTP(r *Request) {
	id, err := uuid.Parse(r.Ctx.PostForm("method_id"))
	if err != nil {
		c.notFound(r, "There is no such authenticator app.")
		return
	}
	var done struct {
		BackupCodes []string `json:"backup_codes"`
	}
	rep, err := c.callJSON(r.Ctx, http.MethodPost, "/v1/me/mfa/totp/confirm", gin.H{"method_id": id.String(), "code": r.Ctx.PostForm("code")}, &done)
	if err != nil {
		if !c.sessionOver(r, err) {
			c.renderSecurity(r, statusOf(err), &securityView{MethodID: id.String()}, err)
		}
		return
	}
	if len(done.BackupCodes) == 0 {
		afterCommand(r.Ctx, rep, "/security", "mfaadded")
		return
	}
	if ct := rep.header.Get("X-Consistency-Token"); consistencyToken.MatchString(ct) {
		q := r.Ctx.Request.URL.Query()
		q.Set("ct", ct)
		r.Ctx.Request.URL.RawQuery = q.Encode()
	}
	c.renderSecurity(r, http.StatusOK, &securityView{BackupCodes: done.BackupCodes}, nil)
}

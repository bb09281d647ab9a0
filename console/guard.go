package console

// guard.go holds what every request passes before a handler: CSRF
// protection of the state-changing ones, and the signed-in check.

import (
	"crypto/subtle"
	"errors"
	"html/template"
	"net/http"

	"github.com/gin-gonic/gin"
)

// crossOrigin refuses requests a browser marks as sent from another
// origin (Sec-Fetch-Site, else Origin against Host): Go's
// net/http.CrossOriginProtection.
var crossOrigin = http.NewCrossOriginProtection()

// csrf guards a state-changing route twice: the request must come from
// this origin, and carry the session's synchronizer token (the form's
// csrf field or the X-CSRF-Token header htmx and console.js send). The
// second covers browsers that send neither Sec-Fetch-Site nor Origin.
func (c *Console) csrf(ctx *gin.Context) {
	st := c.readState(ctx)
	token := ctx.GetHeader("X-CSRF-Token")
	if token == "" && ctx.ContentType() == "application/x-www-form-urlencoded" {
		token = ctx.PostForm("csrf")
	}
	if token == "" {
		// The upload form without script: the multipart body is streamed
		// to the API unread, so its token rides in the action's query.
		token = ctx.Query("csrf")
	}
	if err := crossOrigin.Check(ctx.Request); err != nil || token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(st.CSRF)) != 1 {
		ctx.Abort()
		const refused = http.StatusForbidden
		c.renderStatus(ctx, refused, "error", page{
			Title: "Request refused",
			Error: &problem{Status: refused, Detail: "This form has expired or did not come from this site. Reload the page and send it again."},
		})
		return
	}
	ctx.Next()
}

// Request is a signed-in request, as handlers see it.
type Request struct {
	Ctx     *gin.Context
	console *Console
}

// Call calls an API route as the user (JSON in and out; a non-2xx answer
// is returned as an error the page can show with Render).
func (r *Request) Call(method, path string, body, out any) error {
	_, err := r.console.callJSON(r.Ctx, method, path, body, out)
	return err
}

// Render draws body (already safe HTML) inside the console's layout;
// err, when not nil, is shown with the retry button where trying again
// may help.
func (r *Request) Render(title string, body template.HTML, err error) {
	p := page{Title: title, Extra: body}
	r.console.fail(r, &p, err)
	r.console.render(r.Ctx, "extension", p)
}

// signedIn runs h for a signed-in user, and sends anyone else to the
// sign-in page (htmx follows HX-Redirect; a plain request a 303).
func (c *Console) signedIn(h func(*Request)) gin.HandlerFunc {
	return func(ctx *gin.Context) {
		if !c.readState(ctx).signedIn() {
			c.toSignIn(ctx)
			return
		}
		h(&Request{Ctx: ctx, console: c})
	}
}

func (c *Console) toSignIn(ctx *gin.Context) {
	ctx.Abort()
	if ctx.GetHeader("HX-Request") == "true" {
		ctx.Header("HX-Redirect", "/signin")
		ctx.Status(http.StatusUnauthorized)
		return
	}
	ctx.Redirect(http.StatusSeeOther, "/signin")
}

// sessionOver handles an error of an API call: a session the API no
// longer accepts signs the browser out; anything else is for the page.
func (c *Console) sessionOver(r *Request, err error) bool {
	if !errors.Is(err, errSessionOver) {
		return false
	}
	st := c.readState(r.Ctx)
	c.writeState(r.Ctx, state{CSRF: st.CSRF})
	c.toSignIn(r.Ctx)
	return true
}

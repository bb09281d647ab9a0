package console

// render.go draws pages: one layout (header, navigation, user menu) and
// one template per page, all embedded.

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

//go:embed templates static
var assets embed.FS

// pageNames are the templates under templates/ besides the layout.
var pageNames = []string{"signin", "register", "history", "task", "upload", "profile", "sessions", "stats", "error", "extension", "mfa", "security"}

var funcs = template.FuncMap{
	"when": func(s string) string {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return s
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"bytes": func(n int64) string {
		switch {
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
		case n >= 1<<10:
			return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
		}
		return fmt.Sprintf("%d B", n)
	},
	"ms": func(n int64) string {
		if n < 1000 {
			return fmt.Sprintf("%d ms", n)
		}
		return fmt.Sprintf("%.1f s", float64(n)/1000)
	},
	"join": strings.Join,
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
	"active": func(status string) bool { return status == "queued" || status == "processing" },
	"statusLabel": func(s string) string {
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	},
}

func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := layout.Clone()
		if err != nil {
			return nil, err
		}
		if out[name], err = t.ParseFS(assets, "templates/"+name+".html"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// page is what every template gets.
type page struct {
	Title string
	// Name is the signed-in user's display name (the header); empty when
	// signed out.
	Name    string
	Badge   int
	Nav     []NavItem
	Menu    []NavItem
	Current string
	CSRF    string
	// Error is shown in an alert; Retry is the URL its "Try again" button
	// loads when trying again may help.
	Error  *problem
	Retry  string
	Notice string

	Form     map[string]string
	History  *historyView
	Task     *taskView
	Sessions []sessionView
	Profile  *profile
	Stats    *statsView
	Upload   *uploadView
	Extra    template.HTML
	MFA      *mfaView
	Security *securityView
}

// notices are the fixed messages a redirect's done parameter names (no
// text of the URL reaches the page).
var notices = map[string]string{
	"deleted":    "The task was deleted; its files are gone, its record stays in the history.",
	"retried":    "The task was queued again.",
	"uploaded":   "Uploaded: the task is queued.",
	"revoked":    "That device was signed out.",
	"saved":      "Your profile was saved.",
	"signedout":  "You are signed out.",
	"registered": "Welcome! Your account is ready.",
	"verify":     "Check your mailbox: a link was sent to confirm the address, then sign in.",
	"expired":    "Your session ended; please sign in again.",
	"mfaadded":   "The authenticator app is set up.",
	"mfaexpired": "Your sign-in took too long or was already used; please sign in again.",
}

// render writes the page (200).
func (c *Console) render(ctx *gin.Context, name string, p page) {
	c.renderStatus(ctx, http.StatusOK, name, p)
}

func (c *Console) renderStatus(ctx *gin.Context, status int, name string, p page) {
	c.renderTemplate(ctx, status, name, "layout.html", p)
}

// renderFragment writes one named block of a page (an htmx swap).
func (c *Console) renderFragment(ctx *gin.Context, name, block string, p page) {
	c.renderTemplate(ctx, http.StatusOK, name, block, p)
}

func (c *Console) renderTemplate(ctx *gin.Context, status int, name, block string, p page) {
	st := c.readState(ctx)
	p.CSRF = st.CSRF
	if p.Notice == "" {
		p.Notice = notices[ctx.Query("done")]
	}
	for _, n := range c.nav {
		if n.UserMenu {
			p.Menu = append(p.Menu, n)
		} else {
			p.Nav = append(p.Nav, n)
		}
	}
	p.Current = ctx.Request.URL.Path
	var b bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&b, block, p); err != nil {
		c.cfg.Logger.Error("console: render", "page", name, "err", err)
		ctx.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("The page could not be drawn."))
		return
	}
	ctx.Data(status, "text/html; charset=utf-8", b.Bytes())
}

// header fills the header's name and badge for a full page: the profile's
// display name and the count of the user's tasks. A failure leaves them
// empty and is the page's error unless it has one.
func (c *Console) header(r *Request, p *page) bool { return c.headerCounted(r, p, -1) }

// headerCounted is header with the badge's count already known (the
// unfiltered history page counts it anyway); -1 asks the API.
func (c *Console) headerCounted(r *Request, p *page, count int) bool {
	var me profile
	if _, err := c.callJSON(r.Ctx, http.MethodGet, "/v1/me", nil, &me, readAfter(r.Ctx)...); err != nil {
		if c.sessionOver(r, err) {
			return false
		}
		c.fail(r, p, err)
		return true
	}
	p.Name = me.DisplayName
	if count >= 0 {
		p.Badge = count
		return true
	}
	var counted struct {
		Total int `json:"total"`
	}
	if _, err := c.callJSON(r.Ctx, http.MethodGet, "/v1/history?page_size=1", nil, &counted, readAfter(r.Ctx)...); err == nil {
		p.Badge = counted.Total
	}
	return true
}

// fail puts err on the page: an API refusal as it is, anything else (the
// API unreachable) as the server's trouble, with the retry button.
func (c *Console) fail(r *Request, p *page, err error) {
	if err == nil || p.Error != nil {
		return
	}
	var pr *problem
	if !errors.As(err, &pr) {
		c.cfg.Logger.Error("console: API call", "err", err)
		pr = &problem{Status: http.StatusServiceUnavailable}
	}
	p.Error = pr
	if pr.retryable() {
		p.Retry = r.Ctx.Request.URL.RequestURI()
	}
}

// Package console is the web console: pages rendered on the server with
// html/template and embedded in the binary (go:embed), with htmx and one
// small script of our own as the only JavaScript (docs/adr/0036).
//
// The console holds no business rule. Every page calls the API's own
// routes in process (Config.API, the engine itself) with the signed-in
// user's bearer token, so registration, login, task and history rules,
// permissions, rate limits and the log are exactly the API's. What the
// console adds is the browser's side of a session: a sealed, HttpOnly,
// SameSite=Strict cookie holding the session's tokens (never readable by
// a script), the transparent refresh of an expired access token, CSRF
// protection of every state-changing request, and a strict
// Content-Security-Policy.
package console

import (
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// ContentSecurityPolicy is sent with every console page: no inline
// script or style, nothing from elsewhere, no framing.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// Config is what the console needs.
type Config struct {
	// API answers the API's routes (/v1/...): the gin engine the console
	// is mounted on. The console calls it in process; it never listens.
	API http.Handler
	// Key seals the session cookie (AES-256-GCM): 32 bytes derived from
	// the master key. Changing it signs every console user out, nothing
	// else.
	Key []byte
	// Secure marks the cookies Secure and names the session cookie with
	// the __Host- prefix: set it when the console is served over https
	// (AUTHLEDGER_PUBLIC_URL https://...).
	Secure bool
	// SessionMaxAge is how long the browser keeps the session cookie (the
	// log's session ends by its own idle and absolute timeouts whatever
	// the cookie says).
	SessionMaxAge time.Duration
	// Upload are the upload API's limits, checked in the browser before
	// sending where it can (the API checks them again, by content).
	Upload UploadLimits
	// Nav are pages added by other features (MFA, identities, admin):
	// each is a link in the header or the user menu. Their routes are
	// registered with Console.Handle.
	Nav []NavItem
	// TermsVersion is AUTHLEDGER_TERMS_VERSION: when set, registering
	// asks the visitor to accept it, and a sign-in the API refuses with
	// terms-acceptance-required asks again (ADR 0034). The API decides;
	// the console only shows the box.
	TermsVersion string
	Logger       *slog.Logger
	// Now is the clock the cookie's access-token expiry is read by (nil:
	// time.Now).
	Now func() time.Time
}

// UploadLimits mirror AUTHLEDGER_UPLOAD_*.
type UploadLimits struct {
	MaxFileBytes    int64
	MaxRequestBytes int64
	MaxFiles        int
	// Types are the accepted media types (image/png, application/pdf).
	Types []string
}

// NavItem is one link of the console's navigation: the extension point
// through which later features add their pages.
type NavItem struct {
	Path  string
	Label string
	// UserMenu puts the link in the user menu instead of the main bar.
	UserMenu bool
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.API == nil {
		errs = append(errs, errors.New("console: Config.API is required"))
	}
	if len(c.Key) != 32 {
		errs = append(errs, errors.New("console: Config.Key must be 32 bytes"))
	}
	if c.Upload.MaxFileBytes < 1 || c.Upload.MaxRequestBytes < 1 || c.Upload.MaxFiles < 1 {
		errs = append(errs, errors.New("console: Config.Upload needs its limits"))
	}
	for _, n := range c.Nav {
		if !strings.HasPrefix(n.Path, "/") || n.Label == "" {
			errs = append(errs, fmt.Errorf("console: nav item %q needs an absolute path and a label", n.Path))
		}
	}
	return errors.Join(errs...)
}

// Console serves the pages.
type Console struct {
	cfg       Config
	cookies   *sealer
	refreshes *refreshGroup
	pages     map[string]*template.Template
	nav       []NavItem
	router    gin.IRouter
	static    http.Handler
}

// builtinNav are the console's own pages, in menu order.
var builtinNav = []NavItem{
	{Path: "/history", Label: "Task History"},
	{Path: "/upload", Label: "Upload"},
	{Path: "/profile", Label: "Profile", UserMenu: true},
	{Path: "/sessions", Label: "Sessions", UserMenu: true},
	{Path: "/stats", Label: "Stats", UserMenu: true},
	{Path: "/security", Label: "Security", UserMenu: true},
}

// New builds the console.
func New(cfg Config) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionMaxAge <= 0 {
		cfg.SessionMaxAge = 7 * 24 * time.Hour
	}
	s, err := newSealer(cfg.Key, cookieName(cfg.Secure))
	if err != nil {
		return nil, err
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	return &Console{
		cfg: cfg, cookies: s, refreshes: newRefreshGroup(cfg.Now), pages: pages,
		nav:    append(slices.Clone(builtinNav), cfg.Nav...),
		static: http.StripPrefix("/static/", http.FileServer(http.FS(static))),
	}, nil
}

// Mount registers the console's routes on r (the engine's root group):
// the pages at /, /signin, /register, /history..., the assets under
// /static/. The API stays under /v1.
func (c *Console) Mount(r gin.IRouter) {
	c.router = r
	g := r.Group("", c.headers)
	g.GET("/static/*filepath", c.serveStatic)
	g.GET("/", c.home)
	g.GET("/signin", c.signInPage)
	g.POST("/signin", c.csrf, c.signIn)
	g.GET("/signin/mfa", c.secondStepPage)
	g.POST("/signin/mfa", c.csrf, c.verifySecondStep)
	g.POST("/signin/mfa/send", c.csrf, c.sendSecondStepCode)
	g.POST("/signin/mfa/totp", c.csrf, c.enrolSecondStep)
	g.GET("/register", c.registerPage)
	g.POST("/register", c.csrf, c.register)
	g.POST("/signout", c.csrf, c.signOut)

	g.GET("/history", c.signedIn(c.historyPage))
	g.POST("/history/export", c.csrf, c.signedIn(c.export))
	g.GET("/history/:id", c.signedIn(c.taskPage))
	g.POST("/history/:id/retry", c.csrf, c.signedIn(c.retry))
	g.POST("/history/:id/delete", c.csrf, c.signedIn(c.deleteTask))
	g.GET("/history/:id/files/:file_id", c.signedIn(c.download))
	g.GET("/upload", c.signedIn(c.uploadPage))
	g.POST("/upload", c.csrf, c.signedIn(c.upload))
	g.GET("/profile", c.signedIn(c.profilePage))
	g.POST("/profile", c.csrf, c.signedIn(c.updateProfile))
	g.GET("/sessions", c.signedIn(c.sessionsPage))
	g.POST("/sessions/:id/revoke", c.csrf, c.signedIn(c.revokeSession))
	g.GET("/stats", c.signedIn(c.statsPage))
	g.GET("/security", c.signedIn(c.securityPage))
	g.POST("/security/totp", c.csrf, c.signedIn(c.addTOTP))
	g.POST("/security/totp/confirm", c.csrf, c.signedIn(c.confirmTOTP))
}

// Handler is a page of another feature, called with the signed-in user's
// request: Request.Call reaches the API as that user, Request.Render
// draws a page inside the console's layout.
type Handler func(*Request)

// Handle registers a page of another feature (after Mount). GETs are
// signed-in pages; every other method is also CSRF-checked.
func (c *Console) Handle(method, path string, h Handler) {
	chain := []gin.HandlerFunc{c.headers}
	if method != http.MethodGet && method != http.MethodHead {
		chain = append(chain, c.csrf)
	}
	chain = append(chain, c.signedIn(func(r *Request) { h(r) }))
	c.router.Handle(method, path, chain...)
}

// headers are the console's answer headers: the strict CSP, no framing,
// no referrer leaving the site.
func (c *Console) headers(ctx *gin.Context) {
	h := ctx.Writer.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	ctx.Next()
}

func (c *Console) serveStatic(ctx *gin.Context) {
	// Assets change only with the binary.
	ctx.Header("Cache-Control", "public, max-age=300")
	c.static.ServeHTTP(ctx.Writer, ctx.Request)
}

func (c *Console) home(ctx *gin.Context) {
	if st := c.readState(ctx); st.signedIn() {
		ctx.Redirect(http.StatusSeeOther, "/history")
		return
	}
	ctx.Redirect(http.StatusSeeOther, "/signin")
}

package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/console"
	"github.com/authledger/authledger/test/pgtest"
)

// consolePublic are the console's routes that answer a visitor who is not
// signed in; every other console route sends them to the sign-in page.
// Every POST, public or not, needs the session's CSRF token.
var consolePublic = []string{
	"GET /",
	"GET /signin",
	"GET /register",
	"GET /static/*filepath",
	"POST /signin",
	"POST /register",
	"POST /signout",
}

// consoleClient is a browser without script: a cookie jar, no redirects
// followed.
type consoleClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newConsoleClient(t *testing.T, base string) *consoleClient {
	jar, _ := cookiejar.New(nil)
	return &consoleClient{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// consoleAnswer is an answer read whole (status, header, cookies).
type consoleAnswer struct {
	StatusCode int
	Header     http.Header
	cookies    []*http.Cookie
}

func (a consoleAnswer) Cookies() []*http.Cookie { return a.cookies }

func (c *consoleClient) do(method, path string, form url.Values, hdr ...string) (consoleAnswer, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return consoleAnswer{StatusCode: resp.StatusCode, Header: resp.Header, cookies: resp.Cookies()}, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([A-Z2-7]+)"`)

// csrf is the token of the page at path.
func (c *consoleClient) csrf(path string) string {
	c.t.Helper()
	_, body := c.do("GET", path, nil)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		c.t.Fatalf("no CSRF token on %s", path)
	}
	return m[1]
}

// Every console route is walked: the public ones answer a visitor, the
// others send them to the sign-in page; every POST without the session's
// CSRF token, or from another origin, is refused 403 and changes
// nothing.
func TestConsoleRoutes(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0"})
	var routes []string
	for rt := range r.consoleRoutes {
		routes = append(routes, rt)
	}
	sort.Strings(routes)
	for _, p := range consolePublic {
		if !r.consoleRoutes[p] {
			t.Errorf("public console route %s is not registered", p)
		}
	}
	c := newConsoleClient(t, r.base)
	token := c.csrf("/signin")
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt, " ")
		path = pathParam.ReplaceAllStringFunc(path, func(string) string { return uuid.NewString() })
		path = strings.Replace(path, "*filepath", "console.css", 1)
		resp, _ := c.do(method, path, url.Values{})
		if method == http.MethodPost {
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s without a CSRF token: %d, want 403", rt, resp.StatusCode)
			}
			continue
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != console.ContentSecurityPolicy {
			t.Errorf("%s: CSP %q", rt, got)
		}
		switch {
		case rt == "GET /":
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
				t.Errorf("/ signed out: %d %s", resp.StatusCode, resp.Header.Get("Location"))
			}
		case slices.Contains(consolePublic, rt):
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %d, want 200", rt, resp.StatusCode)
			}
		default:
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
				t.Errorf("%s signed out: %d %q, want 303 to /signin", rt, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
	}
	// With the token, a signed-out visitor's signed-in POSTs still go to
	// the sign-in page.
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt, " ")
		if method != http.MethodPost || slices.Contains(consolePublic, rt) {
			continue
		}
		path = pathParam.ReplaceAllStringFunc(path, func(string) string { return uuid.NewString() })
		if resp, _ := c.do(method, path, url.Values{"csrf": {token}}); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
			t.Errorf("%s signed out with the token: %d %q", rt, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// The console's session: register through the form makes a session of
// the log held in an HttpOnly, SameSite=Strict cookie; a form post
// without the token, with another session's token, or from another
// origin is refused and signs nobody out; a tampered cookie is a
// signed-out visitor. Sign-in errors never tell whether an account
// exists.
func TestConsoleSessionCookieAndCSRF(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0"})
	c := newConsoleClient(t, r.base)
	token := c.csrf("/register")
	resp, body := c.do("POST", "/register", url.Values{"csrf": {token}, "email": {"eve@example.com"}, "password": {"a long enough secret"}, "display_name": {"Eve"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/history") {
		t.Fatalf("register: %d %s %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == r.console.CookieName() {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/" || session.Secure {
		t.Fatalf("session cookie over http: %+v", session)
	}
	access, refresh, sid, _, err := r.console.Open(session.Value)
	if err != nil || access == "" || refresh == "" {
		t.Fatalf("the cookie does not hold a session: %v", err)
	}
	// It is a normal session of the log: the API lists it (read after
	// the login, whose position the redirect carries).
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if status, _, list := r.call("GET", "/v1/auth/sessions", access, nil, "X-Consistency-Token", loc.Query().Get("ct")); status != http.StatusOK || !strings.Contains(stringOf(list), sid) {
		t.Fatalf("sessions: %d %v", status, list)
	}
	if resp, body := c.do("GET", "/history", nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, ">Eve</span>") {
		t.Fatalf("history: %d", resp.StatusCode)
	}

	// Sign out refused: no token, a wrong token, another origin.
	newToken := c.csrf("/history")
	for name, tc := range map[string]struct {
		form url.Values
		hdr  []string
	}{
		"no token":     {url.Values{}, nil},
		"wrong token":  {url.Values{"csrf": {token}}, nil},
		"other origin": {url.Values{"csrf": {newToken}}, []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}},
	} {
		if resp, _ := c.do("POST", "/signout", tc.form, tc.hdr...); resp.StatusCode != http.StatusForbidden {
			t.Errorf("sign-out with %s: %d, want 403", name, resp.StatusCode)
		}
	}
	if status, _, _ := r.call("GET", "/v1/me", access, nil); status != http.StatusOK {
		t.Errorf("a refused sign-out ended the session: %d", status)
	}

	// A tampered cookie opens as nothing: a signed-out visitor.
	tampered := newConsoleClient(t, r.base)
	u, _ := url.Parse(r.base)
	flipped := []byte(session.Value)
	flipped[len(flipped)/2] ^= 1
	tampered.c.Jar.SetCookies(u, []*http.Cookie{{Name: session.Name, Value: string(flipped), Path: "/"}})
	if resp, _ := tampered.do("GET", "/history", nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Errorf("tampered cookie: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Sign-in failures read alike for an unknown address and a wrong
	// password.
	anon := newConsoleClient(t, r.base)
	tok := anon.csrf("/signin")
	_, unknown := anon.do("POST", "/signin", url.Values{"csrf": {tok}, "email": {"nobody@example.com"}, "password": {"a long enough secret"}})
	_, wrong := anon.do("POST", "/signin", url.Values{"csrf": {tok}, "email": {"eve@example.com"}, "password": {"not the password at all"}})
	alert := regexp.MustCompile(`(?s)<div class="alert" role="alert" id="problem">.*?</div>`)
	if a, b := alert.FindString(unknown), alert.FindString(wrong); a == "" || a != b {
		t.Errorf("sign-in errors differ:\n%s\n%s", a, b)
	}

	// Export: the API's stream, as a download.
	if resp, body := c.do("POST", "/history/export", url.Values{"csrf": {newToken}, "format": {"csv"}}); resp.StatusCode != http.StatusOK ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || !strings.Contains(body, "task_id") {
		t.Errorf("export: %d %v %q", resp.StatusCode, resp.Header, body)
	}

	// Sign out with the token ends the log's session.
	if resp, _ := c.do("POST", "/signout", url.Values{"csrf": {newToken}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	rejectedWithin(t, r, "console sign-out", access, 5*time.Second)
}

func stringOf(v any) string {
	var b strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case string:
			b.WriteString(x + " ")
		}
	}
	walk(v)
	return b.String()
}

// Over https (AUTHLEDGER_PUBLIC_URL) the session cookie is Secure and
// __Host- prefixed; AUTHLEDGER_CORS_ORIGINS answers the listed origin's
// preflight for the API and nobody else's; AUTHLEDGER_CONSOLE=false
// mounts no page.
func TestConsoleConfiguration(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	r := startService(t, map[string]string{"DATABASE_URL": db, "AUTHLEDGER_PUBLIC_URL": "https://id.example", "AUTHLEDGER_CORS_ORIGINS": "https://app.example"})
	if r.console.CookieName() != "__Host-authledger_console" {
		t.Errorf("cookie name over https: %s", r.console.CookieName())
	}
	c := newConsoleClient(t, r.base)
	resp, _ := c.do("GET", "/signin", nil)
	var found bool
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Host-authledger_console" {
			found = ck.Secure && ck.HttpOnly && ck.SameSite == http.SameSiteStrictMode
		}
	}
	if !found {
		t.Errorf("no Secure __Host- session cookie over https: %v", resp.Header.Values("Set-Cookie"))
	}
	preflight := func(origin string) consoleAnswer {
		resp, _ := c.do("OPTIONS", "/v1/tasks", nil, "Origin", origin, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization")
		return resp
	}
	if resp := preflight("https://app.example"); resp.StatusCode/100 != 2 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("preflight of the listed origin: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := preflight("https://evil.example"); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight of another origin allowed: %v", resp.Header)
	}
	tok, _ := r.loginAs("cors@example.com")
	if status, hdr, _ := r.call("GET", "/v1/me", tok, nil, "Origin", "https://app.example"); status != http.StatusOK || hdr.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(hdr.Get("Access-Control-Expose-Headers"), "X-Consistency-Token") {
		t.Errorf("a CORS request: %d %v", status, hdr)
	}

	off := startService(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_CONSOLE": "false"})
	if off.console != nil || len(off.consoleRoutes) != 0 {
		t.Errorf("AUTHLEDGER_CONSOLE=false mounted the console")
	}
	if status, _, _ := off.get("/signin"); status != http.StatusNotFound {
		t.Errorf("/signin without the console: %d", status)
	}
}

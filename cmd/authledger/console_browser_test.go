package main

// The web console in a real browser: Debian's chromium (scripts/chromium.sh,
// which `make test` runs) driven by chromedp against the assembled
// service, with axe-core (testdata/axe) checking every page.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/authledger/authledger/test/pgtest"
	"github.com/authledger/authledger/test/testimage"
)

// consoleCodec is what the tests use of the console: its cookie codec,
// to hand the browser a session whose access token has expired.
type consoleCodec interface {
	Seal(access, refresh, session string, expires time.Time, csrf string) (string, error)
	Open(v string) (access, refresh, session, csrf string, err error)
	CookieName() string
}

// consoleAside sends the console's pages and CORS preflights to raw and
// everything else to validated: the pages are HTML of their own, and a
// preflight (AUTHLEDGER_CORS_ORIGINS) is the browser's question about an
// operation, not one.
func consoleAside(a *app, validated, raw http.Handler) http.Handler {
	prefixes := map[string]bool{}
	for route := range a.consoleRoutes {
		_, path, _ := strings.Cut(route, " ")
		seg, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		prefixes["/"+seg] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seg, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if prefixes["/"+seg] || r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			raw.ServeHTTP(w, r)
			return
		}
		validated.ServeHTTP(w, r)
	})
}

// chromiumPath is the browser, installed by scripts/chromium.sh. A
// missing browser fails the test (as a missing PostgreSQL or tesseract
// does): a skipped browser test is a test that cannot fail.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("AUTHLEDGER_CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (the console's browser tests need it): run scripts/chromium.sh, or as root: apt-get install -y chromium")
	}
	return p
}

// browserSession is one chromium with one tab, and what it reported.
type browserSession struct {
	t    *testing.T
	ctx  context.Context
	base string
	axe  string

	mu        sync.Mutex
	problems  []string // console errors and CSP violations
	downloads map[string]string
	dlDir     string
}

func newChromium(t *testing.T, base string) *browserSession {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })

	axe, err := os.ReadFile(filepath.Join("testdata", "axe", "axe.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	b := &browserSession{t: t, ctx: ctx, base: base, axe: string(axe), downloads: map[string]string{}, dlDir: t.TempDir()}
	// The first run starts the browser (on a context without a timeout:
	// it would stop the browser).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			// The delete and sign-out-device confirmations: accepted (a
			// command, so not from this loop).
			go func() {
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			}()
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError && !expectedNetworkError(e.Entry.Text) {
				b.report(fmt.Sprintf("log %s: %s (%s)", e.Entry.Source, e.Entry.Text, e.Entry.URL))
			}
		case *cdpruntime.EventExceptionThrown:
			b.report(fmt.Sprintf("exception: %s at %s:%d", e.ExceptionDetails.Text, e.ExceptionDetails.URL, e.ExceptionDetails.LineNumber))
		case *cdpruntime.EventConsoleAPICalled:
			if e.Type == cdpruntime.ConsoleAPICalledTypeError {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value))
				}
				b.report("console.error: " + strings.Join(args, " "))
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.ListenBrowser(ctx, func(ev any) {
		if e, ok := ev.(*cdpbrowser.EventDownloadProgress); ok && e.State == cdpbrowser.DownloadProgressStateCompleted {
			b.mu.Lock()
			b.downloads[e.GUID] = filepath.Join(b.dlDir, e.GUID)
			b.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	events := true
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdpruntime.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: b.dlDir, EventsEnabled: &events,
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

// expectedNetworkError are the browser's own lines for answers the test
// provokes (a 4xx or 5xx the page then explains).
func expectedNetworkError(text string) bool {
	return strings.Contains(text, "Failed to load resource: the server responded with a status of")
}

func (b *browserSession) report(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, s)
}

// step bounds each browser step: a page that never gets there fails
// the test instead of hanging it.
const step = 3 * time.Minute

func (b *browserSession) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, step)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.dump(err)
	}
}

// dump fails the test with where the browser is and what it shows.
func (b *browserSession) dump(err error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main") ? document.querySelector("main").outerHTML : document.documentElement.outerHTML`))
	b.mu.Lock()
	problems := strings.Join(b.problems, "\n")
	b.mu.Unlock()
	b.t.Fatalf("browser: %v\nat %s\n%s\nreported: %s", err, loc, html, problems)
}

func value[T any](b *browserSession, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, step)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.dump(err)
	}
	return v
}

func (b *browserSession) open(path string) {
	b.t.Helper()
	b.run(chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS("body")))
}

// waitFor polls a JavaScript condition until it holds, across the
// navigations on the way (a poll dies with its page).
func (b *browserSession) waitFor(cond string, within time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, time.Until(deadline)+time.Second)
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(time.Until(deadline)), chromedp.WithPollingInterval(50*time.Millisecond)))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || !navigatedAway(err) {
			b.dump(fmt.Errorf("waiting for %s: %w", cond, err))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// navigatedAway is an evaluation cut short by a navigation.
func navigatedAway(err error) bool {
	for _, s := range []string{"navigated or closed", "context was destroyed", "Cannot find context", "uniqueContextId not found"} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}

func (b *browserSession) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.dump(fmt.Errorf("text of %s: %w", sel, err))
	}
	return strings.TrimSpace(s)
}

func (b *browserSession) location() string {
	b.t.Helper()
	return value(b, chromedp.Location())
}

// accessible runs axe-core on the page as it is: no serious or critical
// violation.
func (b *browserSession) accessible(name string) {
	b.t.Helper()
	b.run(chromedp.Evaluate[chromedp.Void](b.axe + ";0"))
	violations := value(b, chromedp.Evaluate[[]string](`axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations
			.filter(v => v.impact === "serious" || v.impact === "critical")
			.map(v => v.impact + " " + v.id + ": " + v.help + " at " + v.nodes.map(n => n.target.join(" ")).join(", ")))`,
		chromedp.EvalAwaitPromise))
	for _, v := range violations {
		b.t.Errorf("axe on the %s page: %s", name, v)
	}
	b.screenshot(name)
}

// screenshot saves the page into AUTHLEDGER_CONSOLE_SCREENSHOTS (unset:
// none); docs/console.md shows them.
func (b *browserSession) screenshot(name string) {
	dir := os.Getenv("AUTHLEDGER_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := value(b, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Error(err)
	}
}

func (b *browserSession) cookie(name string) *network.Cookie {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base + "/"}})
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (b *browserSession) setCookie(name, value string) {
	b.t.Helper()
	httpOnly := true
	if _, err := chromedp.Call(b.ctx, network.SetCookie, network.SetCookieParams{
		Name: name, Value: value, URL: b.base + "/", Path: "/", HTTPOnly: &httpOnly, SameSite: network.CookieSameSiteStrict,
	}); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browserSession) rows() int {
	b.t.Helper()
	return value(b, chromedp.Evaluate[int](`document.querySelectorAll("#results tbody tr").length`))
}

// minimalPDF is a file the upload accepts as a PDF (stored, not OCR'd):
// the filler tasks that make the history two pages long.
const minimalPDF = "%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"

// The console end to end in chromium: register, see the display name,
// upload a real PNG and watch it complete with its OCR text, filter the
// history by status, date and file name, sort, page, download byte for
// byte, have an expired access token refreshed unnoticed, see the retry
// UI while the database is down, sign a device out, delete, sign out;
// another user's task never shows. axe-core checks every page, and no
// page reports a console error or a CSP violation.
func TestConsoleInABrowser(t *testing.T) {
	t.Parallel()
	cluster := pgtest.StartCluster(t)
	var k [32]byte
	_, _ = rand.Read(k[:])
	master := base64.StdEncoding.EncodeToString(k[:])
	r := startService(t, map[string]string{
		"DATABASE_URL":                        cluster.URL,
		"AUTHLEDGER_MASTER_KEY":               master,
		"AUTHLEDGER_RATE_LIMIT_PER_SECOND":    "0",
		"AUTHLEDGER_USER_RATE_LIMIT_BURST":    "1000",
		"AUTHLEDGER_UPLOAD_RATE_LIMIT_BURST":  "100",
		"AUTHLEDGER_TASK_MAX_ACTIVE":          "100",
		"AUTHLEDGER_ACCOUNT_RATE_LIMIT_BURST": "100",
		"AUTHLEDGER_UPLOAD_MAX_FILES":         "2",
	})
	defer func() {
		if t.Failed() {
			t.Log(r.logs.String())
		}
	}()
	if r.console == nil {
		t.Fatal("the console is not mounted")
	}

	// Another user's task, which must never show.
	other := r.login("bob@example.com")
	status, _, created := r.upload(other, "bob-secret.png", testimage.TextPNG(t, "BOB SECRET"))
	if status != http.StatusAccepted {
		t.Fatalf("bob's upload: %d %v", status, created)
	}
	bobTask := created["task_id"].(string)

	b := newChromium(t, r.base)

	// Signed out, / is the sign-in page.
	b.open("/")
	if loc := b.location(); !strings.HasSuffix(loc, "/signin") {
		t.Fatalf("/ signed out went to %s", loc)
	}
	b.accessible("signin")

	// Register (which signs in): the header shows the display name.
	b.run(chromedp.Click(chromedp.CSS(`a[href="/register"]`)), chromedp.WaitVisible(chromedp.CSS("#register-form")))
	b.accessible("register")
	email, password := "ada@example.com", "a long enough secret"
	b.run(
		chromedp.SendKeys(chromedp.CSS("#display_name"), "Ada Lovelace"),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS(`#register-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#display-name")),
	)
	if got := b.text("#display-name"); got != "Ada Lovelace" {
		t.Fatalf("header shows %q, want the display name", got)
	}
	if got := b.text("#empty"); !strings.Contains(got, "No task yet") {
		t.Errorf("empty history says %q", got)
	}
	b.accessible("history-empty")

	// The session cookie is HttpOnly and SameSite=Strict; no token is in
	// the page's storage.
	sc := b.cookie(r.console.CookieName())
	if sc == nil || !sc.HTTPOnly || sc.SameSite != network.CookieSameSiteStrict {
		t.Fatalf("session cookie: %+v", sc)
	}
	stored := value(b, chromedp.Evaluate[string](`JSON.stringify(Object.assign({}, localStorage)) + JSON.stringify(Object.assign({}, sessionStorage)) + document.cookie`))
	if strings.Contains(stored, "eyJ") || strings.Contains(stored, r.console.CookieName()) {
		t.Errorf("a token is readable by the page: %s", stored)
	}

	// Upload: a file of a type the API does not take, and more files
	// than AUTHLEDGER_UPLOAD_MAX_FILES, are refused before sending; then a
	// real PNG with a PDF beside it, one task that completes with the
	// PNG's OCR text.
	dir := t.TempDir()
	textFile := filepath.Join(dir, "notes.txt")
	pngFile := filepath.Join(dir, "invoice.png")
	pdfFile := filepath.Join(dir, "cover.pdf")
	pngBytes := testimage.TextPNG(t, "INVOICE 1234")
	if err := errors.Join(os.WriteFile(textFile, []byte("plain text"), 0o600), os.WriteFile(pngFile, pngBytes, 0o600),
		os.WriteFile(pdfFile, []byte(minimalPDF), 0o600)); err != nil {
		t.Fatal(err)
	}
	b.run(chromedp.Click(chromedp.CSS(`nav a[href="/upload"]`)), chromedp.WaitVisible(chromedp.CSS("#upload-form")))
	b.accessible("upload")
	b.run(chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{textFile}))
	b.waitFor(`!document.getElementById("upload-errors").hidden && document.getElementById("upload-submit").disabled`, 5*time.Second)
	if got := b.text("#upload-errors"); !strings.Contains(got, "notes.txt") || !strings.Contains(got, "not accepted") {
		t.Errorf("type error before sending: %q", got)
	}
	// Drag and drop: a file dropped on the zone is the selection.
	dropped := value(b, chromedp.Evaluate[string](`(() => {
		const dt = new DataTransfer();
		dt.items.add(new File(["%PDF-1.4\n%%EOF\n"], "dropped.pdf", {type: "application/pdf"}));
		document.getElementById("dropzone").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
		return document.getElementById("selected").textContent + "|" + document.getElementById("files").files.length;
	})()`))
	if !strings.HasPrefix(dropped, "dropped.pdf") || !strings.HasSuffix(dropped, "|1") {
		t.Errorf("a dropped file is not the selection: %q", dropped)
	}
	b.run(chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{pngFile, pdfFile, textFile}))
	b.waitFor(`!document.getElementById("upload-errors").hidden && document.getElementById("upload-submit").disabled`, 5*time.Second)
	if got := b.text("#upload-errors"); !strings.Contains(got, "At most 2 files") {
		t.Errorf("count error before sending: %q", got)
	}
	b.run(chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{pngFile, pdfFile}))
	b.waitFor(`document.getElementById("upload-errors").hidden && !document.getElementById("upload-submit").disabled && document.querySelectorAll("#selected li").length === 2`, 5*time.Second)
	b.run(chromedp.Click(chromedp.CSS("#upload-submit")))
	b.waitFor(`location.pathname.startsWith("/history/") && !!document.getElementById("task-status")`, 30*time.Second)
	taskURL := b.location()
	b.waitFor(`document.getElementById("task-status") && document.getElementById("task-status").textContent === "Completed"`, 3*time.Minute)
	if got := b.text("#task-result"); !strings.Contains(got, "INVOICE") || !strings.Contains(got, "1234") {
		t.Fatalf("OCR text on the task page: %q", got)
	}
	b.accessible("task")

	// Download, byte for byte.
	b.run(chromedp.Click(chromedp.CSS("a.download")))
	deadline := time.Now().Add(20 * time.Second)
	var downloaded []byte
	for downloaded == nil {
		b.mu.Lock()
		for _, p := range b.downloads {
			downloaded, _ = os.ReadFile(p)
		}
		b.mu.Unlock()
		if downloaded == nil {
			if time.Now().After(deadline) {
				t.Fatal("the download did not complete")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !bytes.Equal(downloaded, pngBytes) {
		t.Errorf("downloaded %d bytes, uploaded %d: not the same file", len(downloaded), len(pngBytes))
	}

	// 21 more tasks (PDFs, through the API as the same user, in another
	// session): the history is two pages long.
	_, _, tok := r.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": password})
	apiAccess, apiSession := tok["access_token"].(string), tok["session_id"].(string)
	var lastWrite string
	for i := range 21 {
		status, hdr, body := r.upload(apiAccess, fmt.Sprintf("filler-%02d.pdf", i), []byte(minimalPDF))
		if status != http.StatusAccepted {
			t.Fatalf("filler upload %d: %d %v", i, status, body)
		}
		lastWrite = hdr.Get("X-Consistency-Token")
	}
	// The history has them all (the API's read-your-writes; a browser
	// that opens the page right away may see the last one a moment late).
	if status, _, body := r.call("GET", "/v1/history?page_size=1", apiAccess, nil, "X-Consistency-Token", lastWrite); status != http.StatusOK || body["total"] != float64(22) {
		t.Fatalf("history after the fillers: %d %v", status, body)
	}

	b.open("/history")
	// Live status: the results poll while a task is queued or processing
	// and stop once every task has ended (the worker takes the PDFs in
	// moments); a click while a poll swaps the results could land on the
	// old ones, so the paging and sorting below start after it.
	b.waitFor(`document.querySelectorAll("#results tbody tr").length === 20 && !document.querySelector("#results[hx-trigger]") &&
		[...document.querySelectorAll("#results tbody tr")].every(r => r.dataset.status === "completed")`, 2*time.Minute)
	if got := b.text("#page-of"); got != "Page 1 of 2" {
		t.Errorf("pager: %q", got)
	}
	if got := b.text("#task-count"); got != "22" {
		t.Errorf("Task History badge: %q, want 22", got)
	}
	if body := b.text("main"); strings.Contains(body, "bob-secret") {
		t.Errorf("another user's task is listed")
	}
	b.accessible("history")
	b.run(chromedp.Click(chromedp.CSS("#next-page")))
	b.waitFor(`document.getElementById("page-of").textContent === "Page 2 of 2"`, 10*time.Second)
	if n := b.rows(); n != 2 {
		t.Errorf("page 2 has %d rows, want 2", n)
	}

	// Sort: oldest first puts the PNG at the top.
	b.open("/history")
	b.run(chromedp.Click(chromedp.CSS("#sort-created")))
	b.waitFor(`document.querySelector("th[aria-sort=ascending]") !== null`, 10*time.Second)
	if got := b.text("#results tbody tr:first-child .task-link"); got != "invoice.png, cover.pdf" {
		t.Errorf("oldest first starts with %q", got)
	}

	// File name search, then clear filters.
	b.run(chromedp.SendKeys(chromedp.CSS("#f-q"), "invoice"), chromedp.Click(chromedp.CSS("#apply-filters")))
	b.waitFor(`document.querySelectorAll("#results tbody tr").length === 1`, 10*time.Second)
	if got := b.text("#results tbody .task-link"); got != "invoice.png, cover.pdf" {
		t.Errorf("search for invoice found %q", got)
	}
	if !strings.Contains(b.location(), "q=invoice") {
		t.Errorf("the filter is not in the address: %s", b.location())
	}
	b.run(chromedp.SetValue(chromedp.CSS("#f-q"), "bob"), chromedp.Click(chromedp.CSS("#apply-filters")))
	b.waitFor(`!!document.getElementById("empty")`, 10*time.Second)
	b.run(chromedp.Click(chromedp.CSS("#clear-filters")))
	b.waitFor(`document.querySelectorAll("#results tbody tr").length === 20 && document.getElementById("f-q").value === ""`, 10*time.Second)

	// Status filter: completed lists the PNG; failed lists nothing.
	b.run(chromedp.SetValue(chromedp.CSS("#f-status"), "completed"), chromedp.Click(chromedp.CSS("#apply-filters")))
	b.waitFor(`location.search.includes("status=completed") && [...document.querySelectorAll("#results tbody tr")].length > 0 && [...document.querySelectorAll("#results tbody tr")].every(r => r.dataset.status === "completed")`, 10*time.Second)
	// Oldest first within the filter: the PNG leads.
	b.run(chromedp.Click(chromedp.CSS("#sort-created")))
	b.waitFor(`document.querySelector("th[aria-sort=ascending]") !== null`, 10*time.Second)
	names := value(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#results .task-link")].map(a => a.textContent)`))
	if len(names) == 0 || names[0] != "invoice.png, cover.pdf" || !strings.Contains(b.location(), "status=completed") {
		t.Errorf("completed tasks, oldest first: %v at %s, want the PNG's task first", names, b.location())
	}
	b.run(chromedp.SetValue(chromedp.CSS("#f-status"), "failed"), chromedp.Click(chromedp.CSS("#apply-filters")))
	b.waitFor(`!!document.getElementById("empty")`, 10*time.Second)

	// Date range: from tomorrow finds nothing; yesterday to today all.
	today := time.Now().UTC()
	b.open("/history?from=" + today.AddDate(0, 0, 1).Format(time.DateOnly))
	if b.rows() != 0 || !strings.Contains(b.text("#empty"), "No task matches") {
		t.Errorf("from tomorrow lists %d tasks", b.rows())
	}
	b.open("/history")
	b.run(chromedp.SetValue(chromedp.CSS("#f-from"), today.AddDate(0, 0, -1).Format(time.DateOnly)),
		chromedp.SetValue(chromedp.CSS("#f-to"), today.Format(time.DateOnly)),
		chromedp.Click(chromedp.CSS("#apply-filters")))
	b.waitFor(`document.querySelector("#results caption") && document.querySelector("#results caption").textContent.startsWith("22 tasks matching")`, 10*time.Second)

	// Another user's task, asked for by its id, is not there.
	b.open("/history/" + bobTask)
	if got := b.text("main"); !strings.Contains(got, "no longer available") || strings.Contains(got, "bob-secret") {
		t.Errorf("another user's task page: %q", got)
	}

	// An expired access token is refreshed without the user noticing:
	// once found expired by the cookie's clock, once only by the API.
	_, _, me := r.call("GET", "/v1/me", apiAccess, nil)
	userID := uuid.MustParse(me["id"].(string))
	for _, recorded := range []time.Duration{-time.Minute, time.Hour} {
		c := b.cookie(r.console.CookieName())
		_, refresh, sid, csrf, err := r.console.Open(c.Value)
		if err != nil {
			t.Fatal(err)
		}
		_, expired := signedTokens(t, cluster.URL, master, userID, uuid.MustParse(sid))
		sealed, err := r.console.Seal(expired, refresh, sid, time.Now().Add(recorded), csrf)
		if err != nil {
			t.Fatal(err)
		}
		b.setCookie(r.console.CookieName(), sealed)
		b.open("/stats")
		if loc := b.location(); !strings.HasSuffix(loc, "/stats") {
			t.Fatalf("with an expired access token (recorded expiry %s) the console went to %s", recorded, loc)
		}
		if got := b.text("#display-name"); got != "Ada Lovelace" {
			t.Errorf("after the refresh the header shows %q", got)
		}
		if got := b.text("#stats-total"); got != "22" {
			t.Errorf("stats total %q, want 22", got)
		}
		_, refreshed, _, _, err := r.console.Open(b.cookie(r.console.CookieName()).Value)
		if err != nil || refreshed == refresh {
			t.Errorf("the refresh token was not rotated (recorded expiry %s): %v", recorded, err)
		}
	}
	b.accessible("stats")
	b.open("/profile")
	b.accessible("profile")

	// A server error shows the retry UI: the database is stopped while
	// the user filters; started again, "Try again" brings the tasks back.
	b.open("/history")
	cluster.Stop()
	b.run(chromedp.SetValue(chromedp.CSS("#f-q"), "invoice"), chromedp.Click(chromedp.CSS("#apply-filters")))
	b.waitFor(`!!document.getElementById("retry")`, 30*time.Second)
	if got := b.text("#problem"); !strings.Contains(got, "could not answer") {
		t.Errorf("the error says %q", got)
	}
	b.accessible("history-error")
	cluster.Start()
	r.waitReady(60 * time.Second)
	b.run(chromedp.Click(chromedp.CSS("#retry")))
	b.waitFor(`document.querySelectorAll("#results tbody tr").length === 1 && !document.getElementById("problem")`, 30*time.Second)

	// Sessions: sign the API's session out from the console.
	b.open("/sessions")
	b.accessible("sessions")
	b.run(chromedp.Click(chromedp.CSS(`tr[data-session="` + apiSession + `"] button`)))
	b.waitFor(`!!document.querySelector(".notice") && !document.querySelector('tr[data-session="`+apiSession+`"]')`, 10*time.Second)
	rejectedWithin(t, r, "signed out from the console", apiAccess, 5*time.Second)

	// Delete the PNG's task: the history keeps it, as deleted.
	b.open(strings.TrimPrefix(taskURL, r.base))
	b.run(chromedp.Click(chromedp.CSS("#delete-task")))
	b.waitFor(`location.pathname === "/history" && !!document.querySelector(".notice")`, 10*time.Second)
	b.open("/history?status=deleted")
	b.waitFor(`document.querySelectorAll("#results tbody tr").length === 1`, 10*time.Second)
	if got := b.text("#results tbody .task-link"); got != "invoice.png, cover.pdf" {
		t.Errorf("deleted tasks: %q", got)
	}

	// Retry: a PNG whose header reads but whose pixels do not fails its
	// first attempt; Retry queues it again, and it fails its second.
	_, _, tok = r.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": password})
	status, hdr, created := r.upload(tok["access_token"].(string), "broken.png", brokenPNG(t))
	if status != http.StatusAccepted {
		t.Fatalf("broken upload: %d %v", status, created)
	}
	// Read after the upload, as the console's own upload does.
	b.open("/history/" + created["task_id"].(string) + "?ct=" + hdr.Get("X-Consistency-Token"))
	b.waitFor(`document.getElementById("task-status") && document.getElementById("task-status").textContent === "Failed" && !!document.getElementById("retry-task")`, 2*time.Minute)
	if got := b.text("#task-error"); !strings.Contains(got, "failed") {
		t.Errorf("the failure says %q", got)
	}
	b.run(chromedp.Click(chromedp.CSS("#retry-task")))
	b.waitFor(`location.search.includes("done=retried") && !!document.querySelector(".notice")`, 10*time.Second)
	b.waitFor(`document.getElementById("task-status").textContent === "Failed" && document.querySelector(".facts").textContent.includes("2 of 3")`, 2*time.Minute)

	// Sign out: back to the sign-in page, the session over in the log.
	_, lastRefresh, _, _, _ := r.console.Open(b.cookie(r.console.CookieName()).Value)
	b.run(chromedp.Click(chromedp.CSS(".usermenu summary")), chromedp.Click(chromedp.CSS("#signout")))
	b.waitFor(`location.pathname === "/signin" && !!document.querySelector(".notice")`, 10*time.Second)
	b.open("/history")
	if loc := b.location(); !strings.HasSuffix(loc, "/signin") {
		t.Errorf("after sign-out /history went to %s", loc)
	}
	if status, _ := r.refresh(lastRefresh); status != http.StatusUnauthorized {
		t.Errorf("the signed-out session's refresh token: %d, want 401", status)
	}

	// Sign in again with the form.
	b.run(chromedp.SendKeys(chromedp.CSS("#email"), email), chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS(`#signin-form button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("#display-name")))

	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		t.Errorf("the browser reported: %s", p)
	}
}

// brokenPNG is a PNG whose header (signature, IHDR) is sound, so the
// upload takes it, and whose image data is not, so the OCR fails.
func brokenPNG(t *testing.T) []byte {
	t.Helper()
	png := testimage.TextPNG(t, "BROKEN")
	i := bytes.Index(png, []byte("IDAT"))
	if i < 4 {
		t.Fatal("no IDAT chunk")
	}
	n := int(png[i-4])<<24 | int(png[i-3])<<16 | int(png[i-2])<<8 | int(png[i-1])
	out := bytes.Clone(png)
	for j := i + 4; j < i+4+n; j++ {
		out[j] = 0xff
	}
	return out
}

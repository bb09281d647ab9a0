package console

// pages.go are the handlers of the console's pages. Each one calls the
// API's routes and draws what they answer; none decides anything the API
// decides.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
)

type profile struct {
	ID            string   `json:"id"`
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	DisplayName   string   `json:"display_name"`
	Roles         []string `json:"roles"`
	CreatedAt     string   `json:"created_at"`
	LastLoginAt   *string  `json:"last_login_at"`
}

// ---- sign in, register, sign out ----

func (c *Console) signInPage(ctx *gin.Context) {
	if c.readState(ctx).signedIn() {
		ctx.Redirect(http.StatusSeeOther, "/history")
		return
	}
	c.render(ctx, "signin", page{Title: "Sign in", Form: map[string]string{}})
}

// termsRequired is the API's answer to a right password of a user who
// has not accepted the current terms.
const termsRequired = problemBase + "terms-acceptance-required"

func (c *Console) signIn(ctx *gin.Context) {
	email, password := ctx.PostForm("email"), ctx.PostForm("password")
	p := page{Title: "Sign in", Form: map[string]string{"email": email}}
	body := map[string]string{"email": email, "password": password}
	if v := ctx.PostForm("accept_terms"); v != "" {
		body["accept_terms"] = v
	}
	if d, err := ctx.Cookie(deviceCookie); err == nil && d != "" {
		body["device_token"] = d
	}
	r, err := c.anonymous(ctx, http.MethodPost, "/v1/auth/login", body)
	if err != nil {
		p.Error = &problem{}
		p.Retry = "/signin"
		c.renderStatus(ctx, http.StatusServiceUnavailable, "signin", p)
		return
	}
	if r.status != http.StatusOK {
		if c.holdSecondStep(ctx, r) {
			return
		}
		p.Error = r.problem()
		if p.Error.Type == termsRequired && c.cfg.TermsVersion != "" {
			// The password was right: the form asks again with the box.
			p.Form["terms"] = c.cfg.TermsVersion
		}
		c.renderStatus(ctx, r.status, "signin", p)
		return
	}
	c.startSession(ctx, r, "")
}

// startSession keeps a login's tokens in the cookie and goes to the
// history, reading after the login's write.
func (c *Console) startSession(ctx *gin.Context, r reply, done string) {
	if c.keepSession(ctx, r) {
		ctx.Redirect(http.StatusSeeOther, afterSignIn(r, done))
	}
}

// keepSession keeps a login's tokens in the cookie (and the device
// token in its own); false when the answer could not be read, and the
// page says so.
func (c *Console) keepSession(ctx *gin.Context, r reply) bool {
	var t tokens
	if err := r.decode(&t); err != nil {
		c.renderStatus(ctx, http.StatusBadGateway, "signin", page{Title: "Sign in", Error: &problem{}, Retry: "/signin"})
		return false
	}
	// A new session gets a new CSRF token: one known before sign-in
	// (login CSRF) is worth nothing after it.
	c.writeState(ctx, c.signedInState(randomToken(), t))
	if t.Device != "" {
		http.SetCookie(ctx.Writer, &http.Cookie{ //nolint:gosec // Secure follows AUTHLEDGER_PUBLIC_URL (https); HttpOnly and SameSite=Strict always
			Name: deviceCookie, Value: t.Device, Path: "/signin", MaxAge: int((90 * 24 * time.Hour).Seconds()),
			HttpOnly: true, Secure: c.cfg.Secure, SameSite: http.SameSiteStrictMode,
		})
	}
	return true
}

// afterSignIn is the history's address after a login, reading after
// its write.
func afterSignIn(r reply, done string) string {
	q := url.Values{}
	if ct := r.header.Get("X-Consistency-Token"); consistencyToken.MatchString(ct) {
		q.Set("ct", ct)
	}
	if done != "" {
		q.Set("done", done)
	}
	target := "/history"
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	return target
}

func (c *Console) registerPage(ctx *gin.Context) {
	if c.readState(ctx).signedIn() {
		ctx.Redirect(http.StatusSeeOther, "/history")
		return
	}
	c.render(ctx, "register", page{Title: "Create an account", Form: map[string]string{"terms": c.cfg.TermsVersion}})
}

func (c *Console) register(ctx *gin.Context) {
	email, password, name := ctx.PostForm("email"), ctx.PostForm("password"), ctx.PostForm("display_name")
	p := page{Title: "Create an account", Form: map[string]string{"email": email, "display_name": name, "terms": c.cfg.TermsVersion}}
	body := map[string]string{"email": email, "password": password, "display_name": name}
	if v := ctx.PostForm("terms_version"); v != "" {
		body["terms_version"] = v
	}
	r, err := c.anonymous(ctx, http.MethodPost, "/v1/auth/register", body)
	if err != nil {
		p.Error, p.Retry = &problem{}, "/register"
		c.renderStatus(ctx, http.StatusServiceUnavailable, "register", p)
		return
	}
	switch r.status {
	case http.StatusCreated:
		login, err := c.anonymous(ctx, http.MethodPost, "/v1/auth/login", map[string]string{"email": email, "password": password})
		if err != nil || login.status != http.StatusOK {
			// Registered; the sign-in page says why it cannot go on.
			ctx.Redirect(http.StatusSeeOther, "/signin?done=registered")
			return
		}
		c.startSession(ctx, login, "registered")
	case http.StatusAccepted:
		// Enumeration-safe mode: the same answer for a new and a taken
		// address, and no session until the address is verified.
		ctx.Redirect(http.StatusSeeOther, "/signin?done=verify")
	default:
		p.Error = r.problem()
		c.renderStatus(ctx, r.status, "register", p)
	}
}

func (c *Console) signOut(ctx *gin.Context) {
	st := c.readState(ctx)
	if st.signedIn() {
		if _, err := c.call(ctx, http.MethodPost, "/v1/auth/logout", nil, ""); err != nil && !errors.Is(err, errSessionOver) {
			c.cfg.Logger.Warn("console: logout", "err", err)
		}
	}
	c.writeState(ctx, state{CSRF: randomToken()})
	ctx.Redirect(http.StatusSeeOther, "/signin?done=signedout")
}

// ---- history ----

// statuses are the task statuses the filter offers (the API's).
var statuses = []string{"queued", "processing", "completed", "failed", "cancelled", "deleted", "expired"}

var sorts = []string{"-created_at", "created_at", "-finished_at", "finished_at"}

// pageSize is the history page's length.
const pageSize = 20

type historyEntry struct {
	TaskID       string   `json:"task_id"`
	Status       string   `json:"status"`
	Attempts     int      `json:"attempts"`
	MaxAttempts  int      `json:"max_attempts"`
	CreatedAt    string   `json:"created_at"`
	FinishedAt   string   `json:"finished_at"`
	ProcessingMS int64    `json:"processing_ms"`
	FileCount    int      `json:"file_count"`
	Bytes        int64    `json:"bytes"`
	FileNames    []string `json:"file_names"`
	Error        string   `json:"error"`
}

type historyView struct {
	Status, From, To, Q, Sort string
	Statuses                  []string
	Items                     []historyEntry
	Page, Pages, Total        int
	// URL is this view's address (polling); PrevURL and NextURL page.
	URL, PrevURL, NextURL string
	// SortCreated and SortFinished are the column headers' links;
	// AriaCreated and AriaFinished their aria-sort.
	SortCreated, SortFinished, AriaCreated, AriaFinished string
	Active                                               bool
	Filtered                                             bool
}

func (v *historyView) query(page int, sort string) string {
	q := url.Values{}
	for k, val := range map[string]string{"status": v.Status, "from": v.From, "to": v.To, "q": v.Q} {
		if val != "" {
			q.Set(k, val)
		}
	}
	if sort != "" && sort != "-created_at" {
		q.Set("sort", sort)
	}
	if page > 1 {
		q.Set("page", strconv.Itoa(page))
	}
	if len(q) == 0 {
		return "/history"
	}
	return "/history?" + q.Encode()
}

// historyFilters reads the filters from the query (or a form).
func historyFilters(get func(string) string) *historyView {
	v := &historyView{Statuses: statuses, Status: get("status"), From: get("from"), To: get("to"), Q: get("q"), Sort: get("sort"), Page: 1}
	if !slices.Contains(statuses, v.Status) {
		v.Status = ""
	}
	if !slices.Contains(sorts, v.Sort) {
		v.Sort = "-created_at"
	}
	if n, err := strconv.Atoi(get("page")); err == nil && n > 1 {
		v.Page = n
	}
	v.Filtered = v.Status != "" || v.From != "" || v.To != "" || v.Q != ""
	return v
}

// apiFilters are the filters as the API takes them. The page's "to" date
// is inclusive, the API's "to" exclusive: the day after is sent.
func (v *historyView) apiFilters() map[string]string {
	f := map[string]string{"sort": v.Sort}
	if v.Status != "" {
		f["status"] = v.Status
	}
	if v.From != "" {
		f["from"] = v.From
	}
	if v.To != "" {
		f["to"] = v.To
		if d, err := time.Parse(time.DateOnly, v.To); err == nil {
			f["to"] = d.AddDate(0, 0, 1).Format(time.DateOnly)
		}
	}
	if v.Q != "" {
		f["q"] = v.Q
	}
	return f
}

func (c *Console) historyPage(r *Request) {
	v := historyFilters(r.Ctx.Query)
	p := page{Title: "Task History", History: v}
	q := url.Values{}
	for k, val := range v.apiFilters() {
		q.Set(k, val)
	}
	q.Set("page", strconv.Itoa(v.Page))
	q.Set("page_size", strconv.Itoa(pageSize))
	var res struct {
		Items []historyEntry `json:"items"`
		Total int            `json:"total"`
	}
	_, err := c.callJSON(r.Ctx, http.MethodGet, "/v1/history?"+q.Encode(), nil, &res, readAfter(r.Ctx)...)
	if c.sessionOver(r, err) {
		return
	}
	c.fail(r, &p, err)
	v.Items, v.Total = res.Items, res.Total
	v.Pages = max(1, (res.Total+pageSize-1)/pageSize)
	v.URL = v.query(v.Page, v.Sort)
	if v.Page > 1 {
		v.PrevURL = v.query(v.Page-1, v.Sort)
	}
	if v.Page < v.Pages {
		v.NextURL = v.query(v.Page+1, v.Sort)
	}
	v.SortCreated, v.AriaCreated = v.query(1, "-created_at"), "none"
	v.SortFinished, v.AriaFinished = v.query(1, "-finished_at"), "none"
	switch v.Sort {
	case "-created_at":
		v.SortCreated, v.AriaCreated = v.query(1, "created_at"), "descending"
	case "created_at":
		v.AriaCreated = "ascending"
	case "-finished_at":
		v.SortFinished, v.AriaFinished = v.query(1, "finished_at"), "descending"
	case "finished_at":
		v.AriaFinished = "ascending"
	}
	for _, it := range v.Items {
		if it.Status == "queued" || it.Status == "processing" {
			v.Active = true
		}
	}
	if r.Ctx.GetHeader("HX-Request") == "true" {
		if p.Error != nil && p.Retry != "" {
			p.Retry = v.URL
		}
		c.renderFragment(r.Ctx, "history", "results", p)
		return
	}
	// Unfiltered, the page's total is the badge's count: one count of
	// the history, not two.
	count := -1
	if !v.Filtered && p.Error == nil {
		count = v.Total
	}
	if !c.headerCounted(r, &p, count) {
		return
	}
	c.render(r.Ctx, "history", p)
}

func (c *Console) export(r *Request) {
	v := historyFilters(r.Ctx.PostForm)
	format := r.Ctx.PostForm("format")
	if format != "json" {
		format = "csv"
	}
	body, err := json.Marshal(map[string]any{"format": format, "filters": v.apiFilters()})
	if err != nil {
		c.fail(r, &page{}, err)
		return
	}
	err = c.passThrough(r.Ctx, http.MethodPost, "/v1/history/export", body, "application/json")
	if err != nil && !c.sessionOver(r, err) {
		p := page{Title: "Export"}
		c.fail(r, &p, err)
		p.Retry = "/history"
		c.renderStatus(r.Ctx, http.StatusServiceUnavailable, "error", p)
	}
}

// ---- one task ----

type taskFile struct {
	FileID      string `json:"file_id"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
}

type taskView struct {
	TaskID       string     `json:"task_id"`
	Status       string     `json:"status"`
	Attempts     int        `json:"attempts"`
	MaxAttempts  int        `json:"max_attempts"`
	CreatedAt    string     `json:"created_at"`
	StartedAt    string     `json:"started_at"`
	FinishedAt   string     `json:"finished_at"`
	ProcessingMS int64      `json:"processing_ms"`
	FileCount    int        `json:"file_count"`
	Bytes        int64      `json:"bytes"`
	Error        string     `json:"error"`
	Result       string     `json:"result"`
	Files        []taskFile `json:"files"`
	// Gone is a task the API no longer shows (deleted or expired).
	Gone bool `json:"-"`
}

func (t *taskView) Retryable() bool { return t.Status == "failed" && t.Attempts < t.MaxAttempts }
func (t *taskView) Deletable() bool { return !t.Gone && t.Status != "deleted" && t.Status != "expired" }

// taskID is the :id parameter, refused unless it is a UUID (it becomes
// part of an API path).
func taskID(ctx *gin.Context, param string) (string, bool) {
	id, err := uuid.Parse(ctx.Param(param))
	if err != nil {
		return "", false
	}
	return id.String(), true
}

func (c *Console) notFound(r *Request, what string) {
	p := page{Title: "Not found", Error: &problem{Status: http.StatusNotFound, Detail: what}}
	if r.Ctx.GetHeader("HX-Request") != "true" && !c.header(r, &p) {
		return
	}
	c.renderStatus(r.Ctx, http.StatusNotFound, "error", p)
}

func (c *Console) taskPage(r *Request) {
	id, ok := taskID(r.Ctx, "id")
	if !ok {
		c.notFound(r, "There is no such task.")
		return
	}
	t := &taskView{TaskID: id}
	p := page{Title: "Task", Task: t}
	_, err := c.callJSON(r.Ctx, http.MethodGet, "/v1/tasks/"+id, nil, t, readAfter(r.Ctx)...)
	if c.sessionOver(r, err) {
		return
	}
	var pr *problem
	if errors.As(err, &pr) && pr.Status == http.StatusNotFound {
		// Another user's task answers as a missing one; so does a
		// deleted one, which the history still lists.
		t.Gone = true
		err = nil
	}
	c.fail(r, &p, err)
	if r.Ctx.GetHeader("HX-Request") == "true" {
		c.renderFragment(r.Ctx, "task", "task-body", p)
		return
	}
	if !c.header(r, &p) {
		return
	}
	c.render(r.Ctx, "task", p)
}

// afterCommand redirects to target, reading after the command's write.
func afterCommand(ctx *gin.Context, rep reply, target, done string) {
	q := url.Values{"done": {done}}
	if ct := rep.header.Get("X-Consistency-Token"); consistencyToken.MatchString(ct) {
		q.Set("ct", ct)
	}
	ctx.Redirect(http.StatusSeeOther, target+"?"+q.Encode())
}

// commandFailed draws the refusal of a command on the task's page.
func (c *Console) commandFailed(r *Request, id string, err error) {
	if c.sessionOver(r, err) {
		return
	}
	t := &taskView{TaskID: id}
	p := page{Title: "Task", Task: t}
	if _, gerr := c.callJSON(r.Ctx, http.MethodGet, "/v1/tasks/"+id, nil, t); gerr != nil {
		t.Gone = true
	}
	c.fail(r, &p, err)
	p.Retry = "" // a POST is not repeated by a link
	if !c.header(r, &p) {
		return
	}
	c.renderStatus(r.Ctx, statusOf(err), "task", p)
}

func (c *Console) retry(r *Request) {
	id, ok := taskID(r.Ctx, "id")
	if !ok {
		c.notFound(r, "There is no such task.")
		return
	}
	rep, err := c.callJSON(r.Ctx, http.MethodPost, "/v1/tasks/"+id+"/retry", nil, nil)
	if err != nil {
		c.commandFailed(r, id, err)
		return
	}
	afterCommand(r.Ctx, rep, "/history/"+id, "retried")
}

func (c *Console) deleteTask(r *Request) {
	id, ok := taskID(r.Ctx, "id")
	if !ok {
		c.notFound(r, "There is no such task.")
		return
	}
	rep, err := c.callJSON(r.Ctx, http.MethodDelete, "/v1/tasks/"+id, nil, nil)
	if err != nil {
		c.commandFailed(r, id, err)
		return
	}
	afterCommand(r.Ctx, rep, "/history", "deleted")
}

func (c *Console) download(r *Request) {
	id, ok1 := taskID(r.Ctx, "id")
	file, ok2 := taskID(r.Ctx, "file_id")
	if !ok1 || !ok2 {
		c.notFound(r, "There is no such file.")
		return
	}
	if err := c.passThrough(r.Ctx, http.MethodGet, "/v1/tasks/"+id+"/files/"+file, nil, ""); err != nil && !c.sessionOver(r, err) {
		p := page{Title: "Download"}
		c.fail(r, &p, err)
		c.renderStatus(r.Ctx, http.StatusServiceUnavailable, "error", p)
	}
}

// statusOf is the status a page drawing err answers with: the API's,
// or 503 when the API could not be asked.
func statusOf(err error) int {
	var pr *problem
	if errors.As(err, &pr) && pr.Status >= 400 {
		return pr.Status
	}
	return http.StatusServiceUnavailable
}

// ---- upload ----

type uploadView struct {
	MaxFileBytes, MaxRequestBytes int64
	MaxFiles                      int
	Types                         []string
	// Accept is the file input's accept attribute (types and their file
	// name extensions).
	Accept string
}

func (c *Console) uploadView() *uploadView {
	u := c.cfg.Upload
	accept := slices.Clone(u.Types)
	for _, t := range u.Types {
		accept = append(accept, extensions[t]...)
	}
	return &uploadView{MaxFileBytes: u.MaxFileBytes, MaxRequestBytes: u.MaxRequestBytes, MaxFiles: u.MaxFiles, Types: u.Types, Accept: strings.Join(accept, ",")}
}

// extensions are the file name extensions a browser maps to each type:
// the file picker's filter only (the API sniffs the bytes).
var extensions = map[string][]string{
	"image/png": {".png"}, "image/jpeg": {".jpg", ".jpeg"}, "image/tiff": {".tif", ".tiff"},
	"image/webp": {".webp"}, "image/gif": {".gif"}, "image/bmp": {".bmp"}, "application/pdf": {".pdf"},
}

func (c *Console) uploadPage(r *Request) {
	p := page{Title: "Upload", Upload: c.uploadView()}
	if !c.header(r, &p) {
		return
	}
	c.render(r.Ctx, "upload", p)
}

// upload streams the multipart body to the API's upload unread. Sent by
// console.js (Accept: application/json) it answers JSON: the task's page
// to go to, or the API's problem as it is; sent by the plain form, it
// redirects or draws the error.
func (c *Console) upload(r *Request) {
	wantsJSON := strings.Contains(r.Ctx.GetHeader("Accept"), "application/json")
	st, err := c.fresh(r.Ctx, c.readState(r.Ctx), false)
	var rep reply
	if err == nil {
		var req *http.Request
		if req, err = c.apiRequest(r.Ctx, http.MethodPost, "/v1/tasks", r.Ctx.Request.Body, r.Ctx.GetHeader("Content-Type"), st.Access); err == nil {
			req.ContentLength = r.Ctx.Request.ContentLength
			w := &bufferedWriter{header: http.Header{}}
			c.cfg.API.ServeHTTP(w, req)
			rep = reply{status: w.status, header: w.header, body: w.body.Bytes()}
		}
	}
	if err == nil && rep.status == 0 {
		err = errors.New("console: the upload answered nothing")
	}
	if err != nil {
		if c.sessionOver(r, err) {
			return
		}
		rep = reply{status: http.StatusServiceUnavailable, header: http.Header{"Retry-After": {"1"}},
			body: []byte(`{"type":"https://authledger.dev/problems/unavailable","title":"Service unavailable","status":503,"detail":"The server could not answer just now; try again."}`)}
	}
	if rep.status == http.StatusAccepted {
		var created struct {
			TaskID string `json:"task_id"`
		}
		_ = rep.decode(&created)
		target := "/history/" + url.PathEscape(created.TaskID) + "?done=uploaded"
		if ct := rep.header.Get("X-Consistency-Token"); consistencyToken.MatchString(ct) {
			target += "&ct=" + ct
		}
		if wantsJSON {
			r.Ctx.JSON(http.StatusAccepted, gin.H{"task_id": created.TaskID, "location": target})
			return
		}
		r.Ctx.Redirect(http.StatusSeeOther, target)
		return
	}
	if wantsJSON {
		if ra := rep.header.Get("Retry-After"); ra != "" {
			r.Ctx.Header("Retry-After", ra)
		}
		r.Ctx.Data(rep.status, "application/problem+json", rep.body)
		return
	}
	p := page{Title: "Upload", Upload: c.uploadView(), Error: rep.problem()}
	if !c.header(r, &p) {
		return
	}
	c.renderStatus(r.Ctx, rep.status, "upload", p)
}

// ---- profile, sessions, stats ----

func (c *Console) profilePage(r *Request) {
	me := &profile{}
	p := page{Title: "Profile", Profile: me}
	_, err := c.callJSON(r.Ctx, http.MethodGet, "/v1/me", nil, me, readAfter(r.Ctx)...)
	if c.sessionOver(r, err) {
		return
	}
	c.fail(r, &p, err)
	if !c.header(r, &p) {
		return
	}
	c.render(r.Ctx, "profile", p)
}

func (c *Console) updateProfile(r *Request) {
	name := r.Ctx.PostForm("display_name")
	rep, err := c.callJSON(r.Ctx, http.MethodPatch, "/v1/me", map[string]string{"display_name": name}, nil)
	if err != nil {
		if c.sessionOver(r, err) {
			return
		}
		me := &profile{}
		p := page{Title: "Profile", Profile: me}
		_, _ = c.callJSON(r.Ctx, http.MethodGet, "/v1/me", nil, me)
		c.fail(r, &p, err)
		p.Retry = ""
		if !c.header(r, &p) {
			return
		}
		c.renderStatus(r.Ctx, statusOf(err), "profile", p)
		return
	}
	afterCommand(r.Ctx, rep, "/profile", "saved")
}

type sessionView struct {
	ID         string `json:"id"`
	StartedAt  string `json:"started_at"`
	LastUsedAt string `json:"last_used_at"`
	IP         string `json:"ip"`
	UserAgent  string `json:"user_agent"`
	Method     string `json:"method"`
	Current    bool   `json:"current"`
}

func (c *Console) sessionsPage(r *Request) {
	var res struct {
		Items []sessionView `json:"items"`
	}
	p := page{Title: "Sessions"}
	_, err := c.callJSON(r.Ctx, http.MethodGet, "/v1/auth/sessions?page_size=100", nil, &res, readAfter(r.Ctx)...)
	if c.sessionOver(r, err) {
		return
	}
	c.fail(r, &p, err)
	p.Sessions = res.Items
	if !c.header(r, &p) {
		return
	}
	c.render(r.Ctx, "sessions", p)
}

func (c *Console) revokeSession(r *Request) {
	id, ok := taskID(r.Ctx, "id")
	if !ok {
		c.notFound(r, "There is no such session.")
		return
	}
	if id == c.readState(r.Ctx).Session {
		c.signOut(r.Ctx)
		return
	}
	rep, err := c.callJSON(r.Ctx, http.MethodDelete, "/v1/auth/sessions/"+id, nil, nil)
	if err != nil {
		if c.sessionOver(r, err) {
			return
		}
		p := page{Title: "Sessions"}
		c.fail(r, &p, err)
		p.Retry = "/sessions"
		if !c.header(r, &p) {
			return
		}
		c.renderStatus(r.Ctx, statusOf(err), "sessions", p)
		return
	}
	afterCommand(r.Ctx, rep, "/sessions", "revoked")
}

type statsView struct {
	Total           int            `json:"total"`
	ByStatus        map[string]int `json:"by_status"`
	SuccessRate     *float64       `json:"success_rate"`
	AvgProcessingMS *float64       `json:"avg_processing_ms"`
	Files           int            `json:"files"`
	Bytes           int64          `json:"bytes"`
}

// Rate is the success rate as a percentage, or "—".
func (s *statsView) Rate() string {
	if s.SuccessRate == nil {
		return "—"
	}
	return fmt.Sprintf("%.0f %%", *s.SuccessRate*100)
}

// Average is the mean processing time, or "—".
func (s *statsView) Average() string {
	if s.AvgProcessingMS == nil {
		return "—"
	}
	return fmt.Sprintf("%.0f ms", *s.AvgProcessingMS)
}

// Rows are the counts by status in the filter's order.
func (s *statsView) Rows() [][2]string {
	var out [][2]string
	for _, st := range statuses {
		out = append(out, [2]string{st, strconv.Itoa(s.ByStatus[st])})
	}
	return out
}

func (c *Console) statsPage(r *Request) {
	s := &statsView{}
	p := page{Title: "Stats", Stats: s}
	_, err := c.callJSON(r.Ctx, http.MethodGet, "/v1/history/stats", nil, s, readAfter(r.Ctx)...)
	if c.sessionOver(r, err) {
		return
	}
	c.fail(r, &p, err)
	if !c.header(r, &p) {
		return
	}
	c.render(r.Ctx, "stats", p)
}

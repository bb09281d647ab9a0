package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
	"github.com/authledger/authledger/test/openapitest"
)

// syncBuffer collects log output written from handler goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the JSON log records.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

type fixture struct {
	engine *gin.Engine
	logs   *syncBuffer
	// checked is the engine wrapped by openapitest, built at the first
	// request (once the test has added its routes).
	checked *checkedEngine
}

type checkedEngine struct {
	t    *testing.T // the test that built the engine: it outlives its subtests
	once sync.Once
	h    http.Handler
}

func newEngine(t *testing.T, mutate func(*httpapi.Config)) fixture {
	t.Helper()
	logs := &syncBuffer{}
	cfg := httpapi.Config{
		Logger:  slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Version: "test",
		OpenAPI: []byte("openapi: 3.1.0\n"),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := httpapi.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return fixture{engine: e, logs: logs, checked: &checkedEngine{t: t}}
}

func (f fixture) do(t *testing.T, method, path string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), method, path, nil)
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	rec := httptest.NewRecorder()
	f.handler(t).ServeHTTP(rec, req)
	return rec
}

// handler is the engine with every exchange checked against openapi.yaml;
// the routes a test adds (those openapi.yaml does not describe) are the
// test's own, whose refusals must still be the shared problem answers.
// It is built once, before the first request: gin builds its route trees
// at the first request, which must not race Routes.
func (f fixture) handler(t *testing.T) http.Handler {
	t.Helper()
	f.checked.once.Do(func() {
		spec, err := openapitest.Load()
		if err != nil {
			t.Fatal(err)
		}
		var own []string
		for _, r := range f.engine.Routes() {
			if !spec.Describes(r.Method, r.Path) {
				own = append(own, r.Method+" "+r.Path)
			}
		}
		f.checked.h = openapitest.Handler(f.checked.t, f.engine, openapitest.TestRoutes(own...))
	})
	return f.checked.h
}

func decodeProblem(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != httpapi.ContentTypeProblem {
		t.Fatalf("Content-Type = %q, want %q (body %s)", ct, httpapi.ContentTypeProblem, rec.Body)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("problem body: %v: %s", err, rec.Body)
	}
	for _, k := range []string{"type", "title", "status", "detail"} {
		if _, ok := m[k]; !ok {
			t.Errorf("problem lacks %q: %s", k, rec.Body)
		}
	}
	if int(m["status"].(float64)) != rec.Code {
		t.Errorf("problem status %v differs from HTTP status %d", m["status"], rec.Code)
	}
	return m
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	err := httpapi.Config{ReadinessTimeout: -1, Readiness: []httpapi.Check{{}}}.Validate()
	if err == nil {
		t.Fatal("Validate accepted an empty config")
	}
	for _, want := range []string{"Logger", "OpenAPI", "ReadinessTimeout", "readiness check 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	f := newEngine(t, nil)
	f.engine.GET("/origin", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"request_id": httpapi.RequestID(c), "ip": c.ClientIP(), "ua": c.Request.UserAgent()})
	})

	long := strings.Repeat("a", httpapi.MaxRequestIDLength)
	cases := []struct {
		name, sent string
		echoed     bool
	}{
		{"none sent", "", false},
		{"uuid echoed", "3f1e2d4c-1111-4abc-9def-000000000001", true},
		{"safe characters echoed", "req_01:a.b~c+d/e=f@g", true},
		{"128 characters echoed", long, true},
		{"129 characters replaced", long + "a", false},
		{"space replaced", "has space", false},
		{"quote replaced", `a"b`, false},
		{"non-ASCII replaced", "héllo", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{"User-Agent": {"probe/1"}}
			if tc.sent != "" {
				h.Set(httpapi.HeaderRequestID, tc.sent)
			}
			rec := f.do(t, http.MethodGet, "/origin", h)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			got := rec.Header().Get(httpapi.HeaderRequestID)
			if tc.echoed && got != tc.sent {
				t.Fatalf("X-Request-ID = %q, want the client's %q", got, tc.sent)
			}
			if !tc.echoed {
				if got == tc.sent {
					t.Fatalf("invalid id %q was echoed", tc.sent)
				}
				if _, err := uuid.Parse(got); err != nil {
					t.Fatalf("generated id %q is not a UUID: %v", got, err)
				}
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if body["request_id"] != got {
				t.Errorf("context carries %q, header %q", body["request_id"], got)
			}
			if body["ua"] != "probe/1" || body["ip"] == "" {
				t.Errorf("origin = %v, want the user agent and a client IP", body)
			}
		})
	}
}

func TestClientIPIgnoresForwardedHeadersFromUntrustedPeers(t *testing.T) {
	t.Parallel()
	route := func(e *gin.Engine) {
		e.GET("/ip", func(c *gin.Context) {
			c.String(http.StatusOK, c.ClientIP())
		})
	}
	h := http.Header{"X-Forwarded-For": {"203.0.113.9"}}

	untrusted := newEngine(t, nil)
	route(untrusted.engine)
	if got := untrusted.do(t, http.MethodGet, "/ip", h).Body.String(); got == "203.0.113.9" {
		t.Errorf("without trusted proxies the forged X-Forwarded-For was believed")
	}
	// httptest requests come from 192.0.2.1.
	trusted := newEngine(t, func(c *httpapi.Config) { c.TrustedProxies = []string{"192.0.2.0/24"} })
	route(trusted.engine)
	if got := trusted.do(t, http.MethodGet, "/ip", h).Body.String(); got != "203.0.113.9" {
		t.Errorf("behind a trusted proxy the client IP is %q, want 203.0.113.9", got)
	}
}

func TestWriteErrorMapsTheVocabulary(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		err        error
		status     int
		slug       string
		retryAfter string
		fields     int
	}{
		{"not found", problem.NotFound("no such task"), 404, "not-found", "", 0},
		{"conflict with slug", problem.Conflict("email-taken", "taken"), 409, "email-taken", "", 0},
		{"plain conflict", problem.Conflict("", "changed"), 409, "conflict", "", 0},
		{"invalid input with fields", problem.Invalid("bad body",
			problem.FieldError{Field: "email", Message: "required"},
			problem.FieldError{Field: "password", Message: "too short"}), 400, "invalid-input", "", 2},
		{"unauthenticated", problem.Unauthenticated("invalid-credentials", "wrong email or password"), 401, "invalid-credentials", "", 0},
		{"forbidden", problem.Forbidden("admins only"), 403, "forbidden", "", 0},
		{"rate limited", problem.RateLimited("", 1500*time.Millisecond, "slow down"), 429, "rate-limited", "2", 0},
		{"task quota", problem.RateLimited("task-quota", time.Minute, "quota"), 429, "task-quota", "60", 0},
		{"too large", problem.TooLarge("20 MiB per file"), 413, "too-large", "", 0},
		{"unsupported type", problem.UnsupportedType("PNG, JPEG, TIFF, WebP or PDF"), 415, "unsupported-type", "", 0},
		{"unavailable", problem.Unavailable(2*time.Second, "read models lag"), 503, "unavailable", "2", 0},
		{"wrapped problem", fmt.Errorf("login: %w", problem.Unauthenticated("invalid-token", "bad token")), 401, "invalid-token", "", 0},
		{"bare kind", fmt.Errorf("lookup: %w", problem.KindNotFound), 404, "not-found", "", 0},
		{"wrong expected version", &eventstore.WrongExpectedVersionError{Stream: "user-1", Expected: eventstore.NoStream{}}, 409, "conflict", "", 0},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), 503, "unavailable", "1", 0},
		{"body too large", &http.MaxBytesError{Limit: 10}, 413, "too-large", "", 0},
		{"unknown error", errors.New("pq: password authentication failed for host db.internal"), 500, "internal-error", "", 0},
	}
	f := newEngine(t, nil)
	for i, tc := range cases {
		path := fmt.Sprintf("/err/%d", i)
		err := tc.err
		f.engine.GET(path, func(c *gin.Context) { httpapi.WriteError(c, err) })
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := f.do(t, http.MethodGet, path, nil)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			p := decodeProblem(t, rec)
			if p["type"] != problem.TypeBase+tc.slug {
				t.Errorf("type %v, want %s", p["type"], problem.TypeBase+tc.slug)
			}
			if got := rec.Header().Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			errs, _ := p["errors"].([]any)
			if len(errs) != tc.fields {
				t.Errorf("errors has %d entries, want %d: %s", len(errs), tc.fields, rec.Body)
			}
			if !strings.HasPrefix(p["instance"].(string), "urn:authledger:request:") {
				t.Errorf("instance %v does not name the request", p["instance"])
			}
			if tc.status == 500 && strings.Contains(rec.Body.String(), "db.internal") {
				t.Errorf("internal error leaked its cause: %s", rec.Body)
			}
		})
	}
}

func TestInvalidInputFieldsAreRendered(t *testing.T) {
	t.Parallel()
	f := newEngine(t, nil)
	f.engine.POST("/v", func(c *gin.Context) {
		httpapi.WriteError(c, problem.Invalid("The body has invalid fields.", problem.FieldError{Field: "email", Message: "must be a valid email address"}))
	})
	p := decodeProblem(t, f.do(t, http.MethodPost, "/v", nil))
	want := []any{map[string]any{"field": "email", "message": "must be a valid email address"}}
	if fmt.Sprint(p["errors"]) != fmt.Sprint(want) || p["title"] != "Invalid input" {
		t.Errorf("problem = %v", p)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	t.Parallel()
	f := newEngine(t, nil)
	rec := f.do(t, http.MethodGet, "/nope", nil)
	if rec.Code != http.StatusNotFound {
		t.Fatalf("unknown route: %d", rec.Code)
	}
	if p := decodeProblem(t, rec); p["type"] != problem.TypeBase+"not-found" {
		t.Errorf("404 type %v", p["type"])
	}
	if rec.Header().Get(httpapi.HeaderRequestID) == "" {
		t.Error("404 lacks X-Request-ID: middleware did not run")
	}

	rec = f.do(t, http.MethodPost, "/healthz", nil)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("wrong method: %d", rec.Code)
	}
	if p := decodeProblem(t, rec); p["type"] != problem.TypeBase+"method-not-allowed" {
		t.Errorf("405 type %v", p["type"])
	}
	if rec.Header().Get("Allow") != "GET" {
		t.Errorf("Allow = %q, want GET", rec.Header().Get("Allow"))
	}
	// No redirect for a trailing slash: an API answers the path it got.
	if rec := f.do(t, http.MethodGet, "/healthz/", nil); rec.Code != http.StatusNotFound {
		t.Errorf("GET /healthz/ = %d, want 404", rec.Code)
	}
}

func TestPanicBecomesLoggedProblem(t *testing.T) {
	t.Parallel()
	f := newEngine(t, nil)
	f.engine.GET("/boom", func(*gin.Context) { panic("secret internal state") })
	rec := f.do(t, http.MethodGet, "/boom", http.Header{httpapi.HeaderRequestID: {"boom-1"}})
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d", rec.Code)
	}
	p := decodeProblem(t, rec)
	if p["type"] != problem.TypeBase+"internal-error" || strings.Contains(rec.Body.String(), "secret") {
		t.Errorf("problem = %s", rec.Body)
	}
	var sawPanic, sawAccess bool
	for _, l := range f.logs.lines(t) {
		switch l["msg"] {
		case "panic in handler":
			sawPanic = l["request_id"] == "boom-1" && strings.Contains(l["panic"].(string), "secret") && l["stack"] != ""
		case "http request":
			sawAccess = l["request_id"] == "boom-1" && l["status"] == 500.0 && l["level"] == "ERROR"
		}
	}
	if !sawPanic || !sawAccess {
		t.Errorf("logs lack the panic (%v) or its 500 access line (%v): %v", sawPanic, sawAccess, f.logs.lines(t))
	}
}

// A handler that cuts the connection after its response began
// (http.ErrAbortHandler) is neither turned into a 500 nor lost: the client
// sees a failed transfer, and the request is logged as aborted, with its
// error, and counted.
func TestAbortedRequestIsCutLoggedAndCounted(t *testing.T) {
	t.Parallel()
	f := newEngine(t, nil)
	f.engine.GET("/stream", func(c *gin.Context) {
		c.Status(http.StatusOK)
		_, _ = c.Writer.WriteString("first part\n")
		c.Writer.Flush()
		_ = c.Error(errors.New("the source failed"))
		panic(http.ErrAbortHandler)
	})
	srv := httptest.NewServer(f.handler(t))
	defer srv.Close()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/stream", nil)
	req.Header.Set(httpapi.HeaderRequestID, "cut-1")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "first part\n" || err == nil {
		t.Fatalf("status %d, body %q, read error %v; want 200, the first part, then an error", resp.StatusCode, body, err)
	}
	srv.Close() // the handler has returned: its log line is written
	var line map[string]any
	for _, l := range f.logs.lines(t) {
		if l["msg"] == "http request" && l["request_id"] == "cut-1" {
			line = l
		}
	}
	if line == nil || line["aborted"] != true || line["level"] != "ERROR" || !strings.Contains(fmt.Sprint(line["error"]), "the source failed") {
		t.Fatalf("access log line %v, want an aborted ERROR line with the error", line)
	}
	rec := f.do(t, http.MethodGet, "/metrics", nil)
	if want := `authledger_http_requests_total{method="GET",route="/stream",status="200"} 1`; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("/metrics lacks %q", want)
	}
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	f := newEngine(t, nil)
	f.engine.GET("/me", func(c *gin.Context) {
		httpapi.SetPrincipal(c, httpapi.Principal{UserID: uuid.MustParse("00000000-0000-4000-8000-000000000042")})
		c.Status(http.StatusNoContent)
	})
	f.do(t, http.MethodGet, "/me?token=secret", http.Header{httpapi.HeaderRequestID: {"log-1"}})
	var line map[string]any
	for _, l := range f.logs.lines(t) {
		if l["msg"] == "http request" && l["request_id"] == "log-1" {
			line = l
		}
	}
	if line == nil {
		t.Fatalf("no access log line: %v", f.logs.lines(t))
	}
	want := map[string]any{"method": "GET", "path": "/me", "route": "/me", "status": 204.0, "user_id": "00000000-0000-4000-8000-000000000042", "level": "INFO"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("access log %s = %v, want %v", k, line[k], v)
		}
	}
	if _, ok := line["latency_ms"].(float64); !ok {
		t.Errorf("access log lacks latency_ms: %v", line)
	}
	if strings.Contains(fmt.Sprint(line), "secret") {
		t.Errorf("access log contains the query string: %v", line)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	var dbUp sync.Mutex // locked means down
	f := newEngine(t, func(c *httpapi.Config) {
		c.Readiness = []httpapi.Check{
			{Name: "database", Func: func(context.Context) (any, error) {
				if !dbUp.TryLock() {
					return nil, errors.New("dial tcp 10.0.0.5:5432: connection refused")
				}
				dbUp.Unlock()
				return nil, nil
			}},
			{Name: "projection", Func: func(context.Context) (any, error) { return map[string]int{"lag": 0}, nil }},
		}
	})

	rec := f.do(t, http.MethodGet, "/healthz", nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"version":"test"`) {
		t.Errorf("healthz: %d %s", rec.Code, rec.Body)
	}

	rec = f.do(t, http.MethodGet, "/readyz", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("readyz: %d %s", rec.Code, rec.Body)
	}
	var ready struct {
		Status string                         `json:"status"`
		Checks map[string]httpapi.CheckResult `json:"checks"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &ready); err != nil {
		t.Fatal(err)
	}
	if ready.Status != "ready" || ready.Checks["database"].Status != "ok" || ready.Checks["projection"].Details == nil {
		t.Errorf("readyz body %s", rec.Body)
	}

	dbUp.Lock()
	rec = f.do(t, http.MethodGet, "/readyz", nil)
	dbUp.Unlock()
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("readyz with the database down: %d %v", rec.Code, rec.Header())
	}
	p := decodeProblem(t, rec)
	checks := p["checks"].(map[string]any)
	if checks["database"].(map[string]any)["status"] != "failing" || checks["projection"].(map[string]any)["status"] != "ok" {
		t.Errorf("checks = %v", checks)
	}
	if strings.Contains(rec.Body.String(), "10.0.0.5") {
		t.Errorf("readyz leaked the check's error: %s", rec.Body)
	}
}

func TestReadinessCheckThatPanicsOrHangsFails(t *testing.T) {
	t.Parallel()
	f := newEngine(t, func(c *httpapi.Config) {
		c.ReadinessTimeout = 50 * time.Millisecond
		c.Readiness = []httpapi.Check{
			{Name: "panics", Func: func(context.Context) (any, error) { panic("x") }},
			{Name: "hangs", Func: func(ctx context.Context) (any, error) { <-ctx.Done(); return nil, ctx.Err() }},
		}
	})
	rec := f.do(t, http.MethodGet, "/readyz", nil)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("readyz: %d %s", rec.Code, rec.Body)
	}
}

func TestMetricsAndOpenAPI(t *testing.T) {
	t.Parallel()
	f := newEngine(t, nil)
	f.do(t, http.MethodGet, "/healthz", nil)
	f.do(t, "BREW", "/healthz", nil)
	rec := f.do(t, http.MethodGet, "/metrics", nil)
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`authledger_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`authledger_http_requests_total{method="other",route="unmatched",status="405"} 1`,
		"authledger_http_request_duration_seconds_bucket",
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	rec = f.do(t, http.MethodGet, "/openapi.yaml", nil)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/yaml" || rec.Body.String() != "openapi: 3.1.0\n" {
		t.Errorf("openapi: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
}

func TestSecureHeaders(t *testing.T) {
	t.Parallel()
	rec := newEngine(t, nil).do(t, http.MethodGet, "/healthz", nil)
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", rec.Header())
	}
	if v, ok := rec.Header()["Strict-Transport-Security"]; ok {
		t.Errorf("HSTS without https: %v", v)
	}
}

// Behind https every answer carries HSTS, errors and unknown paths too.
func TestHSTSBehindHTTPS(t *testing.T) {
	t.Parallel()
	f := newEngine(t, func(c *httpapi.Config) { c.HSTS = true })
	for _, path := range []string{"/healthz", "/no/such/path"} {
		if rec := f.do(t, http.MethodGet, path, nil); rec.Header().Get("Strict-Transport-Security") != "max-age=31536000" {
			t.Errorf("%s: %d HSTS %q", path, rec.Code, rec.Header().Get("Strict-Transport-Security"))
		}
	}
}

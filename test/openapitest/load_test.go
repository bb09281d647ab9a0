package openapitest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/authledger/authledger/test/openapitest"
)

// openapi.yaml loads as a valid OpenAPI 3.1 document.
func TestLoad(t *testing.T) {
	t.Parallel()
	spec, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !spec.Doc().IsOpenAPI31OrLater() {
		t.Errorf("openapi %q", spec.Doc().OpenAPI)
	}
}

const problemBase = "https://authledger.dev/problems/"

func problemBody(slug string, status int) string {
	return fmt.Sprintf(`{"type":%q,"title":"T","status":%d,"detail":"d"}`, problemBase+slug, status)
}

func exchange(method, target, reqBody string, status int, header map[string]string, body string) openapitest.Exchange {
	req := httptest.NewRequest(method, target, nil)
	req.Header.Set("Authorization", "Bearer x")
	h := http.Header{"X-Request-Id": {"req-1"}}
	for k, v := range header {
		h.Set(k, v)
	}
	return openapitest.Exchange{
		Request: req, RequestBody: []byte(reqBody), RequestBodyComplete: true,
		Status: status, Header: h, Body: []byte(body), BodyComplete: true,
	}
}

var (
	asJSON    = map[string]string{"Content-Type": "application/json"}
	asProblem = map[string]string{"Content-Type": "application/problem+json"}
)

func withRetryAfter(h map[string]string, v string) map[string]string {
	out := map[string]string{"Retry-After": v}
	for k, x := range h {
		out[k] = x
	}
	return out
}

// Each way an exchange can depart from openapi.yaml is caught, with a
// message that says which; what conforms passes. (The validator is the
// check of every HTTP test: a check that passes everything would hide
// every drift.)
func TestCheck(t *testing.T) {
	t.Parallel()
	spec, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	noBearer := exchange(http.MethodGet, "/v1/tasks", "", 200, asJSON, `{"items":[],"page":1,"page_size":20,"total":0}`)
	noBearer.Request.Header.Del("Authorization")
	for _, tc := range []struct {
		name string
		ex   openapitest.Exchange
		want string // "" when the exchange conforms
	}{
		{"documented answer", exchange("GET", "/healthz", "", 200, asJSON, `{"status":"ok","version":"v1"}`), ""},
		{"undocumented status", exchange("GET", "/healthz", "", 418, asJSON, `{}`), "status is not supported"},
		{"body off its schema", exchange("GET", "/healthz", "", 200, asJSON, `{"status":"fine","version":"v1"}`), "doesn't match schema"},
		{"undocumented content type", exchange("GET", "/healthz", "", 200, map[string]string{"Content-Type": "text/html"}, `<p>ok`), "Content-Type"},
		{"shared 503 with Retry-After", exchange("GET", "/v1/tasks", "", 503, withRetryAfter(asProblem, "1"), problemBody("unavailable", 503)), ""},
		{"503 without Retry-After", exchange("GET", "/v1/tasks", "", 503, asProblem, problemBody("unavailable", 503)), "Retry-After"},
		{"429 without Retry-After", exchange("GET", "/v1/me", "", 429, asProblem, problemBody("rate-limited", 429)), "Retry-After"},
		{"a status's slug is not another's", exchange("GET", "/v1/tasks", "", 413, asProblem, problemBody("unavailable", 413)), "doesn't match schema"},
		{"problem status differs from HTTP status", exchange("GET", "/v1/tasks", "", 400, asProblem, problemBody("invalid-input", 422)), "not the HTTP status"},
		{"507 on the upload", exchange("POST", "/v1/tasks", "", 507, asProblem, problemBody("storage-full", 507)), ""},
		{"507 where nothing is stored", exchange("GET", "/v1/tasks", "", 507, asProblem, problemBody("storage-full", 507)), "status is not supported"},
		{"204 with a body", exchange("DELETE", "/v1/tasks/0190b6c2-6f1e-7a53-9c1d-3b2f0f4a5e61", "", 204, asJSON, `{}`), "documented without a body"},
		{"unknown path answered 404", exchange("GET", "/v1/nope", "", 404, asProblem, problemBody("not-found", 404)), ""},
		{"unknown path answered 200", exchange("GET", "/v1/nope", "", 200, asJSON, `{}`), "missing from openapi.yaml"},
		{"wrong method with Allow", exchange("PUT", "/healthz", "", 405, withRetryAfter(map[string]string{"Content-Type": "application/problem+json", "Allow": "GET"}, "1"), problemBody("method-not-allowed", 405)), ""},
		{"wrong method without Allow", exchange("PUT", "/healthz", "", 405, asProblem, problemBody("method-not-allowed", 405)), "Allow"},
		{"invalid query refused", exchange("GET", "/v1/tasks?page=0", "", 400, asProblem, problemBody("invalid-input", 400)), ""},
		{"invalid query accepted", exchange("GET", "/v1/tasks?page=0", "", 200, asJSON, `{"items":[],"page":1,"page_size":20,"total":0}`), "accepted (200) a request openapi.yaml says is invalid"},
		{"no Bearer token accepted", noBearer, "no Bearer token"},
		{"JSON body without Content-Type", exchange("POST", "/v1/auth/refresh", `{"refresh_token":"r"}`, 401, asProblem, problemBody("invalid-token", 401)), ""},
		{"JSON body off its schema accepted", exchange("POST", "/v1/history/export", `{"format":"xml"}`, 200, map[string]string{"Content-Type": "text/csv", "Content-Disposition": `attachment; filename="history-1.csv"`}, "a\n"), "says is invalid"},
		{"no X-Request-ID", exchange("GET", "/healthz", "", 200, map[string]string{"Content-Type": "application/json", "X-Request-ID": ""}, `{"status":"ok","version":"v1"}`), "no X-Request-ID"},
		{"X-Request-ID off its pattern", exchange("GET", "/healthz", "", 200, map[string]string{"Content-Type": "application/json", "X-Request-ID": "a b"}, `{"status":"ok","version":"v1"}`), "X-Request-ID \"a b\""},
		{"uuid format", exchange("POST", "/v1/auth/register", `{"email":"a@b.c","password":"0123456789","display_name":"A"}`, 201, asJSON, `{"user_id":"42"}`), "not a UUID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := spec.Check(tc.ex)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("a conforming exchange fails: %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("passes; want a failure naming %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("fails with %v; want it to name %q", err, tc.want)
			}
		})
	}
}

// recordingT collects what Handler reports instead of failing the test.
type recordingT struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recordingT) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recordingT) reported() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errors...)
}

// Handler checks what passes through it and fails the test on a
// mismatch, naming the request; a test route's success is not checked,
// its refusal is; an aborted stream is not checked.
func TestHandler(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`)) // no version
	})
	mux.HandleFunc("GET /v1/me", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusTooManyRequests) // no Retry-After
		_, _ = w.Write([]byte(problemBody("rate-limited", 429)))
	})
	mux.HandleFunc("GET /probe", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") != "" {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte("anything"))
	})
	mux.HandleFunc("GET /v1/history", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("half"))
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	})
	withID := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-ID", "req-1")
		mux.ServeHTTP(w, r)
	})
	rt := &recordingT{TB: t}
	srv := httptest.NewServer(openapitest.Handler(rt, withID, openapitest.TestRoutes("GET /probe")))
	defer srv.Close()
	get := func(path string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer x")
		if resp, err := srv.Client().Do(req); err == nil {
			_ = resp.Body.Close()
		}
	}
	for path, want := range map[string]string{
		"/healthz":      `GET /healthz answered 200 (Content-Type "application/json"): getHealth: response body doesn't match schema`,
		"/v1/me":        "GET /v1/me answered 429",
		"/probe":        "",
		"/probe?fail=1": "GET /probe?fail=1 answered 401",
		"/v1/history":   "",
	} {
		before := len(rt.reported())
		get(path)
		got := rt.reported()[before:]
		switch {
		case want == "" && len(got) > 0:
			t.Errorf("%s: reported %q", path, got)
		case want != "" && (len(got) != 1 || !strings.Contains(got[0], want)):
			t.Errorf("%s: reported %q, want one report naming %q", path, got, want)
		}
	}
}

// Every operation documents the shared answers it can give, by reference
// to components/responses: 413 everywhere (every route bounds its body),
// 400 wherever a query parameter or the X-Consistency-Token is read, 401,
// 429 and 503 on every authenticated operation (the token check, the
// per-user limit, an outage), 503 on every /v1 operation (each reads the
// database or the event store), 507 on every command (its success
// carries X-Consistency-Token: it wrote the log); every error answer is a
// problem document and every 429 and 503 requires Retry-After. An
// operation added without them fails here, before a test meets the
// answer.
func TestEveryOperationDocumentsTheSharedAnswers(t *testing.T) {
	t.Parallel()
	spec, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	doc := spec.Doc()
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			// The upstream sign-in's own 400 (a redirect not allowed, a bad
			// state) and 503 (the provider's outage) say more than the
			// shared ones; its callback answers a browser with a page
			// (issue 19).
			upstream := strings.HasPrefix(path, "/v1/auth/oidc/") || path == "/v1/me/identities/{provider}/link"
			callback := path == "/v1/auth/oidc/{provider}/callback"
			refers := func(status int, components ...string) {
				t.Helper()
				if upstream {
					components = append(components, "Problem", "ProblemOrPage", "UpstreamUnavailable")
				}
				r := op.Responses.Status(status)
				if r == nil {
					t.Errorf("%s does not document %d (components/responses/%s)", name, status, components[0])
					return
				}
				if r.Ref == "" && path == "/v1/tasks" && method == http.MethodPost {
					return // the upload's own 413 and 429 say more than the shared ones
				}
				for _, c := range components {
					if r.Ref == "#/components/responses/"+c {
						return
					}
				}
				if r.Ref == "" && status == http.StatusTooManyRequests && path == "/v1/auth/login" {
					return // the login throttle shares the status
				}
				if r.Ref == "" && status == http.StatusServiceUnavailable && path == "/v1/auth/login" {
					return // so does the external auth provider's outage (auth-provider-unavailable)
				}
				t.Errorf("%s documents %d inline (%q), not as components/responses/%s", name, status, r.Ref, components[0])
			}
			refers(http.StatusRequestEntityTooLarge, "TooLarge")
			params := append(op.Parameters, item.Parameters...)
			for _, p := range params {
				if p.Value.In == "query" || p.Value.Name == "X-Consistency-Token" {
					refers(http.StatusBadRequest, "InvalidInput")
					break
				}
			}
			authenticated := op.Security == nil || len(*op.Security) > 0
			if authenticated {
				// StepUpUnauthenticated is Unauthenticated and step-up-required
				// (the second-factor changes, ADR 0032).
				refers(http.StatusUnauthorized, "Unauthenticated", "StepUpUnauthenticated")
				refers(http.StatusTooManyRequests, "UserRateLimited")
			}
			if authenticated || strings.HasPrefix(path, "/v1/") {
				refers(http.StatusServiceUnavailable, "Unavailable")
			}
			for status, r := range op.Responses.Map() {
				if status[0] == '2' && r.Value.Headers["X-Consistency-Token"] != nil {
					refers(http.StatusInsufficientStorage, "StorageFull")
				}
				if status[0] != '4' && status[0] != '5' {
					continue
				}
				page := (callback || upstream && r.Ref == "#/components/responses/UpstreamUnavailable") && len(r.Value.Content) == 2 && r.Value.Content.Get("text/html") != nil
				if (len(r.Value.Content) != 1 && !page) || r.Value.Content.Get("application/problem+json") == nil {
					t.Errorf("%s %s: an error answer is application/problem+json alone", name, status)
				}
				if h := r.Value.Headers["Retry-After"]; (status == "429" || status == "503") && (h == nil || !h.Value.Required) {
					t.Errorf("%s %s does not require Retry-After", name, status)
				}
			}
		}
	}
	if op := doc.Paths.Value("/v1/tasks").Post; op.Responses.Status(http.StatusInsufficientStorage) == nil {
		t.Error("POST /v1/tasks does not document 507 storage-full")
	}
}

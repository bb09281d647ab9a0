package readapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/errtable"
	"github.com/authledger/authledger/projections/audit"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/readapi"
	"github.com/authledger/authledger/test/openapitest"
)

// testAuth stands in for the authentication middleware: it trusts test
// headers and records the caller the way the real one does, with the
// permissions of its roles (the user role, as every registered user
// has, and those of X-Test-Roles) in
// the built-in catalog (the real resolution from the log is tested in
// auth/access and cmd/authledger).
func testAuth(c *gin.Context) {
	if u := c.GetHeader("X-Test-User"); u != "" {
		roles := []string{user.DefaultRole}
		if r := c.GetHeader("X-Test-Roles"); r != "" {
			roles = append(roles, strings.Split(r, ",")...)
		}
		httpapi.SetPrincipal(c, httpapi.Principal{UserID: testUser(u), SessionID: uuid.New(), Roles: roles,
			Permissions: access.Builtin().Effective(roles)})
	}
	c.Next()
}

// testUser is the user id of a caller a test names ("boss", "user-0"),
// or the id itself when the name is one.
func testUser(name string) uuid.UUID {
	if id, err := uuid.Parse(name); err == nil {
		return id
	}
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("authledger-test:"+name))
}

// appendByUsers appends n events over three streams (thing-0..2), caused
// in turn by user-0, user-1 and user-2 (their testUser ids), and returns
// the last position.
func appendByUsers(t *testing.T, s *server, n int) eventstore.Position {
	t.Helper()
	var last eventstore.Position
	for i := range n {
		ev := projtest.Event("thing.happened.v1", map[string]any{"i": i, "password_hash": "x"}, testUser(fmt.Sprintf("user-%d", i%3)).String())
		res, err := s.env.Store.Append(s.ctx, fmt.Sprintf("thing-%d", i%3), eventstore.Any{}, ev)
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		last = res.Position
	}
	return last
}

// refuseTaskReads is the Authorize hook of servers whose tests read no
// task: it records nothing and refuses.
func refuseTaskReads(*gin.Context, uuid.UUID, bool) error { return task.ErrNotFound }

type server struct {
	env    *projtest.Env
	engine *gin.Engine
	runner *projector.Runner
	ctx    context.Context
}

func newServer(t *testing.T, extra ...projector.Projection) *server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	env := projtest.New(t)
	r, err := projector.NewRunner(env.Config(append([]projector.Projection{audit.New(projtest.AuditKey)}, extra...)...))
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	t.Cleanup(func() {
		rcancel()
		if err := <-done; err != nil {
			t.Errorf("runner: %v", err)
		}
	})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	engine, err := httpapi.New(httpapi.Config{
		Logger: logger, OpenAPI: []byte("openapi: 3.1.0\n"), Errors: errtable.Table(),
		Readiness: []httpapi.Check{{Name: "projections", Func: r.Readiness}},
	})
	if err != nil {
		t.Fatal(err)
	}
	v1 := engine.Group("/v1", testAuth)
	if err := readapi.Mount(v1, readapi.Deps{Pool: env.Pool, Waiter: projector.NewWaiter(env.Pool, r, 0), ConsistencyTimeout: 2 * time.Second,
		Authorize: refuseTaskReads}); err != nil {
		t.Fatal(err)
	}
	return &server{env: env, engine: engine, runner: r, ctx: ctx}
}

func (s *server) get(t *testing.T, path, user, roles string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if user != "" {
		req.Header.Set("X-Test-User", user)
		req.Header.Set("X-Test-Roles", roles)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	openapitest.Handler(t, s.engine, openapitest.AuthHeader("X-Test-User")).ServeHTTP(w, req)
	return w
}

type page struct {
	Items    []audit.Entry `json:"items"`
	Page     int           `json:"page"`
	PageSize int           `json:"page_size"`
	Total    int64         `json:"total"`
}

func decode(t *testing.T, w *httptest.ResponseRecorder) page {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var p page
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuditEndpoints(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	last := appendByUsers(t, s, 30)
	tok := last.String()

	// Read your writes: the token makes the query wait for the audit trail.
	p := decode(t, s.get(t, "/v1/audit?page_size=100", "boss", "admin", httpapi.HeaderConsistencyToken, tok))
	if p.Total != 30 || len(p.Items) != 30 || p.Page != 1 || p.PageSize != 100 {
		t.Fatalf("page = %d items of %d (page %d size %d)", len(p.Items), p.Total, p.Page, p.PageSize)
	}
	e := p.Items[0]
	if e.Seq != 30 || e.Type != "thing.happened.v1" || e.Actor.Kind != "user" || e.ClientIP != "192.0.2.7" || e.UserAgent != "projtest/1.0" || len(e.Hash) != 64 {
		t.Fatalf("newest entry = %+v", e)
	}
	if strings.Contains(string(e.Summary), "password") {
		t.Fatalf("summary leaks a secret field: %s", e.Summary)
	}

	p = decode(t, s.get(t, "/v1/audit?actor="+testUser("user-1").String()+"&page=2&page_size=4", "eve", "auditor", httpapi.HeaderConsistencyToken, tok))
	if p.Total != 10 || len(p.Items) != 4 || p.Page != 2 {
		t.Fatalf("filtered page = %d items of %d", len(p.Items), p.Total)
	}
	for _, it := range p.Items {
		if it.Actor.ID != testUser("user-1").String() {
			t.Fatalf("actor filter leaked %+v", it)
		}
	}
	p = decode(t, s.get(t, "/v1/audit?stream=thing-2&type=thing.happened.v1&from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00Z", "eve", "auditor"))
	if p.Total != 10 {
		t.Fatalf("stream filter total %d", p.Total)
	}

	// The caller's own trail, whatever actor filter they try.
	p = decode(t, s.get(t, "/v1/me/audit?actor="+testUser("user-2").String(), "user-0", "", httpapi.HeaderConsistencyToken, tok))
	if p.Total != 10 {
		t.Fatalf("own trail total %d", p.Total)
	}
	for _, it := range p.Items {
		if it.Actor.ID != testUser("user-0").String() {
			t.Fatalf("own trail shows %+v", it)
		}
	}

	for _, c := range []struct {
		path, user, roles string
		hdr               []string
		status            int
		slug              string
	}{
		{"/v1/audit", "", "", nil, 401, "unauthenticated"},
		{"/v1/me/audit", "", "", nil, 401, "unauthenticated"},
		{"/v1/audit", "user-0", "user", nil, 403, "forbidden"},
		{"/v1/audit?page_size=101", "boss", "admin", nil, 400, "invalid-input"},
		{"/v1/audit?page=0&from=yesterday", "boss", "admin", nil, 400, "invalid-input"},
		{"/v1/audit", "boss", "admin", []string{httpapi.HeaderConsistencyToken, "not-a-token"}, 400, "invalid-input"},
		// A token the read models do not reach in time: 503 + Retry-After.
		{"/v1/audit", "boss", "admin", []string{httpapi.HeaderConsistencyToken, eventstore.Position{Commit: last.Commit + 1_000_000}.String()}, 503, "unavailable"},
	} {
		start := time.Now()
		w := s.get(t, c.path, c.user, c.roles, c.hdr...)
		if w.Code != c.status || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/problem+json") || !strings.Contains(w.Body.String(), c.slug) {
			t.Errorf("GET %s as %q: %d %s %s, want %d %s", c.path, c.user, w.Code, w.Header().Get("Content-Type"), w.Body, c.status, c.slug)
		}
		if c.status == 503 {
			if w.Header().Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
				t.Errorf("consistency wait took %s, want about the 300ms bound", d)
			}
		}
	}
}

func TestReadyzReportsAFailedProjection(t *testing.T) {
	t.Parallel()
	c := &projtest.Counter{ProjectionName: "counter"}
	bad := projtest.Event("thing.broken.v1", map[string]any{}, "u")
	fail := func(ev eventstore.RecordedEvent) error {
		if ev.ID == bad.ID {
			return errors.New("boom")
		}
		return nil
	}
	c.Fail.Store(&fail)
	s := newServer(t, c)
	deadline := time.Now().Add(10 * time.Second)
	for {
		w := s.get(t, "/readyz", "", "")
		if w.Code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never ready: %d %s", w.Code, w.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s.env.Store.Append(s.ctx, "thing-bad", eventstore.Any{}, bad); err != nil {
		t.Fatal(err)
	}
	for {
		w := s.get(t, "/readyz", "", "")
		// While the handler retries, /readyz may already answer 503 with the
		// state "retrying"; the test waits for the final "failed".
		if w.Code == http.StatusServiceUnavailable && strings.Contains(w.Body.String(), `"failed"`) {
			t.Logf("/readyz: %s", w.Body)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never reported the failed projection: %d %s", w.Code, w.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package readapi_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/bench/tasksbench"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/errtable"
	"github.com/authledger/authledger/httpapi/problem"
	"github.com/authledger/authledger/projections/audit"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/projections/taskviews"
	"github.com/authledger/authledger/projections/taskviews/taskstest"
	"github.com/authledger/authledger/readapi"
	"github.com/authledger/authledger/test/openapitest"
)

// taskServer is a real engine with the task endpoints over a running tasks
// projection (and the audit trail, to show denials land in it).
type taskServer struct {
	env    *projtest.Env
	ctx    context.Context
	waiter *projector.Waiter
	engine *gin.Engine
	// cmds are the task commands readapi reaches the log through, as
	// cmd/authledger wires them.
	cmds *commands.TaskHandlers
}

// denialWindow of the task servers: 0 records every refusal in full, which
// the isolation test counts one by one (coalescing has its own test).
const denialWindow = 0

func newTaskServer(t *testing.T) *taskServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	env := projtest.New(t)
	r, err := projector.NewRunner(env.Config(taskviews.New(), audit.New(projtest.AuditKey)))
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
	s := &taskServer{env: env, ctx: ctx, waiter: projector.NewWaiter(env.Pool, r, 0)}
	s.cmds = newTaskCommands(t, s.env, denialWindow)
	s.engine = s.newEngine(t, nil)
	return s
}

// newTaskCommands builds the task commands on env's store.
func newTaskCommands(t *testing.T, env *projtest.Env, window time.Duration) *commands.TaskHandlers {
	t.Helper()
	reg := events.NewRegistry()
	if err := task.RegisterEvents(reg); err != nil {
		t.Fatal(err)
	}
	cfg := commands.DefaultTaskConfig()
	cfg.DenialWindow = window
	h, err := commands.NewTaskHandlers(env.Store, reg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// authorize is the hook as cmd/authledger wires it: the AuthorizeTaskRead
// command, as the principal.
func (s *taskServer) authorize(c *gin.Context, taskID uuid.UUID, asAdmin bool) error {
	p, err := httpapi.Caller(c)
	if err != nil {
		return err
	}
	meta := commands.RequestMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent(), p.Actor())
	_, err = s.cmds.AuthorizeRead.Handle(c.Request.Context(), commands.AuthorizeTaskRead{UserID: p.UserID, TaskID: taskID, AsAdmin: asAdmin, Meta: meta})
	return err
}

// newEngine builds an engine whose task routes use authorize (s.authorize
// when nil).
func (s *taskServer) newEngine(t *testing.T, authorize func(*gin.Context, uuid.UUID, bool) error) *gin.Engine {
	t.Helper()
	if authorize == nil {
		authorize = s.authorize
	}
	engine, err := httpapi.New(httpapi.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OpenAPI: []byte("openapi: 3.1.0\n"),
		Errors: errtable.Table()})
	if err != nil {
		t.Fatal(err)
	}
	v1 := engine.Group("/v1", testAuth)
	if err := readapi.Mount(v1, readapi.Deps{Pool: s.env.Pool, Waiter: s.waiter,
		ConsistencyTimeout: 5 * time.Second, Authorize: authorize}); err != nil {
		t.Fatal(err)
	}
	return engine
}

func (s *taskServer) do(t *testing.T, engine *gin.Engine, method, path string, body any, user uuid.UUID, roles string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if user != uuid.Nil {
		req.Header.Set("X-Test-User", user.String())
		req.Header.Set("X-Test-Roles", roles)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	if engine == nil {
		engine = s.engine
	}
	openapitest.Handler(t, engine, openapitest.AuthHeader("X-Test-User")).ServeHTTP(w, req)
	return w
}

func (s *taskServer) get(t *testing.T, path string, user uuid.UUID) *httptest.ResponseRecorder {
	t.Helper()
	return s.do(t, nil, http.MethodGet, path, nil, user, "user")
}

type list[T any] struct {
	Items    []T   `json:"items"`
	Page     int   `json:"page"`
	PageSize int   `json:"page_size"`
	Total    int64 `json:"total"`
}

func decodeAs[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", w.Body, err)
	}
	return v
}

// fixture is two users' tasks over three days.
type fixture struct {
	alice, bob                      uuid.UUID
	invoice, receipt, odd, del, exp *taskstest.Builder
	bulk                            []*taskstest.Builder
	bobs, formula                   *taskstest.Builder
	day1, day2, day3                time.Time
	last                            eventstore.Position
}

func seed(t *testing.T, s *taskServer) *fixture {
	t.Helper()
	st, ctx := s.env.Store, s.ctx
	f := &fixture{alice: uuid.New(), bob: uuid.New(), day1: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	f.day2, f.day3 = f.day1.AddDate(0, 0, 1), f.day1.AddDate(0, 0, 2)
	f.invoice = taskstest.Create(t, ctx, st, f.alice, f.day1.Add(time.Hour), "Invoice March.png", "page2.png").
		Claim("w", time.Minute).Complete("w", "TOTAL 42 EUR", 120)
	f.receipt = taskstest.Create(t, ctx, st, f.alice, f.day1.Add(2*time.Hour), "receipt.png").
		Claim("w", time.Minute).Fail("w", "unreadable", 80, false)
	f.odd = taskstest.Create(t, ctx, st, f.alice, f.day2.Add(time.Hour), "scan 100%_x.png")
	f.del = taskstest.Create(t, ctx, st, f.alice, f.day2.Add(2*time.Hour), "private.png").Delete()
	f.exp = taskstest.Create(t, ctx, st, f.alice, f.day3.Add(time.Hour), "old.png").Expire()
	for i := range 12 {
		f.bulk = append(f.bulk, taskstest.Create(t, ctx, st, f.alice, f.day3.Add(2*time.Hour+time.Duration(i)*time.Minute), fmt.Sprintf("bulk-%02d.png", i)))
	}
	f.bobs = taskstest.Create(t, ctx, st, f.bob, f.day1.Add(3*time.Hour), "Invoice bob.png").Claim("w", time.Minute).Complete("w", "bob's text", 10)
	f.formula = taskstest.Create(t, ctx, st, f.bob, f.day2, "=HYPERLINK(evil).png")
	f.last = f.formula.Last
	return f
}

func ids[T any](items []T, id func(T) uuid.UUID) []uuid.UUID {
	out := make([]uuid.UUID, len(items))
	for i, it := range items {
		out[i] = id(it)
	}
	return out
}

func taskID(t taskviews.Task) uuid.UUID         { return t.TaskID }
func histID(h taskviews.HistoryEntry) uuid.UUID { return h.TaskID }

func TestTaskListsFiltersSortAndPages(t *testing.T) {
	t.Parallel()
	s := newTaskServer(t)
	f := seed(t, s)
	// Read your writes: the token makes the first query wait for the projection.
	w := s.do(t, nil, http.MethodGet, "/v1/tasks?page_size=100", nil, f.alice, "user", httpapi.HeaderConsistencyToken, f.last.String())
	all := decodeAs[list[taskviews.Task]](t, w)
	if all.Total != 15 || len(all.Items) != 15 || all.PageSize != 100 {
		t.Fatalf("alice's live tasks: %d items of %d", len(all.Items), all.Total)
	}
	// Newest first by default; bob's, deleted and expired tasks absent.
	if all.Items[0].TaskID != f.bulk[11].ID || all.Items[14].TaskID != f.invoice.ID {
		t.Fatalf("default order: first %s last %s", all.Items[0].TaskID, all.Items[14].TaskID)
	}
	for _, it := range all.Items {
		if it.OwnerID != f.alice || it.TaskID == f.del.ID || it.TaskID == f.exp.ID || it.Result != nil || it.Files != nil {
			t.Fatalf("list item %+v", it)
		}
	}

	alice := func(path string) []uuid.UUID {
		t.Helper()
		return ids(decodeAs[list[taskviews.Task]](t, s.get(t, path, f.alice)).Items, taskID)
	}
	hist := func(path string) list[taskviews.HistoryEntry] {
		t.Helper()
		return decodeAs[list[taskviews.HistoryEntry]](t, s.get(t, path, f.alice))
	}
	for _, c := range []struct {
		path string
		want []uuid.UUID
	}{
		{"/v1/tasks?status=completed", []uuid.UUID{f.invoice.ID}},
		{"/v1/tasks?status=failed,completed", []uuid.UUID{f.receipt.ID, f.invoice.ID}},
		{"/v1/tasks?q=INVOICE", []uuid.UUID{f.invoice.ID}},
		{"/v1/tasks?q=page2", []uuid.UUID{f.invoice.ID}},
		{"/v1/tasks?q=100%25", []uuid.UUID{f.odd.ID}},
		{"/v1/tasks?q=_", []uuid.UUID{f.odd.ID}},
		{"/v1/tasks?from=2026-03-02&to=2026-03-03", []uuid.UUID{f.odd.ID}},
		{"/v1/tasks?from=2026-03-01T01:30:00Z&to=2026-03-02T00:00:00Z&sort=created_at", []uuid.UUID{f.receipt.ID}},
		{"/v1/tasks?sort=created_at&page_size=2", []uuid.UUID{f.invoice.ID, f.receipt.ID}},
		{"/v1/tasks?sort=-created_at&page=2&page_size=5", []uuid.UUID{f.bulk[6].ID, f.bulk[5].ID, f.bulk[4].ID, f.bulk[3].ID, f.bulk[2].ID}},
		{"/v1/tasks?sort=-finished_at&status=completed,failed", []uuid.UUID{f.receipt.ID, f.invoice.ID}},
		{"/v1/tasks?page=9", []uuid.UUID{}},
	} {
		if got := alice(c.path); !slices.Equal(got, c.want) {
			t.Errorf("GET %s = %v, want %v", c.path, got, c.want)
		}
	}
	p := decodeAs[list[taskviews.Task]](t, s.get(t, "/v1/tasks?page=4&page_size=4", f.alice))
	if p.Total != 15 || len(p.Items) != 3 || p.Page != 4 {
		t.Fatalf("last page: %d items of %d (page %d)", len(p.Items), p.Total, p.Page)
	}

	// History includes deleted and expired tasks.
	h := hist("/v1/history?page_size=100")
	if h.Total != 17 || !slices.Contains(ids(h.Items, histID), f.del.ID) || !slices.Contains(ids(h.Items, histID), f.exp.ID) {
		t.Fatalf("history: %d items of %d", len(h.Items), h.Total)
	}
	if got := ids(hist("/v1/history?status=deleted,expired").Items, histID); !slices.Equal(got, []uuid.UUID{f.exp.ID, f.del.ID}) {
		t.Fatalf("removed history = %v", got)
	}
	if got := hist("/v1/history?q=private").Items; len(got) != 1 || got[0].Status != "deleted" || got[0].DeletedAt == nil ||
		!slices.Equal(got[0].FileNames, []string{"private.png"}) {
		t.Fatalf("history search = %+v", got)
	}
	if got := hist("/v1/history?q=invoice").Items; len(got) != 1 || got[0].TaskID != f.invoice.ID || got[0].ProcessingMS != 120 ||
		got[0].StartedAt == nil || got[0].FinishedAt == nil || got[0].FileCount != 2 || got[0].Bytes != 300 {
		t.Fatalf("history row = %+v", got)
	}
	bobs := decodeAs[list[taskviews.HistoryEntry]](t, s.get(t, "/v1/history?q=invoice", f.bob))
	if bobs.Total != 1 || bobs.Items[0].TaskID != f.bobs.ID {
		t.Fatalf("bob's history search = %+v", bobs)
	}

	// Invalid filters: 400 naming every bad field.
	for _, c := range []struct {
		path   string
		fields []string
	}{
		{"/v1/tasks?page=0&page_size=101", []string{"page", "page_size"}},
		{"/v1/tasks?status=deleted", []string{"status"}},
		{"/v1/history?status=nope&sort=name", []string{"status", "sort"}},
		{"/v1/history?from=yesterday&to=2026-01-01", []string{"from"}},
		{"/v1/tasks?from=2026-03-02&to=2026-03-01", []string{"to"}},
		{"/v1/history?q=" + strings.Repeat("x", 201), []string{"q"}},
		{"/v1/history/stats?from=soon", []string{"from"}},
	} {
		w := s.get(t, c.path, f.alice)
		assertInvalid(t, w, c.fields...)
	}
	for _, path := range []string{"/v1/tasks", "/v1/history", "/v1/history/stats", "/v1/tasks/" + f.invoice.ID.String()} {
		if w := s.get(t, path, uuid.Nil); w.Code != http.StatusUnauthorized {
			t.Errorf("GET %s unauthenticated: %d", path, w.Code)
		}
	}
}

func assertInvalid(t *testing.T, w *httptest.ResponseRecorder, fields ...string) {
	t.Helper()
	var doc problem.Document
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || w.Code != http.StatusBadRequest ||
		!strings.HasSuffix(doc.Type, "/invalid-input") || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/problem+json") {
		t.Errorf("want a 400 invalid-input problem, got %d %s", w.Code, w.Body)
		return
	}
	var got []string
	for _, e := range doc.Errors {
		got = append(got, e.Field)
	}
	for _, f := range fields {
		if !slices.Contains(got, f) {
			t.Errorf("problem fields %v lack %q: %s", got, f, w.Body)
		}
	}
}

func TestTaskByIDIsolation(t *testing.T) {
	t.Parallel()
	s := newTaskServer(t)
	f := seed(t, s)
	s.env.WaitCaughtUp(t, s.ctx, f.last, taskviews.Name)

	got := decodeAs[taskviews.Task](t, s.get(t, "/v1/tasks/"+f.invoice.ID.String(), f.alice))
	if got.TaskID != f.invoice.ID || got.Status != "completed" || got.Result == nil || *got.Result != "TOTAL 42 EUR" ||
		len(got.Files) != 2 || got.Files[0].Name != "Invoice March.png" || got.Files[0].FileID != f.invoice.Files[0].FileID ||
		got.Files[1].Size != 200 || got.Attempts != 1 || got.ProcessingMS != 120 {
		t.Fatalf("own task = %+v", got)
	}

	// Another user's task, a missing id, a removed task and a non-uuid all
	// get the same answer.
	type attempt struct {
		name string
		path string
		user uuid.UUID
	}
	attempts := []attempt{
		{"bob reads alice's task", "/v1/tasks/" + f.invoice.ID.String(), f.bob},
		{"alice reads bob's task", "/v1/tasks/" + f.bobs.ID.String(), f.alice},
		{"missing id", "/v1/tasks/" + uuid.NewString(), f.alice},
		{"deleted task", "/v1/tasks/" + f.del.ID.String(), f.alice},
		{"expired task", "/v1/tasks/" + f.exp.ID.String(), f.alice},
		{"bob reads alice's deleted task", "/v1/tasks/" + f.del.ID.String(), f.bob},
		{"not a uuid", "/v1/tasks/not-a-uuid", f.alice},
		{"a plain user claiming no admin role", "/v1/tasks/" + f.bobs.ID.String(), f.alice},
	}
	var ref []byte
	var refHeaders http.Header
	for _, a := range attempts {
		w := s.get(t, a.path, a.user)
		if w.Code != http.StatusNotFound {
			t.Fatalf("%s: %d %s", a.name, w.Code, w.Body)
		}
		body := withoutInstance(t, w.Body.Bytes())
		if ref == nil {
			ref, refHeaders = body, w.Header()
			continue
		}
		if !bytes.Equal(body, ref) {
			t.Errorf("%s: body %s differs from %s", a.name, body, ref)
		}
		for _, h := range []string{"Content-Type", "Content-Length", "Cache-Control"} {
			if w.Header().Get(h) != refHeaders.Get(h) {
				t.Errorf("%s: header %s = %q, want %q", a.name, h, w.Header().Get(h), refHeaders.Get(h))
			}
		}
	}

	// Each attempt on a uuid is in the requester's access stream, with the reason.
	reasons := func(user uuid.UUID) []string {
		evs, err := s.env.Store.ReadStream(s.ctx, task.AccessStream(user), eventstore.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ev := range evs {
			var d task.AccessDenied
			if ev.Type != task.EventAccessDenied || json.Unmarshal(ev.Data, &d) != nil || d.UserID != user ||
				d.ResourceKind != task.ResourceKindTask || d.TaskID != d.ResourceID || d.RequestID == "" || d.IP == "" {
				t.Fatalf("access event %s %s", ev.Type, ev.Data)
			}
			out = append(out, d.Reason)
		}
		return out
	}
	if got, want := reasons(f.bob), []string{task.DenyNotOwner, task.DenyNotOwner}; !slices.Equal(got, want) {
		t.Errorf("bob's denials = %v, want %v", got, want)
	}
	if got, want := reasons(f.alice), []string{task.DenyNotOwner, task.DenyMissing, task.DenyGone, task.DenyGone, task.DenyNotOwner}; !slices.Equal(got, want) {
		t.Errorf("alice's denials = %v, want %v", got, want)
	}
	// They reach the audit trail, under the requester.
	last, err := s.env.Store.ReadStream(s.ctx, task.AccessStream(f.alice), eventstore.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.env.WaitCaughtUp(t, s.ctx, last[len(last)-1].Position, audit.Name)
	entries, _, err := audit.List(s.ctx, s.env.Admin, audit.Filter{ActorID: f.alice.String(), EventType: task.EventAccessDenied}, 1, 100)
	if err != nil || len(entries) != 5 {
		t.Fatalf("audit trail has %d denials of alice (%v)", len(entries), err)
	}

	// An administrator reads another user's task through the command,
	// which records the read.
	admin := uuid.New()
	got = decodeAs[taskviews.Task](t, s.do(t, nil, http.MethodGet, "/v1/tasks/"+f.bobs.ID.String(), nil, admin, "admin"))
	if got.TaskID != f.bobs.ID || got.OwnerID != f.bob || *got.Result != "bob's text" {
		t.Fatalf("admin read = %+v", got)
	}
	viewed, err := s.env.Store.ReadStream(s.ctx, task.AccessStream(admin), eventstore.ReadStreamOptions{})
	if err != nil || len(viewed) != 1 || viewed[0].Type != task.EventViewed {
		t.Fatalf("the admin's access stream: %v %v", viewed, err)
	}
	var mu sync.Mutex
	type call struct {
		id      uuid.UUID
		asAdmin bool
	}
	var calls []call
	engine := s.newEngine(t, func(c *gin.Context, id uuid.UUID, asAdmin bool) error {
		mu.Lock()
		calls = append(calls, call{id, asAdmin})
		mu.Unlock()
		if asAdmin {
			// An error GET /v1/tasks/{id} documents (openapi.yaml), so
			// that the hook's is seen to pass through.
			return problem.Unavailable(time.Second, "not today")
		}
		return s.authorize(c, id, asAdmin)
	})
	if w := s.do(t, engine, http.MethodGet, "/v1/tasks/"+f.invoice.ID.String(), nil, admin, "admin"); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("a refusing hook: %d", w.Code)
	}
	// A non-admin on the same engine gets 404, the refusal going through
	// the hook too; the owner's read asks nothing.
	if w := s.do(t, engine, http.MethodGet, "/v1/tasks/"+f.bobs.ID.String(), nil, f.alice, "user"); w.Code != http.StatusNotFound {
		t.Fatalf("non-admin on the admin engine: %d", w.Code)
	}
	if w := s.do(t, engine, http.MethodGet, "/v1/tasks/"+f.invoice.ID.String(), nil, f.alice, "user"); w.Code != http.StatusOK {
		t.Fatalf("owner on the admin engine: %d", w.Code)
	}
	if want := []call{{f.invoice.ID, true}, {f.bobs.ID, false}}; !slices.Equal(calls, want) {
		t.Fatalf("hook calls %v, want %v", calls, want)
	}
}

// withoutInstance drops the per-request instance member of a problem.
func withoutInstance(t *testing.T, body []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("problem body %s: %v", body, err)
	}
	if _, ok := m["instance"]; !ok {
		t.Fatalf("problem without instance: %s", body)
	}
	delete(m, "instance")
	b, _ := json.Marshal(m)
	return b
}

func TestHistoryStats(t *testing.T) {
	t.Parallel()
	s := newTaskServer(t)
	f := seed(t, s)
	s.env.WaitCaughtUp(t, s.ctx, f.last, taskviews.Name)
	stats := func(path string, user uuid.UUID) taskviews.Stats {
		t.Helper()
		return decodeAs[taskviews.Stats](t, s.get(t, path, user))
	}
	st := stats("/v1/history/stats?from=2026-03-01&to=2026-03-02", f.alice)
	if st.Total != 2 || st.ByStatus["completed"] != 1 || st.ByStatus["failed"] != 1 || st.ByStatus["queued"] != 0 ||
		st.SuccessRate == nil || *st.SuccessRate != 0.5 || st.AvgProcessingMS == nil || *st.AvgProcessingMS != 100 ||
		st.Files != 3 || st.Bytes != 400 || len(st.ByStatus) != 7 {
		t.Fatalf("day 1 stats = %+v", st)
	}
	// A range ending inside a day counts that whole day.
	if st := stats("/v1/history/stats?from=2026-03-01T12:00:00Z&to=2026-03-02T00:00:01Z", f.alice); st.Total != 4 {
		t.Fatalf("stats over days 1-2 = %+v", st)
	}
	st = stats("/v1/history/stats", f.alice)
	if st.Total != 17 || st.ByStatus["deleted"] != 1 || st.ByStatus["expired"] != 1 || st.ByStatus["queued"] != 13 || st.Files != 18 {
		t.Fatalf("all-time stats = %+v", st)
	}
	st = stats("/v1/history/stats?from=2026-03-03", f.alice)
	if st.Total != 13 || st.SuccessRate != nil || st.AvgProcessingMS != nil {
		t.Fatalf("day 3 stats = %+v", st)
	}
	st = stats("/v1/history/stats", f.bob)
	if st.Total != 2 || *st.SuccessRate != 1 || *st.AvgProcessingMS != 10 {
		t.Fatalf("bob's stats = %+v", st)
	}
	// JSON shape: success_rate and avg_processing_ms are null without runs.
	w := s.get(t, "/v1/history/stats", uuid.New())
	if !strings.Contains(w.Body.String(), `"success_rate":null`) || !strings.Contains(w.Body.String(), `"total":0`) {
		t.Fatalf("stats of a user without tasks: %s", w.Body)
	}
}

func TestHistoryExport(t *testing.T) {
	t.Parallel()
	s := newTaskServer(t)
	f := seed(t, s)
	s.env.WaitCaughtUp(t, s.ctx, f.last, taskviews.Name)
	export := func(user uuid.UUID, body any) *httptest.ResponseRecorder {
		t.Helper()
		return s.do(t, nil, http.MethodPost, "/v1/history/export", body, user, "user")
	}

	w := export(f.alice, map[string]any{"format": "csv", "filters": map[string]any{"status": []string{"completed", "deleted"}}})
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/csv") ||
		!strings.HasPrefix(w.Header().Get("Content-Disposition"), `attachment; filename="history-`) ||
		!strings.HasSuffix(w.Header().Get("Content-Disposition"), `.csv"`) {
		t.Fatalf("csv export: %d %v %s", w.Code, w.Header(), w.Body)
	}
	recs, err := csv.NewReader(w.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0][0] != "task_id" || recs[0][12] != "file_names" {
		t.Fatalf("csv = %v", recs)
	}
	// Newest first: the deleted task (day 2), then the invoice (day 1).
	if recs[1][0] != f.del.ID.String() || recs[1][1] != "deleted" || recs[1][5] == "" ||
		recs[2][0] != f.invoice.ID.String() || recs[2][12] != "Invoice March.png; page2.png" || recs[2][7] != "120" ||
		recs[2][2] != "2026-03-01T01:00:00Z" {
		t.Fatalf("csv rows = %v", recs[1:])
	}

	w = export(f.alice, map[string]any{"format": "json", "filters": map[string]any{"q": "bulk", "sort": "created_at", "from": "2026-03-03"}})
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" || !strings.HasSuffix(w.Header().Get("Content-Disposition"), `.json"`) {
		t.Fatalf("json export: %d %v", w.Code, w.Header())
	}
	var rows []taskviews.HistoryEntry
	if err := json.Unmarshal(w.Body.Bytes(), &rows); err != nil {
		t.Fatalf("json export is not a JSON array: %v\n%s", err, w.Body)
	}
	if got, want := ids(rows, histID), ids(f.bulk, func(b *taskstest.Builder) uuid.UUID { return b.ID }); !slices.Equal(got, want) {
		t.Fatalf("json export = %v, want %v", got, want)
	}

	// An export with no rows is still a valid file.
	w = export(f.alice, map[string]any{"format": "json", "filters": map[string]any{"q": "nothing like this"}})
	if strings.TrimSpace(w.Body.String()) != "[\n]" {
		t.Fatalf("empty json export: %q", w.Body)
	}
	w = export(f.alice, map[string]any{"format": "csv"})
	if recs, err := csv.NewReader(w.Body).ReadAll(); err != nil || len(recs) != 18 {
		t.Fatalf("unfiltered csv export: %d records, %v", len(recs), err)
	}

	// Bob's export is bob's alone; his formula-looking file name is defused.
	w = export(f.bob, map[string]any{"format": "csv", "filters": map[string]any{}})
	recs, err = csv.NewReader(w.Body).ReadAll()
	if err != nil || len(recs) != 3 {
		t.Fatalf("bob's csv: %v %v", recs, err)
	}
	if recs[1][0] != f.formula.ID.String() || recs[1][12] != "'=HYPERLINK(evil).png" || recs[2][0] != f.bobs.ID.String() {
		t.Fatalf("bob's csv rows = %v", recs[1:])
	}

	for _, c := range []struct {
		body   any
		fields []string
	}{
		{map[string]any{"format": "xml"}, []string{"format"}},
		{map[string]any{"format": "csv", "filters": map[string]any{"status": "nope", "from": "x"}}, []string{"filters.status", "filters.from"}},
		{map[string]any{"format": "csv", "filters": map[string]any{"status": 3}}, []string{"body"}},
		{map[string]any{"format": "csv", "owner": f.bob}, []string{"body"}},
		{"not json", []string{"body"}},
		{"", []string{"body"}},
	} {
		assertInvalid(t, export(f.alice, c.body), c.fields...)
	}
}

// An export that fails after its response began (here: a row it cannot
// read, standing for a lost connection or any other failure) is cut off,
// not ended cleanly: the client sees a failed transfer, not a short file
// that looks complete.
func TestHistoryExportFailingMidwayIsCutOff(t *testing.T) {
	t.Parallel()
	s := newTaskServer(t)
	alice := uuid.New()
	rows := readapi.ExportFlushEvery + 44 // past the first flush: the status and those rows go out
	if _, err := tasksbench.Seed(s.ctx, s.env.Pool, alice, rows); err != nil {
		t.Fatal(err)
	}
	var gen int
	if err := s.env.Pool.QueryRow(s.ctx, "SELECT generation FROM projection_checkpoints WHERE name = $1", taskviews.Name).Scan(&gen); err != nil {
		t.Fatal(err)
	}
	// The oldest task is the last row of an export (newest first); a NULL
	// file name cannot be read into one.
	history := projector.Tables{Generation: gen}.Ident(taskviews.TableHistory)
	if _, err := s.env.Pool.Exec(s.ctx, `UPDATE `+history+` SET file_names = ARRAY[NULL]::text[]
		WHERE task_id = (SELECT task_id FROM `+history+` WHERE owner_id = $1 ORDER BY created_at LIMIT 1)`, alice); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(openapitest.Handler(t, s.engine, openapitest.AuthHeader("X-Test-User")))
	defer srv.Close()
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, srv.URL+"/v1/history/export", strings.NewReader(`{"format": "csv"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Test-User", alice.String())
	req.Header.Set("X-Test-Roles", "user")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200 (the first rows were flushed before the failure)", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("the export ended cleanly after %d lines of %d", bytes.Count(body, []byte("\n")), rows+1)
	}
	if n := bytes.Count(body, []byte("\n")); n < 2 || n > rows {
		t.Fatalf("%d lines came before the cut, want some, not all", n)
	}
}

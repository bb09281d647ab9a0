package tasks_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"io/fs"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	authaccess "github.com/authledger/authledger/auth/access"
	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/blob"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/authn"
	"github.com/authledger/authledger/httpapi/errtable"
	taskshttp "github.com/authledger/authledger/httpapi/tasks"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/projections/taskviews"
	"github.com/authledger/authledger/reactors/blobrelease"
	"github.com/authledger/authledger/test/identitytest"
	"github.com/authledger/authledger/test/openapitest"
	"github.com/authledger/authledger/test/testimage"
)

type server struct {
	t       *testing.T
	ctx     context.Context
	url     string
	issuer  *token.Issuer
	h       *commands.TaskHandlers
	store   eventstore.Store
	blobDir string
}

func newServer(t *testing.T, limits task.Limits) *server {
	t.Helper()
	return newServerWith(t, limits, taskshttp.Config{MaxFileBytes: 4 << 10, MaxRequestBytes: 16 << 10, MaxFiles: 3})
}

func newServerWith(t *testing.T, limits task.Limits, upload taskshttp.Config) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pe := projtest.New(t)
	reg := events.NewRegistry()
	if err := task.RegisterEvents(reg); err != nil {
		t.Fatal(err)
	}
	tcfg := commands.DefaultTaskConfig()
	tcfg.Limits = limits
	h, err := commands.NewTaskHandlers(pe.Store, reg, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	blobs, err := blob.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	queue := taskviews.NewQueue(pe.Pool)
	// The tasks read model, and the policy that removes a deleted task's
	// blobs, as serve runs them.
	release, err := blobrelease.New(blobrelease.Config{Tasks: h.Delete.Tasks, Blobs: blobs, Referenced: queue.BlobReferenced,
		Waiter: projector.NewWaiter(pe.Pool, nil, 0), Projection: taskviews.Name})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := projector.NewRunner(pe.Config(taskviews.New(), release))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Logf("runner: %v", err)
		}
	})
	// The read model's tables exist once the router runs; before, every
	// "is this blob referenced?" fails and uploads keep what they undo.
	select {
	case <-runner.Running():
	case err := <-done:
		t.Fatalf("runner: %v", err)
	}

	now := time.Now()
	k, _ := keys.Generate(keys.DefaultAlgorithm)
	ring, err := keys.NewKeyRing(keys.Entry{Key: k, Lifecycle: keys.Lifecycle{AddedAt: now.Add(-time.Hour), ActivatedAt: now.Add(-time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := token.DefaultConfig("https://id.example.test")
	issuer, _ := token.NewIssuer(cfg, ring)
	verifier, err := token.NewVerifier(cfg, ring)
	if err != nil {
		t.Fatal(err)
	}
	// The upload bounds its multipart body itself, as in serve.
	engine, err := httpapi.New(httpapi.Config{Logger: slog.New(slog.DiscardHandler), OpenAPI: []byte("openapi: 3.1.0"),
		Limits: httpapi.Limits{Routes: map[string]httpapi.RouteLimit{"POST /v1/tasks": {MaxBody: httpapi.NoBodyLimit}}},
		Errors: errtable.Table()})
	if err != nil {
		t.Fatal(err)
	}
	// Permissions resolved from the log, as serve does (no follower here:
	// every request reads the caller's user stream).
	perms, err := authaccess.New(authaccess.Config{Store: pe.Store})
	if err != nil {
		t.Fatal(err)
	}
	v1 := engine.Group("/v1", authn.Middleware(verifier, nil, authn.WithPermissions(perms)))
	err = taskshttp.Mount(v1, taskshttp.Deps{
		Tasks: h, Blobs: blobs, Referenced: queue.BlobReferenced,
		Config: upload,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(openapitest.Handler(t, engine))
	t.Cleanup(srv.Close)
	return &server{t: t, ctx: ctx, url: srv.URL, issuer: issuer, h: h, store: pe.Store, blobDir: dir}
}

// token is an access token of user, registered in the log first (if it
// is not) with the user role and roles: permissions are read from the
// log, where a user who never registered holds none.
func (s *server) token(user uuid.UUID, roles ...string) string {
	s.t.Helper()
	identitytest.RegisterInLog(s.t, s.store, user, roles...)
	tok, _, err := s.issuer.Issue(token.Subject{UserID: user, SessionID: uuid.New(), AMR: []string{"pwd"}, Roles: append([]string{"user"}, roles...)}, time.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func (r resp) problemType() string {
	var m struct{ Type string }
	_ = json.Unmarshal(r.body, &m)
	return strings.TrimPrefix(m.Type, "https://authledger.dev/problems/")
}

func (s *server) do(method, path, tok, contentType string, body io.Reader) resp {
	s.t.Helper()
	req, _ := http.NewRequestWithContext(s.ctx, method, s.url+path, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("X-Request-ID", "req-fixed")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

type part struct {
	field, name string
	content     []byte
}

func file(name string, content []byte) part {
	return part{field: "files", name: name, content: content}
}

// onePixel is a valid 1×1 PNG up to its IEND chunk (the last 12 bytes).
var onePixel = func() []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1))); err != nil {
		panic(err)
	}
	return b.Bytes()
}()

// pngBytes is a valid 1×1 PNG that carries s in a tEXt chunk, so that
// every s is distinct content of about len(s) bytes.
func pngBytes(s string) []byte {
	body := append([]byte("Comment\x00"), s...)
	out := slices.Clone(onePixel[:len(onePixel)-12])
	out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
	chunk := append([]byte("tEXt"), body...)
	out = append(out, chunk...)
	out = binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(chunk))
	return append(out, onePixel[len(onePixel)-12:]...)
}

func (s *server) upload(tok string, parts ...part) resp {
	s.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p.field, p.name))
		h.Set("Content-Type", "image/png") // what a client claims; never trusted
		w, _ := mw.CreatePart(h)
		_, _ = w.Write(p.content)
	}
	_ = mw.Close()
	return s.do("POST", "/v1/tasks", tok, mw.FormDataContentType(), &buf)
}

// waitBlobs waits (bounded) until the stored blobs satisfy ok.
func (s *server) waitBlobs(ok func([]string) bool, want string) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b := s.blobs()
		if ok(b) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("blobs %v, want %s", b, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) blobs() []string {
	s.t.Helper()
	var out []string
	_ = filepath.WalkDir(s.blobDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, filepath.Base(p))
		}
		return nil
	})
	return out
}

func (s *server) load(id uuid.UUID) *task.Task {
	s.t.Helper()
	tk, err := s.h.Claim.Tasks.Load(s.ctx, task.StreamName(id))
	if err != nil {
		s.t.Fatal(err)
	}
	return tk
}

func (s *server) typesOf(stream string) []string {
	s.t.Helper()
	recs, err := s.store.ReadStream(s.ctx, stream, eventstore.ReadStreamOptions{})
	if err != nil && !errors.Is(err, eventstore.ErrStreamNotFound) {
		s.t.Fatal(err)
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Type
	}
	return out
}

func created(t *testing.T, r resp) uuid.UUID {
	t.Helper()
	if r.status != http.StatusAccepted || r.header.Get("X-Consistency-Token") == "" {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	m := r.json(t)
	id, err := uuid.Parse(fmt.Sprint(m["task_id"]))
	if err != nil || m["status"] != "queued" {
		t.Fatalf("upload body %v", m)
	}
	return id
}

func TestUploadAndDownload(t *testing.T) {
	t.Parallel()
	s := newServer(t, task.DefaultLimits())
	alice := uuid.New()
	tok := s.token(alice)

	one := created(t, s.upload(tok, file("scan.png", pngBytes("one"))))
	if fs := s.load(one).Files(); len(fs) != 1 || fs[0].Name != "scan.png" || fs[0].ContentType != blob.TypePNG {
		t.Fatalf("files %+v", fs)
	}

	name := `C:\Users\a\résumé "final".pdf`
	pdf := []byte("%PDF-1.7\n%%EOF\n")
	two := created(t, s.upload(tok, file("a.png", pngBytes("two")), part{field: "note", content: []byte("ignored")}, file(name, pdf)))
	fs := s.load(two).Files()
	if len(fs) != 2 || fs[1].Name != `résumé "final".pdf` || fs[1].ContentType != blob.TypePDF || fs[1].Size != int64(len(pdf)) {
		t.Fatalf("files %+v", fs)
	}

	r := s.do("GET", fmt.Sprintf("/v1/tasks/%s/files/%s", two, fs[1].ID), tok, "", nil)
	if r.status != http.StatusOK || !bytes.Equal(r.body, pdf) || r.header.Get("Content-Type") != blob.TypePDF ||
		r.header.Get("X-Consistency-Token") == "" || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("download: %d %v %q", r.status, r.header, r.body)
	}
	if cd := r.header.Get("Content-Disposition"); cd != `attachment; filename="r_sum_ _final_.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf` {
		t.Fatalf("Content-Disposition %s", cd)
	}
	if got := s.typesOf(task.AccessStream(alice)); len(got) != 1 || got[0] != task.EventFileAccessed {
		t.Fatalf("access stream %v", got)
	}
}

func TestUploadRefusals(t *testing.T) {
	t.Parallel()
	s := newServer(t, task.DefaultLimits())
	tok := s.token(uuid.New())
	big := pngBytes(strings.Repeat("x", 5<<10))
	for _, tc := range []struct {
		name   string
		r      resp
		status int
		slug   string
	}{
		{"no token", s.upload("", file("a.png", pngBytes("a"))), 401, "unauthenticated"},
		{"no files", s.upload(tok, part{field: "note", content: []byte("x")}), 400, "invalid-input"},
		{"not multipart", s.do("POST", "/v1/tasks", tok, "application/json", strings.NewReader(`{}`)), 400, "invalid-input"},
		{"file over the per-file limit", s.upload(tok, file("big.png", big)), 413, "too-large"},
		{"good file, then one over the limit", s.upload(tok, file("ok.png", pngBytes("ok")), file("big.png", big)), 413, "too-large"},
		{"request over the limit", s.upload(tok, file("a.png", pngBytes(strings.Repeat("a", 3<<10))), file("b.png", pngBytes(strings.Repeat("b", 3<<10))),
			file("c.png", pngBytes(strings.Repeat("c", 3<<10))), file("d.png", pngBytes(strings.Repeat("d", 3<<10))),
			file("e.png", pngBytes(strings.Repeat("e", 3<<10))), file("f.png", pngBytes(strings.Repeat("f", 3<<10)))), 413, "too-large"},
		{"too many files", s.upload(tok, file("1.png", pngBytes("1")), file("2.png", pngBytes("2")), file("3.png", pngBytes("3")), file("4.png", pngBytes("4"))), 413, "too-large"},
		{"text behind a .png name", s.upload(tok, file("a.png", pngBytes("fine")), file("evil.png", []byte("just some text"))), 415, "unsupported-type"},
		{"empty file", s.upload(tok, file("empty.png", nil)), 415, "unsupported-type"},
	} {
		if tc.r.status != tc.status || tc.r.problemType() != tc.slug || tc.r.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s", tc.name, tc.r.status, tc.r.body)
		}
	}
	s.nothingLeft()
}

// nothingLeft checks that every refusal undid its writes: no blob, no
// task, no quota held.
func (s *server) nothingLeft() {
	s.t.Helper()
	if b := s.blobs(); len(b) != 0 {
		s.t.Fatalf("refused uploads left blobs %v", b)
	}
	all, err := s.store.ReadAll(s.ctx, eventstore.ReadAllOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	for _, e := range all {
		if e.Type == task.EventCreated || e.Type == task.EventQuotaReserved {
			s.t.Fatalf("a refused upload wrote %s", e.Type)
		}
	}
}

func TestQuotaUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := newServer(t, task.Limits{MaxActiveTasks: 3, MaxStoredBytes: 1 << 30})
	tok := s.token(uuid.New())
	const n = 12
	statuses := make([]resp, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { statuses[i] = s.upload(tok, file("f.png", pngBytes(fmt.Sprint("upload ", i)))) })
	}
	wg.Wait()
	ok, limited := 0, 0
	for _, r := range statuses {
		switch {
		case r.status == http.StatusAccepted:
			ok++
		case r.status == http.StatusTooManyRequests && r.problemType() == "task-quota":
			limited++
		default:
			t.Errorf("upload: %d %s", r.status, r.body)
		}
	}
	if ok != 3 || limited != n-3 {
		t.Fatalf("%d accepted, %d over quota", ok, limited)
	}
	if b := s.blobs(); len(b) != 3 {
		t.Fatalf("blobs after the quota refusals: %d", len(b))
	}
}

func TestRetryOnlyFromFailed(t *testing.T) {
	t.Parallel()
	s := newServer(t, task.DefaultLimits())
	alice := uuid.New()
	tok := s.token(alice)
	id := created(t, s.upload(tok, file("a.png", pngBytes("retry"))))
	path := "/v1/tasks/" + id.String() + "/retry"
	if r := s.do("POST", path, tok, "", nil); r.status != http.StatusConflict || r.problemType() != "not-retryable" {
		t.Fatalf("retry a queued task: %d %s", r.status, r.body)
	}
	if _, err := s.h.Claim.Handle(s.ctx, commands.ClaimTask{TaskID: id, WorkerID: "w"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.h.Fail.Handle(s.ctx, commands.FailTask{TaskID: id, WorkerID: "w", Error: "unreadable"}); err != nil {
		t.Fatal(err)
	}
	if r := s.do("POST", path, s.token(uuid.New()), "", nil); r.status != http.StatusNotFound {
		t.Fatalf("another user's retry: %d %s", r.status, r.body)
	}
	r := s.do("POST", path, tok, "", nil)
	if r.status != http.StatusAccepted || r.json(t)["status"] != "queued" || r.header.Get("X-Consistency-Token") == "" {
		t.Fatalf("retry a failed task: %d %s", r.status, r.body)
	}
	if st := s.load(id).Status(); st != task.StatusQueued {
		t.Fatalf("status after retry %s", st)
	}
}

func TestDeleteRemovesUnsharedBlobs(t *testing.T) {
	t.Parallel()
	s := newServer(t, task.DefaultLimits())
	alice := uuid.New()
	tok := s.token(alice)
	shared := pngBytes("shared")
	first := created(t, s.upload(tok, file("only.png", pngBytes("only mine")), file("shared.png", shared)))
	second := created(t, s.upload(tok, file("shared-again.png", shared)))
	if b := s.blobs(); len(b) != 2 {
		t.Fatalf("blobs %v", b)
	}
	r := s.do("DELETE", "/v1/tasks/"+first.String(), tok, "", nil)
	if r.status != http.StatusNoContent || r.header.Get("X-Consistency-Token") == "" {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	// The blob-release policy follows the deletion a moment later.
	s.waitBlobs(func(b []string) bool { return len(b) == 1 && b[0] == s.load(second).Files()[0].SHA256 }, "only the shared blob (still used by another task)")
	if r := s.do("DELETE", "/v1/tasks/"+first.String(), tok, "", nil); r.status != http.StatusNotFound {
		t.Fatalf("delete again: %d", r.status)
	}
	if r := s.do("DELETE", "/v1/tasks/"+second.String(), tok, "", nil); r.status != http.StatusNoContent {
		t.Fatalf("delete second: %d", r.status)
	}
	s.waitBlobs(func(b []string) bool { return len(b) == 0 }, "no blob after deleting every task")
	if st := s.load(first).Status(); st != task.StatusDeleted {
		t.Fatalf("status %s", st)
	}
}

// Another user's task or file answers exactly like a missing one, and
// each attempt is audited on the requester's access stream.
func TestAnotherUsersTaskIsNotFound(t *testing.T) {
	t.Parallel()
	s := newServer(t, task.DefaultLimits())
	alice, bob, admin := uuid.New(), uuid.New(), uuid.New()
	aliceTok, bobTok := s.token(alice), s.token(bob)
	id := created(t, s.upload(aliceTok, file("private.png", pngBytes("alice's"))))
	fileID := s.load(id).Files()[0].ID
	missing := uuid.New()

	for _, tc := range []struct{ name, method, theirs, absent string }{
		{"download", "GET", fmt.Sprintf("/v1/tasks/%s/files/%s", id, fileID), fmt.Sprintf("/v1/tasks/%s/files/%s", missing, uuid.New())},
		{"download a missing file of their task", "GET", fmt.Sprintf("/v1/tasks/%s/files/%s", id, fileID), fmt.Sprintf("/v1/tasks/%s/files/%s", id, uuid.New())},
		{"download with a malformed id", "GET", fmt.Sprintf("/v1/tasks/%s/files/%s", id, fileID), fmt.Sprintf("/v1/tasks/%s/files/not-a-uuid", id)},
		{"retry", "POST", "/v1/tasks/" + id.String() + "/retry", "/v1/tasks/" + missing.String() + "/retry"},
		{"delete", "DELETE", "/v1/tasks/" + id.String(), "/v1/tasks/" + missing.String()},
		{"delete with a malformed id", "DELETE", "/v1/tasks/" + id.String(), "/v1/tasks/12345"},
	} {
		theirs, absent := s.do(tc.method, tc.theirs, bobTok, "", nil), s.do(tc.method, tc.absent, bobTok, "", nil)
		if theirs.status != http.StatusNotFound || absent.status != theirs.status || !bytes.Equal(theirs.body, absent.body) ||
			theirs.header.Get("Content-Type") != absent.header.Get("Content-Type") {
			t.Errorf("%s: theirs %d %s, missing %d %s", tc.name, theirs.status, theirs.body, absent.status, absent.body)
		}
	}
	denied := 0
	for _, typ := range s.typesOf(task.AccessStream(bob)) {
		if typ == task.EventAccessDenied {
			denied++
		}
	}
	// Six attempts on Alice's task; the three absent ids with a valid UUID
	// (missing task, missing file, missing task on delete) are audited too.
	if denied < 6 {
		t.Fatalf("bob's access stream has %d denials: %v", denied, s.typesOf(task.AccessStream(bob)))
	}
	if st := s.load(id).Status(); st != task.StatusQueued {
		t.Fatalf("bob changed alice's task: %s", st)
	}
	if got := s.typesOf(task.StreamName(missing)); len(got) != 0 {
		t.Fatalf("a request for a missing id created its stream: %v", got)
	}
	// An administrator may read it, and the access says so.
	r := s.do("GET", fmt.Sprintf("/v1/tasks/%s/files/%s", id, fileID), s.token(admin, user.RoleAdmin), "", nil)
	if r.status != http.StatusOK || !bytes.Equal(r.body, pngBytes("alice's")) {
		t.Fatalf("admin download: %d %s", r.status, r.body)
	}
	recs, _ := s.store.ReadStream(s.ctx, task.AccessStream(admin), eventstore.ReadStreamOptions{})
	var acc task.FileAccessed
	if len(recs) != 1 || json.Unmarshal(recs[0].Data, &acc) != nil || !acc.AsAdmin || acc.OwnerID != alice {
		t.Fatalf("admin access %+v", acc)
	}
}

func TestSanitizeAndContentDisposition(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"scan.png":               "scan.png",
		"../../etc/passwd":       "passwd",
		`C:\temp\x.png`:          "x.png",
		"  a\x00b\r\nc.png  ":    "abc.png",
		"":                       "file-3",
		"..":                     "file-3",
		"\xff\xfe.png":           "\uFFFD.png",
		"evil\u202egnp.exe":      "evilgnp.exe",
		"\u200fשלום\u200e.png":   "שלום.png",
		"\ufeffzero\u200bwidth":  "zerowidth",
		"می\u200cخواهم.png":      "می\u200cخواهم.png", // ZWNJ is spelling
		strings.Repeat("é", 200): strings.Repeat("é", 127),
	} {
		if got := taskshttp.SanitizeFileName(in, 3); got != want {
			t.Errorf("SanitizeFileName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := taskshttp.ContentDisposition(`a"b\c;d.png`); got != `attachment; filename="a_b_c;d.png"; filename*=UTF-8''a%22b%5Cc%3Bd.png` {
		t.Errorf("ContentDisposition = %s", got)
	}
	// A name stored before bidi controls were stripped is served without them.
	if got := taskshttp.ContentDisposition("evil\u202egnp.exe"); got != `attachment; filename="evilgnp.exe"; filename*=UTF-8''evilgnp.exe` {
		t.Errorf("ContentDisposition = %s", got)
	}
}

// rawUpload sends a multipart body whose part headers are given verbatim
// (mime/multipart's writer would escape what these tests need to send).
func (s *server) rawUpload(tok string, headersAndContents ...string) resp {
	s.t.Helper()
	var b strings.Builder
	for i := 0; i+1 < len(headersAndContents); i += 2 {
		b.WriteString("--BOUNDARY\r\n" + headersAndContents[i] + "\r\n\r\n" + headersAndContents[i+1] + "\r\n")
	}
	b.WriteString("--BOUNDARY--\r\n")
	return s.do("POST", "/v1/tasks", tok, "multipart/form-data; boundary=BOUNDARY", strings.NewReader(b.String()))
}

// A part the server cannot read is refused as a whole (400), never
// answered 500 nor dropped while the rest is accepted.
func TestUploadRefusesPartsItCannotRead(t *testing.T) {
	t.Parallel()
	s := newServer(t, task.DefaultLimits())
	tok := s.token(uuid.New())
	good := `Content-Disposition: form-data; name="files"; filename="ok.png"`
	img := string(pngBytes("good"))
	for _, tc := range []struct{ name, header string }{
		{"NUL in the file name", "Content-Disposition: form-data; name=\"files\"; filename=\"evil.exe\x00.png\""},
		{"NUL in an RFC 2231 file name", `Content-Disposition: form-data; name="files"; filename*=UTF-8''evil.exe%00.png`},
		{"a file name given twice", `Content-Disposition: form-data; name="files"; filename="a.png"; filename="b.png"`},
		{"an unterminated quote", `Content-Disposition: form-data; name="files"; filename="a.png`},
		{"no colon", `Content-Disposition form-data; name="files"`},
		{"not form-data", `Content-Disposition: attachment; name="files"; filename="a.png"`},
		{"no Content-Disposition", `Content-Type: image/png`},
	} {
		r := s.rawUpload(tok, good, img, tc.header, string(pngBytes(tc.name)))
		if r.status != http.StatusBadRequest || r.problemType() != "invalid-input" {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
	}
	s.nothingLeft()
}

// Bidi controls would make a name display as something it is not
// ("evil\u202egnp.exe" shows as "evilexe.png"): they are stripped, so the
// name is stored and served in its logical order.
func TestUploadStripsBidiControlsFromFileNames(t *testing.T) {
	t.Parallel()
	s := newServer(t, task.DefaultLimits())
	alice := uuid.New()
	tok := s.token(alice)
	id := created(t, s.rawUpload(tok,
		"Content-Disposition: form-data; name=\"files\"; filename=\"evil\u202egnp.exe\"", string(pngBytes("bidi")),
		"Content-Disposition: form-data; name=\"files\"; filename=\"\u2067rtl\u2069\u200b.png\"", string(pngBytes("isolate"))))
	fs := s.load(id).Files()
	if len(fs) != 2 || fs[0].Name != "evilgnp.exe" || fs[1].Name != "rtl.png" {
		t.Fatalf("stored names %+v", fs)
	}
	r := s.do("GET", fmt.Sprintf("/v1/tasks/%s/files/%s", id, fs[0].ID), tok, "", nil)
	if cd := r.header.Get("Content-Disposition"); r.status != http.StatusOK || cd != `attachment; filename="evilgnp.exe"; filename*=UTF-8''evilgnp.exe` {
		t.Fatalf("download: %d %s", r.status, cd)
	}
}

// Decompression bombs: an image whose header declares more pixels than
// OCR should be given is refused from its header alone, whatever its
// size in bytes (the 30000×30000 PNG here is under 1 MB, within the byte
// limits), and leaves nothing behind.
func TestUploadRefusesImagesWithTooManyPixels(t *testing.T) {
	t.Parallel()
	s := newServerWith(t, task.DefaultLimits(), taskshttp.Config{MaxFileBytes: 2 << 20, MaxRequestBytes: 8 << 20, MaxFiles: 3})
	tok := s.token(uuid.New())
	bomb := testimage.BlankPNG(t, 30000, 30000)
	// A TIFF whose first page is small and whose second page is not: every
	// page is OCR'd, so every page is checked.
	le := binary.LittleEndian
	tif := []byte("II*\x00\x08\x00\x00\x00")
	for i, side := range []uint32{100, 40000} {
		tif = le.AppendUint16(tif, 2)
		for _, tag := range []uint16{256, 257} {
			tif = le.AppendUint16(tif, tag)
			tif = le.AppendUint16(tif, 4) // LONG
			tif = le.AppendUint32(tif, 1)
			tif = le.AppendUint32(tif, side)
		}
		next := uint32(len(tif) + 4)
		if i == 1 {
			next = 0
		}
		tif = le.AppendUint32(tif, next)
	}
	for _, tc := range []struct {
		name   string
		r      resp
		status int
		slug   string
	}{
		{"a 30000×30000 PNG of 890 KB", s.upload(tok, file("ok.png", pngBytes("fine")), file("bomb.png", bomb)), 413, "image-too-large"},
		{"a PNG longer than the side limit", s.upload(tok, file("strip.png", testimage.BlankPNG(t, 1, 20001))), 413, "image-too-large"},
		{"a TIFF with a huge second page", s.upload(tok, file("pages.tif", tif)), 413, "image-too-large"},
		{"a PNG whose header cannot be read", s.upload(tok, file("broken.png", append([]byte("\x89PNG\r\n\x1a\n"), "not a header"...))), 415, "unsupported-type"},
	} {
		if tc.r.status != tc.status || tc.r.problemType() != tc.slug {
			t.Errorf("%s: %d %s", tc.name, tc.r.status, tc.r.body)
		}
	}
	s.nothingLeft()
	// Within the limits (the default 100 megapixels, 20000 on a side) an
	// image is accepted; PDF has no pixels to count.
	id := created(t, s.upload(tok, file("page.png", testimage.BlankPNG(t, 4960, 7016)), file("doc.pdf", []byte("%PDF-1.7\n%%EOF\n"))))
	if fs := s.load(id).Files(); len(fs) != 2 {
		t.Fatalf("files %+v", fs)
	}
}

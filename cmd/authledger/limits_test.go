package main

// Tests of issue 25's bounds through the assembled server on a real
// socket: bodies (item 1), connections (item 2), metadata (item 7), bad
// text (item 10) and the quota's Retry-After (item 11).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/test/pgtest"
	"github.com/authledger/authledger/test/testimage"
)

// dial opens a raw connection to the service.
func (r *running) dial() net.Conn {
	r.t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(r.base, "http://"))
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = c.Close() })
	return c
}

// answer is an HTTP answer read off a raw connection.
type answer struct {
	StatusCode int
	Header     http.Header
	// Close is set when the server closes the connection after it.
	Close bool
}

// readAnswer reads one HTTP answer from c within d.
func readAnswer(t *testing.T, c net.Conn, br *bufio.Reader, d time.Duration) (answer, []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer within %s: %v", d, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, resp.Close}, body
}

func problemType(t *testing.T, body []byte) string {
	t.Helper()
	var p struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("not a problem document: %q", body)
	}
	return strings.TrimPrefix(p.Type, "https://authledger.dev/problems/")
}

// A 300 MB body announced on an auth route, on a bounded JSON route, or
// sent chunked without a length, is answered 413 too-large after at most
// the route's limit, and the connection is closed: the server never reads
// (or holds in memory) the rest. Before, the body was read to its end.
func TestOversizedBodiesAreRefusedUnread(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0"})
	access := r.login("big@example.com")
	chunk := bytes.Repeat([]byte("a"), 64<<10)

	for _, tc := range []struct{ name, head string }{
		{"login with Content-Length", "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 314572800\r\n\r\n"},
		{"export with Content-Length", "POST /v1/history/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + access + "\r\nContent-Length: 314572800\r\n\r\n"},
		{"login chunked", "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"register chunked", "POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := r.dial()
			br := bufio.NewReader(c)
			if _, err := io.WriteString(c, tc.head); err != nil {
				t.Fatal(err)
			}
			// A JSON string that never ends, 64 KiB more than any limit.
			if strings.Contains(tc.head, "chunked") {
				fmt.Fprintf(c, "%x\r\n{\"email\":\"%s\r\n", len(chunk)+10, chunk)
			} else {
				fmt.Fprintf(c, "{\"email\":\"%s", chunk)
			}
			// The rest of the 300 MB never comes: a server still reading
			// would not answer.
			resp, body := readAnswer(t, c, br, 10*time.Second)
			if resp.StatusCode != http.StatusRequestEntityTooLarge || problemType(t, body) != "too-large" {
				t.Fatalf("answered %d %s, want 413 too-large", resp.StatusCode, body)
			}
			if !resp.Close {
				t.Error("the connection is kept open after a refused body")
			}
		})
	}
}

// JSON bodies are decoded strictly, in one place, for every route: an
// unknown member, trailing data, invalid UTF-8 and a lone surrogate escape
// are refused with 400 invalid-input and nothing is stored (before, the
// bytes became U+FFFD in the log). The largest valid registration fits
// the auth limit.
func TestJSONBodiesAreStrict(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0"})
	send := func(path, body string) (int, string) {
		t.Helper()
		status, raw := r.post(path, body)
		if status >= 400 {
			return status, problemType(t, raw)
		}
		return status, ""
	}
	for _, tc := range []struct{ name, body string }{
		{"invalid UTF-8", "{\"email\":\"u1@example.com\",\"password\":\"a long enough secret\",\"display_name\":\"A\xff\xfeB\"}"},
		{"lone high surrogate", `{"email":"u2@example.com","password":"a long enough secret","display_name":"A\ud800B"}`},
		{"lone low surrogate", `{"email":"u3@example.com","password":"a long enough secret","display_name":"A\udc00"}`},
		{"unknown member", `{"email":"u4@example.com","password":"a long enough secret","display_name":"A","role":"admin"}`},
		{"trailing data", `{"email":"u5@example.com","password":"a long enough secret","display_name":"A"} {"x":1}`},
		{"not an object", `["u6@example.com"]`},
	} {
		if status, typ := send("/v1/auth/register", tc.body); status != http.StatusBadRequest || typ != "invalid-input" {
			t.Errorf("%s: %d %s, want 400 invalid-input", tc.name, status, typ)
		}
	}
	if status, typ := send("/v1/auth/login", "{\"email\":\"u1@example.com\xc0\",\"password\":\"x\"}"); status != http.StatusBadRequest || typ != "invalid-input" {
		t.Errorf("login with invalid UTF-8: %d %s", status, typ)
	}
	// A surrogate pair is one character, and the largest valid fields fit.
	name := strings.Repeat("ü", 99) + `\ud83d\ude00`
	var pw strings.Builder
	for i := 0; pw.Len() < 1020; i++ {
		fmt.Fprintf(&pw, "é%d", i)
	}
	body := fmt.Sprintf(`{"email":"%s@example.com","password":"%s","display_name":"%s"}`, strings.Repeat("l", 64), pw.String(), name)
	if status, raw := r.post("/v1/auth/register", body); status != http.StatusCreated {
		t.Errorf("the largest valid registration (%d bytes): %d %s", len(body), status, raw)
	}
}

// A connection that sends a body slowly, or idles between requests, is
// closed by the server's read and idle timeouts; before, both were held
// for as long as the client liked.
func TestSlowAndIdleConnectionsAreClosed(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{
		"DATABASE_URL":                   pgtest.NewDatabase(t),
		"AUTHLEDGER_CONSISTENCY_WAIT":    "500ms",
		"AUTHLEDGER_READ_HEADER_TIMEOUT": "1s",
		"AUTHLEDGER_READ_TIMEOUT":        "2s",
		"AUTHLEDGER_WRITE_TIMEOUT":       "2s",
		"AUTHLEDGER_IDLE_TIMEOUT":        "1s",
	})
	closedWithin := func(c net.Conn, d time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(d))
		_, err := io.Copy(io.Discard, c) // whatever the server answers, then its close
		return err == nil
	}
	slow := r.dial()
	fmt.Fprint(slow, "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"email\":")
	idle := r.dial()
	fmt.Fprint(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ := readAnswer(t, idle, bufio.NewReader(idle), 5*time.Second)
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("healthz on a keep-alive connection: %d close=%v", resp.StatusCode, resp.Close)
	}
	var wg sync.WaitGroup
	for name, c := range map[string]net.Conn{"slow body": slow, "idle keep-alive": idle} {
		wg.Go(func() {
			if !closedWithin(c, 10*time.Second) {
				t.Errorf("%s connection still open after 10s", name)
			}
		})
	}
	wg.Wait()
}

// Past AUTHLEDGER_MAX_CONNECTIONS, idle and slow connections are closed
// to make room, and health checks and logins on new connections are
// answered throughout. Before, every connection was held (and enough of
// them used every file descriptor).
func TestConnectionCapKeepsHealthAndLoginsAnswered(t *testing.T) {
	t.Parallel()
	const limit = 16
	r := startService(t, map[string]string{
		"DATABASE_URL":                     pgtest.NewDatabase(t),
		"AUTHLEDGER_MAX_CONNECTIONS":       fmt.Sprint(limit),
		"AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0",
	})
	r.login("capped@example.com")
	var held []net.Conn
	for i := range 3 * limit {
		c := r.dial()
		if i%3 == 0 {
			// An idle keep-alive connection.
			fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			readAnswer(t, c, bufio.NewReader(c), 5*time.Second)
		} else {
			// Headers that never end, and a body that never comes.
			fmt.Fprint(c, "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\n")
			if i%3 == 2 {
				fmt.Fprint(c, "Content-Length: 1000\r\n\r\n{")
			}
		}
		held = append(held, c)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for range 5 {
		for _, path := range []string{"/healthz", "/readyz"} {
			resp, err := client.Get(r.base + path)
			if err != nil {
				t.Fatalf("GET %s at the cap: %v", path, err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s at the cap: %d", path, resp.StatusCode)
			}
		}
		resp, err := client.Post(r.base+"/v1/auth/login", "application/json",
			strings.NewReader(`{"email":"capped@example.com","password":"a long enough secret"}`))
		if err != nil {
			t.Fatalf("login at the cap: %v", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("login at the cap: %d", resp.StatusCode)
		}
	}
	open := 0
	for _, c := range held {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && isTimeout(err) {
			open++
		}
	}
	if open >= limit {
		t.Errorf("%d of the %d held connections are still open, cap %d", open, len(held), limit)
	}
	_, _, metrics := r.get("/metrics")
	if !strings.Contains(metrics, "authledger_http_connections_evicted_total") {
		t.Errorf("/metrics lacks the eviction counter")
	}
}

// post sends body as it is (call marshals, which would repair invalid
// UTF-8) and returns the status and the answer's body.
func (r *running) post(path, body string) (int, []byte) {
	r.t.Helper()
	req, err := http.NewRequestWithContext(r.t.Context(), http.MethodPost, r.base+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error) //nolint:errorlint // net.Error is an interface the conn returns directly
	return ok && ne.Timeout()
}

// get fetches path and returns status, headers and the body as text.
func (r *running) get(path string) (int, http.Header, string) {
	r.t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(r.base + path)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// A download and an upload outlive the server's read and write timeouts
// (their routes have AUTHLEDGER_STREAM_TIMEOUT and AUTHLEDGER_UPLOAD_TIMEOUT
// instead): a slow reader receives the whole file, a slow uploader gets
// its 202.
func TestStreamsOutliveTheServerTimeouts(t *testing.T) {
	t.Parallel()
	// The timeouts are short so that the slow transfers outlast them;
	// cheap password hashing keeps the register and login before them
	// well inside them on a loaded machine.
	r := startService(t, map[string]string{
		"DATABASE_URL":                   pgtest.NewDatabase(t),
		"AUTHLEDGER_WORKERS":             "0",
		"AUTHLEDGER_CONSISTENCY_WAIT":    "500ms",
		"AUTHLEDGER_READ_HEADER_TIMEOUT": "1s",
		"AUTHLEDGER_READ_TIMEOUT":        "2s",
		"AUTHLEDGER_WRITE_TIMEOUT":       "2s",
		"AUTHLEDGER_ARGON2_MEMORY_KIB":   "64",
		"AUTHLEDGER_ARGON2_ITERATIONS":   "1",
	})
	access := r.login("streams@example.com")
	file := append(testimage.TextPNG(t, "SLOW"), bytes.Repeat([]byte{0}, 4<<20)...)

	// The upload, sent over 4 s.
	var mp bytes.Buffer
	boundary := "limits-test-boundary"
	fmt.Fprintf(&mp, "--%s\r\nContent-Disposition: form-data; name=\"files\"; filename=\"slow.png\"\r\nContent-Type: image/png\r\n\r\n", boundary)
	mp.Write(file)
	fmt.Fprintf(&mp, "\r\n--%s--\r\n", boundary)
	c := r.dial()
	fmt.Fprintf(c, "POST /v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n",
		access, boundary, mp.Len())
	parts := 10
	step := mp.Len()/parts + 1
	for b := mp.Bytes(); len(b) > 0; b = b[min(step, len(b)):] {
		if _, err := c.Write(b[:min(step, len(b))]); err != nil {
			t.Fatalf("upload cut by the server: %v", err)
		}
		time.Sleep(400 * time.Millisecond)
	}
	resp, body := readAnswer(t, c, bufio.NewReader(c), 10*time.Second)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("slow upload: %d %s", resp.StatusCode, body)
	}
	var created struct {
		TaskID string `json:"task_id"`
	}
	_ = json.Unmarshal(body, &created)
	status, _, task := r.call("GET", "/v1/tasks/"+created.TaskID, access, nil, "X-Consistency-Token", resp.Header.Get("X-Consistency-Token"))
	files, _ := task["files"].([]any)
	if status != http.StatusOK || len(files) != 1 {
		t.Fatalf("task: %d %v", status, task)
	}
	fileID := files[0].(map[string]any)["file_id"].(string)

	// The download, read over about 4 s through a small receive buffer.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 32<<10) })
	}}
	dc, err := d.DialContext(t.Context(), "tcp", strings.TrimPrefix(r.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	fmt.Fprintf(dc, "GET /v1/tasks/%s/files/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", created.TaskID, fileID, access)
	_ = dc.SetReadDeadline(time.Now().Add(30 * time.Second))
	dresp, err := http.ReadResponse(bufio.NewReader(dc), nil)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	defer dresp.Body.Close()
	if dresp.StatusCode != http.StatusOK {
		t.Fatalf("download: %d", dresp.StatusCode)
	}
	start, n := time.Now(), 0
	buf := make([]byte, 64<<10)
	for {
		k, err := dresp.Body.Read(buf)
		n += k
		if err != nil {
			if err != io.EOF { //nolint:errorlint // Read returns io.EOF itself
				t.Fatalf("download cut after %d of %d bytes in %s: %v", n, len(file), time.Since(start), err)
			}
			break
		}
		time.Sleep(60 * time.Millisecond)
	}
	if n != len(file) {
		t.Fatalf("downloaded %d of %d bytes", n, len(file))
	}
	t.Logf("slow download of %d bytes took %s", n, time.Since(start))
}

// A User-Agent of 500 KB (and one cut inside a character) enters the log
// bounded, as valid UTF-8; before, it was stored verbatim in every event.
func TestUserAgentIsBoundedInTheLog(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	r := startService(t, map[string]string{"DATABASE_URL": db, "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0"})
	huge := "x" + strings.Repeat("é", 250_000) // 500 KB; 512 bytes end inside an é
	status, _, body := r.call("POST", "/v1/auth/register", "", map[string]string{
		"email": "agent@example.com", "password": "a long enough secret", "display_name": "A",
	}, "User-Agent", huge)
	if status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, body)
	}
	if status, _, body = r.call("POST", "/v1/auth/login", "", map[string]string{"email": "agent@example.com", "password": "a long enough secret"},
		"User-Agent", huge); status != http.StatusOK {
		t.Fatalf("login: %d %v", status, body)
	}
	conn, err := pgx.Connect(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT type, coalesce(metadata->>'user_agent', ''), octet_length(data::text) FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	agents := 0
	for rows.Next() {
		var typ, ua string
		var dataLen int
		if err := rows.Scan(&typ, &ua, &dataLen); err != nil {
			t.Fatal(err)
		}
		if ua == "" {
			continue
		}
		agents++
		if strings.HasPrefix(ua, "{") {
			// Sealed under the user's key (ADR 0034): the envelope of at
			// most 512 bytes (base64 of nonce, text and tag, with the key
			// id) is what the log holds.
			if len(ua) > 900 || len(ua) < 700 {
				t.Errorf("%s: sealed user agent of %d bytes: %s", typ, len(ua), ua)
			}
		} else if len(ua) > 512 || !utf8.ValidString(ua) || !strings.HasPrefix(huge, ua) || len(ua) < 500 {
			t.Errorf("%s: user agent of %d bytes (valid UTF-8 %v)", typ, len(ua), utf8.ValidString(ua))
		}
		if dataLen > 4096 {
			t.Errorf("%s: data of %d bytes", typ, dataLen)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if agents == 0 {
		t.Fatal("no event carries the user agent")
	}
}

// A NUL in a text filter, or invalid UTF-8 in an audit filter, is invalid
// input (400), not a database error (500).
func TestTextFiltersRefuseNULAndInvalidUTF8(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0"})
	access := r.login("filters@example.com")
	// Once the read models answer a plain query, a refusal is the
	// parameter's, not a table still being created.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		status, _, body := r.call("GET", "/v1/tasks?q=plain", access, nil)
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a plain q: %d %v", status, body)
		}
	}
	if status, _, body := r.call("GET", "/v1/me/audit?type=user.registered.v1", access, nil); status != http.StatusOK {
		t.Fatalf("a plain audit filter: %d %v", status, body)
	}
	for _, path := range []string{
		"/v1/history?q=" + url.QueryEscape("a\x00b"),
		"/v1/tasks?q=" + url.QueryEscape("\x00"),
		"/v1/tasks?q=%ff%fe",
		"/v1/me/audit?type=" + url.QueryEscape("user.\x00"),
		"/v1/me/audit?stream=" + url.QueryEscape("\x00"),
		"/v1/me/audit?type=%ff",
		"/v1/me/audit?stream=%c0%80",
	} {
		if status, _, body := r.call("GET", path, access, nil); status != http.StatusBadRequest || !strings.HasSuffix(fmt.Sprint(body["type"]), "/invalid-input") {
			t.Errorf("GET %s: %d %v, want 400 invalid-input", path, status, body)
		}
	}
	status, _, body := r.call("POST", "/v1/history/export", access, map[string]any{"format": "csv", "filters": map[string]string{"q": "a\x00"}})
	if status != http.StatusBadRequest || !strings.HasSuffix(fmt.Sprint(body["type"]), "/invalid-input") {
		t.Errorf("export with a NUL in q: %d %v", status, body)
	}
}

// Over the task quota the 429 carries Retry-After, as openapi.yaml says.
func TestTaskQuotaAnswersRetryAfter(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{
		"DATABASE_URL":               pgtest.NewDatabase(t),
		"AUTHLEDGER_WORKERS":         "0",
		"AUTHLEDGER_TASK_MAX_ACTIVE": "1",
	})
	access := r.login("quota@example.com")
	img := testimage.TextPNG(t, "QUOTA")
	if status, _, body := r.upload(access, "one.png", img); status != http.StatusAccepted {
		t.Fatalf("first upload: %d %v", status, body)
	}
	status, hdr, body := r.upload(access, "two.png", img)
	if status != http.StatusTooManyRequests || !strings.HasSuffix(fmt.Sprint(body["type"]), "/task-quota") {
		t.Fatalf("second upload: %d %v", status, body)
	}
	if ra := hdr.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("task-quota 429 without Retry-After (%q)", ra)
	}
}

// Every route routeLimits and routeClasses name is one the server
// registers: a renamed route would otherwise silently lose its bounds.
func TestRouteLimitsNameRegisteredRoutes(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, pgtest.NewDatabase(t))
	a, err := newApp(t.Context(), cfg, testLogger(io.Discard))
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	defer func() { _ = a.close() }()
	routes := map[string]bool{}
	for _, r := range a.engine.Routes() {
		routes[r.Method+" "+r.Path] = true
	}
	for k := range routeLimits(cfg).Routes {
		if !routes[k] {
			t.Errorf("routeLimits names %q, which is not a route", k)
		}
	}
	for k := range routeClasses {
		if !routes[k] {
			t.Errorf("routeClasses names %q, which is not a route", k)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/authledger/authledger"
	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/test/openapitest"
	"github.com/authledger/authledger/test/pgtest"
)

func envOf(m map[string]string) env {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func runCmd(t *testing.T, m map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(t.Context(), args, envOf(m), &o, &e)
	return code, o.String(), e.String()
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := runCmd(t, nil, "version")
	if code != exitOK || !strings.HasPrefix(out, "authledger ") || !strings.Contains(out, "go1.") {
		t.Errorf("version: %d %q", code, out)
	}
	if Version() == "" {
		t.Error("Version is empty")
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	if code, _, errOut := runCmd(t, nil); code != exitUsage || !strings.Contains(errOut, "serve") {
		t.Errorf("no command: %d %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, nil, "frobnicate"); code != exitUsage || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %q", code, errOut)
	}
	code, out, _ := runCmd(t, nil, "--help")
	for _, c := range []string{"serve", "migrate", "version", "projections", "audit", "worker", "keys"} {
		if code != exitOK || !strings.Contains(out, "  "+c+" ") {
			t.Errorf("help lacks %s: %q", c, out)
		}
	}
	// The benchmarks are authledger-bench (ADR 0024), not a subcommand.
	if strings.Contains(out, "bench") {
		t.Errorf("help offers a benchmark: %q", out)
	}
	if code, _, errOut := runCmd(t, nil, "version", "extra"); code != exitUsage || !strings.Contains(errOut, "unexpected argument") {
		t.Errorf("extra argument: %d %q", code, errOut)
	}
}

func TestServeHelpListsEveryVariableWithItsDefault(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"serve", "migrate"} {
		code, out, _ := runCmd(t, nil, cmd, "--help")
		if code != exitOK {
			t.Fatalf("%s --help exited %d", cmd, code)
		}
		for _, v := range config.Variables() {
			if !strings.Contains(out, v.Name) || !strings.Contains(out, v.ShownDefault()) {
				t.Errorf("%s --help lacks %s with default %q", cmd, v.Name, v.ShownDefault())
			}
		}
	}
}

func TestServeRefusesABrokenEnvironmentListingEveryProblem(t *testing.T) {
	t.Parallel()
	code, _, errOut := runCmd(t, map[string]string{
		"AUTHLEDGER_EVENT_STORE": "esdb",
		"AUTHLEDGER_LOG_LEVEL":   "chatty",
	}, "serve")
	if code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
	for _, want := range []string{"AUTHLEDGER_LOG_LEVEL"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %s: %s", want, errOut)
		}
	}
	code, _, errOut = runCmd(t, map[string]string{"AUTHLEDGER_EVENT_STORE": "esdb"}, "serve")
	for _, want := range []string{"DATABASE_URL", "ESDB_URL"} {
		if code != exitUsage || !strings.Contains(errOut, want) {
			t.Errorf("exit %d; stderr lacks %s: %s", code, want, errOut)
		}
	}
}

// README.md's configuration table is config.Markdown() verbatim. Run
// `go test ./cmd/authledger -run README -update` to rewrite it.
func TestREADMEConfigurationTableMatchesTheCode(t *testing.T) {
	t.Parallel()
	const begin, end = "<!-- env:begin (generated from config/config.go by `go test ./cmd/authledger -run README -update`) -->\n", "<!-- env:end -->"
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q ... %q markers", begin, end)
	}
	want := config.Markdown()
	if got := readme[i+len(begin) : j]; got != want {
		if *update {
			if err := os.WriteFile("../../README.md", []byte(readme[:i+len(begin)]+want+readme[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("README.md configuration table is stale; run go test ./cmd/authledger -run README -update\n got:\n%s\nwant:\n%s", got, want)
	}
}

func testConfig(t *testing.T, dbURL string) config.Config {
	t.Helper()
	cfg, err := config.Load(envOf(map[string]string{
		"DATABASE_URL":               dbURL,
		"AUTHLEDGER_DATA_DIR":        t.TempDir(),
		"AUTHLEDGER_STARTUP_TIMEOUT": "60s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func testLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// The assembled service against a real PostgreSQL: migrated at start,
// healthy, ready, serving its spec, and stopping cleanly on cancel.
func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, pgtest.NewDatabase(t))
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	a, err := newApp(ctx, cfg, testLogger(&logs))
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	defer func() { _ = a.close() }()
	a.handler = openapitest.Handler(t, a.handler)

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.serve(ctx, ln) }()

	client := &http.Client{Timeout: 10 * time.Second}
	base := "http://" + ln.Addr().String()
	get := func(path string) (status int, body []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}

	if status, body := get("/healthz"); status != http.StatusOK {
		t.Errorf("healthz: %d %s", status, body)
	}
	// Ready once every log follower has subscribed: moments after start.
	status, body := get("/readyz")
	for deadline := time.Now().Add(10 * time.Second); status != http.StatusOK && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		status, body = get("/readyz")
	}
	var ready struct {
		Status string                    `json:"status"`
		Checks map[string]map[string]any `json:"checks"`
	}
	if err := json.Unmarshal(body, &ready); err != nil || status != http.StatusOK {
		t.Errorf("readyz: %d %s", status, body)
	}
	for _, check := range []string{"database", "event_store", "projections"} {
		if ready.Checks[check]["status"] != "ok" {
			t.Errorf("readiness check %s: %v (%s)", check, ready.Checks[check], body)
		}
	}
	if status, body := get("/openapi.yaml"); status != http.StatusOK || !bytes.Equal(body, authledger.OpenAPI) {
		t.Errorf("openapi.yaml: %d, %d bytes", status, len(body))
	}
	status, body = get("/metrics")
	if status != http.StatusOK || !bytes.Contains(body, []byte("authledger_http_requests_total")) {
		t.Errorf("metrics: %d", status)
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not return after cancel")
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("no clean stop in the log:\n%s", logs.String())
	}
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	for range 2 { // idempotent
		if code, _, errOut := runCmd(t, map[string]string{"DATABASE_URL": db}, "migrate"); code != exitOK {
			t.Fatalf("migrate: %d %s", code, errOut)
		}
	}
}

func TestUnreachableESDBFailsStartupNamingIt(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, pgtest.NewDatabase(t))
	cfg.EventStore = config.EventStoreESDB
	// A port nothing listens on.
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cfg.ESDBURL = "esdb://admin:changeit@" + addr + "?tls=false"
	cfg.StartupTimeout = 5 * time.Second

	start := time.Now()
	a, err := newApp(t.Context(), cfg, testLogger(io.Discard))
	if err == nil {
		_ = a.close()
		t.Fatal("newApp succeeded against an unreachable EventStoreDB")
	}
	t.Logf("start-up error: %v", err)
	if !strings.Contains(err.Error(), "ESDB_URL") || strings.Contains(err.Error(), "changeit") {
		t.Errorf("error should name ESDB_URL without its password: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("start-up took %s to give up", d)
	}
}

// Every route the assembled server registers is described in openapi.yaml
// with its method, and every operation openapi.yaml describes is a route
// the server registers: a route added without its documentation, or an
// operation documented (or renamed) without its route, fails here.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	t.Parallel()
	spec, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, pgtest.NewDatabase(t))
	a, err := newApp(t.Context(), cfg, testLogger(io.Discard))
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	defer func() { _ = a.close() }()

	registered := map[string]bool{}
	var missing []string
	if len(a.consoleRoutes) == 0 {
		t.Error("the console registered no route")
	}
	for _, r := range a.engine.Routes() {
		// The console's pages are HTML for a browser, not API
		// operations (docs/console.md; TestConsoleRoutes walks them).
		if a.consoleRoutes[r.Method+" "+r.Path] {
			continue
		}
		registered[r.Method+" "+openapitest.OpenAPIPath(r.Path)] = true
		if !spec.Describes(r.Method, r.Path) {
			missing = append(missing, r.Method+" "+openapitest.OpenAPIPath(r.Path))
		}
	}
	var unregistered []string
	for path, item := range spec.Doc().Paths.Map() {
		for method := range item.Operations() {
			if !registered[method+" "+path] {
				unregistered = append(unregistered, method+" "+path)
			}
		}
	}
	sort.Strings(missing)
	sort.Strings(unregistered)
	if len(missing) > 0 {
		t.Errorf("openapi.yaml does not describe: %s", strings.Join(missing, ", "))
	}
	if len(unregistered) > 0 {
		t.Errorf("openapi.yaml describes operations the server does not register: %s", strings.Join(unregistered, ", "))
	}
}

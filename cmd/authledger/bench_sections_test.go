package main

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authledger/authledger/bench"
	"github.com/authledger/authledger/test/pgtest"
)

// The tasks section of authledger-bench against this binary (as `serve`,
// through TestMain), with tiny rows and a 200-task history: every row of
// the table must be there, with its concurrency and figures. It says
// nothing about speed. The run itself checks what it measures (every
// upload accepted, every download the file's full size, every export all
// 200 rows).
func TestBenchTasksSection(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	err := bench.Tasks(t.Context(), &buf, bench.TasksConfig{
		ServerConfig: bench.ServerConfig{DatabaseURL: pgtest.BaseURL(t), Server: os.Args[0], Env: []string{"AUTHLEDGER_TEST_MAIN=1"}},
		RowDuration:  150 * time.Millisecond, HistoryTasks: 200,
	})
	out := buf.String()
	t.Log("\n" + out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Tasks and files", "no OCR worker", "concurrency", "p50", "p99", "vs baseline", "goal",
		"≥ 50%", "p99 < 20.00 ms", "one user with 200 tasks", "console GET /history (whole page)", "Console history page (the first of 200 tasks"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	for _, r := range []struct {
		label string
		c     int
	}{
		{"task creation, ", 8},
		{"GET /v1/tasks/{id} (baseline)", 8},
		{"file download (+ file_accessed event)", 8},
		{"GET /v1/history, first page", 1},
		{"GET /v1/history, first page", 8},
		{"GET /v1/history, filters/page 50", 1},
		{"GET /v1/history, filters/page 50", 8},
		{"POST /v1/history/export, csv", 1},
		{"POST /v1/history/export, json", 1},
	} {
		if !hasBenchRow(out, r.label, r.c) {
			t.Errorf("no %q row at concurrency %d", r.label, r.c)
		}
	}
}

// The upstream section of authledger-bench against this binary (as
// `serve`, through TestMain) with a tiny row: complete sign-ins against
// the in-process provider, each checked to end in tokens, and the three
// rows printed with their figures. It says nothing about speed.
func TestBenchUpstreamSection(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	err := bench.Upstream(t.Context(), &buf, bench.UpstreamConfig{
		ServerConfig: bench.ServerConfig{DatabaseURL: pgtest.BaseURL(t), Server: os.Args[0], Env: []string{"AUTHLEDGER_TEST_MAIN=1"}},
		RowDuration:  300 * time.Millisecond, Concurrency: 2,
	})
	out := buf.String()
	t.Log("\n" + out)
	if err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{"complete sign-in", "provider's own handling (authorize + token)", "our overhead (sign-in minus the provider's, per sign-in)"} {
		if !hasBenchRow(out, label, 2) {
			t.Errorf("no %q row at concurrency 2", label)
		}
	}
}

// hasBenchRow reports whether a line of table starts with label, then
// (after the rest of the label) the concurrency c and at least ops, ops/s,
// p50 and p99.
func hasBenchRow(table, label string, c int) bool {
	for line := range strings.SplitSeq(table, "\n") {
		_, rest, ok := strings.Cut(strings.TrimSpace(line), label)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		for i, cell := range f {
			if cell == strconv.Itoa(c) && len(f)-i >= 7 { // c, ops, ops/s, p50 "ms", p99 "ms"
				return true
			}
		}
	}
	return false
}

// The limits section of authledger-bench against this binary (as
// `serve`, through TestMain) with a short hold and few connections: every
// row is printed with its figures, and the oversized bodies are refused
// with 413. It says nothing about speed or memory.
func TestBenchLimitsSection(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := bench.Limits(t.Context(), &out, bench.LimitsConfig{
		ServerConfig: bench.ServerConfig{DatabaseURL: pgtest.BaseURL(t), Server: os.Args[0],
			Env: []string{"AUTHLEDGER_TEST_MAIN=1", "AUTHLEDGER_MAX_CONNECTIONS=30"}},
		Hold: time.Second, Slow: 20, BodyBytes: 8 << 20,
	})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Bounds under abuse", "peak RSS", "healthz answered", "idle",
		"login body of 8.4 MB, Content-Length", "login body of 8.4 MB, chunked", "20 slow connections held", "40 slow connections"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if n := strings.Count(out.String(), "413 after"); n != 2 {
		t.Errorf("%d oversized bodies answered 413, want 2", n)
	}
	if !regexp.MustCompile(`40 slow connections .* [1-9]\d* closed to make room`).MatchString(out.String()) {
		t.Error("past the cap no connection was closed to make room")
	}
}

// The apikeys section of authledger-bench against this binary (as
// `serve`, through TestMain) with tiny rows: the JWT and API-key GETs
// and the introspections are printed with their figures and the anchors.
// The run itself checks what it measures (every GET 200, every
// introspection active). It says nothing about speed.
func TestBenchAPIKeysSection(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	err := bench.APIKeys(t.Context(), &buf, bench.APIKeysConfig{
		ServerConfig: bench.ServerConfig{DatabaseURL: pgtest.BaseURL(t), Server: os.Args[0], Env: []string{"AUTHLEDGER_TEST_MAIN=1"}},
		RowDuration:  300 * time.Millisecond,
	})
	out := buf.String()
	t.Log("\n" + out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## API keys and introspection", "vs JWT GET", "ZITADEL 2,297", "Hydra 21k/s"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	for _, label := range []string{"GET /v1/me, JWT access token (baseline)", "GET /v1/me, API key", "POST /oauth2/introspect, an access token, by an API key"} {
		if !hasBenchRow(out, label, 8) {
			t.Errorf("no %q row at concurrency 8", label)
		}
	}
}

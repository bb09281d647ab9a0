package main

import (
	"bytes"
	"image/png"
	"strconv"
	"strings"
	"testing"

	"github.com/authledger/authledger/blob"
	"github.com/authledger/authledger/test/pgtest"
)

// `authledger bench -sections tasks` through the real command, with tiny
// rows and a 200-task history: every row of the table must be there, with
// its concurrency and figures. It says nothing about speed. The run itself
// checks what it measures (every upload accepted, every download the
// file's full size, every export all 200 rows).
func TestBenchTasksSection(t *testing.T) {
	t.Parallel()
	img, err := noisePNG(100 << 10)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(t, map[string]string{"DATABASE_URL": pgtest.BaseURL(t)},
		"bench", "-sections", "tasks", "-duration", "150ms", "-history-tasks", "200")
	t.Log("\n" + out)
	if code != exitOK {
		t.Fatalf("bench: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"## Tasks and files", "no OCR worker", "concurrency", "p50", "p99", "vs baseline", "goal",
		"≥ 50%", "p99 < 20.00 ms", "one user with 200 tasks"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	for _, r := range []struct {
		label string
		c     int
	}{
		{"task creation, " + kib(len(img)) + " PNG", 8},
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

// The uploaded image is about 100 KiB, decodes as a PNG, sniffs as one,
// and stays both with the chunk that makes each upload unique.
func TestBenchUploadImage(t *testing.T) {
	t.Parallel()
	img, err := noisePNG(100 << 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("upload of %d bytes (%s)", len(img), kib(len(img)))
	if n := len(img); n < 99<<10 || n > 101<<10 {
		t.Errorf("image of %d bytes, want about 100 KiB", n)
	}
	a, b := uniquePNG(img, 1), uniquePNG(img, 2)
	if bytes.Equal(a, b) {
		t.Error("two uploads have the same bytes")
	}
	for _, p := range [][]byte{img, a, b} {
		if _, err := png.Decode(bytes.NewReader(p)); err != nil {
			t.Fatalf("not a PNG: %v", err)
		}
		if typ, _, err := blob.SniffReader(bytes.NewReader(p)); err != nil || typ != "image/png" {
			t.Fatalf("sniffed as %q (%v)", typ, err)
		}
	}
}

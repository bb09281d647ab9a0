package worker_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/authledger/authledger/test/testimage"

	"github.com/google/uuid"

	"github.com/authledger/authledger/blob"
	"github.com/authledger/authledger/worker"
)

func jobOf(files map[string][]byte, order ...string) worker.Job {
	j := worker.Job{TaskID: uuid.New(), OwnerID: uuid.New(), Attempt: 1}
	for _, name := range order {
		j.Files = append(j.Files, worker.File{ID: uuid.New(), Name: name, ContentType: blob.Sniff(files[name]), Size: int64(len(files[name]))})
	}
	j.Open = func(_ context.Context, f worker.File) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(files[f.Name])), nil
	}
	return j
}

func normalise(s string) string { return strings.Join(strings.Fields(s), " ") }

func TestTesseractReadsGeneratedImages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, err := worker.NewTesseract(ctx, worker.TesseractConfig{})
	if err != nil {
		t.Fatal(err)
	}
	one, err := p.Process(ctx, jobOf(map[string][]byte{"a.png": testimage.TextPNG(t, "HELLO 42")}, "a.png"))
	if err != nil {
		t.Fatal(err)
	}
	if normalise(one) != "HELLO 42" {
		t.Fatalf("read %q", one)
	}
	files := map[string][]byte{
		"first.png": testimage.TextPNG(t, "OCR WORKS"),
		"doc.pdf":   []byte("%PDF-1.4\n%%EOF\n"),
	}
	two, err := p.Process(ctx, jobOf(files, "first.png", "doc.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	want := "== first.png ==\nOCR WORKS\n== doc.pdf ==\n" + worker.PDFNotProcessed
	if two != want {
		t.Fatalf("read %q, want %q", two, want)
	}
}

func TestTesseractFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := worker.NewTesseract(ctx, worker.TesseractConfig{Binary: "no-such-tesseract"}); err == nil {
		t.Fatal("a missing binary was accepted")
	}
	p, err := worker.NewTesseract(ctx, worker.TesseractConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// PNG magic, then garbage: tesseract cannot decode it.
	broken := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 100)...)
	_, err = p.Process(ctx, jobOf(map[string][]byte{"broken.png": broken}, "broken.png"))
	if err == nil || !strings.HasPrefix(err.Error(), "broken.png: OCR failed") {
		t.Fatalf("broken image: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Process(cancelled, jobOf(map[string][]byte{"a.png": testimage.TextPNG(t, "X")}, "a.png")); err == nil {
		t.Fatal("a cancelled job succeeded")
	}
	small, _ := worker.NewTesseract(ctx, worker.TesseractConfig{MaxResultBytes: 24})
	long, err := small.Process(ctx, jobOf(map[string][]byte{"a.png": testimage.TextPNG(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789")}, "a.png"))
	if err != nil || len(long) > 24 || !strings.HasSuffix(long, "[result truncated]") {
		t.Fatalf("truncation: %q %v", long, err)
	}
}

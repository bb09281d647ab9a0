package worker_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

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

// A decompression bomb that got past the upload check (or a limit set
// higher there) cannot take the machine: tesseract runs under its memory
// limit, and the attempt fails saying why, while an ordinary image under
// the same limit is read.
func TestTesseractMemoryLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, err := worker.NewTesseract(ctx, worker.TesseractConfig{MaxMemoryBytes: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	// 16000×16000 grey: 256 MB of pixels once decoded, 250 KB as a PNG.
	bomb := testimage.BlankPNG(t, 16000, 16000)
	_, err = p.Process(ctx, jobOf(map[string][]byte{"bomb.png": bomb}, "bomb.png"))
	if err == nil || err.Error() != "bomb.png: OCR needs more memory than its limit of 256 MiB: the image is too large to process" {
		t.Fatalf("bomb: %v", err)
	}
	text, err := p.Process(ctx, jobOf(map[string][]byte{"a.png": testimage.TextPNG(t, "UNDER THE LIMIT")}, "a.png"))
	if err != nil || normalise(text) != "UNDER THE LIMIT" {
		t.Fatalf("an ordinary image under the limit: %q %v", text, err)
	}
}

// stalling yields a PNG's first bytes, then blocks until closed: tesseract
// waits for the rest of its stdin for ever, so only the time limit ends it.
type stalling struct {
	head   []byte
	closed chan struct{}
	once   sync.Once
}

func (s *stalling) Read(p []byte) (int, error) {
	if len(s.head) > 0 {
		n := copy(p, s.head)
		s.head = s.head[n:]
		return n, nil
	}
	<-s.closed
	return 0, io.ErrClosedPipe
}

func (s *stalling) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func TestTesseractTimeLimitKillsTheProcess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, err := worker.NewTesseract(ctx, worker.TesseractConfig{FileTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	img := testimage.TextPNG(t, "NEVER READ")
	job := jobOf(map[string][]byte{"slow.png": img}, "slow.png")
	job.Open = func(context.Context, worker.File) (io.ReadCloser, error) {
		return &stalling{head: img[:len(img)/2], closed: make(chan struct{})}, nil
	}
	// Process returns only once tesseract is gone: it never gets the end
	// of its input, so without the kill this call would not return.
	_, err = p.Process(ctx, job)
	if err == nil || err.Error() != "slow.png: OCR took longer than its time limit of 300ms and was stopped" {
		t.Fatalf("stalled OCR: %v", err)
	}
}

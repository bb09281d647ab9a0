package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/blob"
)

// File is one file of a task, as attached at creation.
type File struct {
	ID          uuid.UUID
	Name        string
	ContentType string // sniffed at upload
	Size        int64
	SHA256      string // the blob's name
}

// Job is what a processor works on: the task's files and a way to read
// them. Open's reader must be closed.
type Job struct {
	TaskID  uuid.UUID
	OwnerID uuid.UUID
	Attempt int
	Files   []File
	Open    func(ctx context.Context, f File) (io.ReadCloser, error)
}

// Processor turns a task's files into its result text. An error fails the
// attempt (its text is stored in task.failed.v1 and shown to the owner, so
// it must not carry secrets or internal paths). Process must return soon
// after ctx ends: the worker cancels it when its claim is lost.
type Processor interface {
	Process(ctx context.Context, job Job) (string, error)
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(ctx context.Context, job Job) (string, error)

// Process implements Processor.
func (f ProcessorFunc) Process(ctx context.Context, job Job) (string, error) { return f(ctx, job) }

// TesseractConfig configures the built-in OCR processor.
type TesseractConfig struct {
	// Binary is the tesseract executable; default "tesseract" (on PATH,
	// from the tesseract-ocr package).
	Binary string
	// Languages is tesseract's -l argument; default "eng".
	Languages string
	// FileTimeout bounds the OCR of one file (wall clock); past it the
	// tesseract process group is killed and the attempt fails, saying so.
	// Default 2 minutes.
	FileTimeout time.Duration
	// MaxMemoryBytes is the address-space limit (RLIMIT_AS) of each
	// tesseract process; an image that needs more fails its attempt with
	// a reason that says so. Default 2 GiB; negative means no limit (for
	// platforms without prlimit(2): on Linux there is no reason for it).
	MaxMemoryBytes int64
	// MaxResultBytes caps the stored text (it goes into an event); longer
	// output is cut with a marker. Default 1 MiB.
	MaxResultBytes int
	// Threads sets OMP_THREAD_LIMIT for tesseract; default 1, so that N
	// workers use N cores rather than N times all of them.
	Threads int
}

func (c TesseractConfig) withDefaults() TesseractConfig {
	if c.Binary == "" {
		c.Binary = "tesseract"
	}
	if c.Languages == "" {
		c.Languages = "eng"
	}
	if c.FileTimeout <= 0 {
		c.FileTimeout = 2 * time.Minute
	}
	if c.MaxMemoryBytes == 0 {
		c.MaxMemoryBytes = DefaultOCRMemoryBytes
	}
	if c.MaxResultBytes <= 0 {
		c.MaxResultBytes = 1 << 20
	}
	if c.Threads <= 0 {
		c.Threads = 1
	}
	return c
}

// DefaultOCRMemoryBytes is TesseractConfig.MaxMemoryBytes' default, 2 GiB:
// tesseract 5 needs about 400 MB of address space for a 100-megapixel
// page (the upload limit), 3.3 GB for a 30000×30000 one.
const DefaultOCRMemoryBytes = 2 << 30

// Tesseract is the built-in processor: it runs the tesseract binary on
// every image file of a task (the image on stdin, the text on stdout) and
// returns the text; with several files each file's text is preceded by a
// "== name ==" line.
//
// Each tesseract process is bounded, so that one hostile image cannot
// take the machine or the worker (docs/adr: OCR resource limits):
//   - memory: RLIMIT_AS (MaxMemoryBytes) is set on the child with
//     prlimit(2) after it starts and before it is sent a byte of the
//     image, so every allocation the image causes is under the limit.
//     tesseract reports a failed allocation on stderr (leptonica's
//     "malloc fail", libpng's "Out of memory") and sometimes still exits
//     0 with a partial result: such output is discarded and the attempt
//     fails with "needs more memory than its limit".
//   - time: FileTimeout; the child runs in its own process group, and
//     the whole group is killed (SIGKILL) when the time is up or the
//     task is cancelled. RLIMIT_CPU (FileTimeout per thread, plus a
//     second) stops it even if this process dies without killing it.
//
// A failed attempt is recorded with its reason (task.failed.v1, shown to
// the owner); it is retried only when the owner asks, within the task's
// max_attempts.
//
// PDF files are stored and downloadable but not OCR'd: tesseract cannot
// read PDF, and rasterising needs poppler's pdftoppm, which is not part of
// the deployment. Their section of the result says so instead of failing
// the task (the owner's images in the same task still get their text).
type Tesseract struct {
	cfg TesseractConfig
}

// PDFNotProcessed is the text a PDF file gets in a result.
const PDFNotProcessed = "[PDF not OCR'd: only images are processed]"

// NewTesseract checks that the binary runs (tesseract --version) and that
// the memory limit can be kept, so that a missing package is reported at
// start-up, not as failed tasks.
func NewTesseract(ctx context.Context, cfg TesseractConfig) (*Tesseract, error) {
	cfg = cfg.withDefaults()
	if cfg.MaxMemoryBytes > 0 && !canLimitMemory {
		return nil, errors.New("worker: the OCR memory limit needs Linux (prlimit(2)); configure none to run without it")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cfg.Binary, "--version").CombinedOutput() // #nosec G204 -- the binary is configuration, not input
	if err != nil {
		return nil, fmt.Errorf("worker: %s --version: %w (install tesseract-ocr): %s", cfg.Binary, err, firstLine(out))
	}
	return &Tesseract{cfg: cfg}, nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// Process implements Processor.
func (t *Tesseract) Process(ctx context.Context, job Job) (string, error) {
	if len(job.Files) == 0 {
		return "", errors.New("the task has no files")
	}
	var b strings.Builder
	for i, f := range job.Files {
		text, err := t.file(ctx, job, f)
		if err != nil {
			return "", err
		}
		if len(job.Files) > 1 {
			if i > 0 {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "== %s ==\n", f.Name)
		}
		b.WriteString(text)
		if b.Len() > t.cfg.MaxResultBytes {
			break
		}
	}
	return truncate(b.String(), t.cfg.MaxResultBytes), nil
}

const truncatedMarker = "\n[result truncated]"

func truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit - len(truncatedMarker)
	// Do not split a UTF-8 sequence.
	for cut > 0 && cut < len(s) && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:max(cut, 0)] + truncatedMarker
}

func (t *Tesseract) file(ctx context.Context, job Job, f File) (string, error) {
	switch f.ContentType {
	case blob.TypePDF:
		return PDFNotProcessed, nil
	case blob.TypePNG, blob.TypeJPEG, blob.TypeTIFF, blob.TypeWebP, blob.TypeGIF, blob.TypeBMP:
	default:
		return "", fmt.Errorf("%s: content type %q cannot be processed", f.Name, f.ContentType)
	}
	rc, err := job.Open(ctx, f)
	if err != nil {
		return "", fmt.Errorf("%s: open: %w", f.Name, err)
	}
	defer rc.Close()
	fctx, cancel := context.WithTimeout(ctx, t.cfg.FileTimeout)
	defer cancel()
	cmd := exec.CommandContext(fctx, t.cfg.Binary, "stdin", "stdout", "-l", t.cfg.Languages) // #nosec G204 -- binary and languages are configuration; the file goes through stdin
	cmd.Env = append(os.Environ(), fmt.Sprintf("OMP_THREAD_LIMIT=%d", t.cfg.Threads))
	ownProcessGroup(cmd)
	cmd.WaitDelay = 5 * time.Second
	// The image goes through a pipe written only once the limits are set.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", fmt.Errorf("%s: OCR: %w", f.Name, err)
	}
	var stdout, stderr strings.Builder
	cmd.Stdout = &limitedWriter{w: &stdout, n: t.cfg.MaxResultBytes + 1}
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	if err := cmd.Start(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%s: OCR could not start: %w", f.Name, err)
	}
	cpu := time.Duration(t.cfg.Threads)*t.cfg.FileTimeout + time.Second
	if err := limitProcess(cmd.Process.Pid, t.cfg.MaxMemoryBytes, cpu); err != nil {
		_ = cmd.Cancel()
		_ = cmd.Wait()
		return "", fmt.Errorf("%s: OCR: limit the process: %w", f.Name, err)
	}
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(stdin, rc)
		copied <- errors.Join(err, stdin.Close())
	}()
	err = cmd.Wait()
	if err == nil {
		// tesseract read to the end; a read error of ours would have cut
		// the image short. (Wait closed stdin, so the copy has ended.)
		if cerr := <-copied; cerr != nil && !errors.Is(cerr, os.ErrClosed) {
			return "", fmt.Errorf("%s: read: %w", f.Name, cerr)
		}
	}
	switch {
	case ctx.Err() != nil:
		return "", ctx.Err()
	case fctx.Err() != nil:
		return "", fmt.Errorf("%s: OCR took longer than its time limit of %s and was stopped", f.Name, t.cfg.FileTimeout)
	case t.cfg.MaxMemoryBytes > 0 && outOfMemory(stderr.String()):
		return "", fmt.Errorf("%s: OCR needs more memory than its limit of %d MiB: the image is too large to process", f.Name, t.cfg.MaxMemoryBytes>>20)
	case err != nil:
		var exit *exec.ExitError
		if errors.As(err, &exit) && exitSignal(exit) != "" && t.cfg.MaxMemoryBytes > 0 {
			return "", fmt.Errorf("%s: OCR crashed (%s), perhaps at its memory limit of %d MiB", f.Name, exitSignal(exit), t.cfg.MaxMemoryBytes>>20)
		}
		// tesseract's stderr names the problem ("Image file stdin cannot
		// be read") without paths of ours, since the file came on stdin.
		return "", fmt.Errorf("%s: OCR failed: %s", f.Name, firstLine([]byte(stderr.String())))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// outOfMemory reports whether tesseract's stderr tells of a failed
// allocation: leptonica ("pixdata_malloc fail for data", "calloc fail"),
// libpng ("Out of memory"), the C++ runtime ("std::bad_alloc").
func outOfMemory(stderr string) bool {
	s := strings.ToLower(stderr)
	for _, m := range []string{"malloc fail", "calloc fail", "realloc fail", "out of memory", "bad_alloc", "cannot allocate memory"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// limitedWriter keeps the first n bytes and drops the rest without failing
// the command.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

package blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authledger/authledger/blob"
)

func newLocal(t *testing.T) (*blob.Local, string) {
	t.Helper()
	dir := t.TempDir()
	l, err := blob.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return l, dir
}

// files lists every regular file under dir, relative to it.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestPutOpenDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, dir := newLocal(t)
	content := []byte("\x89PNG\r\n\x1a\nnot really an image")
	info, err := l.Put(ctx, bytes.NewReader(content), 1024)
	if err != nil {
		t.Fatal(err)
	}
	want := digest(content)
	if info.SHA256 != want || info.Size != int64(len(content)) || !info.Created {
		t.Fatalf("info %+v, want digest %s size %d created", info, want, len(content))
	}
	// Sharded by the first two byte pairs; nothing left in tmp.
	if got := files(t, dir); len(got) != 1 || got[0] != filepath.Join("sha256", want[0:2], want[2:4], want) {
		t.Fatalf("files %v", got)
	}
	again, err := l.Put(ctx, bytes.NewReader(content), 0)
	if err != nil || again.Created || again.SHA256 != want {
		t.Fatalf("second put %+v %v", again, err)
	}
	rc, got, err := l.Open(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	_ = rc.Close()
	if !bytes.Equal(b, content) || got.Size != int64(len(content)) {
		t.Fatalf("open: %q %+v", b, got)
	}
	var walked []string
	if err := l.Walk(ctx, func(i blob.Info) error { walked = append(walked, i.SHA256); return nil }); err != nil || len(walked) != 1 || walked[0] != want {
		t.Fatalf("walk %v %v", walked, err)
	}
	if err := l.Delete(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(ctx, want); err != nil {
		t.Fatalf("deleting a missing blob: %v", err)
	}
	if _, _, err := l.Open(ctx, want); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("open after delete: %v", err)
	}
	for _, bad := range []string{"", "../../etc/passwd", strings.Repeat("A", 64), strings.Repeat("a", 63)} {
		if _, _, err := l.Open(ctx, bad); !errors.Is(err, blob.ErrInvalidDigest) {
			t.Fatalf("open %q: %v", bad, err)
		}
	}
}

func TestPutOverLimitLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, dir := newLocal(t)
	if _, err := l.Put(ctx, bytes.NewReader(bytes.Repeat([]byte{1}, 11)), 10); !errors.Is(err, blob.ErrTooLarge) {
		t.Fatalf("11 bytes with limit 10: %v", err)
	}
	if got := files(t, dir); len(got) != 0 {
		t.Fatalf("an overrun left files: %v", got)
	}
	if info, err := l.Put(ctx, bytes.NewReader(bytes.Repeat([]byte{1}, 10)), 10); err != nil || info.Size != 10 {
		t.Fatalf("exactly at the limit: %+v %v", info, err)
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset")
	}
	n := min(len(p), f.n)
	f.n -= n
	return n, nil
}

func TestPutFailingReaderOrCancelLeavesNothing(t *testing.T) {
	t.Parallel()
	l, dir := newLocal(t)
	if _, err := l.Put(context.Background(), &failingReader{n: 5000}, 0); err == nil {
		t.Fatal("a failing reader stored something")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Put(ctx, bytes.NewReader([]byte("abc")), 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if got := files(t, dir); len(got) != 0 {
		t.Fatalf("failed puts left files: %v", got)
	}
}

func TestConcurrentPutsOfOneContentCreateOnce(t *testing.T) {
	t.Parallel()
	l, dir := newLocal(t)
	content := bytes.Repeat([]byte("same"), 4096)
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for range 8 {
		wg.Go(func() {
			info, err := l.Put(context.Background(), bytes.NewReader(content), 0)
			if err != nil {
				t.Error(err)
				return
			}
			if info.Created {
				mu.Lock()
				created++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if created != 1 || len(files(t, dir)) != 1 {
		t.Fatalf("created %d times, files %v", created, files(t, dir))
	}
}

func age(t *testing.T, dir, sum string, d time.Duration) {
	t.Helper()
	p := filepath.Join(dir, "sha256", sum[0:2], sum[2:4], sum)
	old := time.Now().Add(-d)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
}

func TestGC(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, dir := newLocal(t)
	put := func(s string) string {
		info, err := l.Put(ctx, strings.NewReader(s), 0)
		if err != nil {
			t.Fatal(err)
		}
		return info.SHA256
	}
	live, orphan, young := put("live"), put("orphan"), put("young")
	age(t, dir, live, 2*time.Hour)
	age(t, dir, orphan, 2*time.Hour)
	stale := filepath.Join(dir, "tmp", "put-crashed")
	if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	_ = os.Chtimes(stale, old, old)
	fresh := filepath.Join(dir, "tmp", "put-inflight")
	_ = os.WriteFile(fresh, []byte("writing"), 0o600)

	asked := map[string]bool{}
	res, err := blob.GC(ctx, l, func(_ context.Context, sum string) (bool, error) {
		asked[sum] = true
		return sum == live, nil
	}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if res.Scanned != 3 || res.Removed != 1 || res.Young != 1 || res.TempRemoved != 1 || res.RemovedBytes != int64(len("orphan")) {
		t.Fatalf("result %+v", res)
	}
	if asked[young] {
		t.Fatal("GC asked about a blob younger than minAge")
	}
	for sum, want := range map[string]bool{live: true, orphan: false, young: true} {
		_, _, err := l.Open(ctx, sum)
		if (err == nil) != want {
			t.Fatalf("blob %s present=%v, want %v", sum, err == nil, want)
		}
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stale temp file kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("in-flight temp file removed: %v", err)
	}

	// A re-put refreshes the time, so GC spares a blob a new upload uses.
	age(t, dir, live, 2*time.Hour)
	put("live")
	res, err = blob.GC(ctx, l, func(context.Context, string) (bool, error) { return false, nil }, time.Hour)
	if err != nil || res.Removed != 0 {
		t.Fatalf("re-put blob collected: %+v %v", res, err)
	}

	boom := errors.New("read model down")
	age(t, dir, live, 2*time.Hour)
	if _, err := blob.GC(ctx, l, func(context.Context, string) (bool, error) { return false, boom }, time.Hour); !errors.Is(err, boom) {
		t.Fatalf("referenced error: %v", err)
	}
	if _, _, err := l.Open(ctx, live); err != nil {
		t.Fatal("GC removed a blob although referenced failed")
	}
}

func TestReleaseIfUnused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := newLocal(t)
	unused := func(context.Context, string) (bool, error) { return false, nil }
	used := func(context.Context, string) (bool, error) { return true, nil }

	mine, _ := l.Put(ctx, strings.NewReader("mine"), 0)
	if ok, err := blob.ReleaseIfUnused(ctx, l, mine.SHA256, mine.ModTime, used); ok || err != nil {
		t.Fatalf("removed a referenced blob: %v %v", ok, err)
	}
	if ok, err := blob.ReleaseIfUnused(ctx, l, mine.SHA256, mine.ModTime, unused); !ok || err != nil {
		t.Fatalf("kept an unused blob: %v %v", ok, err)
	}
	if ok, err := blob.ReleaseIfUnused(ctx, l, mine.SHA256, mine.ModTime, unused); ok || err != nil {
		t.Fatalf("missing blob: %v %v", ok, err)
	}

	// Another upload of the same bytes after ours: its task may not be
	// visible yet, so the blob stays.
	shared, _ := l.Put(ctx, strings.NewReader("shared"), 0)
	time.Sleep(10 * time.Millisecond) // distinct file times, not a timing assertion
	if again, _ := l.Put(ctx, strings.NewReader("shared"), 0); again.Created {
		t.Fatal("re-put created")
	}
	if ok, err := blob.ReleaseIfUnused(ctx, l, shared.SHA256, shared.ModTime, unused); ok || err != nil {
		t.Fatalf("removed a blob put again after ours: %v %v", ok, err)
	}
	if _, _, err := l.Open(ctx, shared.SHA256); err != nil {
		t.Fatal(err)
	}
}

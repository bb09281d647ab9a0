package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Local is the embedded Store: files under a directory, named by digest and
// sharded two levels deep (sha256/ab/cd/abcd...) so no directory grows
// past 65,536 entries per level.
//
// A Put writes to a temporary file under <dir>/tmp (the same file system,
// so the final step is atomic), fsyncs it, links it under its real name and
// fsyncs the directory: after a crash a blob is either complete under its
// name or absent; a temporary file may be left, and RemoveStaleTemp (called
// by GC) clears those.
type Local struct {
	root string
	tmp  string
	now  func() time.Time
}

// NewLocal opens (creating if needed) a store under dir, typically
// <data dir>/blobs.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, errors.New("blob: NewLocal needs a directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	l := &Local{root: filepath.Join(abs, "sha256"), tmp: filepath.Join(abs, "tmp"), now: time.Now}
	for _, d := range []string{l.root, l.tmp} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("blob: create %s: %w", d, err)
		}
	}
	return l, nil
}

func (l *Local) path(sum string) string {
	return filepath.Join(l.root, sum[0:2], sum[2:4], sum)
}

// ctxReader stops a long copy when the request or worker is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Put implements Store.
func (l *Local) Put(ctx context.Context, r io.Reader, limit int64) (info Info, err error) {
	f, err := os.CreateTemp(l.tmp, "put-*")
	if err != nil {
		return Info{}, fmt.Errorf("blob: temp file: %w", err)
	}
	tmpName := f.Name()
	// The temporary file never outlives Put: on success it has been linked
	// under its real name (or was a duplicate), on failure it is garbage.
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		_ = os.Remove(tmpName)
	}()
	h := sha256.New()
	src := io.Reader(ctxReader{ctx: ctx, r: r})
	if limit > 0 {
		// One byte more than allowed tells an overrun from an exact fit.
		src = io.LimitReader(src, limit+1)
	}
	n, err := io.Copy(io.MultiWriter(f, h), src)
	if err != nil {
		return Info{}, fmt.Errorf("blob: write: %w", err)
	}
	if limit > 0 && n > limit {
		return Info{}, ErrTooLarge
	}
	if err := f.Sync(); err != nil {
		return Info{}, fmt.Errorf("blob: fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return Info{}, fmt.Errorf("blob: close: %w", err)
	}
	f = nil
	sum := hex.EncodeToString(h.Sum(nil))
	final := l.path(sum)
	created, err := l.install(tmpName, final)
	if err != nil {
		return Info{}, err
	}
	now := l.now()
	if !created {
		// Refresh the time so that GC's minimum age spares a blob that a
		// new upload is about to reference again.
		if err := os.Chtimes(final, now, now); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Info{}, fmt.Errorf("blob: touch: %w", err)
		}
	}
	return Info{SHA256: sum, Size: n, ModTime: now, Created: created}, nil
}

// install puts the complete temporary file under its final name without
// ever replacing an existing blob: a hard link fails when the name exists,
// which makes "create if absent" atomic. It reports whether it created the
// blob.
func (l *Local) install(tmpName, final string) (bool, error) {
	dir := filepath.Dir(final)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return false, fmt.Errorf("blob: create %s: %w", dir, err)
		}
		// New shard directories must survive a crash too.
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return false, err
		}
		if err := syncDir(filepath.Dir(filepath.Dir(dir))); err != nil {
			return false, err
		}
	}
	err := os.Link(tmpName, final)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrExist):
		return false, nil
	case errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EXDEV):
		// A file system without hard links: rename, after checking the name
		// is free (a race only replaces a blob with identical bytes).
		if _, serr := os.Stat(final); serr == nil {
			return false, nil
		}
		if err := os.Rename(tmpName, final); err != nil {
			return false, fmt.Errorf("blob: rename: %w", err)
		}
	default:
		return false, fmt.Errorf("blob: link: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return false, err
	}
	return true, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir) // #nosec G304 -- a directory of the store, built from a validated digest
	if err != nil {
		return fmt.Errorf("blob: open dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("blob: fsync dir: %w", err)
	}
	return nil
}

// Open implements Store.
func (l *Local) Open(_ context.Context, sum string) (io.ReadSeekCloser, Info, error) {
	if !ValidDigest(sum) {
		return nil, Info{}, ErrInvalidDigest
	}
	f, err := os.Open(l.path(sum))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Info{}, ErrNotFound
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("blob: open: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, Info{}, fmt.Errorf("blob: stat: %w", err)
	}
	return f, Info{SHA256: sum, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Delete implements Store.
func (l *Local) Delete(_ context.Context, sum string) error {
	if !ValidDigest(sum) {
		return ErrInvalidDigest
	}
	err := os.Remove(l.path(sum))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: delete: %w", err)
	}
	return nil
}

// Walk implements Store. Files whose names are not digests (left by hand
// or another tool) are skipped, never reported.
func (l *Local) Walk(ctx context.Context, fn func(Info) error) error {
	return filepath.WalkDir(l.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !ValidDigest(d.Name()) {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(Info{SHA256: d.Name(), Size: fi.Size(), ModTime: fi.ModTime()})
	})
}

// RemoveStaleTemp deletes temporary files older than age: what a crash in
// the middle of a Put leaves. Younger ones may belong to a Put in flight.
func (l *Local) RemoveStaleTemp(age time.Duration) (int, error) {
	entries, err := os.ReadDir(l.tmp)
	if err != nil {
		return 0, fmt.Errorf("blob: read temp dir: %w", err)
	}
	cut := l.now().Add(-age)
	removed := 0
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), "put-") {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.ModTime().After(cut) {
			continue
		}
		if err := os.Remove(filepath.Join(l.tmp, e.Name())); err == nil {
			removed++
		}
	}
	return removed, nil
}

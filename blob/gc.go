package blob

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// GCResult counts what one collection did.
type GCResult struct {
	Scanned      int
	Removed      int
	RemovedBytes int64
	// Young counts blobs spared because they were younger than minAge.
	Young int
	// TempRemoved counts stale temporary files removed (Local only).
	TempRemoved int
}

// Referenced reports whether any live task (not deleted, not expired)
// refers to the blob. It is typically backed by the tasks read model: a
// lagging answer errs towards "referenced" for a blob of a task just
// deleted (collected next time), and minAge covers the other direction
// (a blob uploaded before its task was written or projected).
type Referenced func(ctx context.Context, sha256 string) (bool, error)

// GC removes every blob that nothing references and that is at least
// minAge old. minAge must exceed the time from an upload's Put to its task
// being visible to referenced (request time plus projection lag); an hour
// is generous. A stale temporary file older than minAge is removed too.
//
// Residual race, accepted: a Put of identical content that lands between
// GC's last check of a blob and its removal finds the blob present (so does
// not rewrite it) and loses it. Put refreshes the blob's time and GC checks
// the time again right before removing, which narrows the window to a few
// system calls.
func GC(ctx context.Context, store Store, referenced Referenced, minAge time.Duration) (GCResult, error) {
	var res GCResult
	cut := time.Now().Add(-minAge)
	if l, ok := store.(*Local); ok {
		n, err := l.RemoveStaleTemp(minAge)
		if err != nil {
			return res, err
		}
		res.TempRemoved = n
	}
	err := store.Walk(ctx, func(b Info) error {
		res.Scanned++
		if b.ModTime.After(cut) {
			res.Young++
			return nil
		}
		ref, err := referenced(ctx, b.SHA256)
		if err != nil {
			return fmt.Errorf("blob: gc: referenced %s: %w", b.SHA256, err)
		}
		if ref {
			return nil
		}
		// Re-check the time: a Put of the same content may have refreshed
		// it while referenced was answering.
		if f, cur, err := store.Open(ctx, b.SHA256); err == nil {
			_ = f.Close()
			if cur.ModTime.After(cut) {
				res.Young++
				return nil
			}
		}
		if err := store.Delete(ctx, b.SHA256); err != nil {
			return err
		}
		res.Removed++
		res.RemovedBytes += b.Size
		return nil
	})
	return res, err
}

// ReleaseIfUnused removes the blob named sha256 once a task that used it
// is gone (deleted, expired, or never created because its upload failed),
// unless referenced says another live task still uses it, or the blob was
// put again after since (another upload of the same bytes, whose task may
// not be visible to referenced yet). since is when the caller's own use
// began: the task's creation time, or the ModTime its own Put returned.
// It reports whether it removed the blob; when it did not, GC decides later.
//
// referenced must already reflect the caller's change (wait for the read
// model to reach the command's position first), or it will still count the
// caller's own task and the blob is left to GC.
func ReleaseIfUnused(ctx context.Context, store Store, sha256 string, since time.Time, referenced Referenced) (bool, error) {
	f, info, err := store.Open(ctx, sha256)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_ = f.Close()
	if info.ModTime.After(since) {
		return false, nil
	}
	ref, err := referenced(ctx, sha256)
	if err != nil || ref {
		return false, err
	}
	if err := store.Delete(ctx, sha256); err != nil {
		return false, err
	}
	return true, nil
}

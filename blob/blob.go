// Package blob is the port for file contents: a content-addressed store
// (a blob's name is the hex SHA-256 of its bytes), content sniffing on magic
// bytes, and a garbage collector for blobs no live task references.
//
// Tasks refer to blobs by digest only, so one blob may back files of many
// tasks (the same image uploaded twice is stored once). That is why a blob
// is never deleted because one task went away: it is deleted when nothing
// references it any more (see GC and the callers' "unless referenced" rule).
package blob

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound: no blob has this digest.
var ErrNotFound = errors.New("blob: not found")

// ErrTooLarge: the reader held more bytes than the limit given to Put.
// Nothing was stored.
var ErrTooLarge = errors.New("blob: content exceeds the size limit")

// ErrInvalidDigest: the name is not 64 lower-case hex characters. Callers
// may treat it like ErrNotFound; it exists so that a name can never be
// used to reach outside the store's directory.
var ErrInvalidDigest = errors.New("blob: invalid digest")

// Info describes a stored blob.
type Info struct {
	// SHA256 is the lower-case hex digest of the content: the blob's name.
	SHA256 string
	Size   int64
	// ModTime is when the blob was last written or re-put; GC uses it to
	// spare blobs of uploads still in flight.
	ModTime time.Time
	// Created is set by Put when this call stored the blob (false when a
	// blob with the same content already existed). A caller that undoes a
	// failed upload deletes only what it created.
	Created bool
}

// Store holds blobs. Implementations are safe for concurrent use. A blob
// appears under its name complete or not at all.
type Store interface {
	// Put stores everything r yields, at most limit bytes (limit <= 0 means
	// no limit). Past the limit it returns ErrTooLarge and stores nothing.
	// Putting content that is already stored does not rewrite it, but does
	// refresh its ModTime (so a concurrent GC spares it).
	Put(ctx context.Context, r io.Reader, limit int64) (Info, error)
	// Open returns the content of the blob named sha256. The caller
	// closes it. ErrNotFound when there is none.
	Open(ctx context.Context, sha256 string) (io.ReadSeekCloser, Info, error)
	// Delete removes the blob; a missing blob is not an error.
	Delete(ctx context.Context, sha256 string) error
	// Walk calls fn for every stored blob, in no particular order, until
	// fn returns an error (returned as is) or ctx ends. fn may Delete the
	// blob it is given.
	Walk(ctx context.Context, fn func(Info) error) error
}

// ValidDigest reports whether s is a well-formed blob name.
func ValidDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

package audit

// archive.go reads rows out for export files, and archives the oldest
// rows (audit retention): the file first, then the event that records it
// (appended by cmd/ through commands.RecordAuditArchive), then the
// projection deletes the rows when it applies that event (retire, below).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/domain/auditarchive"
	"github.com/authledger/authledger/eventstore"
)

// ReadAnchors returns every archiving recorded in the log, in order.
func ReadAnchors(ctx context.Context, store eventstore.Store) ([]auditarchive.Archived, error) {
	recs, err := store.ReadStream(ctx, auditarchive.StreamName, eventstore.ReadStreamOptions{})
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: read the archivings: %w", err)
	}
	out := make([]auditarchive.Archived, 0, len(recs))
	for _, r := range recs {
		var a auditarchive.Archived
		if err := json.Unmarshal(r.Data, &a); err != nil {
			return nil, fmt.Errorf("audit: archiving %s: %w", r.ID, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// ExportOptions selects the rows of an export. The rows are always a
// contiguous run of seqs, so that they chain: from the first row
// recorded at or after From to the last recorded before To (recorded_at
// follows seq closely but not strictly: a row at the edge may lie a
// moment outside), narrowed by FromSeq and ThroughSeq when set.
type ExportOptions struct {
	From, To            time.Time
	FromSeq, ThroughSeq int64
	// Anchors are the archivings (ReadAnchors): the link before a first
	// row whose predecessor was archived is its anchor.
	Anchors []auditarchive.Archived
	Signer  *ExportSigner
	Now     time.Time
}

// Export writes the selected rows to w as a signed export file, from one
// consistent snapshot of the trail.
func Export(ctx context.Context, pool *pgxpool.Pool, w io.Writer, opts ExportOptions) (ExportSeal, error) {
	if opts.Signer == nil {
		return ExportSeal{}, errors.New("audit: Export needs a signer")
	}
	var seal ExportSeal
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var first, last *int64
		err := tx.QueryRow(ctx, `SELECT
			(SELECT min(seq) FROM `+Table+` WHERE ($1::timestamptz IS NULL OR recorded_at >= $1) AND seq >= $3),
			(SELECT max(seq) FROM `+Table+` WHERE ($2::timestamptz IS NULL OR recorded_at < $2) AND ($4 = 0 OR seq <= $4))`,
			nullTime(opts.From), nullTime(opts.To), opts.FromSeq, opts.ThroughSeq).Scan(&first, &last)
		if err != nil {
			return readErr(err)
		}
		h := ExportHeader{From: opts.From, To: opts.To, ExportedAt: opts.Now}
		empty := first == nil || last == nil || *last < *first
		if !empty && *first > 1 {
			h.PrevSeq = *first - 1
			var prev []byte
			err := tx.QueryRow(ctx, `SELECT hash FROM `+Table+` WHERE seq = $1`, h.PrevSeq).Scan(&prev)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				a, ok := anchorAt(opts.Anchors, h.PrevSeq)
				if !ok {
					return fmt.Errorf("audit: export: row %d is neither in the trail nor an archiving's anchor", h.PrevSeq)
				}
				h.PrevHash = a.AnchorLink
			case err != nil:
				return readErr(err)
			default:
				h.PrevHash = hex.EncodeToString(prev)
			}
		}
		ew, err := NewExportWriter(w, h, opts.Signer)
		if err != nil {
			return err
		}
		if !empty {
			rows, err := tx.Query(ctx, `SELECT `+rowColumns+` FROM `+Table+` WHERE seq BETWEEN $1 AND $2 ORDER BY seq`, *first, *last)
			if err != nil {
				return readErr(err)
			}
			defer rows.Close()
			for rows.Next() {
				r, err := scanRow(rows)
				if err != nil {
					return err
				}
				if err := ew.Row(r); err != nil {
					return err
				}
			}
			if err := rows.Err(); err != nil {
				return readErr(err)
			}
		}
		seal, err = ew.Close(opts.Now)
		return err
	})
	return seal, err
}

const rowColumns = `seq, event_id, position, stream, revision, event_type, occurred_at, recorded_at,
	actor_kind, actor_id, correlation_id, causation_id, client_ip, user_agent, summary, event_digest, hash`

func scanRow(rows pgx.Rows) (Row, error) {
	var r Row
	var rev int64
	if err := rows.Scan(&r.Seq, &r.EventID, &r.Position, &r.Stream, &rev, &r.EventType, &r.OccurredAt, &r.RecordedAt,
		&r.ActorKind, &r.ActorID, &r.CorrelationID, &r.CausationID, &r.ClientIP, &r.UserAgent, &r.Summary,
		&r.EventDigest, &r.Hash); err != nil {
		return Row{}, fmt.Errorf("audit: read trail: %w", err)
	}
	r.Revision = uint64(rev) //nolint:gosec // revisions are non-negative (CHECK in the log)
	return r, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func anchorAt(anchors []auditarchive.Archived, seq int64) (auditarchive.Archived, bool) {
	for _, a := range anchors {
		if a.ThroughSeq == seq {
			return a, true
		}
	}
	return auditarchive.Archived{}, false
}

// ArchiveOptions configures WriteArchive.
type ArchiveOptions struct {
	// Dir is where the archive file goes (created when missing).
	Dir string
	// Before: rows recorded before it are archived.
	Before time.Time
	// Anchors are the archivings so far (ReadAnchors): the new archive
	// starts after the last.
	Anchors []auditarchive.Archived
	Signer  *ExportSigner
	Now     time.Time
}

// WriteArchive writes the rows recorded before opts.Before that no
// archiving holds yet to a signed export file in opts.Dir, synced to disk,
// and returns the archiving to record (ok false when there is nothing to
// archive). Nothing leaves the table here: the caller records the
// archiving in the log (commands.RecordAuditArchive), and the projection
// deletes the rows when it applies it. Should the recording fail, the
// caller removes the file.
func WriteArchive(ctx context.Context, pool *pgxpool.Pool, opts ArchiveOptions) (auditarchive.Archived, bool, error) {
	var after int64
	if n := len(opts.Anchors); n > 0 {
		after = opts.Anchors[n-1].ThroughSeq
	}
	var through *int64
	if err := pool.QueryRow(ctx, `SELECT max(seq) FROM `+Table+` WHERE recorded_at < $1 AND seq > $2`, opts.Before, after).Scan(&through); err != nil {
		return auditarchive.Archived{}, false, readErr(err)
	}
	if through == nil {
		return auditarchive.Archived{}, false, nil
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return auditarchive.Archived{}, false, fmt.Errorf("audit: archive dir: %w", err)
	}
	name := fmt.Sprintf("audit-archive-%012d-%012d.jsonl", after+1, *through)
	var buf bytes.Buffer
	seal, err := Export(ctx, pool, &buf, ExportOptions{FromSeq: after + 1, ThroughSeq: *through, Anchors: opts.Anchors, Signer: opts.Signer, Now: opts.Now})
	if err != nil {
		return auditarchive.Archived{}, false, err
	}
	if seal.Count == 0 || seal.FirstSeq != after+1 || seal.LastSeq != *through {
		return auditarchive.Archived{}, false, fmt.Errorf("audit: archive: read rows %d..%d, want %d..%d (rows missing from the trail?)", seal.FirstSeq, seal.LastSeq, after+1, *through)
	}
	if err := writeSynced(filepath.Join(opts.Dir, name), buf.Bytes()); err != nil {
		return auditarchive.Archived{}, false, err
	}
	sum := sha256.Sum256(buf.Bytes())
	return auditarchive.Archived{
		FromSeq: after + 1, ThroughSeq: *through, AnchorLink: seal.LastHash, AnchorEventID: seal.LastEventID,
		AnchorPosition: seal.LastPosition, RecordedBefore: opts.Before.UTC(), File: name,
		FileSHA256: hex.EncodeToString(sum[:]), ArchivedAt: opts.Now.UTC(),
	}, true, nil
}

// writeSynced writes b to path through a temporary file, synced and
// renamed, so that a crash leaves either no file or the whole one.
func writeSynced(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".audit-archive-*")
	if err != nil {
		return fmt.Errorf("audit: archive: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("audit: archive: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("audit: archive: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("audit: archive: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("audit: archive: %w", err)
	}
	return nil
}

// ErrArchiveMismatch: an archiving's anchor is not the link the trail
// holds at that seq; the projection stops rather than delete rows an
// archive file does not hold.
var ErrArchiveMismatch = errors.New("audit: an archiving's anchor does not match the trail")

// retire deletes the rows up to a.ThroughSeq from the batch's table,
// after checking that the trail's link there is the archiving's anchor.
// The append-only triggers are switched off for this one statement,
// inside the projection's transaction: ALTER TABLE holds the table's
// ACCESS EXCLUSIVE lock until the commit, so no other session ever runs
// while they are off, and a rollback restores them with the rows.
func (b *batch) retire(ctx context.Context, a auditarchive.Archived) error {
	var at []byte
	err := b.tx.QueryRow(ctx, `SELECT hash FROM `+pgx.Identifier{b.table}.Sanitize()+` WHERE seq = $1`, a.ThroughSeq).Scan(&at)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// Already gone (an earlier archiving reached past it) or
		// never written: nothing to compare, nothing older to keep.
	case err != nil:
		return fmt.Errorf("audit: archiving: %w", err)
	case hex.EncodeToString(at) != a.AnchorLink:
		return fmt.Errorf("%w: seq %d holds %x, the archiving %s says %s", ErrArchiveMismatch, a.ThroughSeq, at, a.File, a.AnchorLink)
	}
	tbl := pgx.Identifier{b.table}.Sanitize()
	for _, s := range []string{
		`ALTER TABLE ` + tbl + ` DISABLE TRIGGER append_only`,
		`DELETE FROM ` + tbl + ` WHERE seq <= ` + fmt.Sprint(a.ThroughSeq),
		`ALTER TABLE ` + tbl + ` ENABLE TRIGGER append_only`,
	} {
		if _, err := b.tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("audit: retire archived rows: %w", err)
		}
	}
	return nil
}

// LastSeq is the trail's last seq (0 when empty).
func LastSeq(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var last *int64
	if err := pool.QueryRow(ctx, `SELECT max(seq) FROM `+Table).Scan(&last); err != nil {
		return 0, readErr(err)
	}
	if last == nil {
		return 0, nil
	}
	return *last, nil
}

// RowsAfter returns at most limit rows after seq, in seq order (`audit
// tail`).
func RowsAfter(ctx context.Context, pool *pgxpool.Pool, seq int64, limit int) ([]Row, error) {
	rows, err := pool.Query(ctx, `SELECT `+rowColumns+` FROM `+Table+` WHERE seq > $1 ORDER BY seq LIMIT $2`, seq, limit)
	if err != nil {
		return nil, readErr(err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, readErr(err)
	}
	return out, nil
}

package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/domain/auditarchive"
	"github.com/authledger/authledger/eventstore"
)

// Report is the outcome of Verify.
type Report struct {
	// OK is true when the trail and the log agree link by link, the trail
	// matches its checkpoint, and the log still extends the head given.
	OK bool
	// Rows is the number of trail rows read.
	Rows int64
	// Archived is the number of rows before the trail's first, moved to
	// archive files by audit retention; their links were recomputed from
	// the log and checked against the archiving's anchor.
	Archived int64
	// Events is the number of log events compared with the trail (the log
	// up to the trail's checkpoint).
	Events int64
	// Unaudited counts the log's events after the trail's checkpoint: the
	// projection's lag, not a fault (a running server catches up).
	Unaudited int64
	// LastSeq, LastHash (hex), LastPosition and LastEventID identify the
	// last link that holds: the chain's head when OK (see Report.Head).
	LastSeq      int64
	LastHash     string
	LastPosition string
	LastEventID  string
	// HeadChecked is true when a head was given and the chain recomputed
	// from the log passed through it.
	HeadChecked bool
	// Broken is the first place where the chain does not hold, nil when OK.
	Broken *Break
}

// Break is the first place where the chain does not hold.
type Break struct {
	// Seq is the row at which the chain breaks (the expected seq when a row
	// is missing).
	Seq     int64
	EventID string
	Reason  string
}

func (b *Break) String() string {
	if b.EventID != "" {
		return fmt.Sprintf("seq %d (event %s): %s", b.Seq, b.EventID, b.Reason)
	}
	return fmt.Sprintf("seq %d: %s", b.Seq, b.Reason)
}

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// Key is the chain key (KeySize bytes, the one the projection writes
	// with).
	Key []byte
	// Head, when set, is a head exported earlier (ParseHead): the log and
	// the trail must still pass through it.
	Head *Head
	// PageSize is how many log events one read fetches (default 1000).
	PageSize int
}

// Verify checks the audit trail against the log it was built from. It
// reads the trail in seq order from one consistent snapshot and the log
// (store's $all) from its start, and for each row recomputes from the log
// event the row it must be and its keyed link. It reports the first place
// where they part:
//
//   - an event of the log changed since it was audited (its digest
//     differs, while the row's own link still holds);
//   - an event removed from the log, or inserted into it, or moved (the
//     trail and the log name different events at a seq; the row's event is
//     looked up in its stream to say which);
//   - a trail row changed, missing, renumbered, or chained without the key
//     (a re-chain with plain SHA-256 fails at its first row);
//   - rows removed from the trail's end (the checkpoint's count, its last
//     event, or log events at or before its position that the trail
//     lacks);
//   - with opts.Head: a log or trail that no longer reaches the head, or
//     reaches it with another link (truncated, or rewritten before it).
//
// Log events after the trail's checkpoint are counted (Unaudited), not
// compared: the projection has not applied them yet. Verify can run while
// the server appends. A broken chain is reported in Report, not as an
// error; the error is for failing to read.
func Verify(ctx context.Context, pool *pgxpool.Pool, store eventstore.Store, opts VerifyOptions) (Report, error) {
	if len(opts.Key) < KeySize {
		return Report{}, ErrNoKey
	}
	if store == nil {
		return Report{}, errors.New("audit: Verify needs the event store")
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 1000
	}
	v := &verifier{
		mac:     hmac.New(sha256.New, opts.Key),
		head:    opts.Head,
		log:     &logReader{store: store, page: opts.PageSize},
		prevLog: make([]byte, sha256.Size),
		prevRow: make([]byte, sha256.Size),
	}
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var applied int64
		var lastEvent *uuid.UUID
		// No checkpoint row: the projection never ran (or the row was
		// deleted); the trail must then be empty, and the log is all lag.
		pos := eventstore.Position{}.String()
		err := tx.QueryRow(ctx, "SELECT events_applied, last_event_id, position FROM projection_checkpoints WHERE name = $1", Name).
			Scan(&applied, &lastEvent, &pos)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("audit: read checkpoint: %w", err)
		}
		if v.checkpt, err = eventstore.ParsePosition(pos); err != nil {
			return fmt.Errorf("audit: checkpoint position %q: %w", pos, err)
		}
		// Read after the snapshot began: every archiving whose rows the
		// snapshot lacks is in the log by then.
		if v.anchors, err = ReadAnchors(ctx, store); err != nil {
			return err
		}
		var first *int64
		if err := tx.QueryRow(ctx, "SELECT min(seq) FROM "+Table).Scan(&first); err != nil {
			return readErr(err)
		}
		if first != nil && *first > 1 {
			if err := v.archived(ctx, *first-1); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, `SELECT seq, event_id, position, stream, revision, event_type, occurred_at, recorded_at,
			actor_kind, actor_id, correlation_id, causation_id, client_ip, user_agent, summary, event_digest, hash
			FROM `+Table+` ORDER BY seq`)
		if err != nil {
			return readErr(err)
		}
		defer rows.Close()
		for rows.Next() {
			var r Row
			var rev int64
			if err := rows.Scan(&r.Seq, &r.EventID, &r.Position, &r.Stream, &rev, &r.EventType, &r.OccurredAt, &r.RecordedAt,
				&r.ActorKind, &r.ActorID, &r.CorrelationID, &r.CausationID, &r.ClientIP, &r.UserAgent, &r.Summary,
				&r.EventDigest, &r.Hash); err != nil {
				return fmt.Errorf("audit: read trail: %w", err)
			}
			r.Revision = uint64(rev) //nolint:gosec // revisions are non-negative (CHECK in the log)
			v.rep.Rows++
			if v.rep.Broken != nil {
				continue
			}
			if err := v.row(ctx, r); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return readErr(err)
		}
		return v.end(ctx, applied, lastEvent)
	})
	if err != nil {
		return Report{}, err
	}
	v.rep.OK = v.rep.Broken == nil
	return v.rep, nil
}

// readErr names a trail from before the keyed chain (no event_digest
// column) for what it is.
func readErr(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42703" { // undefined_column
		return ErrUnkeyedTrail
	}
	return fmt.Errorf("audit: read trail: %w", err)
}

type verifier struct {
	mac  hash.Hash // the chain key's HMAC, reset for each link
	head *Head
	log  *logReader
	rep  Report
	// prevLog is the chain recomputed from the log; prevRow the trail's
	// stored chain (to tell a changed row from a changed event).
	prevLog, prevRow []byte
	checkpt          eventstore.Position
	lastSeen         Row
	// anchors are the archivings recorded in the log; the trail starts
	// after the last one the projection applied.
	anchors []auditarchive.Archived
}

// archived walks the log's first n events, whose rows retention moved to
// archive files, recomputing their links without rows to compare: the
// trail must start right after an archiving, and each archiving's anchor
// must be the link the log gives at its seq.
func (v *verifier) archived(ctx context.Context, n int64) error {
	if _, ok := anchorAt(v.anchors, n); !ok {
		v.broken(1, "", "row missing from the trail's start: rows 1 to %d are gone, and no archiving in the log ends at seq %d (rows deleted outside audit retention)", n, n)
		return nil
	}
	for seq := int64(1); seq <= n; seq++ {
		ev, ok, err := v.log.next(ctx)
		if err != nil {
			return err
		}
		if !ok {
			v.broken(seq, "", "the log ends before seq %d, which an archiving holds (events removed or truncated)", seq)
			return nil
		}
		v.rep.Events++
		want := RowFromEvent(ev)
		want.Seq = seq
		v.prevLog = chainLink(v.mac, v.prevLog, want)
		if !v.anchorHolds(seq, ev.ID.String(), v.prevLog) {
			return nil
		}
		v.lastSeen = want
	}
	v.prevRow = v.prevLog
	v.rep.LastSeq, v.rep.Archived = n, n
	return nil
}

// anchorHolds checks link against an archiving that ends at seq, if any.
func (v *verifier) anchorHolds(seq int64, eventID string, link []byte) bool {
	a, ok := anchorAt(v.anchors, seq)
	if !ok || a.AnchorLink == hex.EncodeToString(link) {
		return true
	}
	v.broken(seq, eventID, "the log no longer gives the link the archiving %s anchored at seq %d (history before the archive was rewritten)", a.File, seq)
	return false
}

func (v *verifier) broken(seq int64, eventID, format string, args ...any) {
	v.rep.Broken = &Break{Seq: seq, EventID: eventID, Reason: fmt.Sprintf(format, args...)}
}

// row checks one trail row against the next event of the log.
func (v *verifier) row(ctx context.Context, r Row) error {
	id := r.EventID.String()
	if want := v.rep.LastSeq + 1; r.Seq != want {
		v.broken(want, "", "row missing from the trail: expected seq %d, found %d", want, r.Seq)
		return nil
	}
	ev, ok, err := v.log.next(ctx)
	if err != nil {
		return err
	}
	if !ok {
		v.broken(r.Seq, id, "the trail's event (stream %s, revision %d) is not in the log: the log ends before it (events removed or truncated)", r.Stream, r.Revision)
		return nil
	}
	v.rep.Events++
	if ev.ID != r.EventID {
		return v.misplaced(ctx, r, ev)
	}
	want := RowFromEvent(ev)
	want.Seq = r.Seq
	link := chainLink(v.mac, v.prevLog, want)
	rowHolds := hmac.Equal(chainLink(v.mac, v.prevRow, r), r.Hash)
	switch {
	case !bytes.Equal(Canonical(want), Canonical(r)):
		if rowHolds {
			v.broken(r.Seq, id, "the event at position %s was changed in the log after it was audited (it no longer matches its row, whose keyed link holds)", ev.Position)
		} else {
			v.broken(r.Seq, id, "the row was changed: it matches neither its event in the log nor its keyed link")
		}
		return nil
	case !hmac.Equal(link, r.Hash):
		v.broken(r.Seq, id, "the row's hash is not the keyed chain's link (the trail was chained again without the chain key, e.g. with plain SHA-256, or under another master key)")
		return nil
	}
	if h := v.head; h != nil && r.Seq == h.Count {
		if hex.EncodeToString(link) != h.Hash || ev.Position.String() != h.Position || id != h.EventID {
			v.broken(r.Seq, id, "the log no longer extends the exported head: at seq %d the head has event %s, position %s, hash %s (history before the head was rewritten)",
				h.Count, h.EventID, h.Position, h.Hash)
			return nil
		}
		v.rep.HeadChecked = true
	}
	if !v.anchorHolds(r.Seq, id, link) {
		return nil
	}
	v.prevLog, v.prevRow = link, r.Hash
	v.rep.LastSeq = r.Seq
	v.lastSeen = r
	return nil
}

// misplaced explains a row whose event is not the log's event at its seq:
// the row's event gone from the log, or the log's event one the trail does
// not have there.
func (v *verifier) misplaced(ctx context.Context, r Row, ev eventstore.RecordedEvent) error {
	id := r.EventID.String()
	got, err := v.log.store.ReadStream(ctx, r.Stream, eventstore.ReadStreamOptions{From: r.Revision, Limit: 1})
	switch {
	case errors.Is(err, eventstore.ErrStreamNotFound) || err == nil && (len(got) == 0 || got[0].ID != r.EventID):
		v.broken(r.Seq, id, "the trail's event (stream %s, revision %d) is not in the log (removed from it); the log has event %s at position %s there",
			r.Stream, r.Revision, ev.ID, ev.Position)
	case err != nil && !errors.Is(err, eventstore.ErrStreamDeleted):
		return fmt.Errorf("audit: look up event %s: %w", id, err)
	default:
		v.broken(r.Seq, id, "the log has event %s (stream %s, revision %d, position %s) where the trail has this one: the log and the trail order events differently (an event inserted into the log or moved in it, or trail rows moved)",
			ev.ID, ev.Stream, ev.Revision, ev.Position)
	}
	return nil
}

// end checks what follows the last row: the log up to the checkpoint, the
// checkpoint's count and last event, and the head.
func (v *verifier) end(ctx context.Context, applied int64, lastEvent *uuid.UUID) error {
	if v.rep.Broken != nil {
		v.finish()
		return nil
	}
	for {
		ev, ok, err := v.log.next(ctx)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if ev.Position.Compare(v.checkpt) > 0 {
			v.rep.Unaudited++
			continue
		}
		if v.rep.Broken == nil {
			v.broken(v.rep.LastSeq+1, ev.ID.String(), "the log has this event (position %s) at or before the trail's checkpoint %s, but the trail ends at seq %d: rows removed from the trail's end, or an event inserted into the log",
				ev.Position, v.checkpt, v.rep.LastSeq)
		}
	}
	last := v.lastSeen
	switch {
	case v.rep.Broken != nil:
	case v.rep.Rows+v.rep.Archived != applied:
		v.broken(v.rep.LastSeq+1, "", "trail holds %d rows (and %d archived) but the projection applied %d events (rows removed from the end?)", v.rep.Rows, v.rep.Archived, applied)
	case lastEvent != nil && v.rep.LastSeq > 0 && *lastEvent != last.EventID:
		v.broken(v.rep.LastSeq, last.EventID.String(), "last row is not the last applied event %s", lastEvent)
	case v.head != nil && !v.rep.HeadChecked:
		v.broken(v.rep.LastSeq+1, "", "the trail ends at seq %d, before the exported head (seq %d, event %s, position %s): the trail or the log was cut since the head was signed",
			v.rep.LastSeq, v.head.Count, v.head.EventID, v.head.Position)
	}
	v.finish()
	return nil
}

func (v *verifier) finish() {
	v.rep.LastHash = hex.EncodeToString(v.prevLog)
	if v.rep.LastSeq > 0 {
		v.rep.LastPosition = v.lastSeen.Position
		v.rep.LastEventID = v.lastSeen.EventID.String()
	}
}

// Head is the head of a verified report, ready to sign (nil unless OK and
// the trail has a row).
func (r Report) Head() *Head {
	if !r.OK || r.LastSeq == 0 {
		return nil
	}
	return &Head{Count: r.LastSeq, Hash: r.LastHash, Position: r.LastPosition, EventID: r.LastEventID}
}

// logReader reads the whole log forwards in pages.
type logReader struct {
	store eventstore.Store
	page  int
	buf   []eventstore.RecordedEvent
	after eventstore.Position
	done  bool
}

func (l *logReader) next(ctx context.Context) (eventstore.RecordedEvent, bool, error) {
	if len(l.buf) == 0 && !l.done {
		evs, err := l.store.ReadAll(ctx, eventstore.ReadAllOptions{After: l.after, Limit: l.page})
		if err != nil {
			return eventstore.RecordedEvent{}, false, fmt.Errorf("audit: read the log: %w", err)
		}
		// A short page does not prove the end (an adapter may leave out
		// events it does not deliver); an empty one does.
		if len(evs) == 0 {
			l.done = true
		} else {
			l.after = evs[len(evs)-1].Position
		}
		l.buf = evs
	}
	if len(l.buf) == 0 {
		return eventstore.RecordedEvent{}, false, nil
	}
	ev := l.buf[0]
	l.buf = l.buf[1:]
	return ev, true, nil
}

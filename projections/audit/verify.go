package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Report is the outcome of Verify.
type Report struct {
	// OK is true when every link holds and the trail matches its checkpoint.
	OK bool
	// Rows is the number of rows walked.
	Rows int64
	// LastSeq and LastHash (hex) identify the chain's head; recording them
	// elsewhere lets a later Verify prove nothing was rewritten before them.
	LastSeq  int64
	LastHash string
	// Broken is the first broken link, nil when OK.
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

// Verify walks the audit trail in seq order, recomputing each link, and
// reports the first broken one: a changed row (its hash no longer matches),
// a removed row (a gap in seq, and the next hash fails), reordered rows
// (the hashes fail). It then checks the row count and last event against
// the projection's checkpoint, which catches rows removed from the end. It
// reads one consistent snapshot, so it can run while the trail grows. A
// broken chain is reported in Report, not as an error; the error is for
// failing to read.
func Verify(ctx context.Context, pool *pgxpool.Pool) (Report, error) {
	var rep Report
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var applied int64
		var lastEvent *uuid.UUID
		if err := tx.QueryRow(ctx, "SELECT events_applied, last_event_id FROM projection_checkpoints WHERE name = $1", Name).Scan(&applied, &lastEvent); err != nil {
			return fmt.Errorf("audit: read checkpoint: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT seq, event_id, position, stream, revision, event_type, occurred_at, recorded_at,
			actor_kind, actor_id, correlation_id, causation_id, client_ip, user_agent, summary, hash
			FROM `+Table+` ORDER BY seq`)
		if err != nil {
			return fmt.Errorf("audit: read trail: %w", err)
		}
		defer rows.Close()
		prev := make([]byte, sha256.Size)
		var last Row
		for rows.Next() {
			var r Row
			var rev int64
			if err := rows.Scan(&r.Seq, &r.EventID, &r.Position, &r.Stream, &rev, &r.EventType, &r.OccurredAt, &r.RecordedAt,
				&r.ActorKind, &r.ActorID, &r.CorrelationID, &r.CausationID, &r.ClientIP, &r.UserAgent, &r.Summary, &r.Hash); err != nil {
				return fmt.Errorf("audit: read trail: %w", err)
			}
			r.Revision = uint64(rev)
			rep.Rows++
			if rep.Broken != nil {
				continue
			}
			want := rep.LastSeq + 1
			switch {
			case r.Seq != want:
				rep.Broken = &Break{Seq: want, Reason: fmt.Sprintf("row missing: expected seq %d, found %d", want, r.Seq)}
			case !bytes.Equal(Link(prev, r), r.Hash):
				rep.Broken = &Break{Seq: r.Seq, EventID: r.EventID.String(), Reason: "hash does not match the row and the previous link (row changed, removed before it, or reordered)"}
			default:
				prev = r.Hash
				rep.LastSeq = r.Seq
				last = r
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("audit: read trail: %w", err)
		}
		if rep.Broken == nil {
			switch {
			case rep.Rows != applied:
				rep.Broken = &Break{Seq: rep.LastSeq + 1, Reason: fmt.Sprintf("trail holds %d rows but the projection applied %d events (rows removed from the end?)", rep.Rows, applied)}
			case lastEvent != nil && rep.Rows > 0 && *lastEvent != last.EventID:
				rep.Broken = &Break{Seq: rep.LastSeq, EventID: last.EventID.String(), Reason: fmt.Sprintf("last row is not the last applied event %s", lastEvent)}
			}
		}
		rep.LastHash = hex.EncodeToString(prev)
		return nil
	})
	if err != nil {
		return Report{}, err
	}
	rep.OK = rep.Broken == nil
	return rep, nil
}

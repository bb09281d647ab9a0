package pg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/authledger/authledger/eventstore"
)

// tombstoneType is the type of the row that deletes a stream for good. It
// is written after the stream's last revision, like an event, so that the
// unique (stream, revision) index orders it against concurrent appends;
// readers of $all skip it and Append refuses it as an event type.
const tombstoneType = "$tombstone"

// appendSQL appends to one or more distinct streams in one statement, so
// that concurrent appends can share a round trip and a commit (see
// batcher). $1..$3 describe the appends (stream, expected-revision code,
// first event id); $4..$9 the events, flattened, each naming its append
// (1-based) and its place in it.
//
// Each stream's state comes from its newest row: current revision, the
// transaction that wrote it, whether it is a tombstone. The verdict of
// each append is one of:
//
//   - ok: its events are inserted after the current revision;
//   - deleted: the stream is tombstoned;
//   - seen: expected Any or StreamExists and the first event id is already
//     in the stream (a re-append; the caller compares the ids);
//   - wrong: the expected revision does not hold (the caller checks for
//     an idempotent re-append before calling it a conflict);
//   - later: a transaction with a greater id wrote the stream last, which
//     only happens to a transaction that had an id before this statement
//     (AppendTx): appending would put the stream out of order in $all.
//
// Exclusion between concurrent writers of a stream is the unique index:
// the second insert of a revision waits for the first and fails (23505) if
// it commits. Ordering follows from the snapshot being taken before the
// transaction gets its id: a writer whose event this statement sees
// committed got its id earlier, so revisions grow with transaction ids
// (docs/adr/0004).
const appendSQL = `WITH a AS (
	SELECT * FROM unnest($1::text[], $2::bigint[], $3::uuid[]) WITH ORDINALITY AS a(stream, expected, first_id, i)),
cur AS MATERIALIZED (
	SELECT a.i, a.stream, a.expected,
	       coalesce(l.revision, -1) AS rev, coalesce(l.tx_id, 0) AS last_tx, coalesce(l.seq, 0) AS last_seq,
	       coalesce(l.type = '` + tombstoneType + `', false) AS deleted, f.seen IS NOT NULL AS seen
	  FROM a LEFT JOIN LATERAL (
	       SELECT e.revision, e.tx_id, e.seq, e.type FROM events e
	        WHERE e.stream = a.stream ORDER BY e.revision DESC LIMIT 1) AS l ON true
	  -- A LIMIT 1 lateral probe, not EXISTS: a generic plan may turn an
	  -- EXISTS into a hashed scan of the whole log.
	  LEFT JOIN LATERAL (
	       SELECT true AS seen FROM events e
	        WHERE a.expected IN (-2, -3) AND e.event_id = a.first_id AND e.stream = a.stream LIMIT 1) AS f ON true),
chk AS MATERIALIZED (
	SELECT cur.*, CASE
	    WHEN cur.deleted THEN 'deleted'
	    WHEN cur.seen THEN 'seen'
	    WHEN NOT (cur.expected = -2 OR (cur.expected = -3 AND cur.rev >= 0)
	              OR (cur.expected >= -1 AND cur.expected = cur.rev)) THEN 'wrong'
	    WHEN cur.last_tx > pg_current_xact_id()::text::bigint THEN 'later'
	    ELSE 'ok' END AS verdict
	  FROM cur),
ins AS (
	INSERT INTO events (tx_id, event_id, stream, revision, type, data, metadata)
	SELECT pg_current_xact_id()::text::bigint, ev.id, chk.stream, chk.rev + ev.k, ev.typ, ev.dat, ev.met
	  FROM unnest($4::int[], $5::int[], $6::uuid[], $7::text[], $8::jsonb[], $9::jsonb[])
	       WITH ORDINALITY AS ev(i, k, id, typ, dat, met, n)
	  JOIN chk ON chk.i = ev.i AND chk.verdict = 'ok'
	 ORDER BY ev.n
	RETURNING stream, revision, tx_id, seq)
SELECT chk.verdict, chk.rev, chk.last_tx, chk.last_seq, x.revision, x.tx_id, x.seq
  FROM chk LEFT JOIN LATERAL (
       SELECT ins.revision, ins.tx_id, ins.seq FROM ins
        WHERE ins.stream = chk.stream ORDER BY ins.revision DESC LIMIT 1) AS x ON true
 ORDER BY chk.i`

const (
	expectNoStream     = -1
	expectAny          = -2
	expectStreamExists = -3
)

func expectedCode(x eventstore.ExpectedRevision) (int64, error) {
	switch v := x.(type) {
	case eventstore.Any:
		return expectAny, nil
	case eventstore.NoStream:
		return expectNoStream, nil
	case eventstore.StreamExists:
		return expectStreamExists, nil
	case eventstore.Revision:
		if uint64(v) > math.MaxInt64 {
			return math.MaxInt64, nil // no stream reaches it: a wrong version
		}
		return int64(v), nil
	}
	return 0, fmt.Errorf("pg: unknown expected revision %T", x)
}

// appendReq is one validated call of Append, AppendTx or Tombstone.
type appendReq struct {
	stream   string
	expected eventstore.ExpectedRevision
	code     int64
	events   []eventstore.EventData
}

func newAppendReq(stream string, expected eventstore.ExpectedRevision, events []eventstore.EventData) (*appendReq, error) {
	code, err := expectedCode(expected)
	if err != nil {
		return nil, err
	}
	if stream == "" {
		return nil, errors.New("pg: empty stream name")
	}
	for i, e := range events {
		if e.ID == uuid.Nil {
			return nil, fmt.Errorf("pg: event %d of %q has no id", i, stream)
		}
		if e.Type == "" {
			return nil, fmt.Errorf("pg: event %d of %q has no type", i, stream)
		}
		if e.Type == tombstoneType {
			return nil, fmt.Errorf("pg: event %d of %q: the type %s is reserved", i, stream, tombstoneType)
		}
	}
	return &appendReq{stream: stream, expected: expected, code: code, events: events}, nil
}

// appendOutcome is what appendSQL said about one append.
type appendOutcome struct {
	verdict         string
	current         int64 // the stream's revision before the append, -1 for none
	lastTx, lastSeq int64 // position of the stream's newest row
	inserted        bool
	res             eventstore.AppendResult // when inserted
}

// execAppends runs appendSQL for appends to distinct streams and returns
// one outcome per append, in order.
func execAppends(ctx context.Context, q querier, reqs []*appendReq) ([]appendOutcome, error) {
	streams := make([]string, len(reqs))
	codes := make([]int64, len(reqs))
	// Ids as pgtype.UUID: pgx encodes a slice of uuid.UUID element by
	// element through its driver.Valuer (a string each), 4% of an
	// append's Go CPU; pgtype.UUID goes straight to the binary form.
	firsts := make([]pgtype.UUID, len(reqs))
	var (
		evI, evK    []int32
		ids         []pgtype.UUID
		types       []string
		data, metas []json.RawMessage
	)
	for i, r := range reqs {
		streams[i], codes[i] = r.stream, r.code
		if len(r.events) > 0 {
			firsts[i] = pgtype.UUID{Bytes: r.events[0].ID, Valid: true}
		}
		for k, e := range r.events {
			evI = append(evI, int32(i+1)) //nolint:gosec // bounded by the batch size
			evK = append(evK, int32(k+1)) //nolint:gosec // bounded by the event count of one append
			ids = append(ids, pgtype.UUID{Bytes: e.ID, Valid: true})
			types = append(types, e.Type)
			data = append(data, e.Data)
			metas = append(metas, e.Metadata)
		}
	}
	rows, err := q.Query(ctx, appendSQL, streams, codes, firsts, evI, evK, ids, types, data, metas)
	if err != nil {
		return nil, err
	}
	out := make([]appendOutcome, 0, len(reqs))
	for rows.Next() {
		var o appendOutcome
		var rev, tx, seq *int64
		if err := rows.Scan(&o.verdict, &o.current, &o.lastTx, &o.lastSeq, &rev, &tx, &seq); err != nil {
			rows.Close()
			return nil, err
		}
		if rev != nil && tx != nil && seq != nil {
			o.inserted = true
			o.res = eventstore.AppendResult{NextRevision: uint64(*rev), Position: eventstore.Position{Commit: uint64(*tx), Prepare: uint64(*seq)}}
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) != len(reqs) {
		return nil, fmt.Errorf("pg: append returned %d outcomes for %d appends", len(out), len(reqs))
	}
	return out, nil
}

// appendSolo appends one request on q (the pool or a caller's transaction).
func appendSolo(ctx context.Context, q querier, r *appendReq) (eventstore.AppendResult, error) {
	out, err := execAppends(ctx, q, []*appendReq{r})
	if err != nil {
		return eventstore.AppendResult{}, mapError(r.stream, err)
	}
	return settle(ctx, q, r, out[0])
}

// settle turns an outcome into the port's result or error. A wrong
// expected revision and a seen event id are re-appends when the same ids
// already stand where the append would have put them: those return the
// original result, as EventStoreDB does.
func settle(ctx context.Context, q querier, r *appendReq, o appendOutcome) (eventstore.AppendResult, error) {
	switch o.verdict {
	case "ok":
		if o.inserted {
			return o.res, nil
		}
		// An append of no events reports where the stream stands.
		if o.current < 0 {
			return eventstore.AppendResult{}, nil
		}
		return eventstore.AppendResult{NextRevision: uint64(o.current), Position: eventstore.Position{Commit: uint64(o.lastTx), Prepare: uint64(o.lastSeq)}}, nil
	case "deleted":
		return eventstore.AppendResult{}, fmt.Errorf("%w: %q", eventstore.ErrStreamDeleted, r.stream)
	case "later":
		return eventstore.AppendResult{}, fmt.Errorf("%w: %q: a later transaction wrote the stream first", eventstore.ErrRetryInNewTransaction, r.stream)
	case "seen":
		res, same, err := sameEventsAt(ctx, q, r, nil)
		if err != nil {
			return eventstore.AppendResult{}, err
		}
		if !same {
			return eventstore.AppendResult{}, fmt.Errorf("%w: %q: %s", ErrDuplicateEventID, r.stream, r.events[0].ID)
		}
		return res, nil
	case "wrong":
		if len(r.events) > 0 && r.code >= expectNoStream && o.current > r.code {
			first := r.code + 1
			res, same, err := sameEventsAt(ctx, q, r, &first)
			if err != nil {
				return eventstore.AppendResult{}, err
			}
			if same {
				return res, nil
			}
		}
		we := &eventstore.WrongExpectedVersionError{Stream: r.stream, Expected: r.expected}
		if o.current >= 0 {
			we.CurrentExists, we.Current = true, uint64(o.current)
		}
		return eventstore.AppendResult{}, we
	}
	return eventstore.AppendResult{}, fmt.Errorf("pg: %q: unknown append verdict %q", r.stream, o.verdict)
}

// sameEventsAt tells whether the request's event ids stand in its stream
// from revision first on (from the revision of its first id when first is
// nil), with the result of the append that wrote them.
func sameEventsAt(ctx context.Context, q querier, r *appendReq, first *int64) (eventstore.AppendResult, bool, error) {
	rows, err := q.Query(ctx, `SELECT e.event_id, e.revision, e.tx_id, e.seq FROM events e
		WHERE e.stream = $1
		  AND e.revision >= coalesce($2, (SELECT f.revision FROM events f WHERE f.event_id = $3 AND f.stream = $1))
		ORDER BY e.revision LIMIT $4`, r.stream, first, r.events[0].ID, len(r.events))
	if err != nil {
		return eventstore.AppendResult{}, false, fmt.Errorf("pg: %q: re-append check: %w", r.stream, err)
	}
	var res eventstore.AppendResult
	n := 0
	for rows.Next() {
		var id uuid.UUID
		var rev, tx, seq int64
		if err := rows.Scan(&id, &rev, &tx, &seq); err != nil {
			rows.Close()
			return eventstore.AppendResult{}, false, fmt.Errorf("pg: %q: re-append check: %w", r.stream, err)
		}
		if n >= len(r.events) || id != r.events[n].ID {
			rows.Close()
			return eventstore.AppendResult{}, false, nil
		}
		res = eventstore.AppendResult{NextRevision: uint64(rev), Position: eventstore.Position{Commit: uint64(tx), Prepare: uint64(seq)}}
		n++
	}
	if err := rows.Err(); err != nil {
		return eventstore.AppendResult{}, false, fmt.Errorf("pg: %q: re-append check: %w", r.stream, err)
	}
	return res, n == len(r.events), nil
}

// mapError is the one place where the SQLSTATEs of an append become the
// port's errors.
func mapError(stream string, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return fmt.Errorf("pg: %q: %w", stream, err)
	}
	switch pgErr.Code {
	case "40001", "40P01":
		return fmt.Errorf("%w: %q: %s", eventstore.ErrRetryInNewTransaction, stream, pgErr.Message)
	case "23505":
		switch pgErr.ConstraintName {
		case "events_event_id_key":
			return fmt.Errorf("%w: %q: %s", ErrDuplicateEventID, stream, pgErr.Detail)
		case "events_stream_revision_key":
			// A concurrent writer took the revision first.
			return fmt.Errorf("%w: %q: %s", eventstore.ErrRetryInNewTransaction, stream, pgErr.Message)
		}
	case "22P02":
		return fmt.Errorf("pg: %q: event data or metadata is not valid JSON: %w", stream, err)
	}
	return fmt.Errorf("pg: %q: %w", stream, err)
}

// sortByStream orders a batch by stream name, so that two batches that
// share streams insert them in the same order and cannot deadlock.
func sortByStream(reqs []*appendReq) []int {
	idx := make([]int, len(reqs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(reqs[a].stream, reqs[b].stream) })
	return idx
}

// readStreamSQL reads a stream in one statement (one snapshot): its newest
// row (existence, tombstone, current revision for End) and the events asked
// for. $2 < 0 means End.
func readStreamSQL(backwards bool) string {
	cond, order := `e.revision >= CASE WHEN $2 < 0 THEN l.revision ELSE $2 END`, `e.revision`
	if backwards {
		cond, order = `e.revision <= CASE WHEN $2 < 0 THEN l.revision ELSE $2 END`, `e.revision DESC`
	}
	return `WITH l AS MATERIALIZED (
	SELECT e.revision, e.type = '` + tombstoneType + `' AS deleted FROM events e
	 WHERE e.stream = $1 ORDER BY e.revision DESC LIMIT 1)
SELECT l.deleted, ` + eventColumns + ` FROM l
  LEFT JOIN LATERAL (SELECT * FROM events e WHERE e.stream = $1 AND ` + cond + ` ORDER BY ` + order + ` LIMIT $3) e ON true`
}

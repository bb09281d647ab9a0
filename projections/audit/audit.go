// Package audit is the audit trail: a projection of every event of the log
// into an append-only table whose rows are chained by a keyed MAC.
//
// Each row records who (actor), what (event type, stream, revision), when
// (occurred and recorded), from where (client IP, user agent, correlation
// id = request id, causation id), a redacted summary of the event's data,
// and a digest of the whole event as the log holds it.
//
// # Append-only
//
// The table (audit_log_g<N>, served through the view audit_log) has
// triggers that refuse UPDATE, DELETE and TRUNCATE (migration
// audit_log_refuse_change), and those privileges are revoked from PUBLIC. A
// rebuild creates a new generation and drops the old one; it never updates
// a row. The log itself is append-only the same way (migration 007). The
// one deletion is audit retention's: the projection, applying an
// audit.archived.v1 event of the log, deletes the rows that event's
// archive file holds, checking its anchor link first (archive.go; ADR
// 0035).
//
// # Keyed chain
//
// Rows are numbered seq = 1, 2, 3... in log order, and
//
//	hash(row) = HMAC-SHA256(K, hash(previous row) || canonical(row))
//
// with 32 zero bytes as the hash before the first row. K is the chain key,
// derived from the master key (HKDF, purpose "audit chain v1"): the
// database never holds it, so whoever can write to the database but lacks
// the master key cannot compute a link, and a re-chained trail (with plain
// SHA-256, or under another key) fails at its first row. canonical(row) is
// the UTF-8 JSON object of the row's stored columns except hash, with keys
// in byte order and no insignificant whitespace, strings escaped as Go's
// encoding/json does with HTML escaping off:
//
//	{"actor_id":"…","actor_kind":"…","causation_id":"…","client_ip":"…",
//	 "correlation_id":"…","event_digest":"<64 hex>","event_id":"<uuid>",
//	 "event_type":"…","occurred_at":"2006-01-02T15:04:05.000000Z",
//	 "position":"<32 hex>","recorded_at":"…","revision":<int>,"seq":<int>,
//	 "stream":"…","summary":"<the summary JSON, as a string>",
//	 "user_agent":"…"}
//
// (one line; times in UTC with exactly six fractional digits, which is what
// PostgreSQL stores). event_digest is EventDigest: SHA-256 over every field
// of the event as the log returns it, the data and metadata included, so a
// row binds its event even where the summary leaves a field out. The chain
// depends only on the log and K, so a rebuild produces the same hashes.
//
// Verify walks the log (the store's $all read, on either store) beside the
// trail and recomputes the chain from the log: a changed, removed,
// inserted or reordered event, or a changed, removed or re-chained row,
// breaks it. A Head (signed, kept outside the database) pins the chain at
// one moment, so that a later Verify also proves nothing before it was
// truncated or rewritten. docs/adr/0013-tamper-evident-log.md says what
// this does and does not hold against.
//
// # Redaction
//
// The summary is the event's data with every object member whose name
// looks like secret material removed, at any depth: after splitting the
// name into lower-case words (at "_", "-", ".", spaces and camelCase
// boundaries), a member is dropped when a word is one of password, passwd,
// passphrase, pwd, secret, token, hash, digest, key, keys, salt, nonce,
// otp, totp, pin, cvv, credential(s), cookie, authorization, signature,
// ciphertext, fingerprint, private, or the whole name contains password,
// secret or token. Strings longer than 256 characters are cut (with "…").
// The log holds no raw secret to begin with (rule 4); this keeps digests and
// hashes out of a table that auditors read.
package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	fastjson "github.com/goccy/go-json"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/authledger/authledger/domain/auditarchive"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
)

// Name is the audit trail's projection name (its checkpoint). Renaming it
// rebuilds the trail from the start of the log.
const Name = "audit"

// Table is the view the audit trail is served through.
const Table = "audit_log"

// KeySize is the chain key's length: an HKDF-SHA256 output of 32 bytes.
const KeySize = 32

var (
	// ErrNoKey: the projection was built without a chain key (New(nil)); it
	// refuses to write rows nobody could verify.
	ErrNoKey = errors.New("audit: no chain key (derive one from the master key)")
	// ErrUnkeyedTrail: the serving generation was written before the chain
	// was keyed (no event_digest column). Rebuild it: `authledger
	// projections rebuild audit` writes a keyed generation beside it and
	// swaps.
	ErrUnkeyedTrail = errors.New("audit: the serving audit trail predates the keyed chain; run `authledger projections rebuild audit`")
	// ErrTrailRewritten: the trail went backwards, or a row this process
	// had read as the chain's last link changed, under the running
	// projection. It stops rather than extend (and so bless) a rewritten
	// trail.
	ErrTrailRewritten = errors.New("audit: the audit trail was rewritten under the running projection")
)

// Projection is the audit trail projection.
type Projection struct {
	key []byte

	// heads is, per physical table, what this process knows of the
	// chain's end: the trail only grows, so a later batch finding fewer
	// rows, or another hash at a known seq, means someone rewrote it
	// (ErrTrailRewritten).
	mu    sync.Mutex
	heads map[string]*knownHead
}

// knownHead is the last link known to be committed, and the one the last
// batch wrote, with its transaction id: whether that transaction
// committed (pg_xact_status) decides, at the next batch, which of the two
// the trail must still hold.
type knownHead struct {
	confirmed link
	pending   link
	pendingTx int64
}

type link struct {
	seq  int64
	hash []byte
}

// New returns the audit trail projection chaining rows under key (KeySize
// bytes, derived from the master key). A projection without a valid key
// fails every batch with ErrNoKey; it still names its tables (for status).
func New(key []byte) *Projection {
	return &Projection{key: bytes.Clone(key), heads: map[string]*knownHead{}}
}

var (
	_ projector.Projection = (*Projection)(nil)
	_ projector.Indexer    = (*Projection)(nil)
	_ projector.Preparer   = (*Projection)(nil)
)

// Name implements projector.Projection.
func (*Projection) Name() string { return Name }

// Filter implements projector.Projection: every event.
func (*Projection) Filter() eventstore.Filter { return eventstore.Filter{} }

// Tables implements projector.Projection.
func (*Projection) Tables() []string { return []string{Table} }

// CreateTables implements projector.Projection.
func (*Projection) CreateTables(ctx context.Context, tx pgx.Tx, t projector.Tables) error {
	tbl := t.Ident(Table)
	stmts := []string{
		`CREATE TABLE ` + tbl + ` (
			seq            bigint      PRIMARY KEY,
			event_id       uuid        NOT NULL,
			position       text        NOT NULL,
			stream         text        NOT NULL,
			revision       bigint      NOT NULL,
			event_type     text        NOT NULL,
			occurred_at    timestamptz NOT NULL,
			recorded_at    timestamptz NOT NULL,
			actor_kind     text        NOT NULL,
			actor_id       text        NOT NULL,
			correlation_id text        NOT NULL,
			causation_id   text        NOT NULL,
			client_ip      text        NOT NULL,
			user_agent     text        NOT NULL,
			summary        text        NOT NULL,
			event_digest   bytea       NOT NULL,
			hash           bytea       NOT NULL
		)`,
		`CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON ` + tbl + ` FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()`,
		`CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON ` + tbl + ` FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change()`,
		`REVOKE UPDATE, DELETE, TRUNCATE ON ` + tbl + ` FROM PUBLIC`,
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("audit: create tables: %w", err)
		}
	}
	return nil
}

// CreateIndexes implements projector.Indexer: the secondary indexes, and the
// uniqueness of event ids (a second line of defence against an event
// applied twice), built after a rebuild's bulk load.
func (*Projection) CreateIndexes(ctx context.Context, tx pgx.Tx, t projector.Tables) error {
	tbl := t.Ident(Table)
	raw := t.Name(Table)
	for _, s := range []string{
		`CREATE UNIQUE INDEX ` + pgx.Identifier{raw + "_event"}.Sanitize() + ` ON ` + tbl + ` (event_id)`,
		`CREATE INDEX ` + pgx.Identifier{raw + "_actor"}.Sanitize() + ` ON ` + tbl + ` (actor_id, seq)`,
		`CREATE INDEX ` + pgx.Identifier{raw + "_subject_user"}.Sanitize() + ` ON ` + tbl + ` ((` + subjectUser + `), seq)`,
		`CREATE INDEX ` + pgx.Identifier{raw + "_subject_owner"}.Sanitize() + ` ON ` + tbl + ` ((` + subjectOwner + `), seq)`,
		`CREATE INDEX ` + pgx.Identifier{raw + "_type"}.Sanitize() + ` ON ` + tbl + ` (event_type, seq)`,
		`CREATE INDEX ` + pgx.Identifier{raw + "_stream"}.Sanitize() + ` ON ` + tbl + ` (stream, seq)`,
		`CREATE INDEX ` + pgx.Identifier{raw + "_occurred"}.Sanitize() + ` ON ` + tbl + ` (occurred_at)`,
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("audit: create indexes: %w", err)
		}
	}
	return nil
}

// Begin implements projector.Projection: it reads the chain's last link,
// and checks that the trail still holds the last link this process knows
// to be committed.
func (p *Projection) Begin(ctx context.Context, tx pgx.Tx, t projector.Tables) (projector.Batch, error) {
	if len(p.key) < KeySize {
		return nil, ErrNoKey
	}
	table := t.Name(Table)
	p.mu.Lock()
	known := p.heads[table]
	if known == nil {
		known = &knownHead{}
		p.heads[table] = known
	}
	kc, kp, ktx := known.confirmed, known.pending, known.pendingTx
	p.mu.Unlock()

	b := &batch{p: p, tx: tx, table: table, mac: hmac.New(sha256.New, p.key)}
	var lastSeq *int64
	var atConfirmed, atPending []byte
	var pendingStatus *string
	var firstSeq *int64
	// One row whatever the table holds; event_digest is named so that a
	// generation from before the keyed chain fails here (42703).
	err := tx.QueryRow(ctx, `SELECT l.seq, l.hash,
			(SELECT e.hash FROM `+t.Ident(Table)+` e WHERE e.seq = $1),
			(SELECT e.hash FROM `+t.Ident(Table)+` e WHERE e.seq = $2),
			pg_xact_status(nullif($3::bigint, 0)::text::xid8),
			(SELECT min(e.seq) FROM `+t.Ident(Table)+` e)
		FROM (SELECT 1) AS one LEFT JOIN LATERAL (
			SELECT seq, hash, event_digest FROM `+t.Ident(Table)+` ORDER BY seq DESC LIMIT 1) AS l ON true`,
		kc.seq, kp.seq, ktx).Scan(&lastSeq, &b.prev, &atConfirmed, &atPending, &pendingStatus, &firstSeq)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42703": // undefined_column: event_digest
		return nil, fmt.Errorf("%w (table %s)", ErrUnkeyedTrail, table)
	case err != nil:
		return nil, fmt.Errorf("audit: read last link: %w", err)
	case lastSeq == nil:
		b.seq, b.prev = 0, make([]byte, sha256.Size)
	default:
		b.seq = *lastSeq
	}
	// The last batch's rows count once its transaction committed; rolled
	// back (or unknown), the trail must still hold what it held before.
	want, at := kc, atConfirmed
	if ktx != 0 && pendingStatus != nil && *pendingStatus == "committed" {
		want, at = kp, atPending
	}
	if want.seq > 0 {
		switch {
		case b.seq < want.seq:
			return nil, fmt.Errorf("%w: %s held %d rows, now %d", ErrTrailRewritten, table, want.seq, b.seq)
		case at == nil && firstSeq != nil && *firstSeq > want.seq:
			// Archived by audit retention (applied by another instance
			// since this one last ran): the trail goes on past it.
		case !hmac.Equal(at, want.hash):
			return nil, fmt.Errorf("%w: the link of seq %d in %s changed", ErrTrailRewritten, want.seq, table)
		}
	}
	p.mu.Lock()
	known.confirmed = link{seq: b.seq, hash: bytes.Clone(b.prev)}
	known.pending, known.pendingTx = link{}, 0
	p.mu.Unlock()
	return b, nil
}

// batch buffers rows and writes them with COPY at Flush.
type batch struct {
	p     *Projection
	tx    pgx.Tx
	table string
	mac   hash.Hash
	seq   int64
	prev  []byte
	rows  [][]any
	// retiring are the archivings applied in this batch: their rows leave
	// the table at Flush (retire).
	retiring []auditarchive.Archived
}

// Prepare implements projector.Preparer: the row without its place in the
// chain (its summary and event digest), built ahead on the subscription's
// goroutine.
func (*Projection) Prepare(ev eventstore.RecordedEvent) any { return RowFromEvent(ev) }

func (b *batch) Apply(ctx context.Context, ev eventstore.RecordedEvent) error {
	var r Row
	if d, ok := projector.DeliveryFrom(ctx); ok && d.Prepared != nil && d.Event.ID == ev.ID {
		r = d.Prepared.(Row)
	} else {
		r = RowFromEvent(ev)
	}
	b.seq++
	r.Seq = b.seq
	r.Hash = chainLink(b.mac, b.prev, r)
	b.prev = r.Hash
	b.rows = append(b.rows, []any{r.Seq, r.EventID, r.Position, r.Stream, int64(r.Revision), r.EventType,
		r.OccurredAt, r.RecordedAt, r.ActorKind, r.ActorID, r.CorrelationID, r.CausationID, r.ClientIP,
		r.UserAgent, r.Summary, r.EventDigest, r.Hash})
	if ev.Type == auditarchive.EventArchived {
		var a auditarchive.Archived
		if err := json.Unmarshal(ev.Data, &a); err != nil {
			return fmt.Errorf("audit: archiving %s: %w", ev.ID, err)
		}
		b.retiring = append(b.retiring, a)
	}
	return nil
}

var columns = []string{"seq", "event_id", "position", "stream", "revision", "event_type", "occurred_at",
	"recorded_at", "actor_kind", "actor_id", "correlation_id", "causation_id", "client_ip", "user_agent",
	"summary", "event_digest", "hash"}

func (b *batch) Flush(ctx context.Context) error {
	if len(b.rows) == 0 {
		return nil
	}
	if _, err := b.tx.CopyFrom(ctx, pgx.Identifier{b.table}, columns, pgx.CopyFromRows(b.rows)); err != nil {
		return fmt.Errorf("audit: write %d rows: %w", len(b.rows), err)
	}
	b.rows = b.rows[:0]
	for _, a := range b.retiring {
		if err := b.retire(ctx, a); err != nil {
			return err
		}
	}
	b.retiring = nil
	// The rows gave the transaction its id (no earlier: an id held from the
	// batch's start would hold the log's subscribers back). The next Begin
	// asks whether it committed.
	var xid int64
	if err := b.tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text::bigint").Scan(&xid); err != nil {
		return fmt.Errorf("audit: transaction id: %w", err)
	}
	b.p.mu.Lock()
	if k := b.p.heads[b.table]; k != nil {
		k.pending, k.pendingTx = link{seq: b.seq, hash: bytes.Clone(b.prev)}, xid
	}
	b.p.mu.Unlock()
	return nil
}

// Row is one link of the audit trail.
type Row struct {
	Seq           int64
	EventID       uuid.UUID
	Position      string
	Stream        string
	Revision      uint64
	EventType     string
	OccurredAt    time.Time
	RecordedAt    time.Time
	ActorKind     string
	ActorID       string
	CorrelationID string
	CausationID   string
	ClientIP      string
	UserAgent     string
	// Summary is the redacted event data, as JSON text.
	Summary string
	// EventDigest is EventDigest of the event the row records.
	EventDigest []byte
	Hash        []byte
}

// RowFromEvent builds the row of an event (without Seq and Hash). Metadata
// that is missing or malformed leaves the fields empty (the trail records
// every event rather than stopping on one); a missing occurred-at takes the
// recorded-at time.
//
// The row records the event as the log holds it (ev.AsLogged): personal
// data sealed in the log (eventstore/sealed) stays sealed in the trail, a
// sealed client IP or user agent being recorded as its envelope's JSON
// text, so an erasure leaves the chain intact and the trail unreadable
// where the log is.
func RowFromEvent(ev eventstore.RecordedEvent) Row {
	ev = ev.AsLogged()
	var md metadata
	_ = fastjson.Unmarshal(ev.Metadata, &md)
	occurred, _ := time.Parse(time.RFC3339Nano, md.OccurredAt)
	r := Row{
		EventID:       ev.ID,
		Position:      ev.Position.String(),
		Stream:        ev.Stream,
		Revision:      ev.Revision,
		EventType:     ev.Type,
		RecordedAt:    ev.RecordedAt.UTC().Truncate(time.Microsecond),
		OccurredAt:    occurred.UTC().Truncate(time.Microsecond),
		ActorKind:     md.Actor.Kind,
		ActorID:       md.Actor.ID,
		CorrelationID: md.CorrelationID,
		CausationID:   md.CausationID,
		ClientIP:      string(md.ClientIP),
		UserAgent:     string(md.UserAgent),
		Summary:       Summarize(ev.Data),
		EventDigest:   EventDigest(ev),
	}
	if occurred.IsZero() {
		r.OccurredAt = r.RecordedAt
	}
	return r
}

// EventDigest is SHA-256 over every field of ev as the store returns it:
//
//	"authledger event digest v1" || f(id) || f(stream) || f(revision) ||
//	f(position) || f(type) || f(data) || f(metadata) || f(recorded_at)
//
// where f(x) is x's length as 8 bytes big-endian followed by x; id is its
// 16 bytes, revision 8 bytes big-endian, position its 32 hex digits,
// recorded_at the Unix time in microseconds as 8 bytes big-endian, data and
// metadata their bytes (PostgreSQL's jsonb text, or EventStoreDB's stored
// bytes; either is the same at every read). The lengths keep one field's
// bytes from being read as another's.
func EventDigest(ev eventstore.RecordedEvent) []byte {
	ev = ev.AsLogged()
	const prefix = "authledger event digest v1"
	pos := ev.Position.String()
	// One buffer, hashed at once: nine fields, each with its 8-byte length.
	buf := make([]byte, 0, len(prefix)+9*8+16+len(ev.Stream)+8+len(pos)+len(ev.Type)+len(ev.Data)+len(ev.Metadata)+8)
	buf = append(buf, prefix...)
	field := func(b []byte) {
		buf = binary.BigEndian.AppendUint64(buf, uint64(len(b)))
		buf = append(buf, b...)
	}
	str := func(s string) {
		buf = binary.BigEndian.AppendUint64(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	u64 := func(v uint64) {
		buf = binary.BigEndian.AppendUint64(buf, 8)
		buf = binary.BigEndian.AppendUint64(buf, v)
	}
	field(ev.ID[:])
	str(ev.Stream)
	u64(ev.Revision)
	str(pos)
	str(ev.Type)
	field(ev.Data)
	field(ev.Metadata)
	u64(uint64(ev.RecordedAt.UTC().Truncate(time.Microsecond).UnixMicro())) //nolint:gosec // a bit pattern, not a quantity
	sum := sha256.Sum256(buf)
	return sum[:]
}

// metadata is the part of events.Metadata the trail records, decoded
// without the costlier types (uuid, time) of the full struct.
type metadata struct {
	OccurredAt    string `json:"occurred_at"`
	CorrelationID string `json:"correlation_id"`
	CausationID   string `json:"causation_id"`
	Actor         struct {
		Kind string `json:"kind"`
		ID   string `json:"id"`
	} `json:"actor"`
	ClientIP  metaText `json:"client_ip"`
	UserAgent metaText `json:"user_agent"`
}

// metaText is a metadata text member: a string, or, when sealed
// (eventstore/sealed), the envelope object kept as its JSON text.
type metaText string

func (t *metaText) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var compacted bytes.Buffer
		if err := json.Compact(&compacted, b); err != nil {
			return err
		}
		*t = metaText(compacted.String())
		return nil
	}
	var s *string
	if err := fastjson.Unmarshal(b, &s); err != nil {
		return err
	}
	if s != nil {
		*t = metaText(*s)
	}
	return nil
}

var _ = events.Metadata{} // metadata mirrors its JSON names

const timeLayout = "2006-01-02T15:04:05.000000Z"

// Canonical is the canonical form of r chained into the trail (see the
// package documentation). It is written by hand for speed; TestCanonical
// holds it to encoding/json's output.
func Canonical(r Row) []byte {
	b := make([]byte, 0, 600+len(r.Summary)+len(r.UserAgent))
	str := func(key, v string) {
		b = append(b, key...)
		b = appendJSONString(b, v)
	}
	str(`{"actor_id":`, r.ActorID)
	str(`,"actor_kind":`, r.ActorKind)
	str(`,"causation_id":`, r.CausationID)
	str(`,"client_ip":`, r.ClientIP)
	str(`,"correlation_id":`, r.CorrelationID)
	b = append(b, `,"event_digest":"`...)
	b = hex.AppendEncode(b, r.EventDigest)
	b = append(b, '"')
	str(`,"event_id":`, r.EventID.String())
	str(`,"event_type":`, r.EventType)
	str(`,"occurred_at":`, r.OccurredAt.UTC().Format(timeLayout))
	str(`,"position":`, r.Position)
	str(`,"recorded_at":`, r.RecordedAt.UTC().Format(timeLayout))
	b = append(b, `,"revision":`...)
	b = strconv.AppendUint(b, r.Revision, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, r.Seq, 10)
	str(`,"stream":`, r.Stream)
	str(`,"summary":`, r.Summary)
	str(`,"user_agent":`, r.UserAgent)
	return append(b, '}')
}

// appendJSONString appends s as encoding/json writes it with HTML escaping
// off: plain printable ASCII is copied, anything else goes through
// encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(s)
			return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Link is the chain link of r after prev: HMAC-SHA256(key, prev ||
// Canonical(r)).
func Link(key, prev []byte, r Row) []byte {
	return chainLink(hmac.New(sha256.New, key), prev, r)
}

// chainLink is Link with a reusable MAC (reset here).
func chainLink(mac hash.Hash, prev []byte, r Row) []byte {
	mac.Reset()
	mac.Write(prev)
	mac.Write(Canonical(r))
	return mac.Sum(nil)
}

// Summarize returns the redacted summary of an event's data as JSON text:
// objects with keys in byte order, no insignificant whitespace, numbers as
// written in the event, strings escaped as encoding/json does with HTML
// escaping off. The output depends only on the input (a rebuild reproduces
// the trail's hashes), so it is encoded here rather than by a library whose
// output could change between versions.
func Summarize(data json.RawMessage) string {
	if len(bytes.TrimSpace(data)) == 0 {
		return "{}"
	}
	dec := fastjson.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return `{"_unparsable":true}`
	}
	v = redact(v)
	if _, ok := v.(map[string]any); !ok {
		v = map[string]any{"value": v}
	}
	b, ok := appendValue(make([]byte, 0, len(data)), v)
	if !ok {
		return `{"_unparsable":true}`
	}
	return string(b)
}

func appendValue(b []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), true
	case bool:
		return strconv.AppendBool(b, x), true
	case string:
		return appendJSONString(b, x), true
	case json.Number:
		return append(b, x...), true
	case float64:
		return strconv.AppendFloat(b, x, 'g', -1, 64), true
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendValue(b, e); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			var ok bool
			if b, ok = appendValue(b, x[k]); !ok {
				return b, false
			}
		}
		return append(b, '}'), true
	}
	return b, false
}

const maxString = 256

func redact(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if Sensitive(k) {
				delete(x, k)
				continue
			}
			x[k] = redact(val)
		}
		return x
	case []any:
		for i := range x {
			x[i] = redact(x[i])
		}
		return x
	case string:
		if utf8.RuneCountInString(x) > maxString {
			r := []rune(x)
			return string(r[:maxString]) + "…"
		}
		return x
	}
	return v
}

var sensitiveWords = map[string]bool{
	"password": true, "passwd": true, "passphrase": true, "pwd": true, "secret": true, "token": true,
	"hash": true, "digest": true, "key": true, "keys": true, "salt": true, "nonce": true, "otp": true,
	"totp": true, "pin": true, "cvv": true, "credential": true, "credentials": true, "cookie": true,
	"authorization": true, "signature": true, "ciphertext": true, "fingerprint": true, "private": true,
}

// Sensitive reports whether an object member called name is dropped from
// summaries (the rule is in the package documentation).
func Sensitive(name string) bool {
	lower := strings.ToLower(name)
	for _, s := range []string{"password", "secret", "token"} {
		if strings.Contains(lower, s) {
			return true
		}
	}
	for _, w := range words(name) {
		if sensitiveWords[w] {
			return true
		}
	}
	return false
}

// words splits a member name at separators and camelCase boundaries.
func words(name string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(name)
	for i, r := range rs {
		switch {
		case r == '_' || r == '-' || r == '.' || unicode.IsSpace(r):
			flush()
		case unicode.IsUpper(r) && i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1]))):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return out
}

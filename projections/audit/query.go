package audit

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The user an event is about, from its (redacted) data: expressions both
// the subject indexes and the Subject filter use, so that the planner
// matches them.
const (
	subjectUser  = "(summary::jsonb ->> 'user_id')"
	subjectOwner = "(summary::jsonb ->> 'owner_id')"
)

// Filter selects audit entries. Zero fields do not filter.
type Filter struct {
	ActorID string
	// Subject selects a user's own trail: the events the user caused and
	// those about them (whose data names them as user_id or owner_id: a
	// registration, a login, a failed login, a task of theirs), whoever
	// the actor was.
	Subject   string
	EventType string
	Stream    string
	// From and To bound occurred_at: From inclusive, To exclusive.
	From, To time.Time
}

// Entry is an audit row as the API returns it.
type Entry struct {
	Seq           int64           `json:"seq"`
	EventID       string          `json:"event_id"`
	Position      string          `json:"position"`
	Stream        string          `json:"stream"`
	Revision      int64           `json:"revision"`
	Type          string          `json:"type"`
	OccurredAt    time.Time       `json:"occurred_at"`
	RecordedAt    time.Time       `json:"recorded_at"`
	Actor         Actor           `json:"actor"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	CausationID   string          `json:"causation_id,omitempty"`
	ClientIP      string          `json:"client_ip,omitempty"`
	UserAgent     string          `json:"user_agent,omitempty"`
	Summary       json.RawMessage `json:"summary"`
	Hash          string          `json:"hash"`
}

// Actor is who caused the event.
type Actor struct {
	Kind string `json:"kind"`
	ID   string `json:"id,omitempty"`
}

// List returns one page (1-based) of entries matching f, newest first, and
// the number of matching entries.
func List(ctx context.Context, pool *pgxpool.Pool, f Filter, page, pageSize int) ([]Entry, int64, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.ActorID != "" {
		add("actor_id = ?", f.ActorID)
	}
	if f.Subject != "" {
		add("(actor_id = ? OR "+subjectUser+" = ? OR "+subjectOwner+" = ?)", f.Subject)
	}
	if f.EventType != "" {
		add("event_type = ?", f.EventType)
	}
	if f.Stream != "" {
		add("stream = ?", f.Stream)
	}
	if !f.From.IsZero() {
		add("occurred_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		add("occurred_at < ?", f.To)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var entries []Entry
	var total int64
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+Table+cond, args...).Scan(&total); err != nil {
			return err
		}
		qargs := append(append([]any{}, args...), pageSize, (page-1)*pageSize)
		rows, err := tx.Query(ctx, `SELECT seq, event_id::text, position, stream, revision, event_type, occurred_at, recorded_at,
			actor_kind, actor_id, correlation_id, causation_id, client_ip, user_agent, summary, hash FROM `+Table+cond+
			fmt.Sprintf(" ORDER BY seq DESC LIMIT $%d OFFSET $%d", len(args)+1, len(args)+2), qargs...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e Entry
			var summary string
			var hash []byte
			if err := rows.Scan(&e.Seq, &e.EventID, &e.Position, &e.Stream, &e.Revision, &e.Type, &e.OccurredAt, &e.RecordedAt,
				&e.Actor.Kind, &e.Actor.ID, &e.CorrelationID, &e.CausationID, &e.ClientIP, &e.UserAgent, &summary, &hash); err != nil {
				return err
			}
			e.OccurredAt, e.RecordedAt = e.OccurredAt.UTC(), e.RecordedAt.UTC()
			e.Summary = json.RawMessage(summary)
			e.Hash = hex.EncodeToString(hash)
			entries = append(entries, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("audit: list: %w", err)
	}
	if entries == nil {
		entries = []Entry{}
	}
	return entries, total, nil
}

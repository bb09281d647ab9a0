package webhooks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/authledger/authledger/domain/webhook"
)

// Querier is what the read functions need (a pool or a transaction).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func undefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}

// Delivery is one event's delivery to one endpoint as listed.
type Delivery struct {
	// ID is the event id: the webhook-id header and the CloudEvent's id.
	ID            uuid.UUID  `json:"id"`
	WebhookID     uuid.UUID  `json:"webhook_id"`
	EventType     string     `json:"event_type"`
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	CreatedAt     time.Time  `json:"created_at"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	LastAttemptAt *time.Time `json:"last_attempt_at"`
	LastStatus    *int       `json:"last_status"`
	LastError     *string    `json:"last_error"`
	DeliveredAt   *time.Time `json:"delivered_at"`
}

// MaxListed bounds one page of deliveries.
const MaxListed = 200

// Deliveries lists an endpoint's deliveries, newest first (at most
// limit, MaxListed; state "" for every state).
func Deliveries(ctx context.Context, q Querier, webhookID uuid.UUID, state string, limit int) ([]Delivery, error) {
	if limit <= 0 || limit > MaxListed {
		limit = MaxListed
	}
	rows, err := q.Query(ctx, `SELECT event_id, webhook_id, event_type, state, attempts, created_at,
	CASE WHEN state = 'pending' THEN next_attempt_at END, last_attempt_at, last_status, last_error, delivered_at
FROM `+DeliveriesTable+` WHERE webhook_id = $1 AND ($2 = '' OR state = $2) ORDER BY created_at DESC, event_id LIMIT $3`, webhookID, state, limit)
	if undefinedTable(err) {
		return []Delivery{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("webhooks: deliveries: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) {
		var d Delivery
		err := r.Scan(&d.ID, &d.WebhookID, &d.EventType, &d.State, &d.Attempts, &d.CreatedAt, &d.NextAttemptAt,
			&d.LastAttemptAt, &d.LastStatus, &d.LastError, &d.DeliveredAt)
		return d, err
	})
}

// Summary is the deliveries as `projections status` shows them.
type Summary struct {
	Pending int64 `json:"pending"`
	// Retrying are pending deliveries that failed at least once.
	Retrying  int64 `json:"retrying"`
	Delivered int64 `json:"delivered"`
	Dead      int64 `json:"dead"`
	// DisabledEndpoints are the endpoints disabled (by an administrator or
	// after persistent failure), not deleted.
	DisabledEndpoints int64 `json:"disabled_endpoints"`
	// DeadLetters are the most recent dead deliveries (at most 20).
	DeadLetters []DeadLetter `json:"dead_letters"`
}

// DeadLetter is a delivery given up on.
type DeadLetter struct {
	WebhookID uuid.UUID `json:"webhook_id"`
	EventID   uuid.UUID `json:"event_id"`
	EventType string    `json:"event_type"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	CreatedAt time.Time `json:"created_at"`
}

// Summarize counts the deliveries by state. Tables not created yet (the
// policy never ran) are empty.
func Summarize(ctx context.Context, q Querier) (Summary, error) {
	s := Summary{DeadLetters: []DeadLetter{}}
	err := q.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'pending' AND attempts > 0),
	count(*) FILTER (WHERE state = 'delivered'), count(*) FILTER (WHERE state = 'dead'),
	(SELECT count(*) FROM `+EndpointsTable+` WHERE NOT enabled AND NOT deleted) FROM `+DeliveriesTable).
		Scan(&s.Pending, &s.Retrying, &s.Delivered, &s.Dead, &s.DisabledEndpoints)
	if undefinedTable(err) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("webhooks: summarize: %w", err)
	}
	rows, err := q.Query(ctx, `SELECT webhook_id, event_id, event_type, attempts, COALESCE(last_error, ''), created_at FROM `+DeliveriesTable+`
	WHERE state = 'dead' ORDER BY created_at DESC LIMIT 20`)
	if err != nil {
		return s, fmt.Errorf("webhooks: dead letters: %w", err)
	}
	s.DeadLetters, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeadLetter, error) {
		var d DeadLetter
		err := r.Scan(&d.WebhookID, &d.EventID, &d.EventType, &d.Attempts, &d.LastError, &d.CreatedAt)
		return d, err
	})
	if err != nil {
		return s, fmt.Errorf("webhooks: dead letters: %w", err)
	}
	return s, nil
}

// Endpoints lists the endpoints not deleted, oldest first, as the policy
// has folded them (a read model: send the X-Consistency-Token of a change
// to see it).
func Endpoints(ctx context.Context, q Querier) ([]webhook.View, error) {
	rows, err := q.Query(ctx, `SELECT webhook_id, url, event_types, description, secret_version, registered_by, created_at,
	enabled, COALESCE(disabled_reason, ''), disabled_at, previous_secret_until FROM `+EndpointsTable+` WHERE NOT deleted ORDER BY created_at, webhook_id`)
	if undefinedTable(err) {
		return []webhook.View{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("webhooks: endpoints: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (webhook.View, error) {
		var v webhook.View
		err := r.Scan(&v.ID, &v.URL, &v.EventTypes, &v.Description, &v.SecretVersion, &v.RegisteredBy, &v.CreatedAt,
			&v.Enabled, &v.DisabledReason, &v.DisabledAt, &v.PreviousSecretValidUntil)
		return v, err
	})
}

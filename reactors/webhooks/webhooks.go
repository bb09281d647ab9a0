// Package webhooks is the webhook reactor: the public events (publicevents)
// that registered endpoints asked for become delivery rows, and a
// deliverer posts them, signed (Standard Webhooks, notify/webhook), at
// least once, retried on a schedule of about a day, then dead-lettered;
// an endpoint whose deliveries keep failing is disabled, with the reason,
// through its stream.
//
// Two halves, as the outbox (reactors/outbox, docs/adr/0031):
//
//   - The policy (New) runs under the projection runner like a read
//     model. It keeps webhook_endpoints (the endpoints' state, folded from
//     their streams) and inserts, in the same transaction as its
//     checkpoint, one row per (endpoint, event) into webhook_deliveries
//     for every enabled endpoint subscribed to the event's public type,
//     with the CloudEvents JSON the endpoint will receive. The key makes a
//     replayed event insert nothing. Events are matched against the
//     endpoints as they were at that point of the log: an endpoint gets
//     the events recorded after its registration, and none while it is
//     disabled.
//   - The deliverer (Deliverer.Run, in every serve process) leases due
//     rows in one short statement, posts them outside any transaction,
//     and records the outcome on the row. Delivery attempts are
//     operational state, not events (docs/adr/0033).
package webhooks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/domain/webhook"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/publicevents"
)

// Name is the policy's checkpoint name (renaming it would fold the
// endpoints again and insert every delivery since anew).
const Name = "webhooks"

// The policy's tables (views over the current generation).
const (
	EndpointsTable  = "webhook_endpoints"
	DeliveriesTable = "webhook_deliveries"
)

// Delivery states.
const (
	StatePending   = "pending"
	StateDelivered = "delivered"
	StateDead      = "dead"
)

// Filter selects the endpoints' events and every published event.
func Filter() eventstore.Filter {
	types := publicevents.Published()
	for _, e := range webhook.AllEvents() {
		types = append(types, e.EventName())
	}
	return eventstore.Filter{EventTypes: slices.Sorted(slices.Values(types))}
}

// Descriptor is the policy as `projections status` reads it.
func Descriptor() projector.Projection { return projector.Descriptor(Name, Filter()) }

// New returns the policy; mapper makes the public events it delivers.
func New(mapper *publicevents.Mapper) (projector.Projection, error) {
	if mapper == nil {
		return nil, errors.New("webhooks: the policy needs a public event mapper")
	}
	reg := events.NewRegistry()
	if err := webhook.RegisterEvents(reg); err != nil {
		return nil, err
	}
	return &policy{reg: reg, mapper: mapper}, nil
}

type policy struct {
	reg    *events.Registry
	mapper *publicevents.Mapper
}

func (*policy) Name() string              { return Name }
func (*policy) Filter() eventstore.Filter { return Filter() }
func (*policy) Tables() []string          { return []string{EndpointsTable, DeliveriesTable} }

func (*policy) CreateTables(ctx context.Context, tx pgx.Tx, t projector.Tables) error {
	_, err := tx.Exec(ctx, fmt.Sprintf(`
CREATE TABLE %[1]s (
	webhook_id      uuid        PRIMARY KEY,
	url             text        NOT NULL,
	event_types     text[]      NOT NULL,
	description     text        NOT NULL,
	secret_version  integer     NOT NULL,
	-- After a rotation, the previous version signs too until then.
	previous_secret_until timestamptz,
	registered_by   uuid        NOT NULL,
	created_at      timestamptz NOT NULL,
	enabled         boolean     NOT NULL,
	disabled_reason text,
	disabled_at     timestamptz,
	deleted         boolean     NOT NULL DEFAULT false,
	-- The log position of the registration: a replay of an event before it
	-- finds the row already there, and must not deliver to it.
	registered_commit  numeric(20) NOT NULL,
	registered_prepare numeric(20) NOT NULL
);
CREATE TABLE %[2]s (
	webhook_id      uuid        NOT NULL,
	event_id        uuid        NOT NULL,
	event_type      text        NOT NULL,
	payload         bytea       NOT NULL,
	created_at      timestamptz NOT NULL,
	state           text        NOT NULL DEFAULT 'pending',
	attempts        integer     NOT NULL DEFAULT 0,
	next_attempt_at timestamptz NOT NULL,
	lease_until     timestamptz,
	last_attempt_at timestamptz,
	last_status     integer,
	last_error      text,
	delivered_at    timestamptz,
	PRIMARY KEY (webhook_id, event_id)
);
CREATE INDEX %[3]s ON %[2]s (next_attempt_at) WHERE state = 'pending';
CREATE INDEX %[4]s ON %[2]s (webhook_id, created_at DESC);`,
		t.Ident(EndpointsTable), t.Ident(DeliveriesTable),
		pgx.Identifier{t.Name(DeliveriesTable) + "_due"}.Sanitize(), pgx.Identifier{t.Name(DeliveriesTable) + "_by_endpoint"}.Sanitize()))
	return err
}

func (p *policy) Begin(_ context.Context, tx pgx.Tx, t projector.Tables) (projector.Batch, error) {
	return &batch{p: p, tx: tx, endpoints: t.Ident(EndpointsTable), deliveries: t.Ident(DeliveriesTable)}, nil
}

type batch struct {
	p                     *policy
	tx                    pgx.Tx
	endpoints, deliveries string
}

func (b *batch) Apply(ctx context.Context, ev eventstore.RecordedEvent) error {
	if publicevents.IsPublished(ev.Type) {
		return b.deliver(ctx, ev)
	}
	decoded, err := b.p.reg.Decode(ev.Type, ev.Data)
	if err != nil {
		return fmt.Errorf("webhooks: decode %s: %w", ev.Type, err)
	}
	switch e := decoded.(type) {
	case webhook.Registered:
		// A replay folds the endpoint again from its registration, so that
		// each event meets the endpoint as it was at that point of the log
		// (not as it is now: a disabled spell would be delivered).
		_, err = b.tx.Exec(ctx, `INSERT INTO `+b.endpoints+` (webhook_id, url, event_types, description, secret_version, registered_by, created_at, enabled,
	registered_commit, registered_prepare)
VALUES ($1, $2, $3, $4, $5, $6, $7, true, $8, $9)
ON CONFLICT (webhook_id) DO UPDATE SET enabled = true, disabled_reason = NULL, disabled_at = NULL, deleted = false,
	secret_version = EXCLUDED.secret_version, previous_secret_until = NULL`,
			e.WebhookID, e.URL, e.EventTypes, e.Description, e.SecretVersion, e.RegisteredBy, e.RegisteredAt,
			strconv.FormatUint(ev.Position.Commit, 10), strconv.FormatUint(ev.Position.Prepare, 10))
	case webhook.Disabled:
		_, err = b.tx.Exec(ctx, `UPDATE `+b.endpoints+` SET enabled = false, disabled_reason = $2, disabled_at = $3 WHERE webhook_id = $1`,
			e.WebhookID, e.Reason, e.DisabledAt)
	case webhook.Enabled:
		_, err = b.tx.Exec(ctx, `UPDATE `+b.endpoints+` SET enabled = true, disabled_reason = NULL, disabled_at = NULL WHERE webhook_id = $1 AND NOT deleted`,
			e.WebhookID)
	case webhook.Deleted:
		_, err = b.tx.Exec(ctx, `UPDATE `+b.endpoints+` SET enabled = false, deleted = true WHERE webhook_id = $1`, e.WebhookID)
	case webhook.SecretRotated:
		_, err = b.tx.Exec(ctx, `UPDATE `+b.endpoints+` SET secret_version = $2, previous_secret_until = $3 WHERE webhook_id = $1`,
			e.WebhookID, e.SecretVersion, e.PreviousValidUntil)
	}
	return err
}

// deliver inserts a delivery of ev for every enabled endpoint that asked
// for its public type.
func (b *batch) deliver(ctx context.Context, ev eventstore.RecordedEvent) error {
	out, ok, err := b.p.mapper.Map(ev)
	if err != nil || !ok {
		return err
	}
	payload, err := out.MarshalJSON()
	if err != nil {
		return fmt.Errorf("webhooks: encode %s: %w", ev.ID, err)
	}
	_, err = b.tx.Exec(ctx, `INSERT INTO `+b.deliveries+` (webhook_id, event_id, event_type, payload, created_at, next_attempt_at)
SELECT webhook_id, $1, $2, $3, $4, $4 FROM `+b.endpoints+`
WHERE enabled AND $2 = ANY(event_types) AND (registered_commit, registered_prepare) < ($5::numeric, $6::numeric)
ON CONFLICT (webhook_id, event_id) DO NOTHING`, ev.ID, out.Type(), payload, ev.RecordedAt.UTC(),
		strconv.FormatUint(ev.Position.Commit, 10), strconv.FormatUint(ev.Position.Prepare, 10))
	return err
}

func (*batch) Flush(context.Context) error { return nil }

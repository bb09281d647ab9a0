package webhooks_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/domain/webhook"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/publicevents"
	"github.com/authledger/authledger/reactors/webhooks"
)

// Each event makes one delivery per enabled endpoint that asked for its
// type, as the endpoints were at that point of the log, however often the
// log is delivered to the policy (a replay from the start inserts
// nothing).
func TestOneDeliveryPerEndpointAndEventAcrossReplays(t *testing.T) {
	t.Parallel()
	env := projtest.New(t)
	ctx := context.Background()
	now := time.Now().UTC()
	appendEv := func(stream string, data any, typ string) eventstore.Position {
		res, err := env.Store.Append(ctx, stream, eventstore.Any{}, projtest.Event(typ, data, "admin"))
		if err != nil {
			t.Fatal(err)
		}
		return res.Position
	}
	created := publicevents.Type(task.EventCreated)
	taskCreated := func() eventstore.Position {
		id := uuid.New()
		return appendEv(task.StreamName(id), task.Created{TaskID: id, OwnerID: id, MaxAttempts: 3, CreatedAt: now}, task.EventCreated)
	}
	register := func(types ...string) uuid.UUID {
		id := uuid.New()
		appendEv(webhook.StreamName(id), webhook.Registered{WebhookID: id, URL: "https://a.example/", EventTypes: types, SecretVersion: 1, RegisteredAt: now}, webhook.EventRegistered)
		return id
	}

	taskCreated() // before any endpoint: for none
	all := register(created)
	other := register(publicevents.Type("user.registered.v1"))
	paused := register(created)
	taskCreated() // all, paused
	appendEv(webhook.StreamName(paused), webhook.Disabled{WebhookID: paused, Reason: "r", DisabledAt: now}, webhook.EventDisabled)
	taskCreated() // all
	appendEv(webhook.StreamName(paused), webhook.Enabled{WebhookID: paused, EnabledAt: now}, webhook.EventEnabled)
	appendEv(webhook.StreamName(all), webhook.Deleted{WebhookID: all, DeletedAt: now}, webhook.EventDeleted)
	last := taskCreated() // paused

	count := func() map[uuid.UUID]int {
		rows, err := env.Admin.Query(ctx, `SELECT webhook_id, count(*) FROM `+webhooks.DeliveriesTable+` GROUP BY webhook_id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[uuid.UUID]int{}
		for rows.Next() {
			var id uuid.UUID
			var n int
			if err := rows.Scan(&id, &n); err != nil {
				t.Fatal(err)
			}
			out[id] = n
		}
		return out
	}
	mapper, err := publicevents.NewMapper("https://test.example")
	if err != nil {
		t.Fatal(err)
	}
	policy, err := webhooks.New(mapper)
	if err != nil {
		t.Fatal(err)
	}
	stop := env.Run(t, policy)
	env.WaitCaughtUp(t, ctx, last, webhooks.Name)
	stop()
	check := func(when string) {
		got := count()
		if len(got) != 2 || got[all] != 2 || got[paused] != 2 || got[other] != 0 {
			t.Fatalf("%s: deliveries %v (all %s, paused %s)", when, got, all, paused)
		}
	}
	check("first run")
	if _, err := env.Admin.Exec(ctx, `UPDATE projection_checkpoints SET position = DEFAULT, events_applied = 0 WHERE name = $1`, webhooks.Name); err != nil {
		t.Fatal(err)
	}
	env.Run(t, policy)
	env.WaitCaughtUp(t, ctx, last, webhooks.Name)
	check("after a replay")
	s, err := webhooks.Summarize(ctx, env.Admin)
	if err != nil || s.Pending != 4 || s.Dead != 0 || s.DisabledEndpoints != 0 {
		t.Fatalf("summary %+v %v", s, err)
	}
}

package webhooks_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/domain/webhook"
	"github.com/authledger/authledger/eventstore"
	notify "github.com/authledger/authledger/notify/webhook"
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

// A deliverer stopped while a receiver has not answered gives the row
// back, its attempt uncounted and its lease cleared, instead of burning
// an attempt and leaving it leased.
func TestStoppedDelivererReleasesItsRows(t *testing.T) {
	t.Parallel()
	env := projtest.New(t)
	ctx := context.Background()
	arrived, hold := make(chan struct{}, 1), make(chan struct{})
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		select { // no answer until the client gives up or the test ends
		case <-r.Context().Done():
		case <-hold:
		}
	}))
	defer rc.Close()
	defer close(hold)
	id := uuid.New()
	now := time.Now().UTC()
	if _, err := env.Store.Append(ctx, webhook.StreamName(id), eventstore.NoStream{}, projtest.Event(webhook.EventRegistered,
		webhook.Registered{WebhookID: id, URL: rc.URL, EventTypes: []string{publicevents.Type(task.EventCreated)}, SecretVersion: 1, RegisteredAt: now}, "admin")); err != nil {
		t.Fatal(err)
	}
	tid := uuid.New()
	res, err := env.Store.Append(ctx, task.StreamName(tid), eventstore.NoStream{}, projtest.Event(task.EventCreated,
		task.Created{TaskID: tid, OwnerID: tid, MaxAttempts: 3, CreatedAt: now}, "u"))
	if err != nil {
		t.Fatal(err)
	}
	mapper, _ := publicevents.NewMapper("https://test.example")
	policy, _ := webhooks.New(mapper)
	env.Run(t, policy)
	env.WaitCaughtUp(t, ctx, res.Position, webhooks.Name)

	allow, _ := notify.ParseAllowlist("127.0.0.1")
	secrets, _ := notify.NewSecrets(make([]byte, 32))
	d, err := webhooks.NewDeliverer(webhooks.DeliveryConfig{Pool: env.Pool, Client: notify.NewClient(notify.ClientConfig{Allow: allow}), Secrets: secrets,
		Disable: func(context.Context, uuid.UUID, string) error { t.Error("disabled"); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() { n, _ := d.DeliverDue(runCtx); done <- n }()
	<-arrived
	stop()
	if n := <-done; n != 1 {
		t.Fatalf("leased %d rows", n)
	}
	var attempts int
	var leased bool
	var state string
	if err := env.Admin.QueryRow(ctx, `SELECT attempts, lease_until IS NOT NULL, state FROM `+webhooks.DeliveriesTable+` WHERE webhook_id = $1`, id).
		Scan(&attempts, &leased, &state); err != nil {
		t.Fatal(err)
	}
	if attempts != 0 || leased || state != webhooks.StatePending {
		t.Fatalf("after a stopped round: attempts %d, leased %v, state %s", attempts, leased, state)
	}
}

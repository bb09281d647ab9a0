package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/bench/loadgen"
	"github.com/authledger/authledger/domain/webhook"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/eventstore/pg"
	notify "github.com/authledger/authledger/notify/webhook"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/publicevents"
	"github.com/authledger/authledger/reactors/webhooks"
)

// Webhooks measures webhook deliveries to a receiver on loopback (an
// httptest server answering 204, allowlisted): the policy making one
// delivery row per event from the log (cfg.WebhookDeliveries
// task.created.v1 events, one endpoint), the deliverer posting them
// signed with 8 and with 1 in flight, and, as the baseline, the same
// client posting the same signed body without the table in between.
func Webhooks(ctx context.Context, w io.Writer, store *pg.Store, cfg Config) (err error) {
	cfg = cfg.withDefaults()
	var got atomic.Int64
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rc.Close()
	allow, err := notify.ParseAllowlist("127.0.0.1")
	if err != nil {
		return err
	}
	client := notify.NewClient(notify.ClientConfig{Allow: allow, Timeout: 10 * time.Second})
	defer client.Close()
	secrets, err := notify.NewSecrets([]byte(strings.Repeat("b", 32)))
	if err != nil {
		return err
	}
	mapper, err := publicevents.NewMapper("https://bench.example.test")
	if err != nil {
		return err
	}
	policy, err := webhooks.New(mapper)
	if err != nil {
		return err
	}

	fmt.Fprintln(w, "\n## Webhooks (deliveries to a loopback receiver)")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "row\tdeliveries\tdeliveries/s\tp50\tp99\t")

	endpoint := uuid.New()
	name, data, err := events.Encode(webhook.Registered{WebhookID: endpoint, URL: rc.URL + "/hook", EventTypes: []string{publicevents.Type("task.created.v1")},
		SecretVersion: 1, RegisteredBy: endpoint, RegisteredAt: time.Now().UTC()})
	if err != nil {
		return err
	}
	if _, err := store.Append(ctx, webhook.StreamName(endpoint), eventstore.NoStream{}, eventstore.EventData{ID: uuid.New(), Type: name, Data: data, Metadata: payload}); err != nil {
		return fmt.Errorf("bench: webhooks: register: %w", err)
	}
	var head eventstore.Position
	for range cfg.WebhookDeliveries {
		if head, err = appendTaskCreated(ctx, store); err != nil {
			return fmt.Errorf("bench: webhooks: fill: %w", err)
		}
	}
	n := cfg.WebhookDeliveries

	r, err := projector.NewRunner(projector.Config{Store: store, Pool: store.Pool(), Projections: []projector.Projection{policy}})
	if err != nil {
		return err
	}
	rctx, stopRunner := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- r.Run(rctx) }()
	defer func() {
		stopRunner()
		if runErr := <-done; runErr != nil && err == nil {
			err = fmt.Errorf("bench: webhooks: runner: %w", runErr)
		}
	}()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Minute)
	err = projector.NewWaiter(store.Pool(), r, 0).WaitFor(wctx, head, webhooks.Name)
	wcancel()
	if err != nil {
		return fmt.Errorf("bench: webhooks: policy catch-up: %w", err)
	}
	fmt.Fprintf(tw, "policy: delivery rows made from the log (1 endpoint)\t%d\t%.0f\t\t\t\n", n, float64(n)/time.Since(start).Seconds())

	for _, inFlight := range []int{8, 1} {
		if _, err := store.Pool().Exec(ctx, `UPDATE `+webhooks.DeliveriesTable+` SET state = 'pending', attempts = 0, next_attempt_at = now() - interval '1 second', lease_until = NULL`); err != nil {
			return err
		}
		d, err := webhooks.NewDeliverer(webhooks.DeliveryConfig{Pool: store.Pool(), Client: client, Secrets: secrets, Concurrency: inFlight, Batch: 64,
			Disable: func(context.Context, uuid.UUID, string) error { return errors.New("bench: a delivery failed for good") }})
		if err != nil {
			return err
		}
		before := got.Load()
		start := time.Now()
		for {
			leased, err := d.DeliverDue(ctx)
			if err != nil {
				return fmt.Errorf("bench: webhooks: deliver: %w", err)
			}
			if leased == 0 {
				break
			}
		}
		elapsed := time.Since(start)
		var delivered int
		if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM `+webhooks.DeliveriesTable+` WHERE state = 'delivered'`).Scan(&delivered); err != nil {
			return err
		}
		if delivered != n || got.Load()-before != int64(n) {
			return fmt.Errorf("bench: webhooks: %d of %d delivered, the receiver got %d", delivered, n, got.Load()-before)
		}
		fmt.Fprintf(tw, "deliverer: signed POSTs, %d in flight (lease, post, settle)\t%d\t%.0f\t\t\t\n", inFlight, n, float64(n)/elapsed.Seconds())
	}

	body := []byte(`{"specversion":"1.0","id":"x","source":"https://bench.example.test","type":"authledger.task.created.v1"}`)
	secret := secrets.Derive(endpoint, 1)
	base, err := loadgen.Run(ctx, 8, cfg.RowDuration, func(ctx context.Context, _, _ int) error {
		return client.Post(ctx, notify.Delivery{URL: rc.URL + "/hook", ID: uuid.NewString(), At: time.Now(), Secret: secret, Body: body}).Err
	})
	if err != nil {
		return fmt.Errorf("bench: webhooks: baseline: %w", err)
	}
	fmt.Fprintf(tw, "plain signed POST, same client, 8 clients (baseline)\t%d\t%.0f\t%s\t%s\t\n", base.Ops, base.PerSecond(), ms(base.P50), ms(base.P99))
	return tw.Flush()
}

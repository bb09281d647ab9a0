package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/notify/webhook"
)

// DefaultSchedule is the wait before each retry after a failed attempt:
// eight attempts over about 28 hours (the first at once), then the
// delivery is dead. Each wait is jittered by ±20 %.
var DefaultSchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// Disabler disables an endpoint through its stream (the command), with
// the reason its owner will see.
type Disabler func(ctx context.Context, webhookID uuid.UUID, reason string) error

// DeliveryConfig configures the deliverer.
type DeliveryConfig struct {
	Pool    *pgxpool.Pool
	Client  *webhook.Client
	Secrets *webhook.Secrets
	Disable Disabler
	// Schedule is the wait before each retry (DefaultSchedule when nil);
	// a delivery gets len(Schedule)+1 attempts.
	Schedule []time.Duration
	// Concurrency is how many deliveries are in flight at once (8 when 0).
	Concurrency int
	// Batch is how many due rows one round leases (64 when 0).
	Batch int
	// Poll is how often due rows are looked for (1s when 0).
	Poll time.Duration
	// Lease is how long an attempt may take before another deliverer may
	// take the row (2m when 0; longer than the client's timeout).
	Lease time.Duration
	// Now is the clock (nil: time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Validate reports every problem at once.
func (c DeliveryConfig) Validate() error {
	var errs []error
	if c.Pool == nil || c.Client == nil || c.Secrets == nil || c.Disable == nil {
		errs = append(errs, errors.New("webhooks: the deliverer needs a pool, a client, the secrets and a disabler"))
	}
	for _, d := range c.Schedule {
		if d <= 0 {
			errs = append(errs, errors.New("webhooks: every wait of the retry schedule must be positive"))
			break
		}
	}
	if c.Concurrency < 0 || c.Batch < 0 || c.Poll < 0 || c.Lease < 0 {
		errs = append(errs, errors.New("webhooks: concurrency, batch, poll and lease must not be negative"))
	}
	return errors.Join(errs...)
}

// Deliverer posts the due deliveries.
type Deliverer struct {
	c    DeliveryConfig
	wake chan struct{}
}

// NewDeliverer validates c and fills in its defaults.
func NewDeliverer(c DeliveryConfig) (*Deliverer, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Schedule == nil {
		c.Schedule = DefaultSchedule
	}
	if c.Concurrency == 0 {
		c.Concurrency = 8
	}
	if c.Batch == 0 {
		c.Batch = 64
	}
	if c.Poll == 0 {
		c.Poll = time.Second
	}
	if c.Lease == 0 {
		c.Lease = 2 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Deliverer{c: c, wake: make(chan struct{}, 1)}, nil
}

// Wake makes Run look for due rows now (a resend).
func (d *Deliverer) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends. A database outage is logged and waited
// out; it never stops the loop.
func (d *Deliverer) Run(ctx context.Context) error {
	t := time.NewTicker(d.c.Poll)
	defer t.Stop()
	for {
		n, err := d.DeliverDue(ctx)
		if err != nil && ctx.Err() == nil {
			d.c.Logger.Warn("webhooks: delivery round failed; retrying", slog.String("error", err.Error()))
		}
		if n == d.c.Batch {
			continue // more are due
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-d.wake:
		}
	}
}

// leased is a row this deliverer holds.
type leased struct {
	webhookID     uuid.UUID
	eventID       uuid.UUID
	payload       []byte
	createdAt     time.Time
	attempts      int
	url           string
	secretVersion int
	// previousUntil: the previous secret version signs too until then.
	previousUntil *time.Time
}

// DeliverDue posts the deliveries due now (at most Batch, Concurrency at
// once) and returns how many it leased.
func (d *Deliverer) DeliverDue(ctx context.Context) (int, error) {
	now := d.c.Now().UTC()
	rows, err := d.c.Pool.Query(ctx, `UPDATE `+DeliveriesTable+` d SET lease_until = $2, attempts = d.attempts + 1, last_attempt_at = $1
FROM `+EndpointsTable+` e
WHERE e.webhook_id = d.webhook_id AND (d.webhook_id, d.event_id) IN (
	SELECT x.webhook_id, x.event_id FROM `+DeliveriesTable+` x JOIN `+EndpointsTable+` y ON y.webhook_id = x.webhook_id
	WHERE x.state = 'pending' AND x.next_attempt_at <= $1 AND (x.lease_until IS NULL OR x.lease_until < $1) AND y.enabled
	ORDER BY x.next_attempt_at LIMIT $3 FOR UPDATE OF x SKIP LOCKED)
RETURNING d.webhook_id, d.event_id, d.payload, d.created_at, d.attempts, e.url, e.secret_version, e.previous_secret_until`, now, now.Add(d.c.Lease), d.c.Batch)
	if err != nil {
		return 0, fmt.Errorf("webhooks: lease: %w", err)
	}
	due, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (leased, error) {
		var l leased
		err := r.Scan(&l.webhookID, &l.eventID, &l.payload, &l.createdAt, &l.attempts, &l.url, &l.secretVersion, &l.previousUntil)
		return l, err
	})
	if err != nil {
		return 0, fmt.Errorf("webhooks: lease: %w", err)
	}
	// Outcomes are recorded even when ctx ends meanwhile: a post that got
	// its answer must not be posted again for want of an UPDATE.
	settleCtx := context.WithoutCancel(ctx)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		errs      []error
		delivered []leased
		statuses  []int
		slots     = make(chan struct{}, d.c.Concurrency)
	)
	for _, l := range due {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			at := d.c.Now()
			delivery := webhook.Delivery{URL: l.url, ID: l.eventID.String(), At: at, Secret: d.c.Secrets.Derive(l.webhookID, l.secretVersion), Body: l.payload}
			if l.previousUntil != nil && at.Before(*l.previousUntil) && l.secretVersion > 1 {
				delivery.Also = []webhook.Secret{d.c.Secrets.Derive(l.webhookID, l.secretVersion-1)}
			}
			out := d.c.Client.Post(ctx, delivery)
			if out.Err != nil && ctx.Err() != nil {
				// Shutting down: not the receiver's failure. Give the row back
				// (its attempt uncounted) rather than leave it leased.
				d.release(l)
				return
			}
			if out.Err == nil {
				mu.Lock()
				delivered, statuses = append(delivered, l), append(statuses, out.Status)
				mu.Unlock()
				return
			}
			if err := d.settleFailure(settleCtx, l, out); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := d.settleDelivered(settleCtx, delivered, statuses); err != nil {
		errs = append(errs, err)
	}
	return len(due), errors.Join(errs...)
}

// release gives back a row leased by a round that was stopped, its
// attempt not counted, so that the next deliverer takes it at once.
func (d *Deliverer) release(l leased) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := d.c.Pool.Exec(ctx, `UPDATE `+DeliveriesTable+` SET attempts = attempts - 1, lease_until = NULL
WHERE webhook_id = $1 AND event_id = $2 AND state = 'pending'`, l.webhookID, l.eventID); err != nil {
		d.c.Logger.Warn("webhooks: could not release a delivery; its lease will run out", slog.String("event_id", l.eventID.String()), slog.String("error", err.Error()))
	}
}

// settleDelivered marks a round's successful deliveries in one statement:
// one commit per round rather than per delivery. A process that dies
// before it leaves them leased; they are posted again when the lease runs
// out (at least once, with the same webhook-id).
func (d *Deliverer) settleDelivered(ctx context.Context, done []leased, statuses []int) error {
	if len(done) == 0 {
		return nil
	}
	hooks, ids := make([]uuid.UUID, len(done)), make([]uuid.UUID, len(done))
	for i, l := range done {
		hooks[i], ids[i] = l.webhookID, l.eventID
	}
	_, err := d.c.Pool.Exec(ctx, `UPDATE `+DeliveriesTable+` d SET state = 'delivered', delivered_at = $1, lease_until = NULL, last_status = u.status, last_error = NULL
FROM unnest($2::uuid[], $3::uuid[], $4::integer[]) AS u(webhook_id, event_id, status)
WHERE d.webhook_id = u.webhook_id AND d.event_id = u.event_id`, d.c.Now().UTC(), hooks, ids, statuses)
	if err != nil {
		return fmt.Errorf("webhooks: settle %d deliveries: %w", len(done), err)
	}
	return nil
}

// settleFailure records a failed attempt on the row it leased: due
// again after the schedule's next wait, or dead, and then the endpoint
// disabled when the delivery is the sign of a persistent failure.
func (d *Deliverer) settleFailure(ctx context.Context, l leased, out webhook.Outcome) error {
	now := d.c.Now().UTC()
	var status *int
	if out.Status != 0 {
		status = &out.Status
	}
	msg := short(out.Err.Error())
	refused := webhook.Refused(out.Err)
	attrs := []any{slog.String("webhook_id", l.webhookID.String()), slog.String("event_id", l.eventID.String()),
		slog.Int("attempts", l.attempts), slog.String("error", msg)}
	if !refused && l.attempts <= len(d.c.Schedule) {
		wait := jitter(d.c.Schedule[l.attempts-1])
		d.c.Logger.Warn("webhooks: delivery failed; will retry", append(attrs, slog.Duration("retry_in", wait))...)
		_, err := d.c.Pool.Exec(ctx, `UPDATE `+DeliveriesTable+` SET next_attempt_at = $3, lease_until = NULL, last_status = $4, last_error = $5
WHERE webhook_id = $1 AND event_id = $2`, l.webhookID, l.eventID, now.Add(wait), status, msg)
		if err != nil {
			return fmt.Errorf("webhooks: settle %s: %w", l.eventID, err)
		}
		return nil
	}
	d.c.Logger.Error("webhooks: delivery dead-lettered", attrs...)
	if _, err := d.c.Pool.Exec(ctx, `UPDATE `+DeliveriesTable+` SET state = 'dead', lease_until = NULL, last_status = $3, last_error = $4
WHERE webhook_id = $1 AND event_id = $2`, l.webhookID, l.eventID, status, msg); err != nil {
		return fmt.Errorf("webhooks: settle %s: %w", l.eventID, err)
	}
	// Persistent failure: an address refused (every delivery would be),
	// or a delivery that failed for its whole schedule while nothing
	// reached the endpoint since it was made (an endpoint that still
	// takes some deliveries is flaky, not gone).
	var reason string
	if refused {
		reason = "deliveries are refused: " + msg
	} else {
		var delivered bool
		if err := d.c.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+DeliveriesTable+` WHERE webhook_id = $1 AND state = 'delivered' AND delivered_at >= $2)`,
			l.webhookID, l.createdAt).Scan(&delivered); err != nil {
			return fmt.Errorf("webhooks: settle %s: %w", l.eventID, err)
		}
		if delivered {
			return nil
		}
		reason = fmt.Sprintf("every delivery failed for %s (%d attempts of event %s); last error: %s",
			now.Sub(l.createdAt).Round(time.Second), l.attempts, l.eventID, msg)
	}
	if err := d.c.Disable(ctx, l.webhookID, reason); err != nil {
		return fmt.Errorf("webhooks: disable %s: %w", l.webhookID, err)
	}
	d.c.Logger.Error("webhooks: endpoint disabled", slog.String("webhook_id", l.webhookID.String()), slog.String("reason", reason))
	return nil
}

// jitter is d ± 20 %, so that the deliveries that failed together (an
// endpoint that was down) do not all come back at the same instant.
func jitter(d time.Duration) time.Duration {
	f := 0.8 + 0.4*rand.Float64() //nolint:gosec // spreading retries needs no secret randomness
	return time.Duration(float64(d) * f)
}

// ErrDeliveryNotFound: no delivery of that event to that endpoint.
var ErrDeliveryNotFound = errors.New("webhooks: no such delivery")

// ErrEndpointDisabled: the endpoint is disabled; enable it to resend
// (the caller checks, against the endpoint's stream).
var ErrEndpointDisabled = errors.New("webhooks: the endpoint is disabled")

// Resend makes one delivery due again now, its attempts counted anew and
// its webhook-id unchanged (a receiver de-duplicating on it sees a
// resend). A delivery in flight is left to finish.
func Resend(ctx context.Context, q Querier, webhookID, eventID uuid.UUID, now time.Time) error {
	tag, err := q.Exec(ctx, `UPDATE `+DeliveriesTable+` SET state = 'pending', attempts = 0, next_attempt_at = $3, lease_until = NULL
WHERE webhook_id = $1 AND event_id = $2 AND (lease_until IS NULL OR lease_until < $3)`, webhookID, eventID, now.UTC())
	if undefinedTable(err) {
		return ErrDeliveryNotFound
	}
	if err != nil {
		return fmt.Errorf("webhooks: resend: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var exists bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+DeliveriesTable+` WHERE webhook_id = $1 AND event_id = $2)`, webhookID, eventID).Scan(&exists); err != nil {
		return fmt.Errorf("webhooks: resend: %w", err)
	}
	if !exists {
		return ErrDeliveryNotFound
	}
	return nil // in flight now
}

// short cuts an error text for a table column.
func short(s string) string {
	if len(s) <= 500 {
		return s
	}
	return strings.ToValidUTF8(s[:500], "")
}

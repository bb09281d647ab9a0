// Package bench measures authledger on the machine it runs on and prints
// tables (throughput, p50/p99). It never asserts on speed: the figures are
// for docs/benchmarks.md, with the command that made them.
//
// Every run works in a scratch database of its own on the given server,
// created and dropped by the run, so it never touches real data.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/bench/loadgen"
	"github.com/authledger/authledger/bench/projbench"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/migrations"
)

// Config bounds a run.
type Config struct {
	// DatabaseURL names the server; the run creates its own database there.
	DatabaseURL string
	// RowDuration is how long each throughput row runs (default 3s).
	RowDuration time.Duration
	// Writers are the concurrency levels of the append rows (default 1, 8, 32).
	Writers []int
	// Sections selects what to run: "eventstore", "projections" (default
	// both), "identity", "external", "account".
	Sections []string
	// NATSURL is the nats-server of the stream section.
	NATSURL string
	// StreamEvents is how many events the stream section appends for the
	// publisher's catch-up row (default 20,000).
	StreamEvents int
	// WebhookDeliveries is how many events the webhooks section delivers
	// (default 5,000).
	WebhookDeliveries int
	// TimingTries is how many refusals of each kind the login timing row
	// of the external section makes (default 200).
	TimingTries int
}

func (c Config) withDefaults() Config {
	if c.RowDuration == 0 {
		c.RowDuration = 3 * time.Second
	}
	if len(c.Writers) == 0 {
		c.Writers = []int{1, 8, 32}
	}
	if len(c.Sections) == 0 {
		c.Sections = []string{"eventstore", "projections"}
	}
	if c.StreamEvents <= 0 {
		c.StreamEvents = 20_000
	}
	if c.WebhookDeliveries <= 0 {
		c.WebhookDeliveries = 5_000
	}
	if c.TimingTries <= 0 {
		c.TimingTries = 200
	}
	return c
}

// Run creates a scratch database, runs the selected sections and prints
// their tables to w.
func Run(ctx context.Context, w io.Writer, cfg Config) error {
	cfg = cfg.withDefaults()
	dbURL, drop, err := ScratchDatabase(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer drop()
	if err := migrations.Migrate(ctx, dbURL); err != nil {
		return fmt.Errorf("bench: migrate: %w", err)
	}
	store, err := pg.Open(ctx, pg.Config{ConnString: dbURL, MaxConns: 64})
	if err != nil {
		return fmt.Errorf("bench: open store: %w", err)
	}
	defer store.Close()
	for _, s := range cfg.Sections {
		switch s {
		case "eventstore":
			if err := EventStore(ctx, w, store, cfg); err != nil {
				return err
			}
		case "projections":
			fmt.Fprintln(w, "\n## Projections")
			if _, err := projbench.Run(ctx, projbench.Config{Store: store, Pool: store.Pool()}, w); err != nil {
				return fmt.Errorf("bench: projections: %w", err)
			}
		case "identity":
			if err := Identity(ctx, w, store, cfg); err != nil {
				return err
			}
		case "external":
			if err := External(ctx, w, store, cfg); err != nil {
				return err
			}
		case "stream":
			if err := Stream(ctx, w, store, cfg); err != nil {
				return err
			}
		case "account":
			if err := Account(ctx, w, store, cfg); err != nil {
				return err
			}
		case "webhooks":
			if err := Webhooks(ctx, w, store, cfg); err != nil {
				return err
			}
		default:
			return fmt.Errorf("bench: unknown section %q (eventstore, projections, identity, external, stream, account, webhooks)", s)
		}
	}
	return nil
}

// ScratchDatabase creates a database beside the one named by base and
// returns its URL and a function that drops it (forcing out whatever is
// still connected). Sections that assemble more than a store (the tasks
// section of `authledger bench` builds the whole service) use it too.
func ScratchDatabase(ctx context.Context, base string) (string, func(), error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" {
		return "", nil, fmt.Errorf("bench: DATABASE_URL must be a postgres:// URL")
	}
	name := "authledger_bench_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("bench: connect: %w", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("bench: create scratch database: %w", err)
	}
	u.Path = "/" + name
	drop := func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}

// result is one measured row.
type result = loadgen.Result

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

var payload = json.RawMessage(`{"user_id":"6f1c1b8e-1111-4a4a-9c9c-0123456789ab","ip":"127.0.0.1","user_agent":"bench"}`)

// EventStore prints single-event append throughput at each concurrency
// level beside a plain single-row INSERT of the same payload on the same
// server in the same run, then catch-up delivery throughput of a
// subscription over everything appended.
func EventStore(ctx context.Context, w io.Writer, store *pg.Store, cfg Config) error {
	cfg = cfg.withDefaults()
	pool := store.Pool()
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_insert (id uuid PRIMARY KEY, stream text NOT NULL, type text NOT NULL, data jsonb, metadata jsonb)`); err != nil {
		return fmt.Errorf("bench: baseline table: %w", err)
	}
	fmt.Fprintln(w, "## Event store (PostgreSQL adapter)")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "row\twriters\tops\tops/s\tp50\tp99\tstore/baseline\t")
	for _, n := range cfg.Writers {
		base, err := loadgen.Run(ctx, n, cfg.RowDuration, func(ctx context.Context, _, _ int) error {
			return insertRow(ctx, pool)
		})
		if err != nil {
			return fmt.Errorf("bench: baseline: %w", err)
		}
		app, err := loadgen.Run(ctx, n, cfg.RowDuration, func(ctx context.Context, worker, i int) error {
			_, err := store.Append(ctx, fmt.Sprintf("bench-%d-%d", worker, i/10), eventstore.Any{}, eventstore.EventData{
				ID: uuid.New(), Type: "bench.appended.v1", Data: payload, Metadata: payload,
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("bench: append: %w", err)
		}
		fmt.Fprintf(tw, "plain INSERT (baseline)\t%d\t%d\t%.0f\t%s\t%s\t\t\n", n, base.Ops, base.PerSecond(), ms(base.P50), ms(base.P99))
		fmt.Fprintf(tw, "append, 1 event\t%d\t%d\t%.0f\t%s\t%s\t%.0f%%\t\n", n, app.Ops, app.PerSecond(), ms(app.P50), ms(app.P99), 100*app.PerSecond()/base.PerSecond())
	}
	head, err := store.Head(ctx)
	if err != nil {
		return err
	}
	sub, err := subscriptionThroughput(ctx, store, head)
	if err != nil {
		return err
	}
	fmt.Fprintf(tw, "subscription catch-up\t1\t%d\t%.0f\t\t\t\t\n", sub.Ops, sub.PerSecond())
	return tw.Flush()
}

func insertRow(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, `INSERT INTO bench_insert (id, stream, type, data, metadata) VALUES ($1, $2, $3, $4, $5)`,
		uuid.New(), "bench", "bench.appended.v1", payload, payload)
	return err
}

// subscriptionThroughput delivers the whole log to one subscriber.
func subscriptionThroughput(ctx context.Context, store *pg.Store, head eventstore.Position) (result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := 0
	start := time.Now()
	err := store.Subscribe(ctx, eventstore.SubscribeOptions{}, func(_ context.Context, e eventstore.RecordedEvent) error {
		n++
		if e.Position.Compare(head) >= 0 {
			cancel()
		}
		return nil
	})
	elapsed := time.Since(start)
	if err != nil && ctx.Err() == nil {
		return result{}, fmt.Errorf("bench: subscribe: %w", err)
	}
	return result{Ops: n, Elapsed: elapsed}, nil
}

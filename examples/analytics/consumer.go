// Command analytics is an example consumer of authledger's analytics
// stream (docs/analytics.md): it reads the public events from NATS
// JetStream with a durable consumer and keeps daily logins and task
// outcomes in PostgreSQL tables.
//
// The stream is at least once: after a publisher or consumer crash an
// event may arrive again, always with the same CloudEvents id. The
// consumer records each id it counted in the same transaction as the
// counts (analytics_seen), and acknowledges the message after the commit,
// so every event is counted exactly once.
//
//	go run ./examples/analytics -nats nats://127.0.0.1:4222 -db postgres://...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Schema is the consumer's tables.
const Schema = `
CREATE TABLE IF NOT EXISTS analytics_seen (event_id uuid PRIMARY KEY, seen_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS daily_logins (day date PRIMARY KEY, logins bigint NOT NULL);
CREATE TABLE IF NOT EXISTS daily_login_users (day date NOT NULL, user_id uuid NOT NULL, PRIMARY KEY (day, user_id));
CREATE TABLE IF NOT EXISTS daily_task_outcomes (day date NOT NULL, outcome text NOT NULL, tasks bigint NOT NULL, PRIMARY KEY (day, outcome));
`

// Config names the stream and the consumer.
type Config struct {
	// Stream is the JetStream stream (AUTHLEDGER_NATS_STREAM).
	Stream string
	// SubjectPrefix is AUTHLEDGER_NATS_SUBJECT_PREFIX.
	SubjectPrefix string
	// Durable is the consumer's name: JetStream keeps its position.
	Durable string
}

// Consume reads the stream with the durable consumer and counts each
// event until ctx ends.
func Consume(ctx context.Context, js jetstream.JetStream, db *pgxpool.Pool, cfg Config) error {
	if _, err := db.Exec(ctx, Schema); err != nil {
		return fmt.Errorf("create tables: %w", err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		FilterSubject: cfg.SubjectPrefix + ".>",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 1, // one at a time: counts in stream order
	})
	if err != nil {
		return fmt.Errorf("consumer %s: %w", cfg.Durable, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return ctx.Err()
			}
			return err
		}
		var e ce.Event
		if err := e.UnmarshalJSON(msg.Data()); err != nil {
			// Not ours to count; never retried.
			_ = msg.Term()
			continue
		}
		if err := Count(ctx, db, e); err != nil {
			_ = msg.Nak()
			return err
		}
		if err := msg.Ack(); err != nil && ctx.Err() == nil {
			return err
		}
	}
}

// outcomes are the task types counted as outcomes, by public type.
var outcomes = map[string]string{
	"authledger.task.completed.v1": "completed",
	"authledger.task.failed.v1":    "failed",
	"authledger.task.cancelled.v1": "cancelled",
	"authledger.task.deleted.v1":   "deleted",
	"authledger.task.expired.v1":   "expired",
}

// Count applies one event to the tables, once per event id.
func Count(ctx context.Context, db *pgxpool.Pool, e ce.Event) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO analytics_seen (event_id) VALUES ($1) ON CONFLICT DO NOTHING`, e.ID())
		if err != nil || tag.RowsAffected() == 0 {
			return err // counted before: a republished event
		}
		day := e.Time().UTC().Format(time.DateOnly)
		switch typ := e.Type(); {
		case typ == "authledger.session.started.v1":
			var d struct {
				UserID string `json:"user_id"`
			}
			if err := e.DataAs(&d); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO daily_logins (day, logins) VALUES ($1, 1)
				ON CONFLICT (day) DO UPDATE SET logins = daily_logins.logins + 1`, day); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO daily_login_users (day, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, day, d.UserID)
			return err
		case outcomes[typ] != "":
			outcome := outcomes[typ]
			if outcome == "failed" {
				var d struct {
					Final bool `json:"final"`
				}
				if err := e.DataAs(&d); err != nil {
					return err
				}
				if !d.Final {
					return nil // retried or to be retried: not an outcome yet
				}
			}
			_, err := tx.Exec(ctx, `INSERT INTO daily_task_outcomes (day, outcome, tasks) VALUES ($1, $2, 1)
				ON CONFLICT (day, outcome) DO UPDATE SET tasks = daily_task_outcomes.tasks + 1`, day, outcome)
			return err
		}
		return nil
	})
}

func main() {
	natsURL := flag.String("nats", "nats://127.0.0.1:4222", "NATS server")
	dbURL := flag.String("db", os.Getenv("DATABASE_URL"), "PostgreSQL for the tables")
	streamName := flag.String("stream", "AUTHLEDGER", "JetStream stream (AUTHLEDGER_NATS_STREAM)")
	prefix := flag.String("subject-prefix", "authledger", "AUTHLEDGER_NATS_SUBJECT_PREFIX")
	durable := flag.String("durable", "analytics", "durable consumer name")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	nc, err := nats.Connect(*natsURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	db, err := pgxpool.New(ctx, *dbURL)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if err := Consume(ctx, js, db, Config{Stream: *streamName, SubjectPrefix: *prefix, Durable: *durable}); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

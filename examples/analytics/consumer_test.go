package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/publicevents"
	"github.com/authledger/authledger/publicevents/publiceventstest"
	"github.com/authledger/authledger/stream"
	authjs "github.com/authledger/authledger/stream/jetstream"
	"github.com/authledger/authledger/test/natstest"
	"github.com/authledger/authledger/test/pgtest"
)

// The consumer of docs/analytics.md, fed by the real publisher from events
// real commands wrote, counts the day's logins and task outcomes; read
// again from the start (a new consumer over the same tables: every event
// redelivered), it counts nothing twice.
func TestTheConsumerKeepsDailyLoginsAndTaskOutcomes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pe := projtest.New(t)
	publiceventstest.Produce(t, ctx, pe.Store, pe.Pool)
	streamName, prefix := natstest.Names(t)
	url := natstest.URL(t)
	pub, err := authjs.NewPublisher(authjs.Config{URL: url, Stream: streamName, SubjectPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	mapper, err := publicevents.NewMapper("https://id.example.test")
	if err != nil {
		t.Fatal(err)
	}
	policy, err := stream.New(stream.Config{Publisher: pub, Mapper: mapper})
	if err != nil {
		t.Fatal(err)
	}
	pe.Run(t, policy)

	db, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	log, err := pe.Store.ReadAll(ctx, eventstoreAll())
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, ev := range log {
		if publicevents.IsPublished(ev.Type) {
			want++
		}
	}
	// The publisher creates the stream with its first publish, which it
	// retries until NATS answers; the consumer expects the stream to be
	// there (an operator's or the publisher's), so wait for it.
	for {
		if _, err := js.Stream(ctx, streamName); err == nil {
			break
		} else if ctx.Err() != nil {
			t.Fatalf("the publisher never created stream %s: %v", streamName, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, durable := range []string{"analytics", "analytics-replay"} {
		cctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- Consume(cctx, js, db, Config{Stream: streamName, SubjectPrefix: prefix, Durable: durable})
		}()
		waitCounted(t, ctx, js, db, streamName, durable, want)
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		today := time.Now().UTC().Format(time.DateOnly)
		var logins, users int
		if err := db.QueryRow(ctx, `SELECT logins, (SELECT count(*) FROM daily_login_users WHERE day = $1) FROM daily_logins WHERE day = $1`, today).Scan(&logins, &users); err != nil {
			t.Fatal(err)
		}
		// Produce logs in twice (a refused attempt is not a login).
		if logins != 2 || users != 1 {
			t.Errorf("%s: logins %d by %d users, want 2 by 1", durable, logins, users)
		}
		got := map[string]int{}
		rows, err := db.Query(ctx, `SELECT outcome, tasks FROM daily_task_outcomes WHERE day = $1`, today)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var o string
			var n int
			if err := rows.Scan(&o, &n); err != nil {
				t.Fatal(err)
			}
			got[o] = n
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		// The failed task that was retried is no outcome.
		wantOutcomes := map[string]int{"completed": 1, "failed": 1, "cancelled": 1, "deleted": 1, "expired": 1}
		for o, n := range wantOutcomes {
			if got[o] != n {
				t.Errorf("%s: outcomes %v, want %v", durable, got, wantOutcomes)
				break
			}
		}
	}
}

// waitCounted waits until the durable consumer has acknowledged every
// message of the stream, and checks that the tables saw want event ids.
func waitCounted(t *testing.T, ctx context.Context, js jetstream.JetStream, db *pgxpool.Pool, streamName, durable string, want int) {
	t.Helper()
	for {
		st, err := js.Stream(ctx, streamName)
		if err != nil {
			t.Fatal(err)
		}
		si, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c, err := js.Consumer(ctx, streamName, durable)
		if err == nil {
			ci, err := c.Info(ctx)
			if err == nil && si.State.Msgs == uint64(want) && ci.AckFloor.Stream == si.State.LastSeq {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: the consumer never acknowledged the %d events", durable, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var seen int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM analytics_seen`).Scan(&seen); err != nil || seen != want {
		t.Fatalf("%s: %d event ids seen (%v), %d published", durable, seen, err, want)
	}
}

func eventstoreAll() eventstore.ReadAllOptions { return eventstore.ReadAllOptions{Limit: 100000} }

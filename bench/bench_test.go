package bench_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/authledger/authledger/bench"
	"github.com/authledger/authledger/test/natstest"
	"github.com/authledger/authledger/test/pgtest"
)

// TestEventStoreTable runs a short event store section end to end: it must
// print every row of the table. It says nothing about speed.
func TestEventStoreTable(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := bench.Run(t.Context(), &out, bench.Config{
		DatabaseURL: pgtest.BaseURL(t),
		RowDuration: 200 * time.Millisecond,
		Writers:     []int{1, 4},
		Sections:    []string{"eventstore"},
	})
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	got := out.String()
	t.Log("\n" + got)
	for _, want := range []string{"plain INSERT (baseline)", "append, 1 event", "subscription catch-up", "p99", "store/baseline"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if n := strings.Count(got, "append, 1 event"); n != 2 {
		t.Errorf("append rows: got %d, want one per writer level (2)", n)
	}
}

// TestStreamTable runs a short stream section against the run's
// nats-server: every row printed. It says nothing about speed.
func TestStreamTable(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := bench.Run(t.Context(), &out, bench.Config{
		DatabaseURL:  pgtest.BaseURL(t),
		NATSURL:      natstest.URL(t),
		RowDuration:  300 * time.Millisecond,
		StreamEvents: 300,
		Sections:     []string{"stream"},
	})
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	got := out.String()
	t.Log("\n" + got)
	for _, want := range []string{"log append", "publisher catch-up", "plain JetStream publish", "lag append → subscriber at 500 appends/s", "p99"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q", want)
		}
	}
}

// TestWebhooksTable runs a short webhooks section against a loopback
// receiver: every row printed (the section itself fails unless every
// delivery reached the receiver). It says nothing about speed.
func TestWebhooksTable(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := bench.Run(t.Context(), &out, bench.Config{
		DatabaseURL:       pgtest.BaseURL(t),
		RowDuration:       300 * time.Millisecond,
		WebhookDeliveries: 200,
		Sections:          []string{"webhooks"},
	})
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	got := out.String()
	t.Log("\n" + got)
	for _, want := range []string{"## Webhooks", "policy: delivery rows made from the log", "8 in flight", "1 in flight", "plain signed POST", "p99"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q", want)
		}
	}
}

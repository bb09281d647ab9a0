package esdb_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/eventstore/esdb"
	"github.com/authledger/authledger/eventstore/eventstoretest"
)

// TestConformance runs the port's conformance suite against the adapter on
// an in-process EventStoreDB (test/esdbserver), a fresh server per subtest.
func TestConformance(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstoretest.Fixture {
		srv := startServer(t)
		return fixture(t, esdb.Config{URL: srv.URL()})
	})
}

// TestConformanceSharedServer runs the suite as TestConformanceRealESDB
// does, on one in-process server for every subtest, whose log starts with
// system records and another application's streams: it checks the
// StreamPrefix isolation that the real-node run relies on.
func TestConformanceSharedServer(t *testing.T) {
	srv := startServer(t)
	seed, err := esdb.Open(t.Context(), esdb.Config{URL: srv.URL(), StreamPrefix: "another-app-"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := seed.Append(t.Context(), "user-"+strconv.Itoa(i), eventstore.Any{}, event("user.registered.v1", i)); err != nil {
			t.Fatal(err)
		}
		if err := seed.Tombstone(t.Context(), "gone-"+strconv.Itoa(i), eventstore.Any{}); err != nil { // a $streamDeleted record
			t.Fatal(err)
		}
	}
	_ = seed.Close()
	eventstoretest.Run(t, func(t *testing.T) eventstoretest.Fixture {
		return fixture(t, esdb.Config{URL: srv.URL(), StreamPrefix: uniquePrefix()})
	})
}

func uniquePrefix() string {
	return "conformance-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12] + "-"
}

// TestConformanceRealESDB runs the same suite against the EventStoreDB at
// ESDB_URL. A real node is shared and never empty, so each subtest works in
// its own stream prefix.
func TestConformanceRealESDB(t *testing.T) {
	url := os.Getenv("ESDB_URL")
	if url == "" {
		t.Skip("ESDB_URL is not set: to run the conformance suite against a real EventStoreDB, " +
			"`docker compose up -d eventstore` and run ESDB_URL='esdb://localhost:2113?tls=false' go test -count=1 -run TestConformanceRealESDB ./eventstore/esdb/")
	}
	eventstoretest.Run(t, func(t *testing.T) eventstoretest.Fixture {
		return fixture(t, esdb.Config{URL: url, StreamPrefix: uniquePrefix()})
	})
}

// fixture opens the store the suite works on, and Reopen opens a second,
// independent client over the same log. Begin stays nil: EventStoreDB has
// no client-side transactions.
func fixture(t *testing.T, cfg esdb.Config) eventstoretest.Fixture {
	t.Helper()
	s, err := esdb.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return eventstoretest.Fixture{
		Store: s, // the suite closes it
		Reopen: func(tb eventstoretest.TB) eventstore.Store {
			tb.Helper()
			s2, err := esdb.Open(t.Context(), cfg)
			if err != nil {
				tb.Fatalf("Open (second client): %v", err)
			}
			tb.Cleanup(func() { _ = s2.Close() })
			return s2
		},
	}
}

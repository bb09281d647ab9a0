// Package natstest gives tests a real nats-server with JetStream: the one
// `make test` starts for the run (scripts/nats.sh with-temp,
// AUTHLEDGER_TEST_NATS_URL), or a private one a test may stop and start
// again (an outage).
package natstest

import (
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/authledger/authledger/test/repo"
)

// URL is the run's nats-server. A test that needs NATS fails (never
// skips) without one: a skipped NATS test is a test that cannot fail.
// Tests share it: each keeps to a stream and subjects of its own
// (Names).
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("AUTHLEDGER_TEST_NATS_URL")
	if u == "" {
		t.Fatal("AUTHLEDGER_TEST_NATS_URL is not set: run the tests with `make test`, which starts a private nats-server (scripts/nats.sh)")
	}
	return u
}

// Server is a nats-server of a test's own, started with the project's
// scripts/nats.sh, which the test may stop and start again. It keeps its
// port and its JetStream store across restarts; its clients reconnect
// when it is back.
type Server = repo.Server

// Start starts a private server for this test and removes it when the
// test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return repo.StartServer(t, "nats.sh")
}

// Names returns a stream name and a subject prefix no other test uses
// on the shared server.
func Names(t testing.TB) (stream, subjectPrefix string) {
	t.Helper()
	id := strings.NewReplacer("/", "_", " ", "_", ".", "_", "*", "_", ">", "_").Replace(t.Name())
	id += "_" + randomSuffix()
	return "T_" + id, "t." + id
}

func randomSuffix() string { return strings.ReplaceAll(uuid.NewString()[:8], "-", "") }

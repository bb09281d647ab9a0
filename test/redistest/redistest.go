// Package redistest gives tests a real redis-server: the one `make test`
// starts for the run (scripts/redis.sh with-temp, AUTHLEDGER_TEST_REDIS_URL),
// or a private one a test may stop and start again (an outage).
package redistest

import (
	"os"
	"testing"

	"github.com/authledger/authledger/test/repo"
)

// URL is the run's redis-server. A test that needs Redis fails (never
// skips) without one: a skipped Redis test is a test that cannot fail.
// Tests share it: each keeps to keys of its own (fresh users, addresses).
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("AUTHLEDGER_TEST_REDIS_URL")
	if u == "" {
		t.Fatal("AUTHLEDGER_TEST_REDIS_URL is not set: run the tests with `make test`, which starts a private redis-server (scripts/redis.sh)")
	}
	return u
}

// Server is a redis-server of a test's own, started with the project's
// scripts/redis.sh, which the test may stop and start again. It keeps its
// port across restarts, so its URL stays valid (and empty: nothing
// persists); its clients' commands fail while it is stopped.
type Server = repo.Server

// Start starts a private server for this test and removes it when the
// test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return repo.StartServer(t, "redis.sh")
}

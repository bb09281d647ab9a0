package pgtest

import (
	"os"
	"strings"
	"testing"

	"github.com/authledger/authledger/test/repo"
)

// Cluster is a PostgreSQL server of a test's own, started with the
// project's scripts/pg.sh, which the test may stop and start again (an
// outage). It keeps its port across restarts, so connection strings stay
// valid.
type Cluster struct {
	t   testing.TB
	dir string
	// URL is the connection string of its database.
	URL string
}

// StartCluster starts a private cluster for this test (as the postgres
// user when root, like `make test`) and removes it when the test ends.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	// Not t.TempDir: the postgres user must reach the directory.
	dir, err := os.MkdirTemp("", "authledger-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // #nosec G302 -- the server user must enter it
		t.Fatal(err)
	}
	c := &Cluster{t: t, dir: dir}
	t.Cleanup(func() {
		c.Stop()
		_ = os.RemoveAll(dir)
	})
	c.URL = c.Start()
	return c
}

// Start starts the stopped cluster (the first time: creates it) and
// returns its connection string.
func (c *Cluster) Start() string {
	c.t.Helper()
	return strings.TrimSpace(c.script("start", c.dir, "fast"))
}

// Stop stops the cluster (fast shutdown: clients are disconnected).
func (c *Cluster) Stop() {
	c.t.Helper()
	c.script("stop", c.dir)
}

func (c *Cluster) script(args ...string) string {
	c.t.Helper()
	return repo.Script(c.t, "pg.sh", args...)
}

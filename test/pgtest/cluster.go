package pgtest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(repoRoot(c.t), "scripts", "pg.sh")}, args...)...) // #nosec G204 -- the project's own script
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("pgtest: scripts/pg.sh %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// repoRoot is the directory holding go.mod, above the test's directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("pgtest: no go.mod above the test's directory")
		}
		dir = parent
	}
}

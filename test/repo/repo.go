// Package repo runs the project's own scripts (scripts/pg.sh,
// scripts/redis.sh) from a test, wherever in the tree the test runs.
package repo

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

// Script runs scripts/NAME with args (bounded to two minutes) and returns
// its standard output; it fails the test, with the script's standard
// error, when the script fails.
func Script(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(Root(t), "scripts", name)}, args...)...) // #nosec G204 -- the project's own script
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	// A child left holding the output (a daemon, a hung probe) must not
	// hold the test past the timeout.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/%s %s: %v\n%s", name, strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// Root is the directory holding go.mod, above the test's directory.
func Root(t testing.TB) string {
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
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// Server is a server of a test's own, run by one of the project's
// scripts that keep a private server in a directory (scripts/redis.sh,
// scripts/nats.sh: `start DIR` prints its URL, `stop DIR` stops it). The
// test may stop and start it again: it keeps its port, so its URL stays
// valid.
type Server struct {
	t      testing.TB
	script string
	dir    string
	// URL is the server's URL, as the script printed it.
	URL string
}

// StartServer starts a private server with scripts/script for this test
// and stops it when the test ends.
func StartServer(t testing.TB, script string) *Server {
	t.Helper()
	s := &Server{t: t, script: script, dir: t.TempDir()}
	t.Cleanup(s.Stop)
	s.URL = s.Restart()
	return s
}

// Restart starts the stopped server and returns its URL.
func (s *Server) Restart() string {
	s.t.Helper()
	return strings.TrimSpace(Script(s.t, s.script, "start", s.dir))
}

// Stop stops the server.
func (s *Server) Stop() {
	s.t.Helper()
	Script(s.t, s.script, "stop", s.dir)
}

// Package smallfs gives a test a real, small file system (a tmpfs of a
// given size), so that a full disk is tested as the kernel reports it
// (ENOSPC), not simulated.
//
// As root the tmpfs is mounted directly. Otherwise the test re-runs itself
// in a new user and mount namespace (util-linux `unshare --user
// --map-root-user --mount`), where an unprivileged user may mount a tmpfs;
// the parent test passes or fails with the child. The child reaches
// PostgreSQL and everything else over the same loopback network.
package smallfs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// insideEnv marks the re-run child.
const insideEnv = "AUTHLEDGER_SMALLFS_CHILD"

// Run calls fn with a directory on a fresh tmpfs of size bytes, unmounted
// afterwards. In the parent of a re-run it returns after the child has run
// fn, and fails the test if the child failed.
func Run(t *testing.T, size int64, fn func(dir string)) {
	t.Helper()
	if os.Geteuid() != 0 {
		reRun(t)
		return
	}
	dir, err := os.MkdirTemp("", "authledger-smallfs-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		t.Fatalf("smallfs: mount a %d-byte tmpfs on %s: %v", size, dir, err)
	}
	defer func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("smallfs: unmount %s: %v", dir, err)
		}
	}()
	fn(dir)
}

// reRun runs this test alone in a child process under unshare, where it is
// root in its own namespaces.
func reRun(t *testing.T) {
	t.Helper()
	if os.Getenv(insideEnv) == "1" {
		t.Fatal("smallfs: not root inside the user namespace")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatal("smallfs: not root and no `unshare` (util-linux) to mount a tmpfs in a user namespace: install util-linux or run as root")
	}
	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "--user", "--map-root-user", "--mount", "--", // #nosec G204 -- the test binary itself
		os.Args[0], "-test.run="+strings.Join(parts, "/"), "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), insideEnv+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("smallfs: the test in a user namespace failed: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "--- PASS: "+t.Name()) {
		t.Fatalf("smallfs: the test did not run in the user namespace:\n%s", out.String())
	}
}

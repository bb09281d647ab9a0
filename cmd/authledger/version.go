package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at link time:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/authledger
//
// (make build does it from `git describe`). When empty, Version falls back
// to the build information Go records.
var version string

// Version is the binary's version: the -ldflags value, else the module
// version (go install module@version), else the VCS revision, else "devel".
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified == "true" {
		rev += "-dirty"
	}
	return "devel-" + rev
}

func runVersion(_ context.Context, args []string, _ env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: authledger version\n\nPrints the version of this binary and the Go release that built it.")
	}
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	fmt.Fprintf(stdout, "authledger %s (%s)\n", Version(), runtime.Version())
	return exitOK
}

// Command authledger is the identity server and its operational tools, one
// binary with subcommands:
//
//	authledger serve        run the HTTP server (migrates first by default)
//	authledger migrate      apply database migrations and exit
//	authledger worker       process tasks beside serve
//	authledger projections  read-model status and rebuilds
//	authledger audit        check the log against the audit trail's keyed chain; sign heads; tail, export, archive
//	authledger replay       rebuild read models as they were at a past time
//	authledger keys         rotate the signing key
//	authledger version      print the version
//
// Configuration comes from environment variables only; `authledger serve
// --help` lists every one with its default. Of the server's packages this
// is the only one that reads the environment. The benchmarks are another
// binary, cmd/authledger-bench (ADR 0024).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is how commands read the environment: os.LookupEnv in main, a map in
// tests.
type env func(name string) (string, bool)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int
}

// subcommands is the list of subcommands, in help order.
func subcommands() []command {
	return []command{
		{"serve", "run the HTTP server (applies migrations first unless AUTHLEDGER_MIGRATE_ON_START=false)", runServe},
		{"migrate", "apply the database migrations to DATABASE_URL and exit", runMigrate},
		{"version", "print the version and exit", runVersion},
		{"projections", "print the read models' status (`projections status`) or rebuild one (`projections rebuild NAME`)", runProjections},
		{"audit", "check the log against the audit trail's keyed chain (`audit verify`), sign heads, tail, export and check files offline, archive old rows", runAudit},
		{"worker", "process tasks (OCR) beside serve: claims, heartbeats, retention, file collection", runWorker},
		{"keys", "manage signing keys: `keys rotate` adds one (published now, signing after AUTHLEDGER_KEY_OVERLAP)", runKeys},
		{"external-auth", "validate the external auth API: `external-auth check -email E` logs in once and prints a redacted report", runExternalAuth},
		{"users", "link accounts to external identities in bulk: `users link -from FILE.csv -backup FILE.jsonl [-dry-run]`", runUsers},
		{"rollout", "change the staged rollout of external login: `rollout set -mode staged -percent 20 -allow a@x`", runRollout},
		{"replay", "rebuild read models as they were at a past time into a scratch schema: `replay -until TIME [-projection NAME]`", runReplay},
		{"stream", "print the analytics stream of public events from NATS JetStream: `stream tail [-type T]`", runStream},
	}
}

// run dispatches to a subcommand and returns the exit code. ctx is
// cancelled on SIGINT or SIGTERM.
func run(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	}
	for _, c := range subcommands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "authledger: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: authledger <command> [--help]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range subcommands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Configuration comes from the environment; `authledger serve --help` lists it.")
}

// parseFlags parses a subcommand's flags. It returns done=true with the exit
// code when the command must stop: help was asked for (printed to stdout, so
// that it can be piped), or the flags or arguments are wrong (stderr).
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (done bool, code int) {
	return parseFlagsArgs(fs, args, 0, stdout, stderr)
}

// parseFlagsArgs is parseFlags for a command that takes n positional
// arguments after its flags (fs.Arg(0) ...); a different number is a
// usage error. n < 0 takes any number (the command checks them).
func parseFlagsArgs(fs *flag.FlagSet, args []string, n int, stdout, stderr io.Writer) (done bool, code int) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout)
			fs.Usage()
			return true, exitOK
		}
	}
	fs.SetOutput(stderr)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return true, exitOK
	case err != nil:
		return true, exitUsage
	case n == 0 && fs.NArg() > 0:
		fmt.Fprintf(stderr, "authledger %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return true, exitUsage
	case n >= 0 && fs.NArg() != n:
		fmt.Fprintf(stderr, "authledger %s: %d arguments, want %d (flags come first)\n", fs.Name(), fs.NArg(), n)
		fs.Usage()
		return true, exitUsage
	}
	return false, exitOK
}

// Command authledger-bench measures authledger on the machine it runs on
// and prints tables (throughput, p50/p99) for docs/benchmarks.md. It is a
// binary of its own so that no benchmark code is linked into the server
// (ADR 0024); the sections that measure the assembled service run the
// server binary (`authledger serve`, -server) as a process of its own.
//
//	authledger-bench [-sections eventstore,projections,identity,external,account,upstream,tasks,limits,apikeys,stream,webhooks] [flags]
//
// Only DATABASE_URL is read from the environment: the PostgreSQL server in
// which every section creates, and drops, scratch databases of its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/authledger/authledger/bench"
)

const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("authledger-bench", flag.ContinueOnError)
	duration := fs.Duration("duration", 3*time.Second, "how long each throughput row runs")
	writers := fs.String("writers", "1,8,32", "comma-separated writer counts of the append rows")
	sections := fs.String("sections", "eventstore,projections", "comma-separated sections to run: eventstore, projections, identity, external, account, upstream, tasks, limits, apikeys, stream, webhooks")
	server := fs.String("server", "", "upstream, tasks, limits and apikeys sections: the authledger binary to run as the server (default: the authledger beside this binary)")
	slow := fs.Int("slow", 1000, "limits section: the slow connections of the held row (twice as many in the row after)")
	redisURL := fs.String("redis", os.Getenv("AUTHLEDGER_TEST_REDIS_URL"), "limits section: the redis-server of the rate-limit row (default $AUTHLEDGER_TEST_REDIS_URL, which make bench sets; none: the memory row alone)")
	natsURL := fs.String("nats", os.Getenv("AUTHLEDGER_TEST_NATS_URL"), "stream section: the nats-server with JetStream (default $AUTHLEDGER_TEST_NATS_URL, which make bench sets)")
	historyTasks := fs.Int("history-tasks", 100_000, "tasks section: the history user's tasks (seeded into the read models)")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the whole run to this file (go tool pprof)")
	fs.SetOutput(stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: authledger-bench [flags]")
		fmt.Fprintln(w, "\nMeasures authledger on the PostgreSQL server of DATABASE_URL, in scratch")
		fmt.Fprintln(w, "databases it creates and drops, and prints tables. Sections: eventstore")
		fmt.Fprintln(w, "(appends, subscription), projections, identity (logins, refreshes,")
		fmt.Fprintln(w, "GET /v1/me), external (logins through the test provider at 50 ms, the")
		fmt.Fprintln(w, "open breaker's fast failure, login timing), upstream (complete sign-ins")
		fmt.Fprintln(w, "with an in-process OpenID provider through `authledger serve`: the whole")
		fmt.Fprintln(w, "sign-in and our overhead), tasks (`authledger serve`")
		fmt.Fprintln(w, "over loopback HTTP: uploads,")
		fmt.Fprintln(w, "downloads, history, export), limits (serve under a 300 MB body and slow")
		fmt.Fprintln(w, "connections: peak memory, health and logins answered), apikeys (serve:")
		fmt.Fprintln(w, "GET /v1/me with a JWT and with an API key, introspections by a key), stream")
		fmt.Fprintln(w, "(the analytics stream's publisher to JetStream beside the log's append rate, its lag),")
		fmt.Fprintln(w, "webhooks (deliveries made from the log and posted, signed, to a loopback receiver).")
		fmt.Fprintln(w, "Only DATABASE_URL is read from the environment.")
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
	}
	if slicesContainsHelp(args) {
		fs.SetOutput(stdout)
		fs.Usage()
		return exitOK
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "authledger-bench: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	dbURL, _ := getenv("DATABASE_URL")
	if strings.TrimSpace(dbURL) == "" {
		fmt.Fprintln(stderr, "authledger-bench: DATABASE_URL is required (`make bench` starts a private PostgreSQL)")
		return exitUsage
	}
	cfg := bench.Config{DatabaseURL: dbURL, RowDuration: *duration, NATSURL: *natsURL}
	for w := range strings.SplitSeq(*writers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 1 {
			fmt.Fprintf(stderr, "authledger-bench: -writers: %q is not a positive number\n", w)
			return exitUsage
		}
		cfg.Writers = append(cfg.Writers, n)
	}
	known := map[string]bool{"eventstore": true, "projections": true, "identity": true, "external": true, "account": true, "upstream": true, "tasks": true, "limits": true, "apikeys": true, "stream": true, "webhooks": true}
	for s := range strings.SplitSeq(*sections, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !known[s] {
			fmt.Fprintf(stderr, "authledger-bench: -sections: unknown section %q (eventstore, projections, identity, external, account, upstream, tasks, limits, apikeys, stream, webhooks)\n", s)
			return exitUsage
		}
		cfg.Sections = append(cfg.Sections, s)
	}
	if *historyTasks < 1 {
		fmt.Fprintln(stderr, "authledger-bench: -history-tasks must be positive")
		return exitUsage
	}
	if len(cfg.Sections) == 0 {
		cfg.Sections = []string{"eventstore", "projections"}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "authledger-bench: -cpuprofile: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "authledger-bench: -cpuprofile: %v\n", err)
			return exitError
		}
		defer pprof.StopCPUProfile()
	}
	srv := bench.ServerConfig{DatabaseURL: dbURL, Server: *server, Stderr: stderr}
	// The upstream, tasks, limits and apikeys sections run the server in scratch databases of
	// their own; the others run in bench.Run's, consecutive ones together,
	// in the order given.
	var group []string
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		c := cfg
		c.Sections, group = group, nil
		return bench.Run(ctx, stdout, c)
	}
	for _, s := range cfg.Sections {
		var section func() error
		switch s {
		case "tasks":
			section = func() error {
				return bench.Tasks(ctx, stdout, bench.TasksConfig{ServerConfig: srv, RowDuration: *duration, HistoryTasks: *historyTasks})
			}
		case "upstream":
			section = func() error {
				return bench.Upstream(ctx, stdout, bench.UpstreamConfig{ServerConfig: srv, RowDuration: *duration})
			}
		case "limits":
			section = func() error {
				return bench.Limits(ctx, stdout, bench.LimitsConfig{ServerConfig: srv, Hold: *duration, Slow: *slow, RedisURL: *redisURL})
			}
		case "apikeys":
			section = func() error {
				return bench.APIKeys(ctx, stdout, bench.APIKeysConfig{ServerConfig: srv, RowDuration: *duration})
			}
		default:
			group = append(group, s)
			continue
		}
		if err := flush(); err != nil {
			fmt.Fprintf(stderr, "authledger-bench: %v\n", err)
			return exitError
		}
		if err := section(); err != nil {
			fmt.Fprintf(stderr, "authledger-bench: %v\n", err)
			return exitError
		}
	}
	if err := flush(); err != nil {
		fmt.Fprintf(stderr, "authledger-bench: %v\n", err)
		return exitError
	}
	return exitOK
}

// slicesContainsHelp reports whether args ask for help before any "--".
func slicesContainsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/authledger/authledger/bench"
	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/migrations"
)

// envHelp is appended to the usage of every command that reads the
// configuration.
func envHelp(w io.Writer) {
	fmt.Fprintln(w, "\nEnvironment (unset or empty means the default):")
	_ = config.Usage(w)
}

// loadConfig reads and validates the configuration, printing every problem.
func loadConfig(name string, getenv env, stderr io.Writer) (config.Config, bool) {
	cfg, err := config.Load(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "authledger %s: invalid configuration:\n%v\n\nSee `authledger %s --help`.\n", name, err, name)
		return cfg, false
	}
	return cfg, true
}

func runServe(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: authledger serve")
		fmt.Fprintln(w, "\nRuns the HTTP server until SIGINT or SIGTERM, then drains requests")
		fmt.Fprintln(w, "(AUTHLEDGER_SHUTDOWN_TIMEOUT). Applies migrations first unless")
		fmt.Fprintln(w, "AUTHLEDGER_MIGRATE_ON_START=false.")
		envHelp(w)
	}
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	cfg, ok := loadConfig("serve", getenv, stderr)
	if !ok {
		return exitUsage
	}
	log := newLogger(cfg, stderr)
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		log.Error("start-up failed", slog.String("error", err.Error()))
		return exitError
	}
	if err := a.run(ctx); err != nil {
		log.Error("server failed", slog.String("error", err.Error()))
		return exitError
	}
	return exitOK
}

func runMigrate(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	serviceRole := fs.String("service-role", "", "after migrating, grant this `ROLE` exactly what serve and worker need (SELECT and INSERT on the log, never UPDATE, DELETE or TRUNCATE)")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: authledger migrate [-service-role ROLE]")
		fmt.Fprintln(w, "\nApplies the embedded migrations to DATABASE_URL and exits. Safe to run")
		fmt.Fprintln(w, "concurrently and repeatedly.")
		fmt.Fprintln(w, "\nIn production, migrate as the role that owns the tables and let serve and")
		fmt.Fprintln(w, "worker connect as another (AUTHLEDGER_MIGRATE_ON_START=false): with")
		fmt.Fprintln(w, "-service-role, migrate grants that role only what it needs, so that the")
		fmt.Fprintln(w, "service cannot change or remove an event (docs/database-roles.md). It")
		fmt.Fprintln(w, "refuses a superuser or the events table's owner. Run it again after")
		fmt.Fprintln(w, "every upgrade.")
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
		envHelp(w)
	}
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	cfg, ok := loadConfig("migrate", getenv, stderr)
	if !ok {
		return exitUsage
	}
	log := newLogger(cfg, stderr)
	ctx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	if err := migrations.Migrate(ctx, cfg.DatabaseURL); err != nil {
		log.Error("migration failed", slog.String("error", err.Error()))
		return exitError
	}
	log.Info("database migrated")
	if *serviceRole != "" {
		if err := migrations.GrantService(ctx, cfg.DatabaseURL, *serviceRole); err != nil {
			log.Error("granting the service role failed", slog.String("role", *serviceRole), slog.String("error", err.Error()))
			return exitError
		}
		log.Info("service role granted", slog.String("role", *serviceRole))
	}
	return exitOK
}

func runBench(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	duration := fs.Duration("duration", 3*time.Second, "how long each throughput row runs")
	writers := fs.String("writers", "1,8,32", "comma-separated writer counts of the append rows")
	sections := fs.String("sections", "eventstore,projections", "comma-separated sections to run: eventstore, projections, identity, tasks, limits")
	server := fs.String("server", "", "limits section: the authledger binary to run as the server (default: this one)")
	slow := fs.Int("slow", 1000, "limits section: the slow connections of the held row (twice as many in the row after)")
	historyTasks := fs.Int("history-tasks", 100_000, "tasks section: the history user's tasks (seeded into the read models)")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the whole run to this file (go tool pprof)")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: authledger bench [flags]")
		fmt.Fprintln(w, "\nMeasures authledger on the PostgreSQL server of DATABASE_URL, in scratch")
		fmt.Fprintln(w, "databases it creates and drops, and prints tables. Sections: eventstore")
		fmt.Fprintln(w, "(appends, subscription), projections, identity (logins, refreshes,")
		fmt.Fprintln(w, "GET /v1/me), tasks (the assembled service over loopback HTTP: uploads,")
		fmt.Fprintln(w, "downloads, history, export), limits (serve as its own process under a 300 MB")
		fmt.Fprintln(w, "body and slow connections: peak memory, health and logins answered).")
		fmt.Fprintln(w, "Only DATABASE_URL is read from the environment.")
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
	}
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	// bench needs only the server: it does not validate the rest of the
	// service configuration.
	dbURL, _ := getenv("DATABASE_URL")
	if strings.TrimSpace(dbURL) == "" {
		fmt.Fprintln(stderr, "authledger bench: DATABASE_URL is required (`make bench` starts a private PostgreSQL)")
		return exitUsage
	}
	cfg := bench.Config{DatabaseURL: dbURL, RowDuration: *duration}
	for w := range strings.SplitSeq(*writers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 1 {
			fmt.Fprintf(stderr, "authledger bench: -writers: %q is not a positive number\n", w)
			return exitUsage
		}
		cfg.Writers = append(cfg.Writers, n)
	}
	for s := range strings.SplitSeq(*sections, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Sections = append(cfg.Sections, s)
		}
	}
	if *historyTasks < 1 {
		fmt.Fprintln(stderr, "authledger bench: -history-tasks must be positive")
		return exitUsage
	}
	// The tasks section assembles the whole service (newApp, in this
	// package) in a scratch database of its own; the other sections run
	// in bench.Run's, consecutive ones together, in the order given.
	if len(cfg.Sections) == 0 {
		cfg.Sections = []string{"eventstore", "projections"}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "authledger bench: -cpuprofile: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "authledger bench: -cpuprofile: %v\n", err)
			return exitError
		}
		defer pprof.StopCPUProfile()
	}
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
		var run func() error
		switch s {
		case "tasks":
			run = func() error {
				return benchTasks(ctx, stdout, tasksBenchConfig{DatabaseURL: dbURL, RowDuration: *duration, HistoryTasks: *historyTasks, Stderr: stderr})
			}
		case "limits":
			run = func() error {
				return benchLimits(ctx, stdout, limitsBenchConfig{DatabaseURL: dbURL, Hold: *duration, Slow: *slow, Server: *server, Stderr: stderr})
			}
		default:
			group = append(group, s)
			continue
		}
		if err := flush(); err != nil {
			fmt.Fprintf(stderr, "authledger bench: %v\n", err)
			return exitError
		}
		if err := run(); err != nil {
			fmt.Fprintf(stderr, "authledger bench: %v\n", err)
			return exitError
		}
	}
	if err := flush(); err != nil {
		fmt.Fprintf(stderr, "authledger bench: %v\n", err)
		return exitError
	}
	return exitOK
}

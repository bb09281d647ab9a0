package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

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

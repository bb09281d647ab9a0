package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/user"
	"strings"
	"time"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/domain/rollout"
	"github.com/authledger/authledger/events"
)

// runRollout dispatches `authledger rollout <set|status>`.
func runRollout(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	return runGroup(ctx, "rollout", "the staged rollout of external login", []command{
		{"set", "record a change of the rollout's mode, percentage or allowlist", runRolloutSet},
		{"status", "print the rollout, logins by method and outcome, and linked users, from the log", runRolloutStatus},
	}, args, getenv, stdout, stderr)
}

// rolloutUsage is the help of both rollout subcommands.
func rolloutUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: authledger rollout set [-mode off|on|staged] [-percent N] [-allow a@x,b@y] [-disallow c@z]")
	fmt.Fprintln(w, "       authledger rollout status [-window 24h] [-json]")
	fmt.Fprintln(w, "\nChanges the staged rollout of external login (docs/external-auth.md). Omitted flags")
	fmt.Fprintln(w, "keep their value. In staged mode a login goes to the external auth API when its")
	fmt.Fprintln(w, "address is allowlisted or its bucket (0 to 99, stable per address) is below the")
	fmt.Fprintln(w, "percentage. AUTHLEDGER_USE_EXTERNAL_AUTH=off still keeps every login local.")
	fmt.Fprintln(w, "\nstatus prints, from the log: the settings, logins by method and outcome within")
	fmt.Fprintln(w, "the window, linked and unlinked users, and the users refused since the last")
	fmt.Fprintln(w, "change who have not logged in since.")
	envHelp(w)
}

// runRolloutSet is `authledger rollout set`: it records a change of the
// staged rollout of external login on the rollout stream, as PUT
// /v1/admin/rollout does; every running instance applies it within a
// second.
func runRolloutSet(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rollout set", flag.ContinueOnError)
	fs.Usage = func() { rolloutUsage(fs.Output()) }
	mode := fs.String("mode", "", "off, on or staged (default: unchanged)")
	percent := fs.Int("percent", -1, "share of the addresses routed to the external API in staged mode, 0 to 100 (default: unchanged)")
	allow := fs.String("allow", "", "comma-separated addresses to allowlist")
	disallow := fs.String("disallow", "", "comma-separated addresses to take off the allowlist")
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	cfg, ok := loadConfig("rollout", getenv, stderr)
	if !ok {
		return exitUsage
	}
	log := newLogger(cfg, stderr)
	change := rollout.Change{Mode: strings.ToLower(*mode), Allow: splitList(*allow), Disallow: splitList(*disallow), Unconfigured: cfg.External.Mode}
	if *percent >= 0 {
		change.Percentage = percent
	}
	s, err := setRollout(ctx, cfg, change)
	if err != nil {
		log.Error("rollout change failed", slog.String("error", err.Error()))
		return exitError
	}
	fmt.Fprintf(stdout, "rollout: mode %s, %d%%, %d allowlisted", s.Mode, s.Percentage, len(s.Allowlist))
	if cfg.External.Mode == config.ExternalAuthOff {
		fmt.Fprint(stdout, " (AUTHLEDGER_USE_EXTERNAL_AUTH=off here: logins stay local where it is off)")
	}
	fmt.Fprintln(stdout)
	return exitOK
}

func runRolloutStatus(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rollout status", flag.ContinueOnError)
	fs.Usage = func() { rolloutUsage(fs.Output()) }
	window := fs.Duration("window", 24*time.Hour, "how far back logins are counted")
	asJSON := fs.Bool("json", false, "print JSON")
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	cfg, ok := loadConfig("rollout", getenv, stderr)
	if !ok {
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	st, err := rolloutStatus(ctx, cfg, *window, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "authledger rollout status: %v\n", err)
		return exitError
	}
	if err := st.print(stdout, *asJSON); err != nil {
		return exitError
	}
	return exitOK
}

func splitList(s string) []string {
	var out []string
	for e := range strings.SplitSeq(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// setRollout runs the rollout command on the configured store, as an
// operator: the OS user is the actor's id.
func setRollout(ctx context.Context, cfg config.Config, change rollout.Change) (rollout.Settings, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	// The rollout stream's events name no user and an operator is no
	// user: nothing to seal, so no master key is needed (openLogStore).
	store, err := openLogStore(ctx, cfg)
	if err != nil {
		return rollout.Settings{}, err
	}
	defer func() { _ = store.Close() }()
	reg, err := newRegistry()
	if err != nil {
		return rollout.Settings{}, err
	}
	repo, err := commands.NewRepository(store, reg, rollout.FromHistory)
	if err != nil {
		return rollout.Settings{}, err
	}
	operator := "authledger rollout set"
	if u, err := user.Current(); err == nil {
		operator = u.Username
	}
	res, err := (&commands.ConfigureRolloutHandler{Rollouts: repo}).Handle(ctx, commands.ConfigureRollout{Change: change,
		Meta: commands.Meta{Actor: events.Actor{Kind: events.ActorService, ID: "cli:" + operator}}})
	return res.Settings, err
}

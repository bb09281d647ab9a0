package main

// replay.go holds `authledger replay`: the read models as they were at a
// past moment, rebuilt from the log into a scratch schema (time travel).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/authledger/authledger/projections"
	"github.com/authledger/authledger/projections/audit"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/timetravel"
)

// parseTime reads a command-line time: RFC 3339, with or without
// fractional seconds.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time (2006-01-02T15:04:05Z)", s)
	}
	return t.UTC(), nil
}

func runReplay(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	known := projections.Names()
	until := fs.String("until", "", "the `TIME` (RFC 3339) to rebuild the read models at: events recorded at or before it count")
	var names []string
	fs.Func("projection", "a read model to rebuild (`NAME`, repeatable; default: every one): "+strings.Join(known, ", "), func(s string) error {
		if !slices.Contains(known, s) {
			return fmt.Errorf("unknown projection %q", s)
		}
		names = append(names, s)
		return nil
	})
	schema := fs.String("schema", "", "the scratch `SCHEMA` to create and build into (default replay_<until as yyyymmddthhmmssz>); it must not exist")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: authledger replay -until TIME [-projection NAME]... [-schema SCHEMA]")
		fmt.Fprintln(w, "\nRebuilds read models as they were at TIME, from the log, into a scratch")
		fmt.Fprintln(w, "schema of this database: the projections' own code applied to every event")
		fmt.Fprintln(w, "recorded at or before TIME, in log order. The live read models, checkpoints")
		fmt.Fprintln(w, "and the log are not touched. Read the result with")
		fmt.Fprintln(w, "  SET search_path = SCHEMA, public; SELECT * FROM user_profiles;")
		fmt.Fprintln(w, "and drop it with DROP SCHEMA SCHEMA CASCADE. The audit trail needs the master")
		fmt.Fprintln(w, "key (its chain is keyed). Prints the schema and the events applied.")
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
		envHelp(w)
	}
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	if *until == "" {
		fmt.Fprintln(stderr, "authledger replay: -until TIME is required")
		return exitUsage
	}
	at, err := parseTime(*until)
	if err != nil {
		fmt.Fprintf(stderr, "authledger replay: -until: %v\n", err)
		return exitUsage
	}
	if *schema == "" {
		*schema = "replay_" + strings.ToLower(at.Format("20060102T150405Z"))
	}
	if err := timetravel.CheckSchema(*schema); err != nil {
		fmt.Fprintf(stderr, "authledger replay: -schema %q: %v\n", *schema, err)
		return exitUsage
	}
	if len(names) == 0 {
		names = known
	}
	c, code := openAdmin(ctx, "replay", logOpened, getenv, stderr)
	if c == nil {
		return code
	}
	defer c.close()
	var auditKey []byte
	if slices.Contains(names, audit.Name) {
		ak, err := loadAuditKeys(c.cfg)
		if err != nil {
			fmt.Fprintf(stderr, "authledger replay: %v\n", err)
			return exitError
		}
		auditKey = ak.chain
	}
	var projs []projector.Projection
	for _, p := range projections.Builtin(auditKey) {
		if slices.Contains(names, p.Name()) {
			projs = append(projs, p)
		}
	}
	res, err := timetravel.Replay(ctx, c.pool, c.store, projs, at, *schema)
	switch {
	case errors.Is(err, timetravel.ErrSchemaExists):
		fmt.Fprintf(stderr, "authledger replay: schema %s exists already: drop it (DROP SCHEMA %s CASCADE) or name another with -schema\n", *schema, *schema)
		return exitError
	case err != nil:
		fmt.Fprintf(stderr, "authledger replay: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "replayed %s as of %s into schema %s: %d events applied (last position %s)\n",
		strings.Join(names, ", "), at.Format(time.RFC3339Nano), res.Schema, res.Events, res.Last)
	return exitOK
}

package main

// admin.go holds the operator subcommands that work on a running
// installation's database: `projections status` and `projections rebuild
// NAME` (the audit subcommands are in audit.go). They read the
// configuration from the environment like serve and migrate do, never
// migrate, and talk to the same store and read-model database as the
// server (it may keep running meanwhile).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/term"

	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections"
	"github.com/authledger/authledger/projections/audit"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/reactors/blobrelease"
	"github.com/authledger/authledger/reactors/outbox"
	"github.com/authledger/authledger/reactors/sessionclaims"
	"github.com/authledger/authledger/reactors/sessionlimit"
	"github.com/authledger/authledger/reactors/webhooks"
	"github.com/authledger/authledger/stream"
)

// runProjections dispatches `authledger projections <status|rebuild>`.
func runProjections(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	return runGroup(ctx, "projections", "inspect and rebuild the read models", []command{
		{"status", "print each projection's generation, position, lag and state", runProjectionsStatus},
		{"rebuild", "rebuild one projection from the start of the log, without downtime", runProjectionsRebuild},
		{"requeue", "send dead outgoing messages again: `projections requeue -all` or EVENT_ID...", runProjectionsRequeue},
	}, args, getenv, stdout, stderr)
}

// runProjectionsRequeue makes dead letters of the outbox due again.
func runProjectionsRequeue(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("projections requeue", flag.ContinueOnError)
	all := fs.Bool("all", false, "requeue every dead message")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: authledger projections requeue (-all | EVENT_ID...)")
		fmt.Fprintln(w, "\nMakes dead outgoing messages (listed by `projections status`) due again, their")
		fmt.Fprintln(w, "attempts reset; a running server sends them within a second. A message whose")
		fmt.Fprintln(w, "link expired meanwhile dies again, unsent.")
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
		envHelp(w)
	}
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	var ids []uuid.UUID
	for _, a := range fs.Args() {
		id, err := uuid.Parse(a)
		if err != nil {
			fmt.Fprintf(stderr, "authledger projections requeue: %q is not an event id\n", a)
			return exitUsage
		}
		ids = append(ids, id)
	}
	if *all == (len(ids) > 0) {
		fmt.Fprintln(stderr, "authledger projections requeue: give -all or event ids, not both, not neither")
		return exitUsage
	}
	c, code := openAdmin(ctx, "projections requeue", noLog, getenv, stderr)
	if c == nil {
		return code
	}
	defer c.close()
	n, err := outbox.Requeue(ctx, c.pool, time.Now(), ids...)
	if err != nil {
		fmt.Fprintf(stderr, "authledger projections requeue: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "requeued %d dead message(s)\n", n)
	return exitOK
}

// runGroup runs one subcommand of a command group such as `projections`.
func runGroup(ctx context.Context, group, summary string, subs []command, args []string, getenv env, stdout, stderr io.Writer) int {
	groupUsage := func(w io.Writer) {
		names := make([]string, len(subs))
		for i, s := range subs {
			names[i] = s.name
		}
		fmt.Fprintf(w, "usage: authledger %s <%s> [--help]\n\n%s.\n\ncommands:\n", group, strings.Join(names, "|"), summary)
		for _, s := range subs {
			fmt.Fprintf(w, "  %-8s %s\n", s.name, s.summary)
		}
	}
	if len(args) == 0 {
		groupUsage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		groupUsage(stdout)
		return exitOK
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "authledger %s: unknown command %q\n\n", group, args[0])
	groupUsage(stderr)
	return exitUsage
}

// adminConn is what the admin commands work on: the read-model pool and the
// event store of the configuration.
type adminConn struct {
	cfg   config.Config
	log   *slog.Logger
	pool  *pgxpool.Pool
	store eventstore.Store
}

func (c *adminConn) close() {
	if c.store != nil {
		_ = c.store.Close()
	}
	if c.pool != nil {
		c.pool.Close()
	}
}

// logAccess is how an admin command reads the log.
type logAccess int

const (
	// noLog: the command reads no event.
	noLog logAccess = iota
	// logAsStored: the log's own bytes, personal data still sealed (no
	// master key needed): for positions, counts and the audit chain.
	logAsStored
	// logOpened: through eventstore/sealed (the master key needed), for
	// whatever decodes personal data (a rebuild).
	logOpened
)

// openAdmin loads the configuration and opens the pool (and the store as
// log says), bounded by AUTHLEDGER_STARTUP_TIMEOUT. It prints what went
// wrong and returns the exit code when it fails.
func openAdmin(ctx context.Context, name string, log logAccess, getenv env, stderr io.Writer) (*adminConn, int) {
	cfg, ok := loadConfig(name, getenv, stderr)
	if !ok {
		return nil, exitUsage
	}
	c := &adminConn{cfg: cfg, log: newLogger(cfg, stderr)}
	startCtx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	var err error
	if c.pool, err = openReadModelPool(startCtx, cfg.DatabaseURL); err != nil {
		fmt.Fprintf(stderr, "authledger %s: %v\n", name, err)
		return nil, exitError
	}
	var store eventstore.Store
	switch log {
	case logAsStored:
		store, err = openLogStore(startCtx, cfg)
	case logOpened:
		// Not assigned to the interface while nil: a failed open must
		// leave c.store nil.
		var s *sealedStore
		if s, err = openEventStore(startCtx, cfg); err == nil {
			store = s
		}
	}
	if err != nil {
		c.close()
		fmt.Fprintf(stderr, "authledger %s: %v\n", name, err)
		return nil, exitError
	}
	c.store = store
	return c, exitOK
}

// statusJSON is one projection in `projections status -json`. The field
// names are an interface for scripts: add, never rename.
type statusJSON struct {
	Name string `json:"name"`
	// Kind is read_model, policy (a durable reaction to the log, with a
	// checkpoint), outbox (the outgoing messages), webhooks (the webhook deliveries) or follower (a per-process follower such as the
	// revocation feed, one entry per running instance).
	Kind             string       `json:"kind"`
	Instance         string       `json:"instance,omitempty"`
	Retries          int          `json:"retries,omitempty"`
	Generation       int          `json:"generation"`
	State            string       `json:"state"`
	Position         string       `json:"position"`
	EventsApplied    int64        `json:"events_applied"`
	LagEvents        int64        `json:"lag_events"`
	LagEventsAtLeast bool         `json:"lag_events_at_least,omitempty"`
	LagSeconds       float64      `json:"lag_seconds"`
	UpdatedAt        *time.Time   `json:"updated_at,omitempty"`
	LastError        string       `json:"last_error,omitempty"`
	FailedEventID    string       `json:"failed_event_id,omitempty"`
	FailedEventType  string       `json:"failed_event_type,omitempty"`
	Rebuild          *rebuildJSON `json:"rebuild,omitempty"`
	// Outbox is the outgoing messages by state and the dead letters
	// (kind outbox).
	Outbox *outbox.Summary `json:"outbox,omitempty"`
	// Webhooks is the webhook deliveries by state and the dead letters
	// (kind webhooks).
	Webhooks *webhooks.Summary `json:"webhooks,omitempty"`
}

type rebuildJSON struct {
	Generation    int       `json:"generation"`
	Position      string    `json:"position"`
	EventsApplied int64     `json:"events_applied"`
	StartedAt     time.Time `json:"started_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func toStatusJSON(s projector.ProjectionStatus) statusJSON {
	out := statusJSON{
		Name: s.Name, Generation: s.Generation, State: s.State, Position: s.Position.String(),
		EventsApplied: s.EventsApplied, LagEvents: s.LagEvents, LagEventsAtLeast: s.LagEventsAtLeast, LagSeconds: s.LagSeconds,
		LastError: s.LastError, FailedEventID: s.FailedEventID, FailedEventType: s.FailedEventType,
	}
	if !s.UpdatedAt.IsZero() {
		u := s.UpdatedAt.UTC()
		out.UpdatedAt = &u
	}
	if r := s.Rebuild; r != nil {
		out.Rebuild = &rebuildJSON{Generation: r.Generation, Position: r.Position.String(), EventsApplied: r.EventsApplied,
			StartedAt: r.StartedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	}
	return out
}

func runProjectionsStatus(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("projections status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: authledger projections status [-json]")
		fmt.Fprintln(w, "\nPrints, for each read model, its generation (tables in use), the log")
		fmt.Fprintln(w, "position it has applied, its lag behind the log in events and in seconds")
		fmt.Fprintln(w, "(age of the oldest event not yet applied), and the state its runner")
		fmt.Fprintln(w, "recorded. A failed projection also shows the event it is stopped on; a")
		fmt.Fprintln(w, "rebuild in progress shows its own progress.")
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
		envHelp(w)
	}
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	c, code := openAdmin(ctx, "projections status", logAsStored, getenv, stderr)
	if c == nil {
		return code
	}
	defer c.close()
	// The read models, and the policies the server runs beside them
	// (status reads only their names and checkpoints).
	policies := []projector.Projection{sessionclaims.New(nil, nil, nil), projector.Descriptor(blobrelease.Name, blobrelease.Filter),
		projector.Descriptor(outbox.Name, outbox.Filter), webhooks.Descriptor()}
	if c.cfg.Identity.MaxSessionsPerUser > 0 {
		policies = append(policies, projector.Descriptor(sessionlimit.Name, sessionlimit.Filter))
	}
	if c.cfg.Stream.NATSURL != "" {
		policies = append(policies, stream.Descriptor())
	}
	readModels := projections.Builtin(nil)
	st, err := projector.Status(ctx, c.pool, c.store, append(readModels, policies...)...)
	if err != nil {
		fmt.Fprintf(stderr, "authledger projections status: %v\n", err)
		return exitError
	}
	// Each running process's log followers, as it last recorded them.
	followers, err := projector.LogFollowers(ctx, c.pool, followerStatusMaxAge)
	if err != nil {
		fmt.Fprintf(stderr, "authledger projections status: %v\n", err)
		return exitError
	}
	// The outbox's messages by state, and its dead letters.
	box, err := outbox.Summarize(ctx, c.pool)
	if err != nil {
		fmt.Fprintf(stderr, "authledger projections status: %v\n", err)
		return exitError
	}
	// The webhook deliveries by state, and their dead letters.
	hooks, err := webhooks.Summarize(ctx, c.pool)
	if err != nil {
		fmt.Fprintf(stderr, "authledger projections status: %v\n", err)
		return exitError
	}
	if *asJSON {
		out := make([]statusJSON, 0, len(st)+len(followers)+2)
		for i, s := range st {
			j := toStatusJSON(s)
			j.Kind = "read_model"
			if i >= len(readModels) {
				j.Kind = "policy"
			}
			out = append(out, j)
		}
		for _, f := range followers {
			u := f.UpdatedAt.UTC()
			out = append(out, statusJSON{Name: f.Name, Kind: "follower", Instance: f.Instance, State: f.State,
				Position: f.Position.String(), LagSeconds: f.LagSeconds, Retries: f.Retries, LastError: f.LastError, UpdatedAt: &u})
		}
		out = append(out, statusJSON{Name: outbox.Name + "_messages", Kind: "outbox", State: outboxState(box), Outbox: &box})
		out = append(out, statusJSON{Name: webhooks.DeliveriesTable, Kind: "webhooks", State: webhooksState(hooks), Webhooks: &hooks})
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "authledger projections status: %v\n", err)
			return exitError
		}
		return exitOK
	}
	printStatusTable(stdout, st, time.Now())
	printFollowersTable(stdout, followers, time.Now())
	printOutbox(stdout, box)
	printWebhooks(stdout, hooks)
	return exitOK
}

// webhooksState is "dead-letters" while any delivery is dead, "retrying"
// while one that failed waits for its next attempt, else "ok".
func webhooksState(s webhooks.Summary) string {
	switch {
	case s.Dead > 0:
		return "dead-letters"
	case s.Retrying > 0:
		return "retrying"
	}
	return "ok"
}

// printWebhooks writes the webhook deliveries by state, then each dead
// letter.
func printWebhooks(w io.Writer, s webhooks.Summary) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WEBHOOKS\tSTATE\tPENDING\tRETRYING\tDELIVERED\tDEAD\tDISABLED ENDPOINTS")
	fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", webhooks.DeliveriesTable, webhooksState(s), s.Pending, s.Retrying, s.Delivered, s.Dead, s.DisabledEndpoints)
	_ = tw.Flush()
	for _, d := range s.DeadLetters {
		fmt.Fprintf(w, "\ndead webhook delivery %s (%s, endpoint %s) after %d attempts: %s\n", d.EventID, d.EventType, d.WebhookID, d.Attempts, d.LastError)
	}
}

// outboxState is "dead-letters" while any message is dead, "retrying"
// while one that failed waits for its next attempt, else "ok".
func outboxState(s outbox.Summary) string {
	switch {
	case s.Dead > 0:
		return "dead-letters"
	case s.Retrying > 0:
		return "retrying"
	}
	return "ok"
}

// printOutbox writes the outgoing messages by state, then each dead letter.
func printOutbox(w io.Writer, s outbox.Summary) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTBOX\tSTATE\tPENDING\tRETRYING\tSENT\tDEAD")
	fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\n", outbox.Table, outboxState(s), s.Pending, s.Retrying, s.Sent, s.Dead)
	_ = tw.Flush()
	for _, d := range s.DeadLetters {
		fmt.Fprintf(w, "\ndead letter %s (%s, user %s) after %d attempts: %s\n", d.EventID, d.Kind, d.UserID, d.Attempts, d.LastError)
	}
}

// followerStatusMaxAge hides the rows of processes gone for longer (a
// process deletes its rows when it stops; one killed leaves them).
const followerStatusMaxAge = 10 * time.Minute

// printFollowersTable writes each process's log followers after the read
// models: they have no checkpoint, so the lag is the time since the
// follower was last known to have handled every event of its filter.
func printFollowersTable(w io.Writer, fs []projector.LogFollowerRow, now time.Time) {
	fmt.Fprintln(w)
	if len(fs) == 0 {
		fmt.Fprintln(w, "No log follower recorded in the last", followerStatusMaxAge, "(no server or worker running).")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FOLLOWER\tINSTANCE\tSTATE\tPOSITION\tLAG SECONDS\tRETRIES\tUPDATED")
	for _, f := range fs {
		lag := "-"
		if f.LagSeconds >= 0 {
			lag = fmt.Sprintf("%.1f", f.LagSeconds)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s ago\n", f.Name, f.Instance, f.State, f.Position.String(), lag, f.Retries, now.Sub(f.UpdatedAt).Round(time.Second))
	}
	_ = tw.Flush()
	for _, f := range fs {
		if f.State != projector.FollowerFollowing && f.LastError != "" {
			fmt.Fprintf(w, "\n%s (%s): %s\n", f.Name, f.Instance, f.LastError)
		}
	}
}

// printStatusTable writes the human form of the status; details (a
// failure, a rebuild in progress) follow the table, one line each.
func printStatusTable(w io.Writer, st []projector.ProjectionStatus, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tGEN\tSTATE\tPOSITION\tAPPLIED\tLAG EVENTS\tLAG SECONDS\tUPDATED")
	for _, s := range st {
		pos, updated := "-", "never"
		if !s.Position.IsZero() {
			pos = s.Position.String()
		}
		if !s.UpdatedAt.IsZero() {
			updated = now.Sub(s.UpdatedAt).Round(time.Second).String() + " ago"
		}
		lag := fmt.Sprint(s.LagEvents)
		if s.LagEventsAtLeast {
			lag = "≥" + lag
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%.1f\t%s\n", s.Name, s.Generation, s.State, pos, s.EventsApplied, lag, s.LagSeconds, updated)
	}
	_ = tw.Flush()
	for _, s := range st {
		if s.State == projector.StateFailed || s.LastError != "" {
			fmt.Fprintf(w, "\n%s stopped on event %s (%s): %s\n", s.Name, s.FailedEventID, s.FailedEventType, s.LastError)
		}
		if r := s.Rebuild; r != nil {
			fmt.Fprintf(w, "\n%s: rebuild into generation %d at %d events (started %s, last progress %s ago)\n",
				s.Name, r.Generation, r.EventsApplied, r.StartedAt.UTC().Format(time.RFC3339), now.Sub(r.UpdatedAt).Round(time.Second))
		}
	}
}

func runProjectionsRebuild(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("projections rebuild", flag.ContinueOnError)
	known := projections.Names()
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: authledger projections rebuild NAME")
		fmt.Fprintf(w, "\nNAME is one of: %s.\n", strings.Join(known, ", "))
		fmt.Fprintln(w, "\nRebuilds the read model NAME from the start of the log into a new")
		fmt.Fprintln(w, "generation of its tables while the current one keeps serving,")
		fmt.Fprintln(w, "then swaps them in one transaction. A running server keeps applying new")
		fmt.Fprintln(w, "events throughout and continues on the new tables after the swap. Progress")
		fmt.Fprintln(w, "(events/s, ETA) goes to stderr; the summary to stdout.")
		envHelp(w)
	}
	// NAME may come before or after flags; the flag package stops at the
	// first positional argument, so take it out first.
	var name string
	rest := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
		if name == "" && !strings.HasPrefix(a, "-") {
			name = a
			continue
		}
		rest = append(rest, a)
	}
	if done, code := parseFlags(fs, rest, stdout, stderr); done {
		return code
	}
	if name == "" {
		fmt.Fprintf(stderr, "authledger projections rebuild: which projection? (one of: %s)\n", strings.Join(known, ", "))
		return exitUsage
	}
	if !slices.Contains(known, name) {
		fmt.Fprintf(stderr, "authledger projections rebuild: unknown projection %q (known: %s)\n", name, strings.Join(known, ", "))
		return exitUsage
	}
	c, code := openAdmin(ctx, "projections rebuild", logOpened, getenv, stderr)
	if c == nil {
		return code
	}
	defer c.close()
	// Only the audit trail needs the master key: its rows are chained under
	// a key derived from it.
	var auditKey []byte
	if name == audit.Name {
		ak, err := loadAuditKeys(c.cfg)
		if err != nil {
			fmt.Fprintf(stderr, "authledger projections rebuild: %v\n", err)
			return exitError
		}
		auditKey = ak.chain
	}
	bar := newProgressBar(stderr)
	// Logs go through the bar, which clears its line first on a terminal.
	log := newLogger(c.cfg, bar)
	final, err := projections.Rebuild(ctx, projections.Config{Store: c.store, Pool: c.pool, Logger: log, Projections: projections.Builtin(auditKey)},
		name, bar.report)
	bar.finish()
	switch {
	case errors.Is(err, projector.ErrRebuildRunning):
		fmt.Fprintf(stderr, "authledger projections rebuild: a rebuild of %s is already running elsewhere; try again when it ends\n", name)
		return exitError
	case err != nil:
		fmt.Fprintf(stderr, "authledger projections rebuild: %v\n", err)
		fmt.Fprintln(stderr, "The serving tables are untouched; running the command again starts over.")
		return exitError
	}
	fmt.Fprintf(stdout, "rebuilt %s: generation %d now serving, %d events in %s (%.0f events/s), position %s\n",
		name, final.Generation, final.Applied, final.Elapsed.Round(time.Millisecond), final.EventsPerSecond, final.Position)
	return exitOK
}

// progressBar renders rebuild progress on a terminal as one line redrawn in
// place, and elsewhere (a log file, CI) as plain lines at most every
// plainEvery, plus one at each phase change. It is also the io.Writer of
// the rebuild's logs, so that a log line never lands in the middle of the
// bar.
type progressBar struct {
	mu        sync.Mutex
	w         io.Writer
	tty       bool
	lastPlain time.Time
	lastPhase string
	drawn     bool
}

const (
	barWidth   = 30
	plainEvery = 5 * time.Second
)

func newProgressBar(w io.Writer) *progressBar {
	return &progressBar{w: w, tty: isTerminal(w)}
}

// isTerminal reports whether w is a terminal. It asks the terminal driver
// (golang.org/x/term): a character-device mode bit alone also holds for
// /dev/null, which is no terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Write writes a log line, first clearing the bar (redrawn at the next
// report).
func (b *progressBar) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprint(b.w, "\r\033[K")
		b.drawn = false
	}
	return b.w.Write(p)
}

// report is the Rebuild progress callback.
func (b *progressBar) report(p projector.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	line := progressLine(p)
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%s", line)
		b.drawn = true
		if p.Phase == projector.PhaseDone {
			fmt.Fprintln(b.w)
			b.drawn = false
		}
		return
	}
	now := time.Now()
	if p.Phase == b.lastPhase && now.Sub(b.lastPlain) < plainEvery {
		return
	}
	b.lastPhase, b.lastPlain = p.Phase, now
	fmt.Fprintln(b.w, line)
}

// finish ends a bar left open by a failed rebuild.
func (b *progressBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}

func progressLine(p projector.Progress) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s g%d %-8s ", p.Projection, p.Generation, p.Phase)
	if p.Total > 0 {
		frac := min(1, float64(p.Applied)/float64(p.Total))
		if p.Phase == projector.PhaseDone {
			frac = 1
		}
		filled := int(frac * barWidth)
		fmt.Fprintf(&sb, "[%s%s] %3.0f%% ", strings.Repeat("#", filled), strings.Repeat(".", barWidth-filled), 100*frac)
		fmt.Fprintf(&sb, "%d/%d events", p.Applied, p.Total)
	} else {
		// A projection that never ran has no count to aim at.
		fmt.Fprintf(&sb, "%d events", p.Applied)
	}
	fmt.Fprintf(&sb, "  %.0f events/s  elapsed %s", p.EventsPerSecond, p.Elapsed.Round(time.Second))
	if p.ETA > 0 {
		fmt.Fprintf(&sb, "  ETA %s", p.ETA.Round(time.Second))
	}
	return sb.String()
}

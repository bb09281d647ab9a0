package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/projections/userviews"
)

// runUsers dispatches `authledger users <link|grant-role|revoke-role>`.
func runUsers(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	return runGroup(ctx, "users", "manage users: roles, links to external identities", []command{
		{"grant-role", "grant a role to the user of an address (the first admin: grant-role EMAIL admin)", runUsersGrantRole},
		{"revoke-role", "revoke a role from the user of an address", runUsersRevokeRole},
		{"link", "link existing accounts to external identities from a CSV of email,external_user_id", runUsersLink},
	}, args, getenv, stdout, stderr)
}

// runUsersGrantRole is `authledger users grant-role EMAIL ROLE [-for D |
// -until T]`: the grant appended to the log (server running or not; every
// instance applies it within a second).
func runUsersGrantRole(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("users grant-role", flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: authledger users grant-role [-for DURATION | -until RFC3339] EMAIL ROLE")
		fmt.Fprintln(w, "\nGrants ROLE (admin, auditor, user or a custom role) to the user registered with")
		fmt.Fprintln(w, "EMAIL, writing to the log directly: it works with the server running or not, and")
		fmt.Fprintln(w, "every instance applies it within a second. The grant expires after -for or at")
		fmt.Fprintln(w, "-until (none: never). Granting a held role again replaces its expiry.")
		fs.PrintDefaults()
		envHelp(w)
	}
	forD := fs.Duration("for", 0, "the grant expires this long from now")
	until := fs.String("until", "", "the grant expires at this time (RFC 3339)")
	if done, code := parseFlagsArgs(fs, args, 2, stdout, stderr); done {
		return code
	}
	if (*forD != 0 && *until != "") || *forD < 0 {
		fmt.Fprintln(stderr, "authledger users grant-role: at most one of -for and -until, and -for positive")
		return exitUsage
	}
	var expires time.Time
	switch {
	case *forD > 0:
		expires = time.Now().Add(*forD)
	case *until != "":
		t, err := time.Parse(time.RFC3339, *until)
		if err != nil {
			fmt.Fprintf(stderr, "authledger users grant-role: -until: %v\n", err)
			return exitUsage
		}
		expires = t
	}
	email, role := fs.Arg(0), fs.Arg(1)
	return changeRole(ctx, "grant-role", getenv, stdout, stderr, email, func(ctx context.Context, h *commands.AdminHandlers, id uuid.UUID, meta commands.Meta) (string, error) {
		res, err := h.GrantRole.Handle(ctx, commands.GrantRole{UserID: id, Role: role, ExpiresAt: expires, Meta: meta})
		switch {
		case err != nil:
			return "", err
		case res.Position.IsZero():
			return fmt.Sprintf("%s already holds %s; nothing written", email, role), nil
		case !expires.IsZero():
			return fmt.Sprintf("granted %s to %s (user %s) until %s", role, email, id, expires.UTC().Format(time.RFC3339)), nil
		}
		return fmt.Sprintf("granted %s to %s (user %s)", role, email, id), nil
	})
}

// runUsersRevokeRole is `authledger users revoke-role EMAIL ROLE`.
func runUsersRevokeRole(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("users revoke-role", flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: authledger users revoke-role EMAIL ROLE")
		fmt.Fprintln(w, "\nRevokes ROLE from the user registered with EMAIL, writing to the log directly")
		fmt.Fprintln(w, "(server running or not; every instance applies it within a second).")
		envHelp(w)
	}
	if done, code := parseFlagsArgs(fs, args, 2, stdout, stderr); done {
		return code
	}
	email, role := fs.Arg(0), fs.Arg(1)
	return changeRole(ctx, "revoke-role", getenv, stdout, stderr, email, func(ctx context.Context, h *commands.AdminHandlers, id uuid.UUID, meta commands.Meta) (string, error) {
		res, err := h.RevokeRole.Handle(ctx, commands.RevokeRole{UserID: id, Role: role, Meta: meta})
		switch {
		case err != nil:
			return "", err
		case res.Position.IsZero():
			return fmt.Sprintf("%s does not hold %s; nothing written", email, role), nil
		}
		return fmt.Sprintf("revoked %s from %s (user %s)", role, email, id), nil
	})
}

// changeRole finds the user of email in the log and runs change as the
// CLI (the actor names the command and the operating-system user).
func changeRole(ctx context.Context, name string, getenv env, stdout, stderr io.Writer, email string,
	change func(context.Context, *commands.AdminHandlers, uuid.UUID, commands.Meta) (string, error)) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "authledger users %s: %v\n", name, err)
		return exitError
	}
	cfg, ok := loadConfig("users", getenv, stderr)
	if !ok {
		return exitUsage
	}
	master, err := cliMasterKey(cfg)
	if err != nil {
		return fail(err)
	}
	key, err := master.DeriveKey(reservationKeyPurpose)
	if err != nil {
		return fail(err)
	}
	store, err := openEventStore(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer func() { _ = store.Close() }()
	reg, err := newRegistry()
	if err != nil {
		return fail(err)
	}
	admin, err := commands.NewAdminHandlers(store, reg, nil)
	if err != nil {
		return fail(err)
	}
	users, err := commands.NewRepository(store, reg, user.FromHistory)
	if err != nil {
		return fail(err)
	}
	reservations, err := commands.NewRepository(store, reg, user.ReservationFromHistory)
	if err != nil {
		return fail(err)
	}
	id, err := (&commands.UserByEmail{Reservations: reservations, Users: users, ReservationKey: key}).Find(ctx, email)
	if errors.Is(err, commands.ErrUserNotFound) {
		return fail(fmt.Errorf("no user is registered with %s", email))
	}
	if err != nil {
		return fail(err)
	}
	actor := "cli:users " + name
	if u, ok := getenv("USER"); ok && u != "" {
		actor += " (" + u + ")"
	}
	out, err := change(ctx, admin, id, commands.Meta{CorrelationID: uuid.NewString(), Actor: events.Actor{Kind: events.ActorService, ID: actor}})
	if err != nil {
		return fail(err)
	}
	fmt.Fprintln(stdout, out)
	return exitOK
}

// runUsersLink is `authledger users link -from FILE.csv`: it links existing
// accounts to their external identities in bulk (a CSV of
// email,external_user_id), exporting the affected users first, and
// reports the rows without a local account and the accounts without a row.
func runUsersLink(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "usage: authledger users link -from FILE.csv (-backup FILE.jsonl | -dry-run)")
		fmt.Fprintln(w, "\nLinks each row's account (by address) to the external identity the row names,")
		fmt.Fprintln(w, "at AUTHLEDGER_EXTERNAL_AUTH_ISSUER, as its first external login would. Rows are")
		fmt.Fprintln(w, "email,external_user_id (a header line is skipped). Before anything is written")
		fmt.Fprintln(w, "the affected users' current profiles are exported to the backup file (JSON")
		fmt.Fprintln(w, "lines; it must not exist). Reports rows without a local account, conflicts, and")
		fmt.Fprintln(w, "the accounts no row links (from the read models). -dry-run writes nothing.")
		fmt.Fprintln(w, "Exits 1 when a row could not be linked.")
		envHelp(w)
	}
	fs := flag.NewFlagSet("users link", flag.ContinueOnError)
	fs.Usage = func() { usage(fs.Output()) }
	from := fs.String("from", "", "the CSV of email,external_user_id (required)")
	backup := fs.String("backup", "", "where to export the affected users first (required unless -dry-run)")
	dryRun := fs.Bool("dry-run", false, "check every row and write nothing")
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	if *from == "" || (*backup == "" && !*dryRun) {
		fmt.Fprintln(stderr, "authledger users link: -from and either -backup or -dry-run are required")
		return exitUsage
	}
	cfg, ok := loadConfig("users", getenv, stderr)
	if !ok {
		return exitUsage
	}
	if cfg.External.Client.Issuer == "" {
		fmt.Fprintln(stderr, "authledger users link: AUTHLEDGER_EXTERNAL_AUTH_ISSUER names the provider the links are for; it is not set")
		return exitUsage
	}
	rows, err := readLinkRows(*from)
	if err != nil {
		fmt.Fprintf(stderr, "authledger users link: %v\n", err)
		return exitUsage
	}
	rep, err := linkUsers(ctx, cfg, rows, *backup, *dryRun)
	if err != nil {
		fmt.Fprintf(stderr, "authledger users link: %v\n", err)
		return exitError
	}
	rep.print(stdout, *dryRun)
	if len(rep.noAccount)+len(rep.failed) > 0 {
		return exitError
	}
	return exitOK
}

type linkRow struct {
	line              int
	email, externalID string
}

func readLinkRows(path string) ([]linkRow, error) {
	f, err := os.Open(path) //nolint:gosec // the operator names the file
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	r := csv.NewReader(f)
	r.FieldsPerRecord = 2
	r.TrimLeadingSpace = true
	var rows []linkRow
	for line := 1; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, err
		}
		if line == 1 && strings.EqualFold(rec[0], "email") {
			continue
		}
		rows = append(rows, linkRow{line: line, email: strings.TrimSpace(rec[0]), externalID: strings.TrimSpace(rec[1])})
	}
}

type linkReport struct {
	linked, already int
	noAccount       []string
	failed          []string
	unmatched       []string
}

func (r linkReport) print(w io.Writer, dryRun bool) {
	verb := "linked"
	if dryRun {
		verb = "would link"
	}
	fmt.Fprintf(w, "%s %d, already linked %d, without a local account %d, failed %d, accounts without a row %d\n",
		verb, r.linked, r.already, len(r.noAccount), len(r.failed), len(r.unmatched))
	for _, e := range r.noAccount {
		fmt.Fprintf(w, "no local account: %s\n", e)
	}
	for _, e := range r.failed {
		fmt.Fprintf(w, "failed: %s\n", e)
	}
	for _, e := range r.unmatched {
		fmt.Fprintf(w, "no row: %s\n", e)
	}
}

// linkUsers checks every row (a dry run of the command), exports the
// affected users, then links.
func linkUsers(ctx context.Context, cfg config.Config, rows []linkRow, backup string, dryRun bool) (linkReport, error) {
	var rep linkReport
	master, err := cliMasterKey(cfg)
	if err != nil {
		return rep, err
	}
	key, err := master.DeriveKey(reservationKeyPurpose)
	if err != nil {
		return rep, err
	}
	db, err := openReadModelPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return rep, err
	}
	defer db.Close()
	store, err := openEventStore(ctx, cfg)
	if err != nil {
		return rep, err
	}
	defer func() { _ = store.Close() }()
	reg, err := newRegistry()
	if err != nil {
		return rep, err
	}
	users, err := commands.NewRepository(store, reg, user.FromHistory)
	if err != nil {
		return rep, err
	}
	reservations, err := commands.NewRepository(store, reg, user.ReservationFromHistory)
	if err != nil {
		return rep, err
	}
	identities, err := commands.NewRepository(store, reg, user.ExternalReservationFromHistory)
	if err != nil {
		return rep, err
	}
	h := &commands.LinkExternalIdentityHandler{Identities: identities, Users: users, Reservations: reservations,
		ReservationKey: key, Provider: cfg.External.Client.Issuer}
	meta := commands.Meta{Actor: events.Actor{Kind: events.ActorService, ID: "cli:users link"}}

	// Check every row first: the backup holds exactly the users the run
	// will change.
	var affected []uuid.UUID
	rowUsers := map[uuid.UUID]bool{}
	claimed := map[string]uuid.UUID{} // external id → the user an earlier row gives it
	var todo []linkRow
	for _, row := range rows {
		res, err := h.Handle(ctx, commands.LinkExternalIdentity{Email: row.email, ExternalUserID: row.externalID, DryRun: true, Meta: meta})
		switch {
		case errors.Is(err, commands.ErrNoAccount):
			rep.noAccount = append(rep.noAccount, fmt.Sprintf("line %d %s", row.line, row.email))
			continue
		case err != nil:
			rep.failed = append(rep.failed, fmt.Sprintf("line %d %s: %v", row.line, row.email, err))
			rowUsers[res.UserID] = true
			continue
		}
		rowUsers[res.UserID] = true
		if other, ok := claimed[row.externalID]; ok && other != res.UserID {
			rep.failed = append(rep.failed, fmt.Sprintf("line %d %s: %v: an earlier row links %s to another account", row.line, row.email, user.ErrExternalIdentityConflict, row.externalID))
			continue
		}
		claimed[row.externalID] = res.UserID
		if !res.Linked {
			rep.already++
			continue
		}
		affected = append(affected, res.UserID)
		todo = append(todo, row)
	}
	if !dryRun && len(todo) > 0 {
		if err := exportUsers(ctx, users, affected, backup); err != nil {
			return rep, fmt.Errorf("backup (nothing was linked): %w", err)
		}
	}
	for _, row := range todo {
		if dryRun {
			rep.linked++
			continue
		}
		res, err := h.Handle(ctx, commands.LinkExternalIdentity{Email: row.email, ExternalUserID: row.externalID, Meta: meta})
		switch {
		case err != nil:
			rep.failed = append(rep.failed, fmt.Sprintf("line %d %s: %v", row.line, row.email, err))
		case res.Linked:
			rep.linked++
		default:
			rep.already++
		}
	}
	// The accounts no row names and no link holds, from the read models
	// (a report, not a decision: they may lag the log by a moment).
	list, err := db.Query(ctx, `SELECT p.user_id, p.email FROM `+userviews.TableProfiles+` p
		WHERE NOT EXISTS (SELECT 1 FROM `+userviews.TableExternalIdentities+` x WHERE x.user_id = p.user_id AND x.provider = $1)
		ORDER BY p.email`, cfg.External.Client.Issuer)
	if err != nil {
		return rep, fmt.Errorf("list the accounts: %w", err)
	}
	defer list.Close()
	for list.Next() {
		var id uuid.UUID
		var email string
		if err := list.Scan(&id, &email); err != nil {
			return rep, err
		}
		if !rowUsers[id] {
			rep.unmatched = append(rep.unmatched, email)
		}
	}
	return rep, list.Err()
}

// exportedUser is one line of the backup: the user as the log has it
// before the run.
type exportedUser struct {
	UserID       uuid.UUID `json:"user_id"`
	Email        string    `json:"email"`
	DisplayName  string    `json:"display_name"`
	Roles        []string  `json:"roles"`
	RegisteredAt time.Time `json:"registered_at"`
	HasPassword  bool      `json:"has_password"`
}

// exportUsers writes the users' current profiles, one JSON object a line,
// to a new file (never over an older backup).
func exportUsers(ctx context.Context, users *commands.Repository[*user.User], ids []uuid.UUID, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // the operator names the file
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, id := range slices.Compact(slices.SortedFunc(slices.Values(ids), func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })) {
		u, err := users.Load(ctx, user.StreamName(id))
		if err != nil {
			_ = f.Close()
			return err
		}
		line := exportedUser{UserID: u.ID(), Email: u.Email(), DisplayName: u.DisplayName(), Roles: u.Roles(),
			RegisteredAt: u.RegisteredAt(), HasPassword: u.HasPassword()}
		if err := enc.Encode(line); err != nil {
			_ = f.Close()
			return err
		}
	}
	return f.Close()
}

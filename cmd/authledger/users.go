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

// runUsers dispatches `authledger users <link>`.
func runUsers(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	return runGroup(ctx, "users", "manage users in bulk", []command{
		{"link", "link existing accounts to external identities from a CSV of email,external_user_id", runUsersLink},
	}, args, getenv, stdout, stderr)
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

package main

// audit_tools.go holds the audit trail's tools beyond verify and head:
// `audit tail`, `audit export`, the offline `audit verify FILE`, and audit
// retention (`audit archive`, and serve's hourly run under
// AUTHLEDGER_AUDIT_RETENTION).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/domain/auditarchive"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/audit"
)

// auditExportKeyPurpose is the HKDF purpose of the Ed25519 seed that signs
// export files and archives. Changing it changes the key every auditor
// pinned: never change it.
const auditExportKeyPurpose = "audit export v1"

// auditArchiveDir is where retention writes archives, under the data dir.
const auditArchiveDir = "audit-archive"

// auditRetentionInterval is how often serve archives under
// AUTHLEDGER_AUDIT_RETENTION.
const auditRetentionInterval = time.Hour

// tailPoll is how often `audit tail -f` asks for new rows.
const tailPoll = 250 * time.Millisecond

func exportSigner(cfg config.Config) (*audit.ExportSigner, error) {
	master, err := cliMasterKey(cfg)
	if err != nil {
		return nil, err
	}
	return newExportSigner(master)
}

// newExportSigner is the signer of audit exports and archives: an
// Ed25519 key derived from the master key, the same for serve's
// retention and the CLI.
func newExportSigner(master *keys.MasterKey) (*audit.ExportSigner, error) {
	seed, err := master.DeriveKey(auditExportKeyPurpose)
	if err != nil {
		return nil, err
	}
	return audit.NewExportSigner(seed)
}

// operatorActor is the actor of a CLI command's events: the OS user.
func operatorActor(command string) events.Actor {
	id := "cli:" + command
	if u, err := user.Current(); err == nil {
		id = "cli:" + u.Username
	}
	return events.Actor{Kind: events.ActorService, ID: id}
}

// ------------------------------------------------------------------ tail

// tailJSON is one row of `audit tail -json`: the API's audit entry.
func printEntry(w io.Writer, r audit.Row, asJSON bool) {
	if asJSON {
		_ = json.NewEncoder(w).Encode(audit.Entry{Seq: r.Seq, EventID: r.EventID.String(), Position: r.Position, Stream: r.Stream,
			Revision: int64(r.Revision), Type: r.EventType, OccurredAt: r.OccurredAt.UTC(), RecordedAt: r.RecordedAt.UTC(), //nolint:gosec // revisions fit
			Actor: audit.Actor{Kind: r.ActorKind, ID: r.ActorID}, CorrelationID: r.CorrelationID, CausationID: r.CausationID,
			ClientIP: r.ClientIP, UserAgent: r.UserAgent, Summary: json.RawMessage(r.Summary), Hash: hex.EncodeToString(r.Hash)})
		return
	}
	actor := r.ActorKind
	if r.ActorID != "" {
		actor += ":" + r.ActorID
	}
	fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.RecordedAt.UTC().Format(time.RFC3339Nano), r.EventType, r.Stream, actor, r.Summary)
}

func runAuditTail(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit tail", flag.ContinueOnError)
	follow := fs.Bool("f", false, "follow: keep printing rows as they are appended, until interrupted")
	n := fs.Int("n", 20, "print the last `N` rows first")
	asJSON := fs.Bool("json", false, "one JSON object per row (the entries of GET /v1/audit)")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: authledger audit tail [-f] [-n N] [-json]")
		fmt.Fprintln(w, "\nPrints the audit trail's last N rows, oldest first (seq, recorded time, type,")
		fmt.Fprintln(w, "stream, actor, redacted summary; tab-separated), and with -f keeps printing")
		fmt.Fprintln(w, "new rows as the audit projection appends them.")
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
		envHelp(w)
	}
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	if *n < 0 {
		fmt.Fprintln(stderr, "authledger audit tail: -n must not be negative")
		return exitUsage
	}
	c, code := openAdmin(ctx, "audit tail", noLog, getenv, stderr)
	if c == nil {
		return code
	}
	defer c.close()
	last, err := audit.LastSeq(ctx, c.pool)
	if err != nil {
		fmt.Fprintf(stderr, "authledger audit tail: %v\n", err)
		return exitError
	}
	after := max(last-int64(*n), 0)
	for {
		rows, err := audit.RowsAfter(ctx, c.pool, after, 1000)
		if err != nil {
			if ctx.Err() != nil {
				return exitOK
			}
			fmt.Fprintf(stderr, "authledger audit tail: %v\n", err)
			return exitError
		}
		for _, r := range rows {
			printEntry(stdout, r, *asJSON)
			after = r.Seq
		}
		if !*follow {
			if len(rows) == 0 || after >= last {
				return exitOK
			}
			continue
		}
		if len(rows) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-time.After(tailPoll):
		}
	}
}

// ---------------------------------------------------------------- export

func runAuditExport(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	from := fs.String("from", "", "the first row's recorded `TIME` (RFC 3339; default: the trail's start)")
	to := fs.String("to", "", "rows recorded before this `TIME` (RFC 3339; default: now)")
	out := fs.String("o", "", "the `FILE` to write (required; - for standard output)")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: authledger audit export [-from TIME] [-to TIME] -o FILE")
		fmt.Fprintln(w, "\nVerifies the trail against the log (as `authledger audit verify`), then writes")
		fmt.Fprintln(w, "the rows recorded in [from, to) as JSON lines: a header, one row per line with")
		fmt.Fprintln(w, "its keyed chain link and the file's own SHA-256 link, and a trailer signed with")
		fmt.Fprintln(w, "Ed25519 (a key derived from the master key; its public JWK is in the trailer).")
		fmt.Fprintln(w, "An auditor checks the file offline with `authledger audit verify FILE`, pinning")
		fmt.Fprintln(w, "the key's thumbprint, which this command prints on stderr (docs/audit.md).")
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
		envHelp(w)
	}
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	if *out == "" {
		fmt.Fprintln(stderr, "authledger audit export: -o FILE is required")
		return exitUsage
	}
	var fromT, toT time.Time
	var err error
	if *from != "" {
		if fromT, err = parseTime(*from); err != nil {
			fmt.Fprintf(stderr, "authledger audit export: -from: %v\n", err)
			return exitUsage
		}
	}
	if *to != "" {
		if toT, err = parseTime(*to); err != nil {
			fmt.Fprintf(stderr, "authledger audit export: -to: %v\n", err)
			return exitUsage
		}
	}
	if !fromT.IsZero() && !toT.IsZero() && !fromT.Before(toT) {
		fmt.Fprintln(stderr, "authledger audit export: -from must be before -to")
		return exitUsage
	}
	noHead := ""
	rep, _, _, code := verifyWith(ctx, "audit export", auditFlags{head: &noHead}, getenv, stderr)
	if code != exitOK {
		return code
	}
	if !rep.OK {
		fmt.Fprintf(stderr, "authledger audit export: the chain is broken at %s; nothing exported\n", rep.Broken)
		return exitError
	}
	c, code := openAdmin(ctx, "audit export", logAsStored, getenv, stderr)
	if c == nil {
		return code
	}
	defer c.close()
	signer, err := exportSigner(c.cfg)
	if err != nil {
		fmt.Fprintf(stderr, "authledger audit export: %v\n", err)
		return exitError
	}
	anchors, err := audit.ReadAnchors(ctx, c.store)
	if err != nil {
		fmt.Fprintf(stderr, "authledger audit export: %v\n", err)
		return exitError
	}
	w := stdout
	var f *os.File
	if *out != "-" {
		if f, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			fmt.Fprintf(stderr, "authledger audit export: %v\n", err)
			return exitError
		}
		w = f
	}
	seal, err := audit.Export(ctx, c.pool, w, audit.ExportOptions{From: fromT, To: toT, Anchors: anchors, Signer: signer, Now: time.Now()})
	if f != nil {
		err = errors.Join(err, f.Sync(), f.Close())
		if err != nil {
			_ = os.Remove(*out)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "authledger audit export: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stderr, "exported %d rows (seq %d to %d) signed by key %s\n", seal.Count, seal.FirstSeq, seal.LastSeq, signer.Thumbprint())
	return exitOK
}

// verifyExportFile is `audit verify FILE`: offline, no configuration.
func verifyExportFile(path, pin string, asJSON bool, stdout, stderr io.Writer) int {
	rep, err := verifyExportPath(path, pin)
	if err != nil {
		fmt.Fprintf(stderr, "authledger audit verify: %s: %v\n", path, err)
		return exitError
	}
	switch {
	case asJSON:
		out := exportVerifyJSON{OK: rep.OK, File: path, Rows: rep.Rows, FirstSeq: rep.Seal.FirstSeq, LastSeq: rep.Seal.LastSeq,
			PrevHash: rep.Header.PrevHash, LastHash: rep.Seal.LastHash, Thumbprint: rep.Thumbprint, Pinned: pin != "" && rep.OK}
		if b := rep.Broken; b != nil {
			out.Broken = &exportBreakJSON{b.Line, b.Seq, b.Reason}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	case rep.OK:
		fmt.Fprintf(stdout, "export OK: %d rows, seq %d to %d, chained from %s to %s; signed by key %s\n",
			rep.Rows, rep.Seal.FirstSeq, rep.Seal.LastSeq, rep.Header.PrevHash, rep.Seal.LastHash, rep.Thumbprint)
		if pin == "" {
			fmt.Fprintln(stdout, "the key was not pinned: pass -thumbprint with the thumbprint the service printed to be sure who signed")
		}
	default:
		fmt.Fprintf(stdout, "export BROKEN at %s\n%d rows hold before it\n", rep.Broken, rep.Rows)
	}
	if !rep.OK {
		return exitError
	}
	return exitOK
}

func verifyExportPath(path, pin string) (audit.ExportReport, error) {
	f, err := os.Open(path) //nolint:gosec // the operator names the file to check
	if err != nil {
		return audit.ExportReport{}, err
	}
	defer func() { _ = f.Close() }()
	return audit.VerifyExport(f, pin)
}

// exportVerifyJSON is `audit verify -json FILE`: add, never rename.
type exportVerifyJSON struct {
	OK         bool             `json:"ok"`
	File       string           `json:"file"`
	Rows       int64            `json:"rows"`
	FirstSeq   int64            `json:"first_seq"`
	LastSeq    int64            `json:"last_seq"`
	PrevHash   string           `json:"prev_hash"`
	LastHash   string           `json:"last_hash"`
	Thumbprint string           `json:"thumbprint"`
	Pinned     bool             `json:"pinned"`
	Broken     *exportBreakJSON `json:"broken,omitempty"`
}

type exportBreakJSON struct {
	Line   int    `json:"line"`
	Seq    int64  `json:"seq,omitempty"`
	Reason string `json:"reason"`
}

// checkArchives is `audit verify -archive FILE...` after the database
// check held: each file verifies offline and is the one an archiving of
// the log recorded (its digest, and its last link being that archiving's
// anchor, which the database check recomputed from the log).
func checkArchives(ctx context.Context, files []string, pin string, getenv env, stdout, stderr io.Writer) int {
	c, code := openAdmin(ctx, "audit verify", logAsStored, getenv, stderr)
	if c == nil {
		return code
	}
	defer c.close()
	anchors, err := audit.ReadAnchors(ctx, c.store)
	if err != nil {
		fmt.Fprintf(stderr, "authledger audit verify: %v\n", err)
		return exitError
	}
	for _, path := range files {
		rep, err := verifyExportPath(path, pin)
		if err != nil {
			fmt.Fprintf(stderr, "authledger audit verify: -archive %s: %v\n", path, err)
			return exitError
		}
		if !rep.OK {
			fmt.Fprintf(stdout, "archive %s BROKEN at %s\n", path, rep.Broken)
			return exitError
		}
		b, err := os.ReadFile(path) //nolint:gosec // the operator names the file to check
		if err != nil {
			fmt.Fprintf(stderr, "authledger audit verify: -archive %s: %v\n", path, err)
			return exitError
		}
		sum := sha256.Sum256(b)
		var found *auditarchive.Archived
		for i := range anchors {
			if anchors[i].ThroughSeq == rep.Seal.LastSeq {
				found = &anchors[i]
			}
		}
		switch {
		case found == nil:
			fmt.Fprintf(stdout, "archive %s BROKEN: no archiving of the log ends at its last seq %d\n", path, rep.Seal.LastSeq)
			return exitError
		case found.AnchorLink != rep.Seal.LastHash || found.FromSeq != rep.Seal.FirstSeq:
			fmt.Fprintf(stdout, "archive %s BROKEN: its rows %d..%d end in link %s, the log's archiving anchored rows %d..%d at %s\n",
				path, rep.Seal.FirstSeq, rep.Seal.LastSeq, rep.Seal.LastHash, found.FromSeq, found.ThroughSeq, found.AnchorLink)
			return exitError
		case found.FileSHA256 != hex.EncodeToString(sum[:]):
			fmt.Fprintf(stdout, "archive %s BROKEN: it is not the file the log's archiving recorded (SHA-256 %s, recorded %s)\n",
				path, hex.EncodeToString(sum[:]), found.FileSHA256)
			return exitError
		}
		fmt.Fprintf(stdout, "archive %s OK: rows %d to %d, the one the log recorded, anchored at %s\n", path, rep.Seal.FirstSeq, rep.Seal.LastSeq, found.AnchorLink)
	}
	return exitOK
}

// --------------------------------------------------------------- retention

// auditArchiver archives the audit rows older than a cutoff: the file,
// then the event (the projection deletes the rows when it applies it).
type auditArchiver struct {
	pool    *pgxpool.Pool
	store   eventstore.Store
	signer  *audit.ExportSigner
	record  *commands.RecordAuditArchiveHandler
	dir     string
	actor   events.Actor
	retain  time.Duration
	nowFunc func() time.Time
}

func newAuditArchiver(cfg config.Config, pool *pgxpool.Pool, store eventstore.Store, signer *audit.ExportSigner, actor events.Actor) (*auditArchiver, error) {
	reg, err := newRegistry()
	if err != nil {
		return nil, err
	}
	repo, err := commands.NewRepository(store, reg, auditarchive.FromHistory)
	if err != nil {
		return nil, err
	}
	return &auditArchiver{pool: pool, store: store, signer: signer, record: &commands.RecordAuditArchiveHandler{Archives: repo},
		dir: filepath.Join(cfg.DataDir, auditArchiveDir), actor: actor, retain: cfg.AuditRetention, nowFunc: time.Now}, nil
}

// archive archives the rows recorded before before; ok is false when there
// were none.
func (a *auditArchiver) archive(ctx context.Context, before time.Time) (auditarchive.Archived, bool, error) {
	anchors, err := audit.ReadAnchors(ctx, a.store)
	if err != nil {
		return auditarchive.Archived{}, false, err
	}
	arch, ok, err := audit.WriteArchive(ctx, a.pool, audit.ArchiveOptions{Dir: a.dir, Before: before, Anchors: anchors, Signer: a.signer, Now: a.nowFunc()})
	if err != nil || !ok {
		return arch, ok, err
	}
	if _, err := a.record.Handle(ctx, commands.RecordAuditArchive{Archived: arch, Meta: commands.Meta{Actor: a.actor}}); err != nil {
		_ = os.Remove(filepath.Join(a.dir, arch.File))
		return auditarchive.Archived{}, false, fmt.Errorf("record the archiving: %w", err)
	}
	return arch, true, nil
}

// run is serve's retention loop: at start and hourly, archive what is
// older than the retention.
func (a *auditArchiver) run(log *slog.Logger) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		for {
			arch, ok, err := a.archive(ctx, a.nowFunc().Add(-a.retain))
			switch {
			case ctx.Err() != nil:
				return nil
			case err != nil:
				// The next round tries again; nothing was deleted.
				log.Error("audit retention failed", "err", err)
			case ok:
				log.Info("audit rows archived", "from_seq", arch.FromSeq, "through_seq", arch.ThroughSeq, "file", filepath.Join(a.dir, arch.File))
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(auditRetentionInterval):
			}
		}
	}
}

func runAuditArchive(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit archive", flag.ContinueOnError)
	before := fs.String("before", "", "archive the rows recorded before this `TIME` (RFC 3339; default: now minus AUTHLEDGER_AUDIT_RETENTION)")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: authledger audit archive [-before TIME]")
		fmt.Fprintln(w, "\nAudit retention now, as serve does hourly under AUTHLEDGER_AUDIT_RETENTION:")
		fmt.Fprintln(w, "writes the audit rows recorded before TIME that no archive holds yet to a")
		fmt.Fprintln(w, "signed export file in $AUTHLEDGER_DATA_DIR/audit-archive, records the archiving")
		fmt.Fprintln(w, "in the log (audit.archived.v1, with the last row's link as the anchor), and the")
		fmt.Fprintln(w, "audit projection deletes the rows when it applies it (a running server, within")
		fmt.Fprintln(w, "a second). `audit verify` then checks the chain from that anchor; with -archive")
		fmt.Fprintln(w, "FILE it checks the archive too. Prints the file, or nothing to archive.")
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
		envHelp(w)
	}
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	c, code := openAdmin(ctx, "audit archive", logAsStored, getenv, stderr)
	if c == nil {
		return code
	}
	defer c.close()
	var cutoff time.Time
	switch {
	case *before != "":
		t, err := parseTime(*before)
		if err != nil {
			fmt.Fprintf(stderr, "authledger audit archive: -before: %v\n", err)
			return exitUsage
		}
		cutoff = t
	case c.cfg.AuditRetention > 0:
		cutoff = time.Now().Add(-c.cfg.AuditRetention)
	default:
		fmt.Fprintln(stderr, "authledger audit archive: give -before TIME, or set AUTHLEDGER_AUDIT_RETENTION")
		return exitUsage
	}
	signer, err := exportSigner(c.cfg)
	if err != nil {
		fmt.Fprintf(stderr, "authledger audit archive: %v\n", err)
		return exitError
	}
	a, err := newAuditArchiver(c.cfg, c.pool, c.store, signer, operatorActor("audit archive"))
	if err != nil {
		fmt.Fprintf(stderr, "authledger audit archive: %v\n", err)
		return exitError
	}
	arch, ok, err := a.archive(ctx, cutoff)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "authledger audit archive: %v\n", err)
		return exitError
	case !ok:
		fmt.Fprintf(stdout, "nothing to archive: no audit row recorded before %s that no archive holds\n", cutoff.UTC().Format(time.RFC3339))
		return exitOK
	}
	fmt.Fprintf(stdout, "archived rows %d to %d to %s (anchor %s); the audit projection deletes them when it applies the archiving\n",
		arch.FromSeq, arch.ThroughSeq, filepath.Join(a.dir, arch.File), arch.AnchorLink)
	return exitOK
}

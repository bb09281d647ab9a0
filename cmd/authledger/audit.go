package main

// audit.go holds `authledger audit verify` and `authledger audit head`, and
// the derivation of the audit keys from the master key, which serve uses
// too (the projection chains its rows under the chain key).

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/projections/audit"
)

// The HKDF purposes of the audit keys. Changing the chain purpose makes
// every existing link fail verification (until a rebuild), and changing
// the head purpose every exported head: never change them.
const (
	auditChainKeyPurpose = "audit chain v1"
	auditHeadKeyPurpose  = "audit head v1"
)

// auditKeys are the two keys derived from the master key for the audit
// trail: one chains the rows, the other signs exported heads, so that a
// head (a file kept anywhere) never carries a MAC made with the chain key.
type auditKeys struct {
	chain, head []byte
}

func deriveAuditKeys(master *keys.MasterKey) (auditKeys, error) {
	chain, err := master.DeriveKey(auditChainKeyPurpose)
	if err != nil {
		return auditKeys{}, err
	}
	head, err := master.DeriveKey(auditHeadKeyPurpose)
	if err != nil {
		return auditKeys{}, err
	}
	return auditKeys{chain: chain, head: head}, nil
}

// loadAuditKeys derives the audit keys from the servers' master key, for
// an administrative command (never creating a key file; see cliMasterKey).
func loadAuditKeys(cfg config.Config) (auditKeys, error) {
	master, err := cliMasterKey(cfg)
	if err != nil {
		return auditKeys{}, err
	}
	return deriveAuditKeys(master)
}

// runAudit dispatches `authledger audit <verify|head|tail|export|archive>`.
func runAudit(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	return runGroup(ctx, "audit", "check the log and its audit trail, and export signed heads", []command{
		{"verify", "check the audit trail against the log, link by link, and report the first broken link", runAuditVerify},
		{"head", "verify, then print the chain's head signed under the master key, to keep outside the database", runAuditHead},
		{"tail", "print the trail's last rows, and with -f new ones as they are appended", runAuditTail},
		{"export", "write a signed, hash-chained file of the rows in a time range, checkable offline by `audit verify FILE`", runAuditExport},
		{"archive", "audit retention now: archive old rows to a signed file and let them leave the table", runAuditArchive},
	}, args, getenv, stdout, stderr)
}

// verifyHelp is what verify and head both do, for their --help.
func verifyHelp(w io.Writer) {
	fmt.Fprintln(w, "Reads the log from its start (the event store's $all: the events table, or")
	fmt.Fprintln(w, "EventStoreDB) beside the audit trail, and recomputes for each event the row it")
	fmt.Fprintln(w, "must be and its link hash = HMAC-SHA256(K, previous hash || canonical row),")
	fmt.Fprintln(w, "K being derived from the master key (AUTHLEDGER_MASTER_KEY, or the development")
	fmt.Fprintln(w, "key file). The database does not hold K, so a trail re-chained by someone")
	fmt.Fprintln(w, "who can write to the database (with plain SHA-256, say) fails at its first")
	fmt.Fprintln(w, "row. The first broken link is named: an event changed in the log after it")
	fmt.Fprintln(w, "was audited, an event removed from the log, inserted into it or moved, a row")
	fmt.Fprintln(w, "changed, removed or chained without K, rows removed from the trail's end")
	fmt.Fprintln(w, "(checked against the projection's checkpoint), and with -head, a log or trail")
	fmt.Fprintln(w, "that no longer passes through an exported head (truncated, or rewritten before")
	fmt.Fprintln(w, "it). Events after the trail's checkpoint are counted as lag, not checked.")
	fmt.Fprintln(w, "Reads one consistent snapshot of the trail: safe while the server runs.")
}

// auditFlags are the flags verify and head share.
type auditFlags struct {
	head *string
}

func addAuditFlags(fs *flag.FlagSet) auditFlags {
	return auditFlags{head: fs.String("head", "", "a `FILE` printed by authledger audit head: fail unless the log and the trail still pass through that head")}
}

// usageTail ends a verify or head --help: the flags and the environment.
func usageTail(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintln(w, "\nflags:")
	fs.PrintDefaults()
	envHelp(w)
}

// verifyLog parses the flags and runs the verification of `audit verify`
// and `audit head`: the report, the parsed -head (nil without) and the
// keys, or done with the exit code (help printed, bad flags, an error
// printed).
func verifyLog(ctx context.Context, fs *flag.FlagSet, f auditFlags, args []string, getenv env, stdout, stderr io.Writer) (audit.Report, *audit.Head, auditKeys, bool, int) {
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return audit.Report{}, nil, auditKeys{}, true, code
	}
	rep, head, k, code := verifyWith(ctx, fs.Name(), f, getenv, stderr)
	return rep, head, k, code != exitOK, code
}

func verifyWith(ctx context.Context, name string, f auditFlags, getenv env, stderr io.Writer) (audit.Report, *audit.Head, auditKeys, int) {
	c, code := openAdmin(ctx, name, logAsStored, getenv, stderr)
	if c == nil {
		return audit.Report{}, nil, auditKeys{}, code
	}
	defer c.close()
	k, err := loadAuditKeys(c.cfg)
	if err != nil {
		fmt.Fprintf(stderr, "authledger %s: %v\n", name, err)
		return audit.Report{}, nil, auditKeys{}, exitError
	}
	var head *audit.Head
	if *f.head != "" {
		b, err := os.ReadFile(*f.head)
		if err != nil {
			fmt.Fprintf(stderr, "authledger %s: -head: %v\n", name, err)
			return audit.Report{}, nil, auditKeys{}, exitError
		}
		h, err := audit.ParseHead(b, k.head)
		if err != nil {
			fmt.Fprintf(stderr, "authledger %s: -head %s: %v\n", name, *f.head, err)
			return audit.Report{}, nil, auditKeys{}, exitError
		}
		head = &h
	}
	rep, err := audit.Verify(ctx, c.pool, c.store, audit.VerifyOptions{Key: k.chain, Head: head})
	if err != nil {
		fmt.Fprintf(stderr, "authledger %s: %v\n", name, err)
		return audit.Report{}, nil, auditKeys{}, exitError
	}
	return rep, head, k, exitOK
}

// verifyJSON is `audit verify -json`. The field names are an interface
// for scripts: add, never rename.
type verifyJSON struct {
	OK           bool       `json:"ok"`
	Rows         int64      `json:"rows"`
	Archived     int64      `json:"archived"`
	Events       int64      `json:"events"`
	Unaudited    int64      `json:"unaudited"`
	LastSeq      int64      `json:"last_seq"`
	LastHash     string     `json:"last_hash"`
	LastPosition string     `json:"last_position,omitempty"`
	LastEventID  string     `json:"last_event_id,omitempty"`
	HeadChecked  bool       `json:"head_checked"`
	Broken       *breakJSON `json:"broken,omitempty"`
}

type breakJSON struct {
	Seq     int64  `json:"seq"`
	EventID string `json:"event_id,omitempty"`
	Reason  string `json:"reason"`
}

func runAuditVerify(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	af := addAuditFlags(fs)
	pin := fs.String("thumbprint", "", "with FILE or -archive: the export key's `THUMBPRINT` (printed by audit export) the file must be signed with")
	var archives []string
	fs.Func("archive", "an archive `FILE` of audit retention (repeatable): check it offline and that it is the one the log's archiving anchored", func(s string) error {
		archives = append(archives, s)
		return nil
	})
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: authledger audit verify [-json] [-head FILE] [-archive FILE]...")
		fmt.Fprintln(w, "       authledger audit verify [-json] [-thumbprint T] FILE")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "With FILE (an export of `authledger audit export`, or an archive of audit")
		fmt.Fprintln(w, "retention), checks the file alone, offline, without the database or the master")
		fmt.Fprintln(w, "key: each row's canonical form and seq order, the file's SHA-256 chain of")
		fmt.Fprintln(w, "links, and the trailer's Ed25519 signature under the key it embeds (pin it")
		fmt.Fprintln(w, "with -thumbprint). Exits 1 naming the first broken line.")
		fmt.Fprintln(w, "\nWithout FILE:")
		verifyHelp(w)
		fmt.Fprintln(w, "\nPrints the rows and events checked and the chain head, or the first broken")
		fmt.Fprintln(w, "link, and exits 1 when the chain is broken.")
		usageTail(fs, w)
	}
	if done, code := parseFlagsArgs(fs, args, -1, stdout, stderr); done {
		return code
	}
	switch fs.NArg() {
	case 0:
	case 1:
		return verifyExportFile(fs.Arg(0), *pin, *asJSON, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "authledger audit verify: %d arguments, want at most one FILE\n", fs.NArg())
		return exitUsage
	}
	rep, head, _, code := verifyWith(ctx, fs.Name(), af, getenv, stderr)
	if code != exitOK {
		return code
	}
	if len(archives) > 0 && rep.OK {
		if code := checkArchives(ctx, archives, *pin, getenv, stdout, stderr); code != exitOK {
			return code
		}
	}
	switch {
	case *asJSON:
		out := verifyJSON{OK: rep.OK, Rows: rep.Rows, Archived: rep.Archived, Events: rep.Events, Unaudited: rep.Unaudited, LastSeq: rep.LastSeq,
			LastHash: rep.LastHash, LastPosition: rep.LastPosition, LastEventID: rep.LastEventID, HeadChecked: rep.HeadChecked}
		if b := rep.Broken; b != nil {
			out.Broken = &breakJSON{b.Seq, b.EventID, b.Reason}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	case rep.OK:
		fmt.Fprintf(stdout, "audit trail OK: %d rows checked against %d events of the log; head seq %d, hash %s\n",
			rep.Rows, rep.Events, rep.LastSeq, rep.LastHash)
		if rep.Archived > 0 {
			fmt.Fprintf(stdout, "rows 1 to %d are archived (audit retention): their links recomputed from the log reach the archive's anchor\n", rep.Archived)
		}
		if head != nil {
			fmt.Fprintf(stdout, "the log still passes through the head signed %s (seq %d)\n", head.At.UTC().Format(time.RFC3339), head.Count)
		}
		if rep.Unaudited > 0 {
			fmt.Fprintf(stdout, "log events after the trail's checkpoint, not audited yet (projection lag; not checked): %d\n", rep.Unaudited)
		}
	default:
		fmt.Fprintf(stdout, "audit trail BROKEN at %s\n%d rows read; the chain holds up to seq %d (hash %s)\n",
			rep.Broken, rep.Rows, rep.LastSeq, rep.LastHash)
	}
	if !rep.OK {
		return exitError
	}
	return exitOK
}

func runAuditHead(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit head", flag.ContinueOnError)
	af := addAuditFlags(fs)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: authledger audit head [-head FILE] > head.jws")
		fmt.Fprintln(w, "\nVerifies the log and the audit trail as `authledger audit verify` does, then")
		fmt.Fprintln(w, "prints the chain's head (seq, link hash, log position, event id, time) as a")
		fmt.Fprintln(w, "compact JWS signed (HS256) under a key derived from the master key. Keep it")
		fmt.Fprintln(w, "outside the database, where whoever can write to the database cannot: later,")
		fmt.Fprintln(w, "`authledger audit verify -head FILE` fails if the log or the trail no longer")
		fmt.Fprintln(w, "passes through it (the end deleted, or history before it rewritten). Run it")
		fmt.Fprintln(w, "periodically (cron) and keep every head: each pins what came before it.")
		fmt.Fprintln(w, "With -head, the new head is signed only if the log still extends the old one.")
		fmt.Fprintln(w, "Exits 1 without printing a head when the chain is broken.")
		fmt.Fprintln(w)
		verifyHelp(w)
		usageTail(fs, w)
	}
	rep, _, k, done, code := verifyLog(ctx, fs, af, args, getenv, stdout, stderr)
	if done {
		return code
	}
	if !rep.OK {
		fmt.Fprintf(stderr, "authledger audit head: the chain is broken at %s; no head signed\n", rep.Broken)
		return exitError
	}
	h := rep.Head()
	if h == nil {
		fmt.Fprintln(stderr, "authledger audit head: the audit trail is empty; no head to sign")
		return exitError
	}
	h.At = time.Now().UTC().Truncate(time.Second)
	signed, err := audit.SignHead(*h, k.head)
	if err != nil {
		fmt.Fprintf(stderr, "authledger audit head: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "%s\n", signed)
	fmt.Fprintf(stderr, "signed the audit head: seq %d, position %s, event %s, hash %s\n", h.Count, h.Position, h.EventID, h.Hash)
	return exitOK
}

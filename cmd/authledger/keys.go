package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/config"
)

// runKeys dispatches `authledger keys <rotate>`.
func runKeys(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	return runGroup(ctx, "keys", "manage the signing keys", []command{
		{"rotate", "add a signing key: published in the JWKS now, signing after AUTHLEDGER_KEY_OVERLAP", runKeysRotate},
	}, args, getenv, stdout, stderr)
}

// runKeysRotate is `authledger keys rotate`: it adds a signing key, published in
// the JWKS at once and signing once AUTHLEDGER_KEY_OVERLAP has passed (the
// running servers activate it; the key it replaces stays published until
// every token it signed has expired).
func runKeysRotate(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "usage: authledger keys rotate")
		fmt.Fprintln(w, "\nAdds a signing key (AUTHLEDGER_SIGNING_ALG), sealed under the master key.")
		fmt.Fprintln(w, "It is published in /.well-known/jwks.json at once and signs after")
		fmt.Fprintln(w, "AUTHLEDGER_KEY_OVERLAP, so that clients caching the JWKS learn it first.")
		fmt.Fprintln(w, "The servers pick it up within 30 seconds.")
		envHelp(w)
	}
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	fs.Usage = func() { usage(fs.Output()) }
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	cfg, ok := loadConfig("keys", getenv, stderr)
	if !ok {
		return exitUsage
	}
	log := newLogger(cfg, stderr)
	kid, activeAt, err := rotateKey(ctx, cfg, log)
	if err != nil {
		log.Error("key rotation failed", slog.String("error", err.Error()))
		return exitError
	}
	fmt.Fprintf(stdout, "added signing key %s (%s): published now, signs from %s\n", kid, cfg.Identity.SigningAlgorithm, activeAt.UTC().Format(time.RFC3339))
	return exitOK
}

func rotateKey(ctx context.Context, cfg config.Config, log *slog.Logger) (string, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	master, err := cliMasterKey(cfg)
	if err != nil {
		return "", time.Time{}, err
	}
	db, err := openReadModelPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return "", time.Time{}, err
	}
	defer db.Close()
	store, err := openEventStore(ctx, cfg)
	if err != nil {
		return "", time.Time{}, err
	}
	defer func() { _ = store.Close() }()
	reg, err := newRegistry()
	if err != nil {
		return "", time.Time{}, err
	}
	km, err := newKeyManager(cfg, store, db, reg, master)
	if err != nil {
		return "", time.Time{}, err
	}
	// Refuse to add a key that no server could open: the ring must load
	// under this master key first.
	if _, err := km.LoadRing(ctx); err != nil {
		return "", time.Time{}, fmt.Errorf("load the current keys (is this the servers' master key?): %w", err)
	}
	now := time.Now()
	kid, pos, err := km.Rotate(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	log.Info("signing key added", slog.String("kid", kid), slog.String("position", pos.String()))
	return kid, now.Add(cfg.Identity.KeyOverlap), nil
}

// cliMasterKey is the servers' master key for an administrative command:
// the configured one, or the development key file serve created. Unlike
// serve it never creates a key file: a key sealed under a new master key
// would be one no server can open.
func cliMasterKey(cfg config.Config) (*keys.MasterKey, error) {
	switch {
	case cfg.Identity.MasterKey != "":
		return keys.ParseMasterKey(cfg.Identity.MasterKey)
	case cfg.Identity.MasterKeyFile != "":
		return keys.LoadMasterKeyFile(cfg.Identity.MasterKeyFile)
	}
	k, err := keys.LoadMasterKeyFile(filepath.Join(cfg.DataDir, devMasterKeyFile))
	if err != nil {
		return nil, fmt.Errorf("no master key configured (AUTHLEDGER_MASTER_KEY or AUTHLEDGER_MASTER_KEY_FILE) and no development key file: %w", err)
	}
	return k, nil
}

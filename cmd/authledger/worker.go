package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/projections/projector"
)

// runWorker is `authledger worker`: the task worker as its own process,
// beside one or more `serve` processes on the same database and log (which
// run the projections the worker reads its queue from).
func runWorker(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	concurrency := fs.Int("concurrency", 1, "tasks processed at once")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: authledger worker [-concurrency N]")
		fmt.Fprintln(w, "\nClaims queued tasks, runs the OCR processor (tesseract) on their files,")
		fmt.Fprintln(w, "records results and failures, releases claims of stopped workers, expires")
		fmt.Fprintln(w, "old tasks and collects unused files, until SIGINT or SIGTERM. The tasks read")
		fmt.Fprintln(w, "model it polls is kept by `authledger serve`. Files are read from")
		fmt.Fprintln(w, "AUTHLEDGER_DATA_DIR/blobs, which it must share with serve.")
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
		envHelp(w)
	}
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	if *concurrency < 1 || *concurrency > 64 {
		fmt.Fprintln(stderr, "authledger worker: -concurrency must be between 1 and 64")
		return exitUsage
	}
	cfg, ok := loadConfig("worker", getenv, stderr)
	if !ok {
		return exitUsage
	}
	log := newLogger(cfg, stderr)
	if err := work(ctx, cfg, *concurrency, log); err != nil {
		log.Error("worker failed", slog.String("error", err.Error()))
		return exitError
	}
	return exitOK
}

func work(ctx context.Context, cfg config.Config, n int, log *slog.Logger) error {
	startCtx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	db, err := openReadModelPool(startCtx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	store, err := openEventStore(startCtx, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = store.Close() }()
	tasks, err := newTaskCore(cfg, store, db)
	if err != nil {
		return err
	}
	// No local runner: the waiter polls the projection checkpoints that
	// serve's runner writes.
	w, err := tasks.newWorker(startCtx, cfg, n, store, projector.NewWaiter(db, nil, 0), log)
	if err != nil {
		return err
	}
	// The wake-up follower runs under the projection runtime (no read
	// model here), which resumes it after any outage.
	followers, err := projector.NewRunner(projector.Config{Store: store, Pool: db, Logger: log,
		Followers: []projector.Follower{w.Follower()}, MaxLag: cfg.ReadyMaxLag})
	if err != nil {
		return err
	}
	log.Info("worker running", slog.String("id", w.ID()), slog.Int("concurrency", n))
	var wg sync.WaitGroup
	wg.Go(func() { _ = followers.Run(ctx) })
	err = w.Run(ctx)
	wg.Wait()
	if ctx.Err() != nil {
		log.Info("worker stopped")
		return nil
	}
	return err
}

package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/blob"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/outage"
	"github.com/authledger/authledger/projections/projector"
)

// Config tunes a worker. The zero value of every field means its default.
type Config struct {
	// ID names this worker in claims (task.claimed.v1 worker_id); default
	// "<hostname>-<random>". Two workers must never share one.
	ID string
	// Concurrency is how many tasks run at once; default 1.
	Concurrency int
	// PollInterval is how often the queue is read when nothing woke the
	// worker; default 2s.
	PollInterval time.Duration
	// Lease is how long a claim lasts without a heartbeat; default 30s.
	Lease time.Duration
	// Heartbeat is how often a running task's claim is renewed; default
	// 10s. It must be well below Lease.
	Heartbeat time.Duration
	// ReleaseInterval is how often stale claims are looked for; default 10s.
	ReleaseInterval time.Duration
	// RetentionDays: tasks older than this expire and their blobs are
	// removed; default 30. Negative disables retention.
	RetentionDays int
	// RetentionByUser overrides RetentionDays for some owners (shorter or
	// longer).
	RetentionByUser map[uuid.UUID]int
	// RetentionInterval is how often expiry runs; default 1h.
	RetentionInterval time.Duration
	// GCInterval is how often the blob collector runs; default 1h.
	// Negative disables it.
	GCInterval time.Duration
	// GCMinAge spares blobs younger than this from the collector (an upload
	// whose task is not written or projected yet); default 1h.
	GCMinAge time.Duration
	// BatchSize bounds each read of the queue; default 100.
	BatchSize int
	// ReadModelWait bounds a wait for the tasks projection (before blobs
	// are removed); default 10s.
	ReadModelWait time.Duration
	// StorageFullPause is how long a worker slot rests after giving a task
	// back because a disk was full (the task stays queued, its attempt not
	// counted); default 30s.
	StorageFullPause time.Duration
}

// DefaultConfig is the zero Config with its defaults filled in.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	if c.ID == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		c.ID = strings.Trim(host+"-"+hex.EncodeToString(b), "-")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	def(&c.PollInterval, 2*time.Second)
	def(&c.Lease, 30*time.Second)
	def(&c.Heartbeat, 10*time.Second)
	def(&c.ReleaseInterval, 10*time.Second)
	if c.RetentionDays == 0 {
		c.RetentionDays = 30
	}
	def(&c.RetentionInterval, time.Hour)
	def(&c.GCInterval, time.Hour)
	def(&c.GCMinAge, time.Hour)
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	def(&c.ReadModelWait, 10*time.Second)
	def(&c.StorageFullPause, 30*time.Second)
	return c
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Concurrency < 1 {
		errs = append(errs, errors.New("worker: Concurrency must be at least 1"))
	}
	for name, d := range map[string]time.Duration{"PollInterval": c.PollInterval, "Lease": c.Lease, "Heartbeat": c.Heartbeat,
		"ReleaseInterval": c.ReleaseInterval, "RetentionInterval": c.RetentionInterval, "GCMinAge": c.GCMinAge, "ReadModelWait": c.ReadModelWait, "StorageFullPause": c.StorageFullPause} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("worker: %s must not be negative", name))
		}
	}
	if c.Heartbeat >= c.Lease/2 {
		errs = append(errs, fmt.Errorf("worker: Heartbeat (%s) must be under half the Lease (%s), or one late renewal loses the claim", c.Heartbeat, c.Lease))
	}
	for u, d := range c.RetentionByUser {
		if d < 1 {
			errs = append(errs, fmt.Errorf("worker: RetentionByUser[%s] must be at least 1 day", u))
		}
	}
	if c.BatchSize < 1 {
		errs = append(errs, errors.New("worker: BatchSize must be at least 1"))
	}
	return errors.Join(errs...)
}

// Claimed is what a successful claim hands the worker.
type Claimed struct {
	OwnerID uuid.UUID
	Attempt int
	Files   []File
}

// Lifecycle is the task commands the worker runs; Commands (over
// commands.TaskHandlers) implements it. Errors are the domain's:
// task.ErrAlreadyClaimed, task.ErrInvalidTransition, task.ErrNotFound,
// task.ErrLeaseLost, task.ErrClaimNotStale.
type Lifecycle interface {
	Claim(ctx context.Context, taskID uuid.UUID, workerID string, lease time.Duration) (Claimed, error)
	Renew(ctx context.Context, taskID uuid.UUID, workerID string, lease time.Duration) error
	Complete(ctx context.Context, taskID uuid.UUID, workerID, result string) error
	Fail(ctx context.Context, taskID uuid.UUID, workerID, reason string) error
	// GiveBack queues the task again without counting the attempt.
	GiveBack(ctx context.Context, taskID uuid.UUID, workerID, reason string) error
	ReleaseStale(ctx context.Context, taskID uuid.UUID) error
	// Expire ends the task if it was created before cutoff(owner).
	Expire(ctx context.Context, taskID uuid.UUID, cutoff func(owner uuid.UUID) time.Time) error
}

// ReadModel is the worker's view of the tasks projection;
// projections/taskviews.Queue implements it. Its answers are hints, re-checked
// by the commands.
type ReadModel interface {
	Queued(ctx context.Context, limit int) ([]uuid.UUID, error)
	StaleClaims(ctx context.Context, now time.Time, limit int) ([]uuid.UUID, error)
	Expirable(ctx context.Context, createdBefore time.Time, limit int) ([]uuid.UUID, error)
	ExpirableFor(ctx context.Context, owner uuid.UUID, createdBefore time.Time, limit int) ([]uuid.UUID, error)
	BlobReferenced(ctx context.Context, sha256 string) (bool, error)
}

// Waiter waits until projections reach a log position;
// projections/projector.Waiter implements it.
type Waiter interface {
	WaitFor(ctx context.Context, pos eventstore.Position, projections ...string) error
}

// Deps are the worker's collaborators, built by cmd/.
type Deps struct {
	Tasks     Lifecycle
	ReadModel ReadModel
	Blobs     blob.Store
	Processor Processor
	// Log, when set, gives the head position the collector waits for.
	// Optional. (Wake-ups as soon as a task is queued come from Follower,
	// which the projection runtime runs.)
	Log eventstore.Store
	// Waiter and Projection (the tasks projection's name) let the worker
	// run the collector only on an up-to-date read model; without them the
	// collector does not run. (An expired task's blobs are removed by the
	// blob-release policy, reactors/blobrelease.)
	Waiter     Waiter
	Projection string
	Logger     *slog.Logger
}

// Worker runs tasks. Build it with New and call Run.
type Worker struct {
	cfg Config
	d   Deps
	log *slog.Logger

	wake chan uuid.UUID
	now  func() time.Time
}

// New validates cfg and deps.
func New(cfg Config, d Deps) (*Worker, error) {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if d.Tasks == nil || d.ReadModel == nil || d.Blobs == nil || d.Processor == nil {
		errs = append(errs, errors.New("worker: Deps needs Tasks, ReadModel, Blobs and Processor"))
	}
	if (d.Waiter == nil) != (d.Projection == "") {
		errs = append(errs, errors.New("worker: Deps.Waiter and Deps.Projection go together"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	return &Worker{cfg: cfg, d: d, log: d.Logger.With("worker_id", cfg.ID),
		wake: make(chan uuid.UUID, 64), now: time.Now}, nil
}

// ID is the worker id its claims carry.
func (w *Worker) ID() string { return w.cfg.ID }

// Run processes tasks and runs the release, retention and collector loops
// until ctx ends; it returns nil then. A task being processed when ctx ends
// is abandoned: its claim runs out and the release loop (of any worker)
// queues it again.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	candidates := make(chan uuid.UUID)
	wg.Go(func() { w.dispatch(ctx, candidates) })
	for range w.cfg.Concurrency {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case id := <-candidates:
					w.runOne(ctx, id)
				}
			}
		})
	}
	wg.Go(func() { w.every(ctx, w.cfg.ReleaseInterval, w.releaseStale) })
	if w.cfg.RetentionDays > 0 {
		wg.Go(func() { w.every(ctx, w.cfg.RetentionInterval, w.expire) })
	}
	if w.cfg.GCInterval > 0 && w.d.Waiter != nil && w.d.Log != nil {
		wg.Go(func() { w.every(ctx, w.cfg.GCInterval, w.collect) })
	}
	wg.Wait()
	return nil
}

func (w *Worker) every(ctx context.Context, d time.Duration, fn func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		fn(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// dispatch offers queued task ids to free slots. A slot receives only when
// it is free, so a long list never holds tasks other workers could take;
// ids offered recently are skipped because the read model shows a task
// queued for a while after our own claim.
func (w *Worker) dispatch(ctx context.Context, out chan<- uuid.UUID) {
	recent := map[uuid.UUID]time.Time{}
	for {
		offered := 0
		ids, err := w.d.ReadModel.Queued(ctx, w.cfg.BatchSize)
		if err != nil && ctx.Err() == nil {
			w.log.Warn("worker: read the queue", "err", err)
		}
		now := w.now()
		for id, at := range recent {
			if now.Sub(at) > 3*w.cfg.PollInterval {
				delete(recent, id)
			}
		}
		for _, id := range ids {
			if _, seen := recent[id]; seen {
				continue
			}
			recent[id] = now
			select {
			case <-ctx.Done():
				return
			case out <- id:
				offered++
			}
		}
		if offered > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case id := <-w.wake:
			if _, seen := recent[id]; seen {
				continue
			}
			recent[id] = w.now()
			select {
			case out <- id:
			case <-ctx.Done():
				return
			}
		case <-time.After(w.cfg.PollInterval):
		}
	}
}

// WakeFollowerName names the worker's wake-up follower.
const WakeFollowerName = "worker_wakeups"

// Follower turns queued-task events into wake-ups: run it as a local
// follower of the projection runtime beside Run (projector.Runner), which
// resumes it after any failure. It starts at the head: older tasks are
// found by the poll. The wake-ups are hints like the poll: a full channel
// drops them.
func (w *Worker) Follower() projector.Follower {
	return projector.Follower{
		Name:   WakeFollowerName,
		Filter: eventstore.Filter{EventTypes: []string{task.EventCreated, task.EventRetried, task.EventClaimReleased}},
		Start: func(ctx context.Context, store eventstore.Store) (eventstore.Position, error) {
			return store.Head(ctx)
		},
		Handle: func(_ context.Context, e eventstore.RecordedEvent) error {
			id, err := uuid.Parse(strings.TrimPrefix(e.Stream, task.StreamPrefix))
			if err == nil {
				select {
				case w.wake <- id:
				default: // full: the poll finds it
				}
			}
			return nil
		},
	}
}

// record runs a command that must land even when ctx just ended (a result
// computed is not thrown away at shutdown), bounded in time.
func record(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
}

func (w *Worker) runOne(ctx context.Context, id uuid.UUID) {
	log := w.log.With("task_id", id)
	claim, err := w.d.Tasks.Claim(ctx, id, w.cfg.ID, w.cfg.Lease)
	switch {
	case errors.Is(err, task.ErrAlreadyClaimed), errors.Is(err, task.ErrInvalidTransition), errors.Is(err, task.ErrNotFound):
		log.Debug("worker: task not claimable", "err", err)
		return
	case err != nil:
		if ctx.Err() == nil {
			log.Warn("worker: claim", "err", err)
		}
		return
	}
	log = log.With("attempt", claim.Attempt)
	log.Info("worker: claimed")
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lost := errors.New("claim lost")
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(w.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
			err := w.d.Tasks.Renew(pctx, id, w.cfg.ID, w.cfg.Lease)
			switch {
			case err == nil:
			case errors.Is(err, task.ErrLeaseLost), errors.Is(err, task.ErrNotFound), errors.Is(err, task.ErrInvalidTransition):
				cancel(fmt.Errorf("%w: %w", lost, err))
				return
			case pctx.Err() == nil:
				// The lease still runs; try again next beat.
				log.Warn("worker: renew claim", "err", err)
			}
		}
	}()
	job := Job{TaskID: id, OwnerID: claim.OwnerID, Attempt: claim.Attempt, Files: claim.Files, Open: w.open}
	result, perr := w.process(pctx, job)
	cancel(nil)
	<-hbDone
	if cause := context.Cause(pctx); errors.Is(cause, lost) {
		log.Info("worker: dropped the task", "reason", cause)
		return
	}
	if ctx.Err() != nil && perr != nil {
		// Shutting down: the interruption is ours, not the task's fault.
		log.Info("worker: abandoned the task at shutdown")
		return
	}
	rctx, rcancel := record(ctx)
	defer rcancel()
	if outage.StorageFull(perr) {
		// Not the task's fault: give it back, attempt uncounted, and rest
		// this slot so that a full disk does not spin claims.
		if err := w.d.Tasks.GiveBack(rctx, id, w.cfg.ID, task.ReleaseReasonStorageFull); err != nil {
			log.Warn("worker: give the task back", "err", err)
		}
		log.Warn("worker: no space to process the task; gave it back and pausing", "err", perr, "pause", w.cfg.StorageFullPause)
		rcancel()
		sleepCtx(ctx, w.cfg.StorageFullPause)
		return
	}
	if perr != nil {
		err = w.d.Tasks.Fail(rctx, id, w.cfg.ID, perr.Error())
		log.Info("worker: task failed", "err", perr)
	} else {
		err = w.d.Tasks.Complete(rctx, id, w.cfg.ID, result)
		log.Info("worker: task completed")
	}
	if err != nil {
		log.Warn("worker: record the outcome", "err", err)
	}
}

// process runs the processor, turning a panic into a failed attempt rather
// than a dead worker.
func (w *Worker) process(ctx context.Context, job Job) (result string, err error) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("worker: processor panicked", "task_id", job.TaskID, "panic", r, "stack", string(debug.Stack()))
			err = errors.New("the processor crashed")
		}
	}()
	return w.d.Processor.Process(ctx, job)
}

func (w *Worker) open(ctx context.Context, f File) (io.ReadCloser, error) {
	rc, _, err := w.d.Blobs.Open(ctx, f.SHA256)
	if err != nil {
		return nil, fmt.Errorf("file %s is not stored: %w", f.Name, err)
	}
	return rc, nil
}

func (w *Worker) releaseStale(ctx context.Context) {
	ids, err := w.d.ReadModel.StaleClaims(ctx, w.now(), w.cfg.BatchSize)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("worker: read stale claims", "err", err)
		}
		return
	}
	for _, id := range ids {
		err := w.d.Tasks.ReleaseStale(ctx, id)
		switch {
		case err == nil:
			w.log.Info("worker: released a stale claim", "task_id", id)
		case errors.Is(err, task.ErrClaimNotStale), errors.Is(err, task.ErrInvalidTransition), errors.Is(err, task.ErrNotFound):
		case ctx.Err() == nil:
			w.log.Warn("worker: release a stale claim", "task_id", id, "err", err)
		}
	}
}

func (w *Worker) cutoff(now time.Time) func(uuid.UUID) time.Time {
	return func(owner uuid.UUID) time.Time {
		days := w.cfg.RetentionDays
		if d, ok := w.cfg.RetentionByUser[owner]; ok {
			days = d
		}
		return now.AddDate(0, 0, -days)
	}
}

// expire ends the tasks past retention, one batch per owner override and
// batches of the global list until a batch expires nothing (the rest are
// owners with a longer retention, or tasks still processing).
func (w *Worker) expire(ctx context.Context) {
	now := w.now()
	cut := w.cutoff(now)
	for owner := range w.cfg.RetentionByUser {
		ids, err := w.d.ReadModel.ExpirableFor(ctx, owner, cut(owner), w.cfg.BatchSize)
		if err != nil {
			w.log.Warn("worker: read expirable tasks", "owner_id", owner, "err", err)
			continue
		}
		w.expireAll(ctx, ids, cut)
	}
	for ctx.Err() == nil {
		ids, err := w.d.ReadModel.Expirable(ctx, now.AddDate(0, 0, -w.cfg.RetentionDays), w.cfg.BatchSize)
		if err != nil {
			w.log.Warn("worker: read expirable tasks", "err", err)
			return
		}
		if w.expireAll(ctx, ids, cut) == 0 || len(ids) < w.cfg.BatchSize {
			return
		}
	}
}

func (w *Worker) expireAll(ctx context.Context, ids []uuid.UUID, cut func(uuid.UUID) time.Time) int {
	n := 0
	for _, id := range ids {
		err := w.d.Tasks.Expire(ctx, id, cut)
		switch {
		case err == nil:
			// The blob-release policy removes its files.
			n++
			w.log.Info("worker: task expired", "task_id", id)
		case errors.Is(err, task.ErrInvalidTransition), errors.Is(err, task.ErrNotFound):
		case ctx.Err() == nil:
			w.log.Warn("worker: expire", "task_id", id, "err", err)
		}
	}
	return n
}

// collect runs the blob collector, but only on a read model that has
// caught up with the log: a stopped or lagging projection would make every
// blob of a recent task look unreferenced.
func (w *Worker) collect(ctx context.Context) {
	head, err := w.d.Log.Head(ctx)
	if err != nil {
		w.log.Warn("worker: collector: log head", "err", err)
		return
	}
	if head.IsZero() {
		// The PostgreSQL store's head stays at zero while any transaction
		// older than every event is open (a projection's setup, at start):
		// waiting for it proves nothing. Collect next time.
		w.log.Info("worker: collector skipped: the log head is not known yet")
		return
	}
	// A head that lags the log (an open transaction holds the horizon) is
	// safe: it only misses tasks created after it, whose blobs are younger
	// than GCMinAge.
	wctx, cancel := context.WithTimeout(ctx, w.cfg.ReadModelWait)
	err = w.d.Waiter.WaitFor(wctx, head, w.d.Projection)
	cancel()
	if err != nil {
		w.log.Warn("worker: collector skipped: the tasks read model is behind the log", "err", err)
		return
	}
	res, err := blob.GC(ctx, w.d.Blobs, w.d.ReadModel.BlobReferenced, w.cfg.GCMinAge)
	if err != nil {
		w.log.Warn("worker: collector", "err", err)
		return
	}
	w.log.Info("worker: collector", "scanned", res.Scanned, "removed", res.Removed, "bytes", res.RemovedBytes, "young", res.Young)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

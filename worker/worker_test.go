package worker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authledger/authledger/test/smallfs"
	"github.com/authledger/authledger/test/testimage"

	"github.com/google/uuid"

	"github.com/authledger/authledger/blob"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/projections/taskviews"
	"github.com/authledger/authledger/worker"
)

// env is one test's real stack: PostgreSQL event store, the tasks
// projection running, the task commands, a blob store in a temp dir.
type env struct {
	t       *testing.T
	ctx     context.Context
	pe      *projtest.Env
	h       *commands.TaskHandlers
	blobs   *blob.Local
	blobDir string
	queue   *taskviews.Queue
	waiter  *projector.Waiter
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pe := projtest.New(t)
	r, err := projector.NewRunner(pe.Config(taskviews.New()))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("runner: %v", err)
		}
	})
	reg := events.NewRegistry()
	if err := task.RegisterEvents(reg); err != nil {
		t.Fatal(err)
	}
	h, err := commands.NewTaskHandlers(pe.Store, reg, commands.DefaultTaskConfig())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bs, err := blob.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: ctx, pe: pe, h: h, blobs: bs, blobDir: dir, queue: taskviews.NewQueue(pe.Pool), waiter: projector.NewWaiter(pe.Pool, r, 0)}
}

// create stores the files and creates a queued task of them.
func (e *env) create(owner uuid.UUID, files map[string][]byte, names ...string) uuid.UUID {
	e.t.Helper()
	id := uuid.New()
	var fs []task.File
	for _, n := range names {
		info, err := e.blobs.Put(e.ctx, bytes.NewReader(files[n]), 0)
		if err != nil {
			e.t.Fatal(err)
		}
		fs = append(fs, task.File{ID: uuid.New(), Name: n, ContentType: blob.Sniff(files[n]), Size: info.Size, SHA256: info.SHA256})
	}
	if _, err := e.h.Create.Handle(e.ctx, commands.CreateTask{TaskID: id, OwnerID: owner, Files: fs}); err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *env) worker(cfg worker.Config, p worker.Processor) *worker.Worker {
	e.t.Helper()
	lc, err := worker.NewCommands(e.h)
	if err != nil {
		e.t.Fatal(err)
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	if cfg.Lease == 0 {
		cfg.Lease, cfg.Heartbeat = 3*time.Second, 300*time.Millisecond
	}
	w, err := worker.New(cfg, worker.Deps{Tasks: lc, ReadModel: e.queue, Blobs: e.blobs, Processor: p, Log: e.pe.Store,
		Waiter: e.waiter, Projection: taskviews.Name, Logger: testLogger(e.t)})
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

func (e *env) run(ws ...*worker.Worker) {
	ctx, cancel := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() { _ = w.Run(ctx) })
	}
	e.t.Cleanup(func() { cancel(); wg.Wait() })
}

// load folds a task stream (the truth, not the read model).
func (e *env) load(id uuid.UUID) *task.Task {
	e.t.Helper()
	tk, err := e.h.Claim.Tasks.Load(e.ctx, task.StreamName(id))
	if err != nil {
		e.t.Fatal(err)
	}
	return tk
}

// waitStatus waits (bounded) until the task reaches one of the states.
func (e *env) waitStatus(id uuid.UUID, want ...task.Status) *task.Task {
	e.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		tk := e.load(id)
		for _, s := range want {
			if tk.Status() == s {
				return tk
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("task %s is %s, never reached %v", id, tk.Status(), want)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// typesOf lists the event types of a task stream, in order.
func (e *env) typesOf(id uuid.UUID) []string {
	e.t.Helper()
	recs, err := e.pe.Store.ReadStream(e.ctx, task.StreamName(id), eventstore.ReadStreamOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Type
	}
	return out
}

func count(types []string, typ string) int {
	n := 0
	for _, t := range types {
		if t == typ {
			n++
		}
	}
	return n
}

func (e *env) completedResult(id uuid.UUID) string {
	e.t.Helper()
	recs, _ := e.pe.Store.ReadStream(e.ctx, task.StreamName(id), eventstore.ReadStreamOptions{})
	for _, r := range recs {
		if r.Type == task.EventCompleted {
			var c task.Completed
			if err := json.Unmarshal(r.Data, &c); err != nil {
				e.t.Fatal(err)
			}
			return c.Result
		}
	}
	e.t.Fatalf("task %s has no completion", id)
	return ""
}

func TestWorkerRunsTesseractOnAQueuedTask(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ocr, err := worker.NewTesseract(e.ctx, worker.TesseractConfig{})
	if err != nil {
		t.Fatal(err)
	}
	e.run(e.worker(worker.Config{}, ocr))
	id := e.create(uuid.New(), map[string][]byte{"scan.png": testimage.TextPNG(t, "INVOICE 1234")}, "scan.png")
	e.waitStatus(id, task.StatusCompleted)
	if got := normalise(e.completedResult(id)); got != "INVOICE 1234" {
		t.Fatalf("result %q", got)
	}
	types := e.typesOf(id)
	if count(types, task.EventClaimed) != 1 {
		t.Fatalf("events %v", types)
	}
}

func TestTwoWorkersNeverTakeTheSameTask(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var mu sync.Mutex
	ran := map[uuid.UUID][]string{}
	proc := func(name string) worker.Processor {
		return worker.ProcessorFunc(func(ctx context.Context, j worker.Job) (string, error) {
			mu.Lock()
			ran[j.TaskID] = append(ran[j.TaskID], name)
			mu.Unlock()
			rc, err := j.Open(ctx, j.Files[0])
			if err != nil {
				return "", err
			}
			defer rc.Close()
			time.Sleep(20 * time.Millisecond)
			return "done by " + name, nil
		})
	}
	owner := uuid.New()
	var ids []uuid.UUID
	for i := range 10 {
		ids = append(ids, e.create(owner, map[string][]byte{"f.png": []byte(fmt.Sprintf("\x89PNG\r\n\x1a\nfile %d", i))}, "f.png"))
	}
	e.run(e.worker(worker.Config{ID: "alpha", Concurrency: 3}, proc("alpha")), e.worker(worker.Config{ID: "beta", Concurrency: 3}, proc("beta")))
	for _, id := range ids {
		e.waitStatus(id, task.StatusCompleted)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if len(ran[id]) != 1 {
			t.Errorf("task %s processed by %v", id, ran[id])
		}
		if types := e.typesOf(id); count(types, task.EventClaimed) != 1 || count(types, task.EventCompleted) != 1 {
			t.Errorf("task %s events %v", id, types)
		}
	}
}

func TestFailuresAreRecordedAndPanicsContained(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner := uuid.New()
	failing := e.create(owner, map[string][]byte{"a.png": []byte("\x89PNG\r\n\x1a\nfails")}, "a.png")
	panicking := e.create(owner, map[string][]byte{"b.png": []byte("\x89PNG\r\n\x1a\npanics")}, "b.png")
	e.run(e.worker(worker.Config{}, worker.ProcessorFunc(func(_ context.Context, j worker.Job) (string, error) {
		if j.TaskID == panicking {
			panic("boom")
		}
		return "", errors.New("unreadable scan")
	})))
	for id, want := range map[uuid.UUID]string{failing: "unreadable scan", panicking: "the processor crashed"} {
		e.waitStatus(id, task.StatusFailed)
		recs, _ := e.pe.Store.ReadStream(e.ctx, task.StreamName(id), eventstore.ReadStreamOptions{})
		var f task.Failed
		if err := json.Unmarshal(recs[len(recs)-1].Data, &f); err != nil || f.Error != want || f.Attempt != 1 || f.Final {
			t.Fatalf("failure of %s: %+v %v", id, f, err)
		}
	}
}

// A task whose image needs more memory than tesseract may use fails with
// that reason on its first attempt (shown to the owner in task.failed.v1)
// instead of taking the machine down, and is not claimed again: the worker
// goes on to the next task.
func TestATaskOverTheOCRMemoryLimitFailsWithTheReason(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ocr, err := worker.NewTesseract(e.ctx, worker.TesseractConfig{MaxMemoryBytes: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	owner := uuid.New()
	bomb := e.create(owner, map[string][]byte{"bomb.png": testimage.BlankPNG(t, 16000, 16000)}, "bomb.png")
	after := e.create(owner, map[string][]byte{"next.png": testimage.TextPNG(t, "NEXT IN LINE")}, "next.png")
	e.run(e.worker(worker.Config{}, ocr))
	e.waitStatus(bomb, task.StatusFailed)
	recs, _ := e.pe.Store.ReadStream(e.ctx, task.StreamName(bomb), eventstore.ReadStreamOptions{})
	var f task.Failed
	if err := json.Unmarshal(recs[len(recs)-1].Data, &f); err != nil || f.Attempt != 1 ||
		f.Error != "bomb.png: OCR needs more memory than its limit of 256 MiB: the image is too large to process" {
		t.Fatalf("failure: %+v %v", f, err)
	}
	e.waitStatus(after, task.StatusCompleted)
	if types := e.typesOf(bomb); count(types, task.EventClaimed) != 1 {
		t.Fatalf("the failed task was claimed again: %v", types)
	}
}

func TestStaleClaimIsReleasedAndTakenAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create(uuid.New(), map[string][]byte{"a.png": []byte("\x89PNG\r\n\x1a\nstale")}, "a.png")
	// A worker that claims and dies: its lease runs out, nobody renews it.
	if _, err := e.h.Claim.Handle(e.ctx, commands.ClaimTask{TaskID: id, WorkerID: "crashed", Lease: time.Second}); err != nil {
		t.Fatal(err)
	}
	e.run(e.worker(worker.Config{ID: "survivor", ReleaseInterval: 100 * time.Millisecond}, worker.ProcessorFunc(func(context.Context, worker.Job) (string, error) {
		return "second attempt", nil
	})))
	tk := e.waitStatus(id, task.StatusCompleted)
	types := e.typesOf(id)
	if tk.Attempt() != 2 || count(types, task.EventClaimReleased) != 1 || count(types, task.EventClaimed) != 2 || e.completedResult(id) != "second attempt" {
		t.Fatalf("attempt %d, events %v", tk.Attempt(), types)
	}
}

func TestHeartbeatKeepsTheClaimAndALostClaimStopsTheProcessor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner := uuid.New()
	id := e.create(owner, map[string][]byte{"a.png": []byte("\x89PNG\r\n\x1a\nlong")}, "a.png")
	started, stopped := make(chan struct{}), make(chan error, 1)
	e.run(e.worker(worker.Config{Lease: 1200 * time.Millisecond, Heartbeat: 100 * time.Millisecond, ReleaseInterval: 50 * time.Millisecond},
		worker.ProcessorFunc(func(ctx context.Context, _ worker.Job) (string, error) {
			close(started)
			<-ctx.Done()
			stopped <- context.Cause(ctx)
			return "", ctx.Err()
		})))
	<-started
	// Several leases long: only heartbeats keep the claim from release.
	time.Sleep(3 * time.Second)
	if types := e.typesOf(id); count(types, task.EventClaimReleased) != 0 || count(types, task.EventClaimRenewed) == 0 {
		t.Fatalf("events while processing: %v", types)
	}
	if _, err := e.h.Delete.Handle(e.ctx, commands.DeleteTask{TaskID: id, UserID: owner}); err != nil {
		t.Fatal(err)
	}
	if cause := <-stopped; cause == nil || !errors.Is(cause, task.ErrLeaseLost) && !errors.Is(cause, task.ErrNotFound) && !errors.Is(cause, task.ErrInvalidTransition) {
		t.Fatalf("processor stopped with %v", cause)
	}
	// Give the worker the chance to (wrongly) record an outcome.
	time.Sleep(200 * time.Millisecond)
	types := e.typesOf(id)
	if types[len(types)-1] != task.EventDeleted || count(types, task.EventFailed)+count(types, task.EventCompleted) != 0 {
		t.Fatalf("events after the claim was lost: %v", types)
	}
}

func TestRetentionExpiresOldTasksAndRemovesUnsharedBlobs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner := uuid.New()
	past := time.Now().AddDate(0, 0, -40)
	old := []byte("\x89PNG\r\n\x1a\nold only")
	shared := []byte("\x89PNG\r\n\x1a\nold and new")
	e.h.Create.Now = func() time.Time { return past }
	oldID := e.create(owner, map[string][]byte{"old.png": old, "shared.png": shared}, "old.png", "shared.png")
	e.h.Create.Now = nil
	for _, c := range []func() error{
		func() error {
			_, err := e.h.Claim.Handle(e.ctx, commands.ClaimTask{TaskID: oldID, WorkerID: "w"})
			return err
		},
		func() error {
			_, err := e.h.Complete.Handle(e.ctx, commands.CompleteTask{TaskID: oldID, WorkerID: "w", Result: "x"})
			return err
		},
	} {
		if err := c(); err != nil {
			t.Fatal(err)
		}
	}
	newID := e.create(owner, map[string][]byte{"shared.png": shared}, "shared.png")
	// An orphan, as a crashed upload leaves it: collected once old enough.
	orphan, _ := e.blobs.Put(e.ctx, strings.NewReader("orphan"), 0)
	aged := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(filepath.Join(e.blobDir, "sha256", orphan.SHA256[0:2], orphan.SHA256[2:4], orphan.SHA256), aged, aged); err != nil {
		t.Fatal(err)
	}
	// Make the old task's blobs look as old as the task.
	for _, f := range e.load(oldID).Files() {
		_ = os.Chtimes(filepath.Join(e.blobDir, "sha256", f.SHA256[0:2], f.SHA256[2:4], f.SHA256), past.Add(-time.Minute), past.Add(-time.Minute))
	}

	e.run(e.worker(worker.Config{GCMinAge: time.Hour, GCInterval: 200 * time.Millisecond, RetentionInterval: 200 * time.Millisecond}, worker.ProcessorFunc(func(context.Context, worker.Job) (string, error) { return "ok", nil })))
	e.waitStatus(oldID, task.StatusExpired)
	e.waitStatus(newID, task.StatusCompleted)
	present := func(content []byte) bool {
		_, _, err := e.blobs.Open(e.ctx, digestOf(content))
		return err == nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for present(old) || present([]byte("orphan")) {
		if time.Now().After(deadline) {
			t.Fatalf("old-only blob present=%v, orphan present=%v", present(old), present([]byte("orphan")))
		}
		time.Sleep(25 * time.Millisecond)
	}
	if !present(shared) {
		t.Fatal("a blob a live task shares was removed with the expired task")
	}
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("WORKER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// A processor that finds its disk full (a real ENOSPC from a full tmpfs)
// does not fail the task: the worker gives it back with its attempt
// uncounted, however often it happens, and the next worker completes it.
func TestATaskThatFindsTheDiskFullStaysRetryable(t *testing.T) {
	t.Parallel()
	smallfs.Run(t, 64<<10, func(dir string) {
		e := newEnv(t)
		id := e.create(uuid.New(), map[string][]byte{"a.png": []byte("\x89PNG\r\n\x1a\nscratch")}, "a.png")
		// More give-backs than the attempts a task is allowed.
		var given atomic.Int32
		enough := make(chan struct{})
		e.run(e.worker(worker.Config{ID: "cramped", StorageFullPause: 10 * time.Millisecond}, worker.ProcessorFunc(func(_ context.Context, j worker.Job) (string, error) {
			// Scratch space on a file system with no room.
			err := os.WriteFile(filepath.Join(dir, "scratch-"+uuid.NewString()), bytes.Repeat([]byte{1}, 128<<10), 0o600)
			if err == nil {
				t.Error("a 128 KiB file fitted on a 64 KiB file system")
			}
			if given.Add(1) == task.DefaultMaxAttempts+1 {
				close(enough)
			}
			return "", fmt.Errorf("write scratch: %w", err)
		})))
		select {
		case <-enough:
		case <-time.After(60 * time.Second):
			t.Fatalf("the task was not given back %d times: %v", task.DefaultMaxAttempts+1, e.typesOf(id))
		}
		tk := e.waitStatus(id, task.StatusQueued, task.StatusProcessing)
		if tk.Status() == task.StatusFailed {
			t.Fatalf("task failed on a full disk: %v", e.typesOf(id))
		}
		types := e.typesOf(id)
		if count(types, task.EventFailed) != 0 || count(types, task.EventClaimReleased) < task.DefaultMaxAttempts {
			t.Fatalf("a task given back on a full disk: %v", types)
		}
		// Room again: another worker completes it, within the attempts.
		e.run(e.worker(worker.Config{ID: "roomy"}, worker.ProcessorFunc(func(context.Context, worker.Job) (string, error) { return "ok", nil })))
		if tk := e.waitStatus(id, task.StatusCompleted); tk.Attempt() > task.DefaultMaxAttempts {
			t.Fatalf("completed at attempt %d of %d", tk.Attempt(), task.DefaultMaxAttempts)
		}
	})
}

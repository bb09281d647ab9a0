package commands_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/migrations"
	"github.com/authledger/authledger/test/pgtest"
)

// clock is a settable test clock shared by every handler.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type taskEnv struct {
	h     *commands.TaskHandlers
	store eventstore.Store
	reg   *events.Registry
	clock *clock
}

func newTaskEnv(t *testing.T, cfg commands.TaskConfig) *taskEnv {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	if err := migrations.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	store, err := pg.Open(ctx, pg.Config{ConnString: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	reg := events.NewRegistry()
	if err := task.RegisterEvents(reg); err != nil {
		t.Fatal(err)
	}
	h, err := commands.NewTaskHandlers(store, reg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	for _, common := range []*commands.TaskCommon{&h.Create.TaskCommon, &h.Claim.TaskCommon, &h.RenewClaim.TaskCommon,
		&h.ReleaseStaleClaim.TaskCommon, &h.Complete.TaskCommon, &h.Fail.TaskCommon, &h.Retry.TaskCommon, &h.Cancel.TaskCommon,
		&h.Delete.TaskCommon, &h.Expire.TaskCommon, &h.AccessFile.TaskCommon, &h.AuthorizeRead.TaskCommon} {
		common.Now = c.Now
	}
	return &taskEnv{h: h, store: store, reg: reg, clock: c}
}

func userMeta(id uuid.UUID) commands.Meta {
	return commands.Meta{CorrelationID: "req-" + id.String()[:8], Actor: events.Actor{Kind: events.ActorUser, ID: id.String()}, ClientIP: "192.0.2.7"}
}

var workerMeta = commands.Meta{Actor: events.Actor{Kind: events.ActorService, ID: "worker"}}

func file(content string) task.File {
	s := sha256.Sum256([]byte(content))
	return task.File{ID: uuid.New(), Name: "scan.png", ContentType: "image/png", Size: int64(len(content)), SHA256: hex.EncodeToString(s[:])}
}

func (e *taskEnv) create(t *testing.T, owner uuid.UUID, files ...task.File) commands.CreateTask {
	t.Helper()
	if len(files) == 0 {
		files = []task.File{file("hello")}
	}
	cmd := commands.CreateTask{TaskID: uuid.New(), OwnerID: owner, Files: files, Meta: userMeta(owner)}
	r, err := e.h.Create.Handle(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != task.StatusQueued || r.Position.IsZero() || r.TaskID != cmd.TaskID {
		t.Fatalf("create result %+v", r)
	}
	return cmd
}

func (e *taskEnv) quota(t *testing.T, owner uuid.UUID) *task.Quota {
	t.Helper()
	q, err := e.h.Create.Quotas.Load(context.Background(), task.QuotaStream(owner))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func (e *taskEnv) task(t *testing.T, id uuid.UUID) *task.Task {
	t.Helper()
	tk, err := e.h.Create.Tasks.Load(context.Background(), task.StreamName(id))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// accessLog decodes a user's access stream.
func (e *taskEnv) accessLog(t *testing.T, user uuid.UUID) []events.Event {
	t.Helper()
	recs, err := e.store.ReadStream(context.Background(), task.AccessStream(user), eventstore.ReadStreamOptions{})
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	out := make([]events.Event, 0, len(recs))
	for _, r := range recs {
		ev, err := e.reg.Decode(r.Type, r.Data)
		if err != nil {
			t.Fatal(err)
		}
		var md events.Metadata
		if err := json.Unmarshal(r.Metadata, &md); err != nil || md.Actor.ID != user.String() {
			t.Fatalf("access event metadata %s (%v)", r.Metadata, err)
		}
		out = append(out, ev)
	}
	return out
}

func streamExists(t *testing.T, store eventstore.Store, stream string) bool {
	t.Helper()
	_, err := store.ReadStream(context.Background(), stream, eventstore.ReadStreamOptions{Limit: 1})
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func TestTaskLifecycle(t *testing.T) {
	t.Parallel()
	e := newTaskEnv(t, commands.DefaultTaskConfig())
	ctx := context.Background()
	owner := uuid.New()
	cmd := e.create(t, owner, file("page one"), file("page two"))
	if q := e.quota(t, owner); q.ActiveTasks() != 1 || q.StoredBytes() != 16 {
		t.Fatalf("quota after create: %d active, %d bytes", q.ActiveTasks(), q.StoredBytes())
	}

	c, err := e.h.Claim.Handle(ctx, commands.ClaimTask{TaskID: cmd.TaskID, WorkerID: "w1", Meta: workerMeta})
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != task.StatusProcessing || c.Attempt != 1 || c.OwnerID != owner || len(c.Files) != 2 || !c.LeaseUntil.Equal(e.clock.Now().Add(time.Minute)) {
		t.Fatalf("claim %+v", c)
	}
	e.clock.advance(30 * time.Second)
	r, err := e.h.RenewClaim.Handle(ctx, commands.RenewClaim{TaskID: cmd.TaskID, WorkerID: "w1", Meta: workerMeta})
	if err != nil || !r.LeaseUntil.Equal(e.clock.Now().Add(time.Minute)) || r.Position.Compare(c.Position) <= 0 {
		t.Fatalf("renew %+v %v", r, err)
	}
	if _, err := e.h.RenewClaim.Handle(ctx, commands.RenewClaim{TaskID: cmd.TaskID, WorkerID: "w2", Meta: workerMeta}); !errors.Is(err, task.ErrLeaseLost) {
		t.Fatalf("renew by another worker: %v", err)
	}
	if _, err := e.h.ReleaseStaleClaim.Handle(ctx, commands.ReleaseStaleClaim{TaskID: cmd.TaskID, Meta: workerMeta}); !errors.Is(err, task.ErrClaimNotStale) {
		t.Fatalf("release of a running lease: %v", err)
	}
	if _, err := e.h.Complete.Handle(ctx, commands.CompleteTask{TaskID: cmd.TaskID, WorkerID: "w2", Result: "x", Meta: workerMeta}); !errors.Is(err, task.ErrLeaseLost) {
		t.Fatalf("complete by another worker: %v", err)
	}
	e.clock.advance(2 * time.Second)
	done, err := e.h.Complete.Handle(ctx, commands.CompleteTask{TaskID: cmd.TaskID, WorkerID: "w1", Result: "page one page two", Meta: workerMeta})
	if err != nil || done.Status != task.StatusCompleted || done.Position.Compare(r.Position) <= 0 {
		t.Fatalf("complete %+v %v", done, err)
	}
	if q := e.quota(t, owner); q.ActiveTasks() != 0 || q.StoredBytes() != 16 {
		t.Fatalf("quota after completion: %d active, %d bytes", q.ActiveTasks(), q.StoredBytes())
	}
	recs, err := e.store.ReadStream(ctx, task.StreamName(cmd.TaskID), eventstore.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var completed task.Completed
	if err := json.Unmarshal(recs[len(recs)-1].Data, &completed); err != nil || completed.ProcessingMS != 32000 || completed.Result != "page one page two" {
		t.Fatalf("completed event %s (%v)", recs[len(recs)-1].Data, err)
	}

	// Retry only from failed.
	if _, err := e.h.Retry.Handle(ctx, commands.RetryTask{TaskID: cmd.TaskID, UserID: owner, Meta: userMeta(owner)}); !errors.Is(err, task.ErrNotRetryable) {
		t.Fatalf("retry from completed: %v", err)
	}
	if e.accessLog(t, owner) != nil {
		t.Fatal("a refused retry of one's own task is not an access denial")
	}

	// The owner downloads a file: audited before the bytes are sent.
	a, err := e.h.AccessFile.Handle(ctx, commands.AccessFile{UserID: owner, TaskID: cmd.TaskID, FileID: cmd.Files[1].ID, Meta: userMeta(owner)})
	if err != nil || a.File != cmd.Files[1] || a.OwnerID != owner || a.Position.IsZero() {
		t.Fatalf("access %+v %v", a, err)
	}
	log := e.accessLog(t, owner)
	want := task.FileAccessed{UserID: owner, OwnerID: owner, TaskID: cmd.TaskID, FileID: cmd.Files[1].ID, IP: "192.0.2.7",
		RequestID: userMeta(owner).CorrelationID, AccessedAt: e.clock.Now()}
	if len(log) != 1 || log[0] != want {
		t.Fatalf("access log %#v", log)
	}

	// Delete frees the bytes; the task's files are gone for the owner too.
	del, err := e.h.Delete.Handle(ctx, commands.DeleteTask{TaskID: cmd.TaskID, UserID: owner, Meta: userMeta(owner)})
	if err != nil || del.Status != task.StatusDeleted || len(del.Files) != 2 {
		t.Fatalf("delete %+v %v", del, err)
	}
	if q := e.quota(t, owner); q.ActiveTasks() != 0 || q.StoredBytes() != 0 {
		t.Fatalf("quota after delete: %d active, %d bytes", q.ActiveTasks(), q.StoredBytes())
	}
	if _, err := e.h.AccessFile.Handle(ctx, commands.AccessFile{UserID: owner, TaskID: cmd.TaskID, FileID: cmd.Files[1].ID, Meta: userMeta(owner)}); !errors.Is(err, task.ErrNotFound) {
		t.Fatalf("download of a deleted task's file: %v", err)
	}
	if _, err := e.h.Delete.Handle(ctx, commands.DeleteTask{TaskID: cmd.TaskID, UserID: owner, Meta: userMeta(owner)}); !errors.Is(err, task.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestClaimTaskConcurrentlyOneWins(t *testing.T) {
	t.Parallel()
	e := newTaskEnv(t, commands.DefaultTaskConfig())
	cmd := e.create(t, uuid.New())
	for round := range 5 {
		if round > 0 { // put the task back in the queue for another race
			e.clock.advance(2 * time.Minute)
			if _, err := e.h.ReleaseStaleClaim.Handle(context.Background(), commands.ReleaseStaleClaim{TaskID: cmd.TaskID, Meta: workerMeta}); err != nil {
				t.Fatal(err)
			}
		}
		if round >= 2 {
			break // max 3 attempts: the third release would fail the task for good
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = e.h.Claim.Handle(context.Background(), commands.ClaimTask{TaskID: cmd.TaskID, WorkerID: fmt.Sprintf("w%d", i), Meta: workerMeta})
			})
		}
		wg.Wait()
		won, lost := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case errors.Is(err, task.ErrAlreadyClaimed):
				lost++
			default:
				t.Fatalf("claim: %v", err)
			}
		}
		if won != 1 || lost != 1 {
			t.Fatalf("round %d: %d won, %d lost", round, won, lost)
		}
		if tk := e.task(t, cmd.TaskID); tk.Attempt() != round+1 {
			t.Fatalf("attempt %d after round %d", tk.Attempt(), round)
		}
	}
}

func TestStaleClaimOnTheLastAttemptFailsForGood(t *testing.T) {
	t.Parallel()
	e := newTaskEnv(t, commands.DefaultTaskConfig())
	ctx := context.Background()
	owner := uuid.New()
	cmd := commands.CreateTask{TaskID: uuid.New(), OwnerID: owner, MaxAttempts: 2, Files: []task.File{file("x")}, Meta: userMeta(owner)}
	if _, err := e.h.Create.Handle(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		if _, err := e.h.Claim.Handle(ctx, commands.ClaimTask{TaskID: cmd.TaskID, WorkerID: "w", Meta: workerMeta}); err != nil {
			t.Fatal(err)
		}
		e.clock.advance(time.Minute + time.Second)
		r, err := e.h.ReleaseStaleClaim.Handle(ctx, commands.ReleaseStaleClaim{TaskID: cmd.TaskID, Meta: workerMeta})
		if err != nil {
			t.Fatal(err)
		}
		want := task.StatusQueued
		if attempt == 2 {
			want = task.StatusFailed
		}
		if r.Status != want {
			t.Fatalf("attempt %d: %s", attempt, r.Status)
		}
	}
	if q := e.quota(t, owner); q.ActiveTasks() != 0 || q.StoredBytes() != 1 {
		t.Fatalf("a final failure frees the active slot: %d, %d", q.ActiveTasks(), q.StoredBytes())
	}
	if _, err := e.h.Retry.Handle(ctx, commands.RetryTask{TaskID: cmd.TaskID, UserID: owner, Meta: userMeta(owner)}); !errors.Is(err, task.ErrNotRetryable) {
		t.Fatalf("retry with attempts spent: %v", err)
	}
	if _, err := e.h.ReleaseStaleClaim.Handle(ctx, commands.ReleaseStaleClaim{TaskID: cmd.TaskID, Meta: workerMeta}); !errors.Is(err, task.ErrInvalidTransition) {
		t.Fatalf("release of a failed task: %v", err)
	}
}

func TestFailAndRetryAreBounded(t *testing.T) {
	t.Parallel()
	e := newTaskEnv(t, commands.DefaultTaskConfig())
	ctx := context.Background()
	owner := uuid.New()
	cmd := e.create(t, owner)
	for attempt := 1; attempt <= task.DefaultMaxAttempts; attempt++ {
		if _, err := e.h.Claim.Handle(ctx, commands.ClaimTask{TaskID: cmd.TaskID, WorkerID: "w", Meta: workerMeta}); err != nil {
			t.Fatal(err)
		}
		f, err := e.h.Fail.Handle(ctx, commands.FailTask{TaskID: cmd.TaskID, WorkerID: "w", Error: "unreadable", Meta: workerMeta})
		if err != nil || f.Status != task.StatusFailed || f.Attempt != attempt {
			t.Fatalf("fail %+v %v", f, err)
		}
		if q := e.quota(t, owner); q.ActiveTasks() != map[bool]int{true: 0, false: 1}[attempt == task.DefaultMaxAttempts] {
			t.Fatalf("attempt %d: %d active", attempt, q.ActiveTasks())
		}
		_, err = e.h.Retry.Handle(ctx, commands.RetryTask{TaskID: cmd.TaskID, UserID: owner, Meta: userMeta(owner)})
		if attempt < task.DefaultMaxAttempts && err != nil {
			t.Fatalf("retry after attempt %d: %v", attempt, err)
		}
		if attempt == task.DefaultMaxAttempts && !errors.Is(err, task.ErrNotRetryable) {
			t.Fatalf("retry past max attempts: %v", err)
		}
	}
	if _, err := e.h.Fail.Handle(ctx, commands.FailTask{TaskID: cmd.TaskID, WorkerID: "w", Error: "again", Meta: workerMeta}); !errors.Is(err, task.ErrLeaseLost) {
		t.Fatalf("fail without a claim: %v", err)
	}
}

func TestCancelTask(t *testing.T) {
	t.Parallel()
	e := newTaskEnv(t, commands.DefaultTaskConfig())
	ctx := context.Background()
	owner := uuid.New()
	cmd := e.create(t, owner)
	r, err := e.h.Cancel.Handle(ctx, commands.CancelTask{TaskID: cmd.TaskID, UserID: owner, Meta: userMeta(owner)})
	if err != nil || r.Status != task.StatusCancelled {
		t.Fatalf("cancel %+v %v", r, err)
	}
	if q := e.quota(t, owner); q.ActiveTasks() != 0 || q.StoredBytes() != 5 {
		t.Fatalf("quota after cancel: %d, %d", q.ActiveTasks(), q.StoredBytes())
	}
	if _, err := e.h.Cancel.Handle(ctx, commands.CancelTask{TaskID: cmd.TaskID, UserID: owner, Meta: userMeta(owner)}); !errors.Is(err, task.ErrInvalidTransition) {
		t.Fatalf("second cancel: %v", err)
	}
	if _, err := e.h.Claim.Handle(ctx, commands.ClaimTask{TaskID: cmd.TaskID, WorkerID: "w", Meta: workerMeta}); !errors.Is(err, task.ErrInvalidTransition) {
		t.Fatalf("claim of a cancelled task: %v", err)
	}
}

// Another user's task answers exactly as a missing one, and every attempt
// is on the requester's access stream; an administrator may read and delete
// it, audited as such.
func TestTaskIsolation(t *testing.T) {
	t.Parallel()
	e := newTaskEnv(t, commands.DefaultTaskConfig())
	ctx := context.Background()
	owner, mallory, admin := uuid.New(), uuid.New(), uuid.New()
	cmd := e.create(t, owner)
	fileID := cmd.Files[0].ID
	missingTask, missingFile := uuid.New(), uuid.New()

	type attempt struct {
		name             string
		kind             string
		resource, taskID uuid.UUID
		reason           string
		run              func() error
	}
	for _, a := range []attempt{
		{"download another's file", task.ResourceKindFile, fileID, cmd.TaskID, task.DenyNotOwner, func() error {
			_, err := e.h.AccessFile.Handle(ctx, commands.AccessFile{UserID: mallory, TaskID: cmd.TaskID, FileID: fileID, Meta: userMeta(mallory)})
			return err
		}},
		{"download a missing file of another's task", task.ResourceKindFile, missingFile, cmd.TaskID, task.DenyNotOwner, func() error {
			_, err := e.h.AccessFile.Handle(ctx, commands.AccessFile{UserID: mallory, TaskID: cmd.TaskID, FileID: missingFile, Meta: userMeta(mallory)})
			return err
		}},
		{"download from a missing task", task.ResourceKindFile, fileID, missingTask, task.DenyMissing, func() error {
			_, err := e.h.AccessFile.Handle(ctx, commands.AccessFile{UserID: mallory, TaskID: missingTask, FileID: fileID, Meta: userMeta(mallory)})
			return err
		}},
		{"read another's task", task.ResourceKindTask, cmd.TaskID, cmd.TaskID, task.DenyNotOwner, func() error {
			_, err := e.h.AuthorizeRead.Handle(ctx, commands.AuthorizeTaskRead{UserID: mallory, TaskID: cmd.TaskID, Meta: userMeta(mallory)})
			return err
		}},
		{"read a missing task", task.ResourceKindTask, missingTask, missingTask, task.DenyMissing, func() error {
			_, err := e.h.AuthorizeRead.Handle(ctx, commands.AuthorizeTaskRead{UserID: mallory, TaskID: missingTask, Meta: userMeta(mallory)})
			return err
		}},
		{"retry another's task", task.ResourceKindTask, cmd.TaskID, cmd.TaskID, task.DenyNotOwner, func() error {
			_, err := e.h.Retry.Handle(ctx, commands.RetryTask{TaskID: cmd.TaskID, UserID: mallory, Meta: userMeta(mallory)})
			return err
		}},
		{"cancel another's task", task.ResourceKindTask, cmd.TaskID, cmd.TaskID, task.DenyNotOwner, func() error {
			_, err := e.h.Cancel.Handle(ctx, commands.CancelTask{TaskID: cmd.TaskID, UserID: mallory, Meta: userMeta(mallory)})
			return err
		}},
		{"delete another's task", task.ResourceKindTask, cmd.TaskID, cmd.TaskID, task.DenyNotOwner, func() error {
			_, err := e.h.Delete.Handle(ctx, commands.DeleteTask{TaskID: cmd.TaskID, UserID: mallory, Meta: userMeta(mallory)})
			return err
		}},
		{"delete a missing task", task.ResourceKindTask, missingTask, missingTask, task.DenyMissing, func() error {
			_, err := e.h.Delete.Handle(ctx, commands.DeleteTask{TaskID: missingTask, UserID: mallory, Meta: userMeta(mallory)})
			return err
		}},
	} {
		before := len(e.accessLog(t, mallory))
		err := a.run()
		if !errors.Is(err, task.ErrNotFound) || err.Error() != task.ErrNotFound.Error() {
			t.Fatalf("%s: %v, want exactly task.ErrNotFound", a.name, err)
		}
		log := e.accessLog(t, mallory)
		if len(log) != before+1 {
			t.Fatalf("%s: %d access events, want %d", a.name, len(log), before+1)
		}
		want := task.AccessDenied{UserID: mallory, ResourceKind: a.kind, ResourceID: a.resource, TaskID: a.taskID, IP: "192.0.2.7",
			RequestID: userMeta(mallory).CorrelationID, Reason: a.reason, DeniedAt: e.clock.Now()}
		if log[before] != want {
			t.Fatalf("%s: audit\n got %#v\nwant %#v", a.name, log[before], want)
		}
	}
	if tk := e.task(t, cmd.TaskID); tk.Status() != task.StatusQueued || tk.Version() != 2 {
		t.Fatalf("the refused commands changed the task: %s at version %d", tk.Status(), tk.Version())
	}
	if streamExists(t, e.store, task.StreamName(missingTask)) {
		t.Fatal("a request for a missing id created its stream")
	}

	// The owner reads without an audit event; an administrator is audited.
	if pos, err := e.h.AuthorizeRead.Handle(ctx, commands.AuthorizeTaskRead{UserID: owner, TaskID: cmd.TaskID, Meta: userMeta(owner)}); err != nil || !pos.IsZero() {
		t.Fatalf("owner read: %v %v", pos, err)
	}
	if _, err := e.h.AuthorizeRead.Handle(ctx, commands.AuthorizeTaskRead{UserID: admin, TaskID: cmd.TaskID, AsAdmin: true, Meta: userMeta(admin)}); err != nil {
		t.Fatal(err)
	}
	a, err := e.h.AccessFile.Handle(ctx, commands.AccessFile{UserID: admin, TaskID: cmd.TaskID, FileID: fileID, AsAdmin: true, Meta: userMeta(admin)})
	if err != nil || a.OwnerID != owner {
		t.Fatalf("admin download %+v %v", a, err)
	}
	log := e.accessLog(t, admin)
	if len(log) != 2 {
		t.Fatalf("admin access log %#v", log)
	}
	if v, ok := log[0].(task.Viewed); !ok || !v.AsAdmin || v.OwnerID != owner || v.TaskID != cmd.TaskID {
		t.Fatalf("admin view %#v", log[0])
	}
	if fa, ok := log[1].(task.FileAccessed); !ok || !fa.AsAdmin || fa.OwnerID != owner || fa.UserID != admin {
		t.Fatalf("admin file access %#v", log[1])
	}
	if _, err := e.h.Delete.Handle(ctx, commands.DeleteTask{TaskID: cmd.TaskID, UserID: admin, AsAdmin: true, Meta: userMeta(admin)}); err != nil {
		t.Fatal(err)
	}
	recs, err := e.store.ReadStream(ctx, task.StreamName(cmd.TaskID), eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	var del task.Deleted
	if err := json.Unmarshal(recs[0].Data, &del); err != nil || del.By != admin || !del.AsAdmin || del.OwnerID != owner {
		t.Fatalf("admin delete %s (%v)", recs[0].Data, err)
	}
	if q := e.quota(t, owner); q.ActiveTasks() != 0 || q.StoredBytes() != 0 {
		t.Fatalf("an admin delete releases the owner's quota: %d, %d", q.ActiveTasks(), q.StoredBytes())
	}
}

// Fifty creations by one user at once never pass the limit: the quota
// stream is appended at its expected revision.
func TestCreateTaskQuotaUnderConcurrency(t *testing.T) {
	t.Parallel()
	cfg := commands.DefaultTaskConfig()
	e := newTaskEnv(t, cfg)
	owner := uuid.New()
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	ids := make([]uuid.UUID, n)
	for i := range n {
		ids[i] = uuid.New()
		wg.Go(func() {
			_, errs[i] = e.h.Create.Handle(context.Background(), commands.CreateTask{TaskID: ids[i], OwnerID: owner, Files: []task.File{file(fmt.Sprint(i))}, Meta: userMeta(owner)})
		})
	}
	wg.Wait()
	created, refused := 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			created++
			if !streamExists(t, e.store, task.StreamName(ids[i])) {
				t.Fatalf("task %d succeeded without its stream", i)
			}
		case errors.Is(err, task.ErrQuotaExceeded):
			refused++
			if streamExists(t, e.store, task.StreamName(ids[i])) {
				t.Fatalf("refused task %d has a stream", i)
			}
		default:
			t.Fatalf("create %d: %v", i, err)
		}
	}
	if created != cfg.Limits.MaxActiveTasks || refused != n-created {
		t.Fatalf("%d created, %d refused; the limit is %d", created, refused, cfg.Limits.MaxActiveTasks)
	}
	if q := e.quota(t, owner); q.ActiveTasks() != created {
		t.Fatalf("quota counts %d active", q.ActiveTasks())
	}
}

func TestCreateTaskStoredBytesQuota(t *testing.T) {
	t.Parallel()
	cfg := commands.DefaultTaskConfig()
	cfg.Limits.MaxStoredBytes = 10
	e := newTaskEnv(t, cfg)
	ctx := context.Background()
	owner := uuid.New()
	first := e.create(t, owner, file("123456"))
	over := commands.CreateTask{TaskID: uuid.New(), OwnerID: owner, Files: []task.File{file("12345")}, Meta: userMeta(owner)}
	if _, err := e.h.Create.Handle(ctx, over); !errors.Is(err, task.ErrQuotaExceeded) {
		t.Fatalf("over the byte quota: %v", err)
	}
	// Completion keeps the bytes; expiry frees them.
	if _, err := e.h.Claim.Handle(ctx, commands.ClaimTask{TaskID: first.TaskID, WorkerID: "w", Meta: workerMeta}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.h.Complete.Handle(ctx, commands.CompleteTask{TaskID: first.TaskID, WorkerID: "w", Meta: workerMeta}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.h.Create.Handle(ctx, over); !errors.Is(err, task.ErrQuotaExceeded) {
		t.Fatalf("a completed task's bytes still count: %v", err)
	}
	cutoff := e.clock.Now()
	e.clock.advance(time.Hour)
	if _, err := e.h.Expire.Handle(ctx, commands.ExpireTask{TaskID: first.TaskID, CreatedBefore: cutoff, Meta: workerMeta}); !errors.Is(err, task.ErrInvalidTransition) {
		t.Fatalf("expire within retention: %v", err)
	}
	r, err := e.h.Expire.Handle(ctx, commands.ExpireTask{TaskID: first.TaskID, CreatedBefore: cutoff.Add(time.Second), Meta: workerMeta})
	if err != nil || r.Status != task.StatusExpired || len(r.Files) != 1 {
		t.Fatalf("expire %+v %v", r, err)
	}
	if _, err := e.h.Expire.Handle(ctx, commands.ExpireTask{TaskID: first.TaskID, CreatedBefore: cutoff.Add(time.Second), Meta: workerMeta}); !errors.Is(err, task.ErrNotFound) {
		t.Fatalf("second expiry: %v", err)
	}
	if _, err := e.h.Create.Handle(ctx, over); err != nil {
		t.Fatalf("bytes freed by expiry: %v", err)
	}
}

// A retry of a creation completes it instead of duplicating it, whether the
// first attempt finished or stopped after its reservation; an abandoned
// reservation is released by a refused creation after the grace period.
func TestCreateTaskRetriesAndAbandonedReservations(t *testing.T) {
	t.Parallel()
	cfg := commands.DefaultTaskConfig()
	cfg.Limits.MaxActiveTasks = 2
	e := newTaskEnv(t, cfg)
	ctx := context.Background()
	owner := uuid.New()

	// A full retry returns the first result and appends nothing.
	done := e.create(t, owner)
	again, err := e.h.Create.Handle(ctx, done)
	if err != nil || again.TaskID != done.TaskID {
		t.Fatalf("retry %+v %v", again, err)
	}
	if tk := e.task(t, done.TaskID); tk.Version() != 2 {
		t.Fatalf("the retry appended: version %d", tk.Version())
	}
	if q := e.quota(t, owner); q.Version() != 1 {
		t.Fatalf("the retry touched the quota: version %d", q.Version())
	}
	// The same id with other files, or by another owner, is not a retry.
	other := done
	other.Files = []task.File{file("other")}
	if _, err := e.h.Create.Handle(ctx, other); !errors.Is(err, task.ErrAlreadyExists) {
		t.Fatalf("same id, other files: %v", err)
	}

	// A creation that stopped after reserving: the retry completes it.
	crashed := commands.CreateTask{TaskID: uuid.New(), OwnerID: owner, Files: []task.File{file("crash")}, Meta: userMeta(owner)}
	reserve := func(c commands.CreateTask) {
		t.Helper()
		if _, err := e.h.Create.Quotas.Update(ctx, task.QuotaStream(owner), c.Meta, func(q *task.Quota) error {
			return q.Reserve(owner, c.TaskID, 5, cfg.Limits, e.clock.Now())
		}); err != nil {
			t.Fatal(err)
		}
	}
	reserve(crashed)
	if _, err := e.h.Create.Handle(ctx, crashed); err != nil {
		t.Fatalf("completing a crashed creation: %v", err)
	}
	if q := e.quota(t, owner); q.ActiveTasks() != 2 {
		t.Fatalf("the completion reserved twice: %d active", q.ActiveTasks())
	}

	// Free one slot, then abandon a reservation in it.
	if _, err := e.h.Cancel.Handle(ctx, commands.CancelTask{TaskID: crashed.TaskID, UserID: owner, Meta: userMeta(owner)}); err != nil {
		t.Fatal(err)
	}
	abandoned := commands.CreateTask{TaskID: uuid.New(), OwnerID: owner, Files: []task.File{file("gone")}, Meta: userMeta(owner)}
	reserve(abandoned)
	next := commands.CreateTask{TaskID: uuid.New(), OwnerID: owner, Files: []task.File{file("next")}, Meta: userMeta(owner)}
	// Within the grace the creation might still be running: refused.
	e.clock.advance(cfg.ReservationGrace)
	if _, err := e.h.Create.Handle(ctx, next); !errors.Is(err, task.ErrQuotaExceeded) {
		t.Fatalf("within the grace: %v", err)
	}
	e.clock.advance(time.Second)
	if _, err := e.h.Create.Handle(ctx, next); err != nil {
		t.Fatalf("after the grace the abandoned reservation is released: %v", err)
	}
	q := e.quota(t, owner)
	if _, held := q.Reservation(abandoned.TaskID); held || q.ActiveTasks() != 2 {
		t.Fatalf("quota after reconciliation: %d active, abandoned held %v", q.ActiveTasks(), held)
	}
	// The abandoned creation's late retry reserves afresh (and is refused
	// now that the slots are taken).
	if _, err := e.h.Create.Handle(ctx, abandoned); !errors.Is(err, task.ErrQuotaExceeded) {
		t.Fatalf("late retry: %v", err)
	}
}

// A release lost to a crash after the task stream's append is repaired by
// the next refused creation.
func TestCreateTaskRepairsALostRelease(t *testing.T) {
	t.Parallel()
	cfg := commands.DefaultTaskConfig()
	cfg.Limits.MaxActiveTasks = 1
	e := newTaskEnv(t, cfg)
	ctx := context.Background()
	owner := uuid.New()
	first := e.create(t, owner)
	// Complete on the task stream only, as a crash before the release would.
	for _, step := range []func(*task.Task) error{
		func(tk *task.Task) error { return tk.Claim("w", e.clock.Now().Add(time.Minute), e.clock.Now()) },
		func(tk *task.Task) error { return tk.Complete("w", "text", e.clock.Now()) },
	} {
		if _, err := e.h.Create.Tasks.Update(ctx, task.StreamName(first.TaskID), workerMeta, step); err != nil {
			t.Fatal(err)
		}
	}
	if q := e.quota(t, owner); q.ActiveTasks() != 1 {
		t.Fatalf("setup: %d active", q.ActiveTasks())
	}
	if _, err := e.h.Create.Handle(ctx, commands.CreateTask{TaskID: uuid.New(), OwnerID: owner, Files: []task.File{file("2")}, Meta: userMeta(owner)}); err != nil {
		t.Fatalf("the lost release was not repaired: %v", err)
	}
	if q := e.quota(t, owner); q.ActiveTasks() != 1 || q.StoredBytes() != 6 {
		t.Fatalf("quota after the repair: %d active, %d bytes", q.ActiveTasks(), q.StoredBytes())
	}
}

func TestCreateTaskRejectsInvalidInput(t *testing.T) {
	t.Parallel()
	e := newTaskEnv(t, commands.DefaultTaskConfig())
	owner := uuid.New()
	_, err := e.h.Create.Handle(context.Background(), commands.CreateTask{TaskID: uuid.New(), OwnerID: owner, Meta: userMeta(owner)})
	if !errors.Is(err, task.ErrInvalidInput) {
		t.Fatalf("no files: %v", err)
	}
	if streamExists(t, e.store, task.QuotaStream(owner)) {
		t.Fatal("invalid input reserved quota")
	}
}

func TestTaskConfigValidate(t *testing.T) {
	t.Parallel()
	if err := commands.DefaultTaskConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	err := commands.TaskConfig{}.Validate()
	if j, ok := err.(interface{ Unwrap() []error }); !ok || len(j.Unwrap()) != 5 {
		t.Fatalf("every problem at once: %v", err)
	}
}

// Text from a processor with NUL bytes or invalid UTF-8 (PostgreSQL's jsonb
// refuses \u0000) still completes or fails the task.
func TestTaskResultTextIsMadeLoggable(t *testing.T) {
	t.Parallel()
	e := newTaskEnv(t, commands.DefaultTaskConfig())
	ctx := context.Background()
	for i, finish := range []func(id uuid.UUID) error{
		func(id uuid.UUID) error {
			_, err := e.h.Complete.Handle(ctx, commands.CompleteTask{TaskID: id, WorkerID: "w1", Result: "in\x00voice \xff1234", Meta: workerMeta})
			return err
		},
		func(id uuid.UUID) error {
			_, err := e.h.Fail.Handle(ctx, commands.FailTask{TaskID: id, WorkerID: "w1", Error: "bad\x00 image", Meta: workerMeta})
			return err
		},
	} {
		cmd := e.create(t, uuid.New(), file("page"))
		if _, err := e.h.Claim.Handle(ctx, commands.ClaimTask{TaskID: cmd.TaskID, WorkerID: "w1", Meta: workerMeta}); err != nil {
			t.Fatal(err)
		}
		if err := finish(cmd.TaskID); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		recs, err := e.store.ReadStream(ctx, task.StreamName(cmd.TaskID), eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
		if err != nil || len(recs) != 1 {
			t.Fatal(err)
		}
		if data := string(recs[0].Data); strings.Contains(data, `\u0000`) || (i == 0 && !strings.Contains(data, "invoice \ufffd1234")) {
			t.Fatalf("case %d: stored %s", i, data)
		}
	}
}

// A user's quota stream grows with every task they ever had; creations
// summarize it (task.QuotaSummarized) and the repository loads it from its
// last summary, counting exactly what a fold of the whole stream counts,
// so the limits hold across the summary.
func TestQuotaStreamIsLoadedFromItsLastSummary(t *testing.T) {
	t.Parallel()
	cfg := commands.DefaultTaskConfig()
	cfg.Limits.MaxActiveTasks = 3
	e := newTaskEnv(t, cfg)
	ctx := context.Background()
	owner := uuid.New()
	stream := task.QuotaStream(owner)
	// Each task created and cancelled adds two events and stays stored.
	for range task.SummarizeAfter/2 + 1 {
		cmd := e.create(t, owner)
		if _, err := e.h.Cancel.Handle(ctx, commands.CancelTask{TaskID: cmd.TaskID, UserID: owner, Meta: userMeta(owner)}); err != nil {
			t.Fatal(err)
		}
	}
	active := []commands.CreateTask{e.create(t, owner), e.create(t, owner), e.create(t, owner)}

	recs, err := e.store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	whole := make([]events.Event, len(recs))
	summaries := 0
	for i, rec := range recs {
		if whole[i], err = e.reg.Decode(rec.Type, rec.Data); err != nil {
			t.Fatal(err)
		}
		if rec.Type == task.EventQuotaSummarized {
			summaries++
		}
	}
	if summaries != 1 {
		t.Fatalf("%d summaries in %d events", summaries, len(recs))
	}
	want, err := task.QuotaFromHistory(whole)
	if err != nil {
		t.Fatal(err)
	}
	got := e.quota(t, owner)
	if got.ActiveTasks() != 3 || got.StoredBytes() != want.StoredBytes() || got.Version() != len(recs) ||
		!reflect.DeepEqual(got.Reservations(), want.Reservations()) {
		t.Fatalf("loaded %d active, %d bytes, version %d; the whole stream: %d, %d, %d",
			got.ActiveTasks(), got.StoredBytes(), got.Version(), want.ActiveTasks(), want.StoredBytes(), len(recs))
	}
	if _, err := e.h.Create.Handle(ctx, commands.CreateTask{TaskID: uuid.New(), OwnerID: owner, Files: []task.File{file("4")}, Meta: userMeta(owner)}); !errors.Is(err, task.ErrQuotaExceeded) {
		t.Fatalf("a fourth active task past the summary: %v", err)
	}
	if _, err := e.h.Cancel.Handle(ctx, commands.CancelTask{TaskID: active[0].TaskID, UserID: owner, Meta: userMeta(owner)}); err != nil {
		t.Fatal(err)
	}
	e.create(t, owner)
}

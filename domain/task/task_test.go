package task_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/events"
)

var (
	t0      = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	taskID  = uuid.MustParse("6a1f5e7c-1111-4b5e-9f59-8f6f3f2a9a10")
	ownerID = uuid.MustParse("0b8f7f0e-7c55-4b5e-9f59-8f6f3f2a9a10")
	otherID = uuid.MustParse("9c9f7f0e-7c55-4b5e-9f59-8f6f3f2a9a10")
	fileID  = uuid.MustParse("f11e0000-7c55-4b5e-9f59-8f6f3f2a9a10")
	sum     = strings.Repeat("ab", 32)
	lease   = t0.Add(time.Minute)
)

func given(t *testing.T, history ...events.Event) *task.Task {
	t.Helper()
	tk, err := task.FromHistory(history)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func created() []events.Event {
	return []events.Event{
		task.Created{TaskID: taskID, OwnerID: ownerID, MaxAttempts: 3, CreatedAt: t0},
		task.FileAttached{TaskID: taskID, OwnerID: ownerID, FileID: fileID, Name: "scan.png", ContentType: "image/png", Size: 100, SHA256: sum},
	}
}

func claimed(attempt int) task.Claimed {
	return task.Claimed{TaskID: taskID, OwnerID: ownerID, WorkerID: "w1", Attempt: attempt, LeaseUntil: lease, ClaimedAt: t0}
}

func failed(attempt int, final bool) task.Failed {
	return task.Failed{TaskID: taskID, OwnerID: ownerID, WorkerID: "w1", Error: "boom", Attempt: attempt, ProcessingMS: 1000, Final: final, FailedAt: t0.Add(time.Second)}
}

func retried() task.Retried { return task.Retried{TaskID: taskID, OwnerID: ownerID, RetriedAt: t0} }

// Task histories by state, each the shortest way there.
func taskWith(t *testing.T, more ...events.Event) *task.Task {
	t.Helper()
	return given(t, append(created(), more...)...)
}

func queuedTask(t *testing.T) *task.Task { return taskWith(t) }

func processingTask(t *testing.T) *task.Task { return taskWith(t, claimed(1)) }

func completedTask(t *testing.T) *task.Task {
	return taskWith(t, claimed(1), task.Completed{TaskID: taskID, OwnerID: ownerID, WorkerID: "w1", Result: "text", ProcessingMS: 5, CompletedAt: t0})
}

func failedTask(t *testing.T) *task.Task { return taskWith(t, claimed(1), failed(1, false)) }

func finallyFailedTask(t *testing.T) *task.Task {
	return taskWith(t, claimed(1), failed(1, false), retried(), claimed(2), failed(2, false), retried(), claimed(3), failed(3, true))
}

func cancelledTask(t *testing.T) *task.Task {
	return taskWith(t, task.Cancelled{TaskID: taskID, OwnerID: ownerID, By: ownerID, CancelledAt: t0})
}

func deletedTask(t *testing.T) *task.Task {
	return taskWith(t, task.Deleted{TaskID: taskID, OwnerID: ownerID, By: ownerID, DeletedAt: t0})
}

func expiredTask(t *testing.T) *task.Task {
	return taskWith(t, task.Expired{TaskID: taskID, OwnerID: ownerID, ExpiredAt: t0})
}

func thenEvents(t *testing.T, tk *task.Task, want ...events.Event) {
	t.Helper()
	got := tk.Changes()
	if len(want) == 0 && len(got) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events:\n got %#v\nwant %#v", got, want)
	}
}

func thenRefused(t *testing.T, tk *task.Task, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	thenEvents(t, tk)
}

func TestCreate(t *testing.T) {
	t.Parallel()
	tk, err := task.Create(taskID, ownerID, 0, []task.File{{ID: fileID, Name: "scan.png", ContentType: "image/png", Size: 100, SHA256: sum}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	thenEvents(t, tk, created()...)
	if tk.Status() != task.StatusQueued || !tk.Active() || !tk.Stored() || tk.Bytes() != 100 || tk.MaxAttempts() != task.DefaultMaxAttempts {
		t.Fatalf("state after Create: %+v", tk)
	}
}

func TestCreateRejects(t *testing.T) {
	t.Parallel()
	good := task.File{ID: fileID, Name: "a.png", ContentType: "image/png", Size: 1, SHA256: sum}
	for _, tc := range []struct {
		name        string
		id, owner   uuid.UUID
		maxAttempts int
		files       []task.File
		problems    int
	}{
		{"no id", uuid.Nil, ownerID, 0, []task.File{good}, 1},
		{"no owner", taskID, uuid.Nil, 0, []task.File{good}, 1},
		{"no files", taskID, ownerID, 0, nil, 1},
		{"negative attempts", taskID, ownerID, -1, []task.File{good}, 1},
		{"too many attempts", taskID, ownerID, task.MaxAttemptsLimit + 1, []task.File{good}, 1},
		{"repeated file id", taskID, ownerID, 0, []task.File{good, good}, 1},
		{"bad file", taskID, ownerID, 0, []task.File{{Size: -1, SHA256: "ABC"}}, 5},
		{"upper-case digest", taskID, ownerID, 0, []task.File{{ID: fileID, Name: "a", ContentType: "b", SHA256: strings.Repeat("AB", 32)}}, 1},
		{"everything", uuid.Nil, uuid.Nil, -1, nil, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := task.Create(tc.id, tc.owner, tc.maxAttempts, tc.files, t0)
			if !errors.Is(err, task.ErrInvalidInput) {
				t.Fatalf("error %v", err)
			}
			n := 1
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				n = len(j.Unwrap())
			}
			if n != tc.problems {
				t.Fatalf("%d problems reported, want %d: %v", n, tc.problems, err)
			}
		})
	}
}

func TestClaim(t *testing.T) {
	t.Parallel()
	tk := queuedTask(t)
	if err := tk.Claim("w1", lease, t0); err != nil {
		t.Fatal(err)
	}
	thenEvents(t, tk, claimed(1))
	if tk.Status() != task.StatusProcessing || tk.Worker() != "w1" || !tk.LeaseUntil().Equal(lease) || tk.Attempt() != 1 {
		t.Fatalf("state after Claim: %+v", tk)
	}

	// A retried task's next claim is the next attempt.
	tk = failedTask(t)
	if err := tk.Retry(t0); err != nil {
		t.Fatal(err)
	}
	if err := tk.Claim("w1", lease, t0); err != nil {
		t.Fatal(err)
	}
	thenEvents(t, tk, retried(), claimed(2))
}

func TestClaimRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		tk   func(*testing.T) *task.Task
		want error
	}{
		{"missing", func(t *testing.T) *task.Task { return given(t) }, task.ErrNotFound},
		{"processing", processingTask, task.ErrAlreadyClaimed},
		{"completed", completedTask, task.ErrInvalidTransition},
		{"failed", failedTask, task.ErrInvalidTransition},
		{"cancelled", cancelledTask, task.ErrInvalidTransition},
		{"deleted", deletedTask, task.ErrInvalidTransition},
		{"expired", expiredTask, task.ErrInvalidTransition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tk := tc.tk(t)
			thenRefused(t, tk, tk.Claim("w2", lease, t0), tc.want)
		})
	}
	tk := queuedTask(t)
	thenRefused(t, tk, tk.Claim("", lease, t0), task.ErrInvalidInput)
	thenRefused(t, tk, tk.Claim("w1", t0, t0), task.ErrInvalidInput)
}

func TestRenewClaim(t *testing.T) {
	t.Parallel()
	tk := processingTask(t)
	later := lease.Add(time.Minute)
	// A lease that already ran out may be renewed while nobody released it.
	if err := tk.RenewClaim("w1", later, lease.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	thenEvents(t, tk, task.ClaimRenewed{TaskID: taskID, OwnerID: ownerID, WorkerID: "w1", LeaseUntil: later, RenewedAt: lease.Add(time.Second)})
	if !tk.LeaseUntil().Equal(later) {
		t.Fatalf("lease %v", tk.LeaseUntil())
	}

	tk = processingTask(t)
	thenRefused(t, tk, tk.RenewClaim("w2", later, t0), task.ErrLeaseLost)
	thenRefused(t, tk, tk.RenewClaim("w1", t0, t0), task.ErrInvalidInput)
	for _, mk := range []func(*testing.T) *task.Task{queuedTask, completedTask, failedTask, deletedTask, expiredTask} {
		tk := mk(t)
		thenRefused(t, tk, tk.RenewClaim("w1", later, t0), task.ErrLeaseLost)
	}
	tk = given(t)
	thenRefused(t, tk, tk.RenewClaim("w1", later, t0), task.ErrNotFound)
}

func TestReleaseStaleClaim(t *testing.T) {
	t.Parallel()
	after := lease.Add(time.Second)
	tk := processingTask(t)
	if err := tk.ReleaseStaleClaim(after); err != nil {
		t.Fatal(err)
	}
	thenEvents(t, tk, task.ClaimReleased{TaskID: taskID, OwnerID: ownerID, WorkerID: "w1", Reason: task.ReleaseReasonLeaseExpired, ReleasedAt: after})
	if tk.Status() != task.StatusQueued || tk.Worker() != "" || tk.Attempt() != 1 {
		t.Fatalf("state after release: %+v", tk)
	}
	// The attempt stays counted: the next claim is attempt 2.
	if err := tk.Claim("w2", after.Add(time.Minute), after); err != nil {
		t.Fatal(err)
	}
	if tk.Attempt() != 2 {
		t.Fatalf("attempt %d", tk.Attempt())
	}

	// On the last allowed attempt a stale claim fails the task for good.
	tk = taskWith(t, claimed(1), task.ClaimReleased{TaskID: taskID, OwnerID: ownerID, WorkerID: "w1", Reason: task.ReleaseReasonLeaseExpired, ReleasedAt: t0},
		claimed(2), task.ClaimReleased{TaskID: taskID, OwnerID: ownerID, WorkerID: "w1", Reason: task.ReleaseReasonLeaseExpired, ReleasedAt: t0}, claimed(3))
	if err := tk.ReleaseStaleClaim(after); err != nil {
		t.Fatal(err)
	}
	thenEvents(t, tk, task.Failed{TaskID: taskID, OwnerID: ownerID, WorkerID: "w1", Error: task.FailureClaimExpired, Attempt: 3,
		ProcessingMS: after.Sub(t0).Milliseconds(), Final: true, FailedAt: after})
	if tk.Active() || !tk.Stored() || !errors.Is(tk.Retry(after), task.ErrNotRetryable) {
		t.Fatalf("state after a final stale release: %+v", tk)
	}

	tk = processingTask(t)
	thenRefused(t, tk, tk.ReleaseStaleClaim(lease), task.ErrClaimNotStale)
	thenRefused(t, tk, tk.ReleaseStaleClaim(t0), task.ErrClaimNotStale)
	for _, mk := range []func(*testing.T) *task.Task{queuedTask, completedTask, failedTask, deletedTask} {
		tk := mk(t)
		thenRefused(t, tk, tk.ReleaseStaleClaim(after), task.ErrInvalidTransition)
	}
	tk = given(t)
	thenRefused(t, tk, tk.ReleaseStaleClaim(after), task.ErrNotFound)
}

func TestGiveBack(t *testing.T) {
	t.Parallel()
	// On its last allowed attempt, a task given back is queued again, not
	// failed: the attempt is not counted.
	tk := taskWith(t, claimed(1), task.ClaimReleased{TaskID: taskID, OwnerID: ownerID, WorkerID: "w1", Reason: task.ReleaseReasonLeaseExpired, ReleasedAt: t0},
		claimed(2), task.ClaimReleased{TaskID: taskID, OwnerID: ownerID, WorkerID: "w1", Reason: task.ReleaseReasonLeaseExpired, ReleasedAt: t0}, claimed(3))
	if err := tk.GiveBack("w1", task.ReleaseReasonStorageFull, t0); err != nil {
		t.Fatal(err)
	}
	thenEvents(t, tk, task.ClaimReleased{TaskID: taskID, OwnerID: ownerID, WorkerID: "w1", Reason: task.ReleaseReasonStorageFull, ReleasedAt: t0, AttemptRefunded: true})
	if tk.Status() != task.StatusQueued || tk.Attempt() != 2 || !tk.Active() {
		t.Fatalf("state after GiveBack: status %s attempt %d", tk.Status(), tk.Attempt())
	}
	if err := tk.Claim("w2", lease, t0); err != nil || tk.Attempt() != 3 {
		t.Fatalf("claim after GiveBack: %v, attempt %d", err, tk.Attempt())
	}

	tk = processingTask(t)
	thenRefused(t, tk, tk.GiveBack("w2", task.ReleaseReasonStorageFull, t0), task.ErrLeaseLost)
	thenRefused(t, tk, tk.GiveBack("w1", "", t0), task.ErrInvalidInput)
	for _, mk := range []func(*testing.T) *task.Task{queuedTask, completedTask, failedTask, deletedTask} {
		tk := mk(t)
		thenRefused(t, tk, tk.GiveBack("w1", task.ReleaseReasonStorageFull, t0), task.ErrLeaseLost)
	}
}

func TestComplete(t *testing.T) {
	t.Parallel()
	tk := processingTask(t)
	done := t0.Add(1500 * time.Millisecond)
	if err := tk.Complete("w1", "hello", done); err != nil {
		t.Fatal(err)
	}
	thenEvents(t, tk, task.Completed{TaskID: taskID, OwnerID: ownerID, WorkerID: "w1", Result: "hello", ProcessingMS: 1500, CompletedAt: done})
	if tk.Status() != task.StatusCompleted || tk.Active() || !tk.Stored() {
		t.Fatalf("state after Complete: %+v", tk)
	}

	tk = processingTask(t)
	thenRefused(t, tk, tk.Complete("w2", "x", done), task.ErrLeaseLost)
	for _, mk := range []func(*testing.T) *task.Task{queuedTask, completedTask, failedTask, cancelledTask, deletedTask, expiredTask} {
		tk := mk(t)
		thenRefused(t, tk, tk.Complete("w1", "x", done), task.ErrLeaseLost)
	}
	tk = given(t)
	thenRefused(t, tk, tk.Complete("w1", "x", done), task.ErrNotFound)
}

func TestFail(t *testing.T) {
	t.Parallel()
	tk := processingTask(t)
	if err := tk.Fail("w1", "boom", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	thenEvents(t, tk, failed(1, false))
	if tk.Status() != task.StatusFailed || !tk.Active() {
		t.Fatalf("a failure with attempts left stays active: %+v", tk)
	}

	tk = taskWith(t, claimed(1), failed(1, false), retried(), claimed(2), failed(2, false), retried(), claimed(3))
	if err := tk.Fail("w1", "boom", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	thenEvents(t, tk, failed(3, true))
	if tk.Active() || !tk.Stored() {
		t.Fatalf("a final failure is not active: %+v", tk)
	}

	tk = processingTask(t)
	thenRefused(t, tk, tk.Fail("w2", "x", t0), task.ErrLeaseLost)
	for _, mk := range []func(*testing.T) *task.Task{queuedTask, completedTask, failedTask, deletedTask} {
		tk := mk(t)
		thenRefused(t, tk, tk.Fail("w1", "x", t0), task.ErrLeaseLost)
	}
}

func TestRetry(t *testing.T) {
	t.Parallel()
	tk := failedTask(t)
	if err := tk.Retry(t0); err != nil {
		t.Fatal(err)
	}
	thenEvents(t, tk, retried())
	if tk.Status() != task.StatusQueued || !tk.Active() {
		t.Fatalf("state after Retry: %+v", tk)
	}
	for _, tc := range []struct {
		name string
		tk   func(*testing.T) *task.Task
		want error
	}{
		{"queued", queuedTask, task.ErrNotRetryable},
		{"processing", processingTask, task.ErrNotRetryable},
		{"completed", completedTask, task.ErrNotRetryable},
		{"cancelled", cancelledTask, task.ErrNotRetryable},
		{"attempts spent", finallyFailedTask, task.ErrNotRetryable},
		{"deleted", deletedTask, task.ErrNotFound},
		{"expired", expiredTask, task.ErrNotFound},
		{"missing", func(t *testing.T) *task.Task { return given(t) }, task.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tk := tc.tk(t)
			thenRefused(t, tk, tk.Retry(t0), tc.want)
		})
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	tk := queuedTask(t)
	if err := tk.Cancel(ownerID, t0); err != nil {
		t.Fatal(err)
	}
	thenEvents(t, tk, task.Cancelled{TaskID: taskID, OwnerID: ownerID, By: ownerID, CancelledAt: t0})
	if tk.Active() || !tk.Stored() {
		t.Fatalf("state after Cancel: %+v", tk)
	}
	for _, mk := range []func(*testing.T) *task.Task{processingTask, completedTask, failedTask, cancelledTask} {
		tk := mk(t)
		thenRefused(t, tk, tk.Cancel(ownerID, t0), task.ErrInvalidTransition)
	}
	for _, mk := range []func(*testing.T) *task.Task{deletedTask, expiredTask, func(t *testing.T) *task.Task { return given(t) }} {
		tk := mk(t)
		thenRefused(t, tk, tk.Cancel(ownerID, t0), task.ErrNotFound)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	for _, mk := range []func(*testing.T) *task.Task{queuedTask, processingTask, completedTask, failedTask, finallyFailedTask, cancelledTask} {
		tk := mk(t)
		if err := tk.Delete(otherID, true, t0); err != nil {
			t.Fatal(err)
		}
		thenEvents(t, tk, task.Deleted{TaskID: taskID, OwnerID: ownerID, By: otherID, AsAdmin: true, DeletedAt: t0})
		if tk.Status() != task.StatusDeleted || tk.Active() || tk.Stored() || tk.Live() || tk.Worker() != "" {
			t.Fatalf("state after Delete: %+v", tk)
		}
	}
	for _, mk := range []func(*testing.T) *task.Task{deletedTask, expiredTask, func(t *testing.T) *task.Task { return given(t) }} {
		tk := mk(t)
		thenRefused(t, tk, tk.Delete(ownerID, false, t0), task.ErrNotFound)
	}
	tk := queuedTask(t)
	thenRefused(t, tk, tk.Delete(uuid.Nil, false, t0), task.ErrInvalidInput)
}

func TestExpire(t *testing.T) {
	t.Parallel()
	cutoff := t0.Add(time.Hour)
	for _, mk := range []func(*testing.T) *task.Task{queuedTask, completedTask, failedTask, cancelledTask} {
		tk := mk(t)
		if err := tk.Expire(cutoff, cutoff); err != nil {
			t.Fatal(err)
		}
		thenEvents(t, tk, task.Expired{TaskID: taskID, OwnerID: ownerID, ExpiredAt: cutoff})
		if tk.Status() != task.StatusExpired || tk.Active() || tk.Stored() {
			t.Fatalf("state after Expire: %+v", tk)
		}
	}
	tk := queuedTask(t)
	thenRefused(t, tk, tk.Expire(t0, cutoff), task.ErrInvalidTransition) // created at the cut-off: kept
	tk = processingTask(t)
	thenRefused(t, tk, tk.Expire(cutoff, cutoff), task.ErrInvalidTransition)
	for _, mk := range []func(*testing.T) *task.Task{deletedTask, expiredTask, func(t *testing.T) *task.Task { return given(t) }} {
		tk := mk(t)
		thenRefused(t, tk, tk.Expire(cutoff, cutoff), task.ErrNotFound)
	}
}

func TestDenyReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		tk      func(*testing.T) *task.Task
		user    uuid.UUID
		asAdmin bool
		want    string
	}{
		{"owner", queuedTask, ownerID, false, ""},
		{"admin", queuedTask, otherID, true, ""},
		{"another user", queuedTask, otherID, false, task.DenyNotOwner},
		{"another user's deleted task", deletedTask, otherID, false, task.DenyNotOwner},
		{"own deleted task", deletedTask, ownerID, false, task.DenyGone},
		{"own expired task", expiredTask, ownerID, false, task.DenyGone},
		{"admin, deleted", deletedTask, otherID, true, task.DenyGone},
		{"missing", func(t *testing.T) *task.Task { return given(t) }, ownerID, true, task.DenyMissing},
	} {
		if got := tc.tk(t).DenyReason(tc.user, tc.asAdmin); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestFromHistoryRefusesForeignEvents(t *testing.T) {
	t.Parallel()
	if _, err := task.FromHistory([]events.Event{task.QuotaReserved{}}); err == nil {
		t.Fatal("a quota event folded into a task")
	}
}

package task

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/events"
)

// MaxAttemptsLimit caps what a creator may ask for.
const MaxAttemptsLimit = 20

// File is one file of a task, as attached at creation.
type File struct {
	ID          uuid.UUID
	Name        string
	ContentType string
	Size        int64
	SHA256      string
}

// Task is the aggregate of one task stream. The zero value is a task that
// does not exist; build one with Create or FromHistory.
type Task struct {
	id          uuid.UUID
	owner       uuid.UUID
	exists      bool
	status      Status
	maxAttempts int
	attempt     int // claims so far
	finalFail   bool
	files       []File
	createdAt   time.Time

	worker     string
	claimedAt  time.Time
	leaseUntil time.Time

	version int
	changes []events.Event
}

// FromHistory folds a task stream's events, oldest first. It fails on an
// event this aggregate does not know rather than ignore it.
func FromHistory(history []events.Event) (*Task, error) {
	t := &Task{}
	for _, e := range history {
		if err := t.apply(e); err != nil {
			return nil, err
		}
		t.version++
	}
	return t, nil
}

// Create records a new queued task with its files (Created, then one
// FileAttached per file, to be appended together with NoStream).
// maxAttempts 0 means DefaultMaxAttempts. Every problem is reported at once,
// each wrapping ErrInvalidInput.
func Create(id, owner uuid.UUID, maxAttempts int, files []File, now time.Time) (*Task, error) {
	var errs []error
	if id == uuid.Nil {
		errs = append(errs, invalid("task_id is required"))
	}
	if owner == uuid.Nil {
		errs = append(errs, invalid("owner_id is required"))
	}
	if maxAttempts == 0 {
		maxAttempts = DefaultMaxAttempts
	}
	if maxAttempts < 1 || maxAttempts > MaxAttemptsLimit {
		errs = append(errs, invalid(fmt.Sprintf("max_attempts must be between 1 and %d", MaxAttemptsLimit)))
	}
	if len(files) == 0 {
		errs = append(errs, invalid("at least one file is required"))
	}
	seen := map[uuid.UUID]bool{}
	for i, f := range files {
		switch {
		case f.ID == uuid.Nil:
			errs = append(errs, invalid(fmt.Sprintf("files[%d]: file_id is required", i)))
		case seen[f.ID]:
			errs = append(errs, invalid(fmt.Sprintf("files[%d]: file_id %s is repeated", i, f.ID)))
		}
		seen[f.ID] = true
		if f.Name == "" {
			errs = append(errs, invalid(fmt.Sprintf("files[%d]: name is required", i)))
		}
		if f.ContentType == "" {
			errs = append(errs, invalid(fmt.Sprintf("files[%d]: content_type is required", i)))
		}
		if f.Size < 0 {
			errs = append(errs, invalid(fmt.Sprintf("files[%d]: size must not be negative", i)))
		}
		if !isSHA256Hex(f.SHA256) {
			errs = append(errs, invalid(fmt.Sprintf("files[%d]: sha256 must be 64 lower-case hex digits", i)))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	t := &Task{}
	t.record(Created{TaskID: id, OwnerID: owner, MaxAttempts: maxAttempts, CreatedAt: now.UTC()})
	for _, f := range files {
		t.record(FileAttached{TaskID: id, OwnerID: owner, FileID: f.ID, Name: f.Name, ContentType: f.ContentType, Size: f.Size, SHA256: f.SHA256})
	}
	return t, nil
}

// ID is the task's id (uuid.Nil when it does not exist).
func (t *Task) ID() uuid.UUID { return t.id }

// Owner is the user the task belongs to.
func (t *Task) Owner() uuid.UUID { return t.owner }

// Exists reports whether the stream holds a created task (deleted and
// expired tasks still exist: their history does).
func (t *Task) Exists() bool { return t.exists }

// Status is the lifecycle state; "" when the task does not exist.
func (t *Task) Status() Status { return t.status }

// Attempt is the number of claims so far (0 before the first).
func (t *Task) Attempt() int { return t.attempt }

// MaxAttempts bounds the claims (first run and retries).
func (t *Task) MaxAttempts() int { return t.maxAttempts }

// CreatedAt is when the task was created.
func (t *Task) CreatedAt() time.Time { return t.createdAt }

// Worker is the worker holding the claim while processing.
func (t *Task) Worker() string { return t.worker }

// LeaseUntil is when the current claim runs out unless renewed.
func (t *Task) LeaseUntil() time.Time { return t.leaseUntil }

// Files are the attached files, in attachment order.
func (t *Task) Files() []File { return slices.Clone(t.files) }

// File finds one attached file.
func (t *Task) File(id uuid.UUID) (File, bool) {
	for _, f := range t.files {
		if f.ID == id {
			return f, true
		}
	}
	return File{}, false
}

// Bytes is the total size of the task's files.
func (t *Task) Bytes() int64 {
	var n int64
	for _, f := range t.files {
		n += f.Size
	}
	return n
}

// Live reports a task that exists and was neither deleted nor expired: its
// files are stored and readable by its owner.
func (t *Task) Live() bool {
	return t.exists && t.status != StatusDeleted && t.status != StatusExpired
}

// Active reports whether the task counts against its owner's active-task
// quota: queued, processing, or failed with attempts left. A failed task
// that may still be retried stays active so that RetryTask never needs the
// quota stream (it stays a one-stream command and cannot be refused for
// quota); the owner frees the slot by deleting it. A final failure,
// completion, cancellation, deletion and expiry end activity for good.
func (t *Task) Active() bool {
	switch t.status {
	case StatusQueued, StatusProcessing:
		return true
	case StatusFailed:
		return !t.finalFail
	}
	return false
}

// Stored reports whether the task's bytes count against its owner's
// storage quota: until it is deleted or expires.
func (t *Task) Stored() bool { return t.Live() }

// DenyReason says why userID may not see this task, or "" when it may: the
// owner may, and so may an administrator (asAdmin) as long as the task is
// live. The reasons (DenyMissing, DenyNotOwner, DenyGone) are for the audit
// trail only; every refusal is the same ErrNotFound to the requester.
func (t *Task) DenyReason(userID uuid.UUID, asAdmin bool) string {
	switch {
	case !t.exists:
		return DenyMissing
	case t.owner != userID && !asAdmin:
		return DenyNotOwner
	case !t.Live():
		return DenyGone
	}
	return ""
}

// Claim hands a queued task to workerID until leaseUntil. A task being
// processed is ErrAlreadyClaimed (the loser of two concurrent claims gets
// it after its reload); other states are ErrInvalidTransition.
func (t *Task) Claim(workerID string, leaseUntil, now time.Time) error {
	if err := t.mustExist(); err != nil {
		return err
	}
	if workerID == "" {
		return invalid("worker_id is required")
	}
	if !leaseUntil.After(now) {
		return invalid("lease_until must be after now")
	}
	switch t.status {
	case StatusQueued:
	case StatusProcessing:
		return ErrAlreadyClaimed
	default:
		return fmt.Errorf("%w: claim a %s task", ErrInvalidTransition, t.status)
	}
	t.record(Claimed{TaskID: t.id, OwnerID: t.owner, WorkerID: workerID, Attempt: t.attempt + 1, LeaseUntil: leaseUntil.UTC(), ClaimedAt: now.UTC()})
	return nil
}

// RenewClaim extends the lease of workerID's claim (a heartbeat). A lease
// that ran out may still be renewed as long as nobody released it.
func (t *Task) RenewClaim(workerID string, leaseUntil, now time.Time) error {
	if err := t.mustHold(workerID); err != nil {
		return err
	}
	if !leaseUntil.After(now) {
		return invalid("lease_until must be after now")
	}
	t.record(ClaimRenewed{TaskID: t.id, OwnerID: t.owner, WorkerID: workerID, LeaseUntil: leaseUntil.UTC(), RenewedAt: now.UTC()})
	return nil
}

// ReleaseStaleClaim takes the task back from a worker whose lease ended
// before now: queued again (ClaimReleased), or, on the last allowed
// attempt, failed for good (Failed with FailureClaimExpired), so that a
// file that kills every worker cannot be claimed forever. A running lease
// is ErrClaimNotStale; a task not being processed, ErrInvalidTransition.
func (t *Task) ReleaseStaleClaim(now time.Time) error {
	if err := t.mustExist(); err != nil {
		return err
	}
	if t.status != StatusProcessing {
		return fmt.Errorf("%w: release the claim of a %s task", ErrInvalidTransition, t.status)
	}
	if !t.leaseUntil.Before(now) {
		return ErrClaimNotStale
	}
	if t.attempt >= t.maxAttempts {
		t.record(Failed{TaskID: t.id, OwnerID: t.owner, WorkerID: t.worker, Error: FailureClaimExpired, Attempt: t.attempt,
			ProcessingMS: t.processingMS(now), Final: true, FailedAt: now.UTC()})
		return nil
	}
	t.record(ClaimReleased{TaskID: t.id, OwnerID: t.owner, WorkerID: t.worker, Reason: ReleaseReasonLeaseExpired, ReleasedAt: now.UTC()})
	return nil
}

// GiveBack is the holding worker returning its claim without an outcome,
// because something the task does not control failed (reason, such as
// ReleaseReasonStorageFull): the task is queued again and the attempt is
// not counted, so it stays retryable however often it happens.
func (t *Task) GiveBack(workerID, reason string, now time.Time) error {
	if err := t.mustHold(workerID); err != nil {
		return err
	}
	if reason == "" {
		return invalid("reason is required")
	}
	t.record(ClaimReleased{TaskID: t.id, OwnerID: t.owner, WorkerID: workerID, Reason: reason, ReleasedAt: now.UTC(), AttemptRefunded: true})
	return nil
}

// Complete records workerID's result. Only the claim holder may complete:
// anyone else (or a holder whose claim was released) gets ErrLeaseLost.
func (t *Task) Complete(workerID, result string, now time.Time) error {
	if err := t.mustHold(workerID); err != nil {
		return err
	}
	t.record(Completed{TaskID: t.id, OwnerID: t.owner, WorkerID: workerID, Result: result, ProcessingMS: t.processingMS(now), CompletedAt: now.UTC()})
	return nil
}

// Fail records workerID's failure of the current attempt. It is final
// (no retry, no longer active) when the attempt was the last allowed one.
func (t *Task) Fail(workerID, reason string, now time.Time) error {
	if err := t.mustHold(workerID); err != nil {
		return err
	}
	t.record(Failed{TaskID: t.id, OwnerID: t.owner, WorkerID: workerID, Error: reason, Attempt: t.attempt,
		ProcessingMS: t.processingMS(now), Final: t.attempt >= t.maxAttempts, FailedAt: now.UTC()})
	return nil
}

// Retry queues a failed task again. Any other state, or a failure on the
// last allowed attempt, is ErrNotRetryable; a task that is missing or gone
// is ErrNotFound.
func (t *Task) Retry(now time.Time) error {
	if !t.Live() {
		return ErrNotFound
	}
	if t.status != StatusFailed || t.finalFail || t.attempt >= t.maxAttempts {
		return fmt.Errorf("%w: task is %s after %d of %d attempts", ErrNotRetryable, t.status, t.attempt, t.maxAttempts)
	}
	t.record(Retried{TaskID: t.id, OwnerID: t.owner, RetriedAt: now.UTC()})
	return nil
}

// Cancel withdraws a queued task. Other live states are
// ErrInvalidTransition; missing or gone, ErrNotFound.
func (t *Task) Cancel(by uuid.UUID, now time.Time) error {
	if !t.Live() {
		return ErrNotFound
	}
	if t.status != StatusQueued {
		return fmt.Errorf("%w: cancel a %s task", ErrInvalidTransition, t.status)
	}
	t.record(Cancelled{TaskID: t.id, OwnerID: t.owner, By: by, CancelledAt: now.UTC()})
	return nil
}

// Delete removes a live task in any state (a worker processing it loses its
// claim: its Complete or Fail will be ErrLeaseLost). Missing or already
// gone is ErrNotFound. Who may delete is the caller's check (DenyReason).
func (t *Task) Delete(by uuid.UUID, asAdmin bool, now time.Time) error {
	if !t.Live() {
		return ErrNotFound
	}
	if by == uuid.Nil {
		return invalid("by is required")
	}
	t.record(Deleted{TaskID: t.id, OwnerID: t.owner, By: by, AsAdmin: asAdmin, DeletedAt: now.UTC()})
	return nil
}

// Expire ends a live task created before createdBefore (the retention
// cut-off). A task being processed is left to finish
// (ErrInvalidTransition; the next expiry run takes it), as is one created
// at or after the cut-off.
func (t *Task) Expire(createdBefore, now time.Time) error {
	if !t.Live() {
		return ErrNotFound
	}
	if t.status == StatusProcessing {
		return fmt.Errorf("%w: expire a task being processed", ErrInvalidTransition)
	}
	if !t.createdAt.Before(createdBefore) {
		return fmt.Errorf("%w: task created %s is within retention (cut-off %s)", ErrInvalidTransition,
			t.createdAt.Format(time.RFC3339), createdBefore.UTC().Format(time.RFC3339))
	}
	t.record(Expired{TaskID: t.id, OwnerID: t.owner, ExpiredAt: now.UTC()})
	return nil
}

// Version is the number of events folded; append Changes with NoStream when
// it is 0, else at revision Version()-1.
func (t *Task) Version() int { return t.version }

// Changes are the events recorded since the load, to append.
func (t *Task) Changes() []events.Event { return slices.Clone(t.changes) }

func (t *Task) mustExist() error {
	if !t.exists {
		return ErrNotFound
	}
	return nil
}

func (t *Task) mustHold(workerID string) error {
	if err := t.mustExist(); err != nil {
		return err
	}
	if t.status != StatusProcessing || t.worker != workerID || workerID == "" {
		return fmt.Errorf("%w: task is %s, held by %q", ErrLeaseLost, t.status, t.worker)
	}
	return nil
}

func (t *Task) processingMS(now time.Time) int64 {
	d := now.Sub(t.claimedAt).Milliseconds()
	if d < 0 {
		return 0
	}
	return d
}

func (t *Task) record(e events.Event) {
	if err := t.apply(e); err != nil {
		panic(err) // only this aggregate's own, valid events reach here
	}
	t.changes = append(t.changes, e)
}

func (t *Task) apply(e events.Event) error {
	switch e := e.(type) {
	case Created:
		t.id, t.owner, t.exists, t.status = e.TaskID, e.OwnerID, true, StatusQueued
		t.maxAttempts, t.createdAt = e.MaxAttempts, e.CreatedAt
		if t.maxAttempts <= 0 {
			t.maxAttempts = DefaultMaxAttempts
		}
	case FileAttached:
		t.files = append(t.files, File{ID: e.FileID, Name: e.Name, ContentType: e.ContentType, Size: e.Size, SHA256: e.SHA256})
	case Claimed:
		t.status, t.worker, t.attempt, t.leaseUntil, t.claimedAt = StatusProcessing, e.WorkerID, e.Attempt, e.LeaseUntil, e.ClaimedAt
	case ClaimRenewed:
		t.leaseUntil = e.LeaseUntil
	case ClaimReleased:
		t.status = StatusQueued
		if e.AttemptRefunded && t.attempt > 0 {
			t.attempt--
		}
		t.clearClaim()
	case Completed:
		t.status = StatusCompleted
		t.clearClaim()
	case Failed:
		t.status, t.finalFail = StatusFailed, e.Final
		t.clearClaim()
	case Retried:
		t.status, t.finalFail = StatusQueued, false
	case Cancelled:
		t.status = StatusCancelled
	case Deleted:
		t.status = StatusDeleted
		t.clearClaim()
	case Expired:
		t.status = StatusExpired
		t.clearClaim()
	default:
		return fmt.Errorf("task: unexpected event %T on a task stream", e)
	}
	return nil
}

func (t *Task) clearClaim() {
	t.worker, t.leaseUntil, t.claimedAt = "", time.Time{}, time.Time{}
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func invalid(msg string) error { return fmt.Errorf("%w: %s", ErrInvalidInput, msg) }

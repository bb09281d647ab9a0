package task

import (
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/events"
)

// Event names. They are data in the log: never change one; add a .v2 type
// and an upcaster instead.
const (
	EventCreated         = "task.created.v1"
	EventFileAttached    = "task.file_attached.v1"
	EventClaimed         = "task.claimed.v1"
	EventClaimRenewed    = "task.claim_renewed.v1"
	EventClaimReleased   = "task.claim_released.v1"
	EventCompleted       = "task.completed.v1"
	EventFailed          = "task.failed.v1"
	EventRetried         = "task.retried.v1"
	EventCancelled       = "task.cancelled.v1"
	EventDeleted         = "task.deleted.v1"
	EventExpired         = "task.expired.v1"
	EventFileAccessed    = "task.file_accessed.v1"
	EventViewed          = "task.viewed.v1"
	EventAccessDenied    = "access.denied.v1"
	EventDenialsCounted  = "access.denials_counted.v1"
	EventQuotaReserved   = "quota.reserved.v1"
	EventQuotaReleased   = "quota.released.v1"
	EventQuotaSummarized = "quota.summarized.v1"
)

// Stream name prefixes (for subscription filters).
const (
	StreamPrefix       = "task-"
	AccessStreamPrefix = "access-"
	QuotaStreamPrefix  = "quota-"
)

// Status is a task's lifecycle state. The values are stable: read models
// and the API show them.
type Status string

const (
	StatusQueued     Status = "queued"
	StatusProcessing Status = "processing"
	StatusCompleted  Status = "completed"
	StatusFailed     Status = "failed"
	StatusCancelled  Status = "cancelled"
	StatusDeleted    Status = "deleted"
	StatusExpired    Status = "expired"
)

// DefaultMaxAttempts bounds the claims of a task when the creator does not
// say (a first run and two retries).
const DefaultMaxAttempts = 3

// Resource kinds in AccessDenied.ResourceKind.
const (
	ResourceKindTask = "task"
	ResourceKindFile = "file"
)

// ReleaseReasonLeaseExpired is ClaimReleased.Reason when a worker stopped
// heartbeating.
const ReleaseReasonLeaseExpired = "lease_expired"

// ReleaseReasonStorageFull is ClaimReleased.Reason when the worker gave the
// task back because a disk it needed was full: the task is not at fault,
// and the attempt does not count.
const ReleaseReasonStorageFull = "storage_full"

// FailureClaimExpired is Failed.Error when the lease of the last allowed
// attempt ran out: the task fails for good instead of being queued again,
// so a file that crashes every worker cannot loop forever.
const FailureClaimExpired = "claim expired on the last allowed attempt"

// StreamName is a task's lifecycle stream.
func StreamName(taskID uuid.UUID) string { return StreamPrefix + taskID.String() }

// AccessStream is the stream of a requesting user's file accesses and
// refusals. It is appended with eventstore.Any: accesses never conflict with
// lifecycle writes, and a request for an id that does not exist creates no
// task stream.
func AccessStream(userID uuid.UUID) string { return AccessStreamPrefix + userID.String() }

// QuotaStream is a user's quota counter stream (ADR 0002), appended at its
// current revision so that concurrent creations cannot pass the limits.
func QuotaStream(ownerID uuid.UUID) string { return QuotaStreamPrefix + ownerID.String() }

// Sentinel errors, checked with errors.Is.
var (
	// ErrNotFound: no such task or file, or one the requester may not see.
	// The two are deliberately the same error (and the same 404).
	ErrNotFound = errors.New("task: not found")
	// ErrNotRetryable: retry asked for a task that is not failed, or whose
	// attempts are spent (409 not-retryable).
	ErrNotRetryable = errors.New("task: not retryable")
	// ErrQuotaExceeded: the owner has too many active tasks or stored bytes
	// (429 task-quota).
	ErrQuotaExceeded = errors.New("task: quota exceeded")
	// ErrInvalidTransition: the command does not apply to the task's state
	// (for example completing a queued task, expiring a processing one).
	ErrInvalidTransition = errors.New("task: invalid transition")
	// ErrAlreadyClaimed: another worker holds (or just took) the task.
	ErrAlreadyClaimed = errors.New("task: already claimed")
	// ErrLeaseLost: the worker no longer holds the claim (it was released as
	// stale, or the task was deleted or expired meanwhile). The worker must
	// drop its work.
	ErrLeaseLost = errors.New("task: claim lease lost")
	// ErrClaimNotStale: ReleaseStaleClaim found a lease still running.
	ErrClaimNotStale = errors.New("task: claim is not stale")
	// ErrAlreadyExists: the task id is taken by another task (a different
	// owner or different files), so a create cannot be a retry of it.
	ErrAlreadyExists = errors.New("task: id already used")
	// ErrInvalidInput: a command parameter is missing or malformed.
	ErrInvalidInput = errors.New("task: invalid input")
)

// Created starts a task stream. It is appended in one append with one
// FileAttached per file.
type Created struct {
	TaskID      uuid.UUID `json:"task_id"`
	OwnerID     uuid.UUID `json:"owner_id"`
	MaxAttempts int       `json:"max_attempts"`
	CreatedAt   time.Time `json:"created_at"`
}

// FileAttached records one uploaded file. SHA256 (hex) is also the blob's
// name in the content-addressed store; Name is the client's file name,
// sanitised; ContentType was sniffed from the bytes.
type FileAttached struct {
	TaskID      uuid.UUID `json:"task_id"`
	OwnerID     uuid.UUID `json:"owner_id"`
	FileID      uuid.UUID `json:"file_id"`
	Name        string    `json:"name"`
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
}

// Claimed hands a queued task to a worker until LeaseUntil (renewed by
// ClaimRenewed). Attempt counts claims, starting at 1.
type Claimed struct {
	TaskID     uuid.UUID `json:"task_id"`
	OwnerID    uuid.UUID `json:"owner_id"`
	WorkerID   string    `json:"worker_id"`
	Attempt    int       `json:"attempt"`
	LeaseUntil time.Time `json:"lease_until"`
	ClaimedAt  time.Time `json:"claimed_at"`
}

// ClaimRenewed is a worker's heartbeat: its lease now ends at LeaseUntil.
type ClaimRenewed struct {
	TaskID     uuid.UUID `json:"task_id"`
	OwnerID    uuid.UUID `json:"owner_id"`
	WorkerID   string    `json:"worker_id"`
	LeaseUntil time.Time `json:"lease_until"`
	RenewedAt  time.Time `json:"renewed_at"`
}

// ClaimReleased takes a task back from a worker whose lease ran out: the
// task is queued again and the attempt it used stays counted.
type ClaimReleased struct {
	TaskID     uuid.UUID `json:"task_id"`
	OwnerID    uuid.UUID `json:"owner_id"`
	WorkerID   string    `json:"worker_id"`
	Reason     string    `json:"reason"`
	ReleasedAt time.Time `json:"released_at"`
	// AttemptRefunded: the released attempt does not count towards the
	// task's maximum (the worker gave it back for reasons not the task's).
	// Absent in releases of stale claims, whose attempt counts.
	AttemptRefunded bool `json:"attempt_refunded,omitempty"`
}

// Completed records the processor's result (the OCR text).
type Completed struct {
	TaskID       uuid.UUID `json:"task_id"`
	OwnerID      uuid.UUID `json:"owner_id"`
	WorkerID     string    `json:"worker_id"`
	Result       string    `json:"result"`
	ProcessingMS int64     `json:"processing_ms"`
	CompletedAt  time.Time `json:"completed_at"`
}

// Failed records a failed attempt. Final is true when no retry is allowed
// any more (Attempt reached MaxAttempts): the task stops counting as active.
type Failed struct {
	TaskID       uuid.UUID `json:"task_id"`
	OwnerID      uuid.UUID `json:"owner_id"`
	WorkerID     string    `json:"worker_id"`
	Error        string    `json:"error"`
	Attempt      int       `json:"attempt"`
	ProcessingMS int64     `json:"processing_ms"`
	Final        bool      `json:"final"`
	FailedAt     time.Time `json:"failed_at"`
}

// Retried queues a failed task again (only from failed, bounded by
// MaxAttempts).
type Retried struct {
	TaskID    uuid.UUID `json:"task_id"`
	OwnerID   uuid.UUID `json:"owner_id"`
	RetriedAt time.Time `json:"retried_at"`
}

// Cancelled withdraws a queued task before any worker took it. Its files
// stay stored until it is deleted or expires.
type Cancelled struct {
	TaskID      uuid.UUID `json:"task_id"`
	OwnerID     uuid.UUID `json:"owner_id"`
	By          uuid.UUID `json:"by"`
	CancelledAt time.Time `json:"cancelled_at"`
}

// Deleted removes a task's files at once; history keeps the record. By is
// the user who asked (the owner, or an administrator with AsAdmin).
type Deleted struct {
	TaskID    uuid.UUID `json:"task_id"`
	OwnerID   uuid.UUID `json:"owner_id"`
	By        uuid.UUID `json:"by"`
	AsAdmin   bool      `json:"as_admin"`
	DeletedAt time.Time `json:"deleted_at"`
}

// Expired ends a task past the retention period; its files are removed.
type Expired struct {
	TaskID    uuid.UUID `json:"task_id"`
	OwnerID   uuid.UUID `json:"owner_id"`
	ExpiredAt time.Time `json:"expired_at"`
}

// FileAccessed is appended to the requester's access stream before a
// file's bytes are sent. AsAdmin is true when an administrator read
// another user's file.
type FileAccessed struct {
	UserID     uuid.UUID `json:"user_id"`
	OwnerID    uuid.UUID `json:"owner_id"`
	TaskID     uuid.UUID `json:"task_id"`
	FileID     uuid.UUID `json:"file_id"`
	IP         string    `json:"ip,omitempty"`
	RequestID  string    `json:"request_id,omitempty"`
	AsAdmin    bool      `json:"as_admin"`
	AccessedAt time.Time `json:"accessed_at"`
}

// Viewed is appended to the requester's access stream when an
// administrator reads another user's task (its state, files and result), so
// that reading on someone's behalf is audited. Owners reading their own
// tasks append nothing.
type Viewed struct {
	UserID    uuid.UUID `json:"user_id"`
	OwnerID   uuid.UUID `json:"owner_id"`
	TaskID    uuid.UUID `json:"task_id"`
	IP        string    `json:"ip,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	AsAdmin   bool      `json:"as_admin"`
	ViewedAt  time.Time `json:"viewed_at"`
}

// Denial reasons in AccessDenied.Reason. They are for the audit trail only:
// the requester always gets the same not-found answer.
const (
	DenyNotOwner = "not_owner" // the resource exists and belongs to someone else
	DenyMissing  = "missing"   // no such task or file
	DenyGone     = "gone"      // the task was deleted or expired
)

// AccessDenied is appended to the requester's access stream when a request
// names a task or file the requester may not see (or that does not exist):
// the answer is a 404, and the attempt is audited. ResourceKind is "task"
// or "file"; ResourceID is the task id or the file id.
type AccessDenied struct {
	UserID       uuid.UUID `json:"user_id"`
	ResourceKind string    `json:"resource_kind"`
	ResourceID   uuid.UUID `json:"resource_id"`
	TaskID       uuid.UUID `json:"task_id"`
	IP           string    `json:"ip,omitempty"`
	RequestID    string    `json:"request_id,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	DeniedAt     time.Time `json:"denied_at"`
}

// DenialsCounted records the refusals a requester met within a coalescing
// window after the one recorded in full (AccessDenied, whose event id is
// OpenedBy), so that repeated refused reads cannot grow the log one event
// each (DenialWindow). Count is how many; Reasons and ResourceKinds split
// it; the times bound the counted refusals, the window's bounds follow the
// opening one. The metadata (correlation id, client IP, user agent) is the
// last counted request's; the causation id is OpenedBy.
type DenialsCounted struct {
	UserID        uuid.UUID      `json:"user_id"`
	OpenedBy      uuid.UUID      `json:"opened_by,omitempty"`
	Count         int            `json:"count"`
	Reasons       map[string]int `json:"reasons"`
	ResourceKinds map[string]int `json:"resource_kinds"`
	FirstDeniedAt time.Time      `json:"first_denied_at"`
	LastDeniedAt  time.Time      `json:"last_denied_at"`
	WindowStart   time.Time      `json:"window_start"`
	WindowEnd     time.Time      `json:"window_end"`
}

// QuotaReserved counts a new task (active, Bytes stored) against its
// owner's limits, on the quota stream.
type QuotaReserved struct {
	OwnerID    uuid.UUID `json:"owner_id"`
	TaskID     uuid.UUID `json:"task_id"`
	Bytes      int64     `json:"bytes"`
	ReservedAt time.Time `json:"reserved_at"`
}

// QuotaReleased stops counting a task: Active when it stops being active,
// Stored when its Bytes are removed. See Quota for the rule.
type QuotaReleased struct {
	OwnerID    uuid.UUID `json:"owner_id"`
	TaskID     uuid.UUID `json:"task_id"`
	Bytes      int64     `json:"bytes"`
	Active     bool      `json:"active"`
	Stored     bool      `json:"stored"`
	ReleasedAt time.Time `json:"released_at"`
}

// QuotaSummarized restates everything a quota stream counts at this point
// (Held: every reservation still active or stored), so that a load can
// start here instead of folding the stream from its first event (see
// Quota.Reserve and QuotaFrom). It changes nothing the stream counts.
type QuotaSummarized struct {
	OwnerID      uuid.UUID   `json:"owner_id"`
	Held         []QuotaHeld `json:"held"`
	SummarizedAt time.Time   `json:"summarized_at"`
}

// QuotaHeld is one reservation in a QuotaSummarized.
type QuotaHeld struct {
	TaskID     uuid.UUID `json:"task_id"`
	Bytes      int64     `json:"bytes"`
	Active     bool      `json:"active"`
	Stored     bool      `json:"stored"`
	ReservedAt time.Time `json:"reserved_at"`
}

func (Created) EventName() string         { return EventCreated }
func (FileAttached) EventName() string    { return EventFileAttached }
func (Claimed) EventName() string         { return EventClaimed }
func (ClaimRenewed) EventName() string    { return EventClaimRenewed }
func (ClaimReleased) EventName() string   { return EventClaimReleased }
func (Completed) EventName() string       { return EventCompleted }
func (Failed) EventName() string          { return EventFailed }
func (Retried) EventName() string         { return EventRetried }
func (Cancelled) EventName() string       { return EventCancelled }
func (Deleted) EventName() string         { return EventDeleted }
func (Expired) EventName() string         { return EventExpired }
func (FileAccessed) EventName() string    { return EventFileAccessed }
func (Viewed) EventName() string          { return EventViewed }
func (AccessDenied) EventName() string    { return EventAccessDenied }
func (DenialsCounted) EventName() string  { return EventDenialsCounted }
func (QuotaReserved) EventName() string   { return EventQuotaReserved }
func (QuotaReleased) EventName() string   { return EventQuotaReleased }
func (QuotaSummarized) EventName() string { return EventQuotaSummarized }

// AllEvents lists one zero value of every event type of this package, the
// table RegisterEvents installs. Adding a type means adding it here.
func AllEvents() []events.Event {
	return []events.Event{
		Created{}, FileAttached{}, Claimed{}, ClaimRenewed{}, ClaimReleased{}, Completed{}, Failed{},
		Retried{}, Cancelled{}, Deleted{}, Expired{}, FileAccessed{}, Viewed{}, AccessDenied{},
		DenialsCounted{}, QuotaReserved{}, QuotaReleased{}, QuotaSummarized{},
	}
}

// RegisterEvents adds the task, access and quota events to r as value
// types (Decode returns values, which is what the aggregates' apply expects).
func RegisterEvents(r *events.Registry) error { return r.Register(AllEvents()...) }

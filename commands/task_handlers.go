package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
)

// TaskConfig configures the task commands.
type TaskConfig struct {
	// Limits is every user's quota (default task.DefaultLimits: 10 active
	// tasks, 500 MiB).
	Limits task.Limits
	// ClaimLease is how long a claim (or a renewal) holds a task without a
	// heartbeat (default 1 minute).
	ClaimLease time.Duration
	// ReservationGrace is how old a quota reservation without a task stream
	// must be before a refused creation releases it as abandoned (default
	// 15 minutes). It must exceed the longest time a creation can take
	// between its two appends.
	ReservationGrace time.Duration
	// ReconcileLimit bounds the task streams a refused creation reads to
	// repair its quota (default 100).
	ReconcileLimit int
	// QuotaMaxAttempts bounds the conflict retries on a user's quota stream
	// (default 60): concurrent creations by one user conflict there by
	// design, and each round lets one of them through.
	QuotaMaxAttempts int
	// DenialWindow coalesces each requester's refusals (Denials): 0, the
	// default here, records every one in full; the service sets it from
	// AUTHLEDGER_ACCESS_DENIAL_WINDOW (1 minute).
	DenialWindow time.Duration
}

// DefaultTaskConfig returns the defaults.
func DefaultTaskConfig() TaskConfig {
	return TaskConfig{Limits: task.DefaultLimits(), ClaimLease: time.Minute, ReservationGrace: 15 * time.Minute, ReconcileLimit: 100, QuotaMaxAttempts: 60}
}

// Validate reports every problem at once.
func (c TaskConfig) Validate() error {
	errs := []error{c.Limits.Validate()}
	if c.ClaimLease < time.Second {
		errs = append(errs, errors.New("commands: task claim lease must be at least 1s"))
	}
	if c.ReservationGrace < time.Minute {
		errs = append(errs, errors.New("commands: task reservation grace must be at least 1m"))
	}
	if c.ReconcileLimit < 1 {
		errs = append(errs, errors.New("commands: task reconcile limit must be at least 1"))
	}
	if c.QuotaMaxAttempts < 1 {
		errs = append(errs, errors.New("commands: quota max attempts must be at least 1"))
	}
	if c.DenialWindow < 0 {
		errs = append(errs, errors.New("commands: denial window must not be negative"))
	}
	return errors.Join(errs...)
}

// TaskCommon is what every task command needs: the task and quota
// repositories, the refusal recorder and the clock.
type TaskCommon struct {
	Tasks  *Repository[*task.Task]
	Quotas *Repository[*task.Quota]
	// Denials records refusals; nil appends each one in full.
	Denials *Denials
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// TaskHandlers are the task commands, wired to one store.
type TaskHandlers struct {
	Create            *CreateTaskHandler
	Claim             *ClaimTaskHandler
	RenewClaim        *RenewClaimHandler
	ReleaseStaleClaim *ReleaseStaleClaimHandler
	GiveBack          *GiveBackTaskHandler
	Complete          *CompleteTaskHandler
	Fail              *FailTaskHandler
	Retry             *RetryTaskHandler
	Cancel            *CancelTaskHandler
	Delete            *DeleteTaskHandler
	Expire            *ExpireTaskHandler
	AccessFile        *AccessFileHandler
	AuthorizeRead     *AuthorizeTaskReadHandler
	// Denials is the refusal recorder every handler shares; run its Run
	// beside the server, so that counted refusals are written out.
	Denials *Denials
}

// NewTaskHandlers builds every task command on store. registry must hold
// the task events (task.RegisterEvents).
func NewTaskHandlers(store eventstore.Store, registry *events.Registry, cfg TaskConfig) (*TaskHandlers, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tasks, err := NewRepository(store, registry, task.FromHistory)
	if err != nil {
		return nil, err
	}
	quotas, err := NewSummarizedRepository(store, registry, task.EventQuotaSummarized, task.QuotaFrom)
	if err != nil {
		return nil, err
	}
	quotas.MaxAttempts = cfg.QuotaMaxAttempts
	denials, err := NewDenials(store, cfg.DenialWindow, 0, nil)
	if err != nil {
		return nil, err
	}
	c := TaskCommon{Tasks: tasks, Quotas: quotas, Denials: denials}
	return &TaskHandlers{
		Create:            &CreateTaskHandler{TaskCommon: c, Limits: cfg.Limits, ReservationGrace: cfg.ReservationGrace, ReconcileLimit: cfg.ReconcileLimit},
		Claim:             &ClaimTaskHandler{TaskCommon: c, Lease: cfg.ClaimLease},
		RenewClaim:        &RenewClaimHandler{TaskCommon: c, Lease: cfg.ClaimLease},
		ReleaseStaleClaim: &ReleaseStaleClaimHandler{TaskCommon: c},
		GiveBack:          &GiveBackTaskHandler{TaskCommon: c},
		Complete:          &CompleteTaskHandler{TaskCommon: c},
		Fail:              &FailTaskHandler{TaskCommon: c},
		Retry:             &RetryTaskHandler{TaskCommon: c},
		Cancel:            &CancelTaskHandler{TaskCommon: c},
		Delete:            &DeleteTaskHandler{TaskCommon: c},
		Expire:            &ExpireTaskHandler{TaskCommon: c},
		AccessFile:        &AccessFileHandler{TaskCommon: c},
		AuthorizeRead:     &AuthorizeTaskReadHandler{TaskCommon: c},
		Denials:           denials,
	}, nil
}

// TaskResult is a task's state after a command and the log position of the
// command's last append (zero when it appended nothing), for
// X-Consistency-Token.
type TaskResult struct {
	TaskID     uuid.UUID
	OwnerID    uuid.UUID
	Status     task.Status
	Attempt    int
	LeaseUntil time.Time
	Files      []task.File
	Position   eventstore.Position
}

func resultOf(t *task.Task, pos eventstore.Position) TaskResult {
	return TaskResult{TaskID: t.ID(), OwnerID: t.Owner(), Status: t.Status(), Attempt: t.Attempt(), LeaseUntil: t.LeaseUntil(), Files: t.Files(), Position: pos}
}

func (c *TaskCommon) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// update runs decide on the task stream and returns the task as decided
// (the last load, with its changes applied).
func (c *TaskCommon) update(ctx context.Context, id uuid.UUID, meta Meta, decide func(*task.Task) error) (*task.Task, eventstore.Position, error) {
	var last *task.Task
	res, err := c.Tasks.Update(ctx, task.StreamName(id), meta, func(t *task.Task) error {
		last = t
		return decide(t)
	})
	return last, res.Position, err
}

// release stops counting a task on its owner's quota stream. It runs after
// the task stream's append: a crash in between leaves the quota counting
// too much, which the next refused creation repairs (task.Quota).
func (c *TaskCommon) release(ctx context.Context, meta Meta, owner, taskID uuid.UUID, active, stored bool, now time.Time) (eventstore.Position, error) {
	res, err := c.Quotas.Update(ctx, task.QuotaStream(owner), meta, func(q *task.Quota) error {
		q.Release(taskID, active, stored, now)
		return nil
	})
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("commands: release quota of task %s: %w", taskID, err)
	}
	return res.Position, nil
}

// access appends to the requester's access stream with Any: accesses never
// conflict with each other or with lifecycle writes.
func (c *TaskCommon) access(ctx context.Context, meta Meta, userID uuid.UUID, e events.Event, now time.Time) (eventstore.Position, error) {
	data, err := EncodeEvents([]events.Event{e}, meta, now)
	if err != nil {
		return eventstore.Position{}, err
	}
	res, err := c.Tasks.Store().Append(ctx, task.AccessStream(userID), eventstore.Any{}, data...)
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("commands: append access of %s: %w", userID, err)
	}
	return res.Position, nil
}

// deny audits a refused request (through Denials, which coalesces a
// requester's repeated refusals) and returns task.ErrNotFound, the same
// answer as for a missing resource. When the audit cannot be written the
// request fails with that error instead: an unaudited refusal is not an
// option, and the failure says nothing about the resource.
func (c *TaskCommon) deny(ctx context.Context, meta Meta, userID uuid.UUID, kind string, resourceID, taskID uuid.UUID, reason string, now time.Time) error {
	d := task.AccessDenied{
		UserID: userID, ResourceKind: kind, ResourceID: resourceID, TaskID: taskID,
		IP: meta.ClientIP, RequestID: meta.CorrelationID, Reason: reason, DeniedAt: now.UTC(),
	}
	var err error
	if c.Denials != nil {
		err = c.Denials.Record(ctx, meta, d)
	} else {
		_, err = c.access(ctx, meta, userID, d, now)
	}
	if err != nil {
		return err
	}
	return task.ErrNotFound
}

// denial is the refusal decide functions return for a task the requester
// may not see; the handler turns it into an audited task.ErrNotFound.
type denial struct{ reason string }

func (d denial) Error() string { return "commands: task access denied (" + d.reason + ")" }
func (d denial) Is(target error) bool {
	return target == task.ErrNotFound
}

// guard checks that userID may act on t and returns a denial if not.
func guard(t *task.Task, userID uuid.UUID, asAdmin bool) error {
	if r := t.DenyReason(userID, asAdmin); r != "" {
		return denial{reason: r}
	}
	return nil
}

// audited turns a denial (or the domain's ErrNotFound for a task that
// vanished) into an audited task.ErrNotFound on the requester's stream.
func (c *TaskCommon) audited(ctx context.Context, meta Meta, userID, taskID uuid.UUID, err error, now time.Time) error {
	if !errors.Is(err, task.ErrNotFound) {
		return err
	}
	reason := task.DenyGone
	var d denial
	if errors.As(err, &d) {
		reason = d.reason
	}
	return c.deny(ctx, meta, userID, task.ResourceKindTask, taskID, taskID, reason, now)
}

func later(a, b eventstore.Position) eventstore.Position {
	if a.Compare(b) >= 0 {
		return a
	}
	return b
}

func requireID(name string, id uuid.UUID) error {
	if id == uuid.Nil {
		return fmt.Errorf("%w: %s is required", task.ErrInvalidInput, name)
	}
	return nil
}

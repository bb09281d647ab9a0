package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/eventstore"
)

// CreateTask creates a queued task of already stored files (their blobs
// are written before the command).
type CreateTask struct {
	// TaskID and each file's ID are chosen by the caller before the first
	// attempt: a retry of the same command (same ids) completes or
	// returns the first one's task instead of creating another.
	TaskID  uuid.UUID
	OwnerID uuid.UUID
	Files   []task.File
	// MaxAttempts bounds claims; 0 means task.DefaultMaxAttempts.
	MaxAttempts int
	Meta        Meta
}

// CreateTaskHandler reserves the owner's quota (quota-<owner>, at its
// current revision), then writes the task stream (NoStream).
//
// Crash safety: a creation that stopped after its reservation is
// completed by a retry with the same ids (the reservation is found held
// and kept). One whose client never retries holds its reservation until a
// creation by the same owner is refused for quota at least
// ReservationGrace later: the refused creation reads the task stream of
// each counted reservation, releases those whose stream does not exist
// after the grace (and those whose task is over: a release lost to a
// crash after a completion or deletion), and tries again, all in one
// append to the quota stream. Nothing is released while a creation might
// still be between its two appends.
type CreateTaskHandler struct {
	TaskCommon
	Limits           task.Limits
	ReservationGrace time.Duration
	ReconcileLimit   int
}

// Handle creates the task. Invalid input wraps task.ErrInvalidInput (every
// problem at once); over quota is task.ErrQuotaExceeded; an id already used
// by another task (another owner, other files) is task.ErrAlreadyExists.
func (h *CreateTaskHandler) Handle(ctx context.Context, cmd CreateTask) (TaskResult, error) {
	now := h.now()
	fresh, err := task.Create(cmd.TaskID, cmd.OwnerID, cmd.MaxAttempts, cmd.Files, now)
	if err != nil {
		return TaskResult{}, err
	}
	// A retry after a complete creation must not touch the quota again: the
	// task may have finished and released its reservation since.
	if res, done, err := h.existing(ctx, cmd); err != nil || done {
		return res, err
	}
	_, err = h.Quotas.Update(ctx, task.QuotaStream(cmd.OwnerID), cmd.Meta, func(q *task.Quota) error {
		err := q.Reserve(cmd.OwnerID, cmd.TaskID, fresh.Bytes(), h.Limits, now)
		if !errors.Is(err, task.ErrQuotaExceeded) {
			return err
		}
		repaired, rerr := h.reconcile(ctx, q, now)
		if rerr != nil {
			return rerr
		}
		if !repaired {
			return err
		}
		return q.Reserve(cmd.OwnerID, cmd.TaskID, fresh.Bytes(), h.Limits, now)
	})
	if err != nil {
		return TaskResult{}, err
	}
	res, err := h.Tasks.Append(ctx, task.StreamName(cmd.TaskID), 0, cmd.Meta, fresh.Changes())
	if errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		// A concurrent retry of the same creation won, or the id is taken.
		r, done, err := h.existing(ctx, cmd)
		if done || err == nil {
			return r, err
		}
		if errors.Is(err, task.ErrAlreadyExists) {
			if _, rerr := h.releaseIfForeign(ctx, cmd, now); rerr != nil {
				return TaskResult{}, errors.Join(err, rerr)
			}
		}
		return TaskResult{}, err
	}
	if err != nil {
		return TaskResult{}, err
	}
	return resultOf(fresh, res.Position), nil
}

// existing returns the task when its stream already holds this creation.
func (h *CreateTaskHandler) existing(ctx context.Context, cmd CreateTask) (TaskResult, bool, error) {
	stream := task.StreamName(cmd.TaskID)
	t, err := h.Tasks.Load(ctx, stream)
	if err != nil {
		return TaskResult{}, false, err
	}
	if !t.Exists() {
		return TaskResult{}, false, nil
	}
	if !sameCreation(t, cmd) {
		return TaskResult{}, false, task.ErrAlreadyExists
	}
	// The creation's position: its last event (Created and the files were
	// appended together).
	recs, err := h.Tasks.Store().ReadStream(ctx, stream, eventstore.ReadStreamOptions{Limit: 1 + len(cmd.Files)})
	if err != nil {
		return TaskResult{}, false, fmt.Errorf("commands: read %s: %w", stream, err)
	}
	r := resultOf(t, recs[len(recs)-1].Position)
	return r, true, nil
}

func sameCreation(t *task.Task, cmd CreateTask) bool {
	files := t.Files()
	if t.Owner() != cmd.OwnerID || len(files) != len(cmd.Files) {
		return false
	}
	for i, f := range files {
		if f.ID != cmd.Files[i].ID || f.SHA256 != cmd.Files[i].SHA256 {
			return false
		}
	}
	return true
}

// releaseIfForeign drops the reservation this creation made for an id that
// turned out to be another owner's task.
func (h *CreateTaskHandler) releaseIfForeign(ctx context.Context, cmd CreateTask, now time.Time) (eventstore.Position, error) {
	t, err := h.Tasks.Load(ctx, task.StreamName(cmd.TaskID))
	if err != nil || t.Owner() == cmd.OwnerID {
		return eventstore.Position{}, err
	}
	return h.release(ctx, cmd.Meta, cmd.OwnerID, cmd.TaskID, true, true, now)
}

// reconcile compares the quota's oldest reservations with their task
// streams and records the releases they call for (task.Quota.Reconcile).
// Reading other streams inside the quota's decide is safe: the quota append
// still happens at the revision loaded, and every release is idempotent.
func (h *CreateTaskHandler) reconcile(ctx context.Context, q *task.Quota, now time.Time) (bool, error) {
	repaired := false
	for i, r := range q.Reservations() {
		if i >= h.ReconcileLimit {
			break
		}
		t, err := h.Tasks.Load(ctx, task.StreamName(r.TaskID))
		if err != nil {
			return false, err
		}
		if q.Reconcile(r, t, h.ReservationGrace, now) {
			repaired = true
		}
	}
	return repaired, nil
}

package worker

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/events"
)

// Commands runs the worker's Lifecycle on the task command handlers.
type Commands struct {
	h *commands.TaskHandlers
}

// NewCommands adapts the task handlers to Lifecycle.
func NewCommands(h *commands.TaskHandlers) (*Commands, error) {
	if h == nil || h.Claim == nil || h.RenewClaim == nil || h.Complete == nil || h.Fail == nil || h.ReleaseStaleClaim == nil || h.GiveBack == nil || h.Expire == nil {
		return nil, errors.New("worker: NewCommands needs the claim, renew, complete, fail, release and expire handlers")
	}
	return &Commands{h: h}, nil
}

// meta attributes the worker's events to the service that wrote them.
func meta(workerID string) commands.Meta {
	if workerID == "" {
		return commands.Meta{Actor: events.Actor{Kind: events.ActorSystem, ID: "retention"}}
	}
	return commands.Meta{Actor: events.Actor{Kind: events.ActorService, ID: "worker:" + workerID}}
}

func files(fs []task.File) []File {
	out := make([]File, len(fs))
	for i, f := range fs {
		out[i] = File{ID: f.ID, Name: f.Name, ContentType: f.ContentType, Size: f.Size, SHA256: f.SHA256}
	}
	return out
}

// Claim implements Lifecycle.
func (c *Commands) Claim(ctx context.Context, taskID uuid.UUID, workerID string, lease time.Duration) (Claimed, error) {
	r, err := c.h.Claim.Handle(ctx, commands.ClaimTask{TaskID: taskID, WorkerID: workerID, Lease: lease, Meta: meta(workerID)})
	if err != nil {
		return Claimed{}, err
	}
	return Claimed{OwnerID: r.OwnerID, Attempt: r.Attempt, Files: files(r.Files)}, nil
}

// Renew implements Lifecycle.
func (c *Commands) Renew(ctx context.Context, taskID uuid.UUID, workerID string, lease time.Duration) error {
	_, err := c.h.RenewClaim.Handle(ctx, commands.RenewClaim{TaskID: taskID, WorkerID: workerID, Lease: lease, Meta: meta(workerID)})
	return err
}

// Complete implements Lifecycle.
func (c *Commands) Complete(ctx context.Context, taskID uuid.UUID, workerID, result string) error {
	_, err := c.h.Complete.Handle(ctx, commands.CompleteTask{TaskID: taskID, WorkerID: workerID, Result: result, Meta: meta(workerID)})
	return err
}

// Fail implements Lifecycle.
func (c *Commands) Fail(ctx context.Context, taskID uuid.UUID, workerID, reason string) error {
	_, err := c.h.Fail.Handle(ctx, commands.FailTask{TaskID: taskID, WorkerID: workerID, Error: reason, Meta: meta(workerID)})
	return err
}

// GiveBack implements Lifecycle.
func (c *Commands) GiveBack(ctx context.Context, taskID uuid.UUID, workerID, reason string) error {
	_, err := c.h.GiveBack.Handle(ctx, commands.GiveBackTask{TaskID: taskID, WorkerID: workerID, Reason: reason, Meta: meta(workerID)})
	return err
}

// ReleaseStale implements Lifecycle.
func (c *Commands) ReleaseStale(ctx context.Context, taskID uuid.UUID) error {
	_, err := c.h.ReleaseStaleClaim.Handle(ctx, commands.ReleaseStaleClaim{TaskID: taskID, Meta: meta("")})
	return err
}

// Expire implements Lifecycle. The owner (for a per-user cut-off) is read
// from the task stream first; the command re-checks the cut-off on the
// stream it appends to.
func (c *Commands) Expire(ctx context.Context, taskID uuid.UUID, cutoff func(owner uuid.UUID) time.Time) error {
	t, err := c.h.Expire.Tasks.Load(ctx, task.StreamName(taskID))
	if err != nil {
		return err
	}
	if !t.Live() {
		return task.ErrNotFound
	}
	_, err = c.h.Expire.Handle(ctx, commands.ExpireTask{TaskID: taskID, CreatedBefore: cutoff(t.Owner()), Meta: meta("")})
	return err
}

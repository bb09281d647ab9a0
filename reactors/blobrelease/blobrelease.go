// Package blobrelease is the policy that removes a task's files from the
// blob store once the task is deleted or expired, unless another live task
// shares them (blobs are content-addressed).
//
// It used to run inline, twice: in the DELETE request and in the worker
// after an expiry. As a policy under the projection runtime it runs once per
// event, resumes from its checkpoint after a restart or an outage, and
// shows in `projections status`. It waits for the tasks read model to
// include the event first, or the read model would still count the task
// itself as a user of its files. Whatever it cannot remove (a read model
// stopped, a file in use again), the collector removes later (blob.GC).
package blobrelease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/blob"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
)

// Name is the policy's checkpoint name.
const Name = "blob_release"

// Waiter waits until projections have passed a log position
// (projections/projector.Waiter).
type Waiter interface {
	WaitFor(ctx context.Context, pos eventstore.Position, projections ...string) error
}

// TaskLoader loads a task from its stream (commands.Repository).
type TaskLoader interface {
	Load(ctx context.Context, stream string) (*task.Task, error)
}

// Config is what the policy needs; all but ReadModelWait and Logger are
// required.
type Config struct {
	Tasks TaskLoader
	Blobs blob.Store
	// Referenced answers whether a live task uses a blob
	// (projections/taskviews.Queue.BlobReferenced).
	Referenced blob.Referenced
	Waiter     Waiter
	// Projection is the tasks read model's name (projections/taskviews.Name).
	Projection string
	// ReadModelWait bounds one wait for the tasks read model (default
	// 10s); past it the event is tried again.
	ReadModelWait time.Duration
	Logger        *slog.Logger
}

// Filter selects the events that end a task.
var Filter = eventstore.Filter{EventTypes: []string{task.EventDeleted, task.EventExpired}}

// New returns the policy, run like a projection (projector.Runner). An
// outage is retried; any other failure for one task is logged and its
// files left to the collector.
func New(cfg Config) (projector.Projection, error) {
	if cfg.Tasks == nil || cfg.Blobs == nil || cfg.Referenced == nil || cfg.Waiter == nil || cfg.Projection == "" {
		return nil, errors.New("blobrelease: Tasks, Blobs, Referenced, Waiter and Projection are required")
	}
	if cfg.ReadModelWait <= 0 {
		cfg.ReadModelWait = 10 * time.Second
	}
	p := &policy{cfg: cfg}
	return projector.NewSideEffect(projector.SideEffect{Name: Name, Filter: Filter, Apply: p.release, Logger: cfg.Logger})
}

type policy struct{ cfg Config }

func (p *policy) release(ctx context.Context, ev eventstore.RecordedEvent) error {
	id, err := uuid.Parse(strings.TrimPrefix(ev.Stream, task.StreamPrefix))
	if err != nil {
		return fmt.Errorf("%s on stream %q: %w", ev.Type, ev.Stream, err)
	}
	t, err := p.cfg.Tasks.Load(ctx, task.StreamName(id))
	if err != nil {
		return fmt.Errorf("load task %s: %w", id, err)
	}
	wctx, cancel := context.WithTimeout(ctx, p.cfg.ReadModelWait)
	err = p.cfg.Waiter.WaitFor(wctx, ev.Position, p.cfg.Projection)
	cancel()
	if err != nil {
		return fmt.Errorf("wait for the tasks read model: %w", err)
	}
	var errs []error
	for _, f := range t.Files() {
		if _, err := blob.ReleaseIfUnused(ctx, p.cfg.Blobs, f.SHA256, t.CreatedAt(), p.cfg.Referenced); err != nil {
			errs = append(errs, fmt.Errorf("remove blob %s: %w", f.SHA256, err))
		}
	}
	return errors.Join(errs...)
}

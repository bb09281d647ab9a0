package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/outage"
)

// applyFailure is an event that a projection refused (an error or a
// panic of Apply, or of the batch that held it alone).
type applyFailure struct {
	ev  eventstore.RecordedEvent
	err error
}

func (f *applyFailure) Error() string {
	return fmt.Sprintf("apply %s (%s) at %s: %v", f.ev.ID, f.ev.Type, f.ev.Position, f.err)
}
func (f *applyFailure) Unwrap() error { return f.err }

// batchFailure is a failure of a multi-event batch at flush or commit time
// that cannot be attributed to one event: the retry applies one event per
// transaction up to last, which finds the event.
type batchFailure struct {
	last eventstore.Position
	err  error
}

func (f *batchFailure) Error() string { return fmt.Sprintf("commit batch up to %s: %v", f.last, f.err) }
func (f *batchFailure) Unwrap() error { return f.err }

var errDone = errors.New("projections: caught up")

// isTransient tells infrastructure failures (connection dropped, server
// shutting down, timeouts, deadlocks: outage.Retryable) from failures to
// apply an event: only the latter count towards MaxAttempts; the former
// are retried forever.
func isTransient(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, errStale) || outage.Retryable(err)
}

// retryState follows the failing event across attempts, and the outage
// being retried through.
type retryState struct {
	failingID  uuid.UUID
	failingPos eventstore.Position
	attempts   int
	// singleStepUntil: commit every event on its own up to this position,
	// so that a failure is attributed to one event and the events before it
	// are kept.
	singleStepUntil eventstore.Position
	// interruptions counts the transient failures since the last commit
	// (the backoff of the next resume).
	interruptions int
}

func (r *retryState) singleStep(p eventstore.Position) bool {
	return !r.singleStepUntil.IsZero() && p.Compare(r.singleStepUntil) <= 0
}

// failed counts an attempt at the event af names and single-steps up to
// it; it returns the number of attempts at that event so far.
func (r *retryState) failed(af *applyFailure) int {
	if af.ev.ID != r.failingID {
		r.failingID, r.failingPos, r.attempts = af.ev.ID, af.ev.Position, 0
	}
	r.attempts++
	r.singleStepUntil = af.ev.Position
	return r.attempts
}

// committed records a commit up to p: past the failing event, its attempts
// are forgotten, and the outage (if any) is over.
func (r *retryState) committed(p eventstore.Position) {
	if r.attempts > 0 && p.Compare(r.failingPos) >= 0 {
		r.attempts = 0
		r.failingID = uuid.Nil
	}
	if !r.singleStepUntil.IsZero() && p.Compare(r.singleStepUntil) >= 0 {
		r.singleStepUntil = eventstore.Position{}
	}
	r.interruptions = 0
}

func backoff(base, max time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

// sleep waits d or until ctx is done; it reports whether it slept fully.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

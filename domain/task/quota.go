package task

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/events"
)

// Limits are a user's quota.
type Limits struct {
	// MaxActiveTasks caps the tasks counting as active (see Task.Active);
	// default 10.
	MaxActiveTasks int
	// MaxStoredBytes caps the bytes of the user's live tasks (not deleted,
	// not expired); default 500 MiB.
	MaxStoredBytes int64
}

// DefaultLimits: 10 active tasks, 500 MiB stored.
func DefaultLimits() Limits { return Limits{MaxActiveTasks: 10, MaxStoredBytes: 500 << 20} }

// Validate reports every problem at once.
func (l Limits) Validate() error {
	var errs []error
	if l.MaxActiveTasks < 1 {
		errs = append(errs, errors.New("task: max active tasks per user must be at least 1"))
	}
	if l.MaxStoredBytes < 1 {
		errs = append(errs, errors.New("task: max stored bytes per user must be at least 1"))
	}
	return errors.Join(errs...)
}

// Reservation is what the quota counts for one task.
type Reservation struct {
	TaskID     uuid.UUID
	Bytes      int64
	Active     bool
	Stored     bool
	ReservedAt time.Time
}

// Quota is the aggregate of one quota stream (QuotaStream): the tasks a
// user's limits count, held as a counter stream appended at its current
// revision (ADR 0002), so concurrent creations are serialised by the
// store's optimistic check and can never pass the limits together.
//
// The rule:
//   - CreateTask reserves (QuotaReserved: active, Bytes stored) before it
//     writes the task stream.
//   - A task stops being active when it completes, fails on its last
//     attempt, or is cancelled: QuotaReleased{Active: true}. A failed task
//     that may be retried stays active (see Task.Active).
//   - Its bytes stop counting when it is deleted or expires:
//     QuotaReleased{Stored: true} (and Active, if it still was).
//   - A release lost to a crash between the task append and the quota
//     append, and a reservation whose task stream was never written (a
//     creation abandoned between its two appends), are repaired when a
//     reservation is refused: the command compares each counted task with
//     its stream (Reconcile) and releases what the stream says is over,
//     and a reservation without a task stream once it is older than a
//     grace period, then tries again in the same append.
//
// The stream grows by about three events a task for as long as the user
// has an account, so a reservation also records QuotaSummarized once
// enough events have followed the last one (SummarizeAfter): a load reads
// the stream back to its last summary and folds from there (QuotaFrom),
// and its cost follows what is counted, not the user's history.
type Quota struct {
	owner   uuid.UUID
	held    map[uuid.UUID]Reservation
	active  int
	stored  int64
	version int
	// sinceSummary counts the events folded after the last QuotaSummarized
	// (all of them when there is none).
	sinceSummary int
	changes      []events.Event
}

// SummarizeAfter: a reservation records a new QuotaSummarized once at
// least max(SummarizeAfter, reservations counted) events follow the last
// one (or the stream's start), so that summaries, which list every
// reservation counted, take no more room in the stream than the events
// they stand for.
const SummarizeAfter = 200

// QuotaFromHistory folds a whole quota stream, oldest first.
func QuotaFromHistory(history []events.Event) (*Quota, error) { return QuotaFrom(0, history) }

// QuotaFrom folds the end of a quota stream: history holds its events from
// revision base on, oldest first, and must start at a QuotaSummarized
// unless base is 0. The quota's version is base+len(history).
func QuotaFrom(base int, history []events.Event) (*Quota, error) {
	if base < 0 {
		return nil, fmt.Errorf("task: quota stream folded from revision %d", base)
	}
	if base > 0 {
		if len(history) == 0 {
			return nil, fmt.Errorf("task: quota stream folded from revision %d with no event", base)
		}
		if _, ok := history[0].(QuotaSummarized); !ok {
			return nil, fmt.Errorf("task: quota stream folded from revision %d, which is a %T, not a summary", base, history[0])
		}
	}
	q := &Quota{held: map[uuid.UUID]Reservation{}, version: base}
	for _, e := range history {
		if err := q.apply(e); err != nil {
			return nil, err
		}
		q.version++
	}
	return q, nil
}

// ActiveTasks is the number of tasks counted as active.
func (q *Quota) ActiveTasks() int { return q.active }

// StoredBytes is the number of bytes counted as stored.
func (q *Quota) StoredBytes() int64 { return q.stored }

// Reservation returns what is counted for a task.
func (q *Quota) Reservation(taskID uuid.UUID) (Reservation, bool) {
	r, ok := q.held[taskID]
	return r, ok
}

// Reservations lists what is counted, oldest reservation first.
func (q *Quota) Reservations() []Reservation {
	out := make([]Reservation, 0, len(q.held))
	for _, r := range q.held {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Reservation) int {
		if c := a.ReservedAt.Compare(b.ReservedAt); c != 0 {
			return c
		}
		return slices.Compare(a.TaskID[:], b.TaskID[:])
	})
	return out
}

// Reserve counts a new task of bytes as active and stored. A task already
// counted records nothing and succeeds (a retried creation). Past either
// limit it is ErrQuotaExceeded.
func (q *Quota) Reserve(owner, taskID uuid.UUID, bytes int64, limits Limits, now time.Time) error {
	if owner == uuid.Nil || taskID == uuid.Nil || bytes < 0 {
		return invalid("reserve needs an owner, a task id and a non-negative size")
	}
	if q.owner != uuid.Nil && q.owner != owner {
		return fmt.Errorf("task: quota stream of %s asked to reserve for %s", q.owner, owner)
	}
	if _, ok := q.held[taskID]; ok {
		return nil
	}
	if q.active+1 > limits.MaxActiveTasks {
		return fmt.Errorf("%w: %d of %d active tasks", ErrQuotaExceeded, q.active, limits.MaxActiveTasks)
	}
	if q.stored+bytes > limits.MaxStoredBytes {
		return fmt.Errorf("%w: %d + %d bytes over %d", ErrQuotaExceeded, q.stored, bytes, limits.MaxStoredBytes)
	}
	q.record(QuotaReserved{OwnerID: owner, TaskID: taskID, Bytes: bytes, ReservedAt: now.UTC()})
	if q.sinceSummary >= max(SummarizeAfter, len(q.held)) {
		q.record(q.summary(now))
	}
	return nil
}

// summary restates what q counts, oldest reservation first.
func (q *Quota) summary(now time.Time) QuotaSummarized {
	rs := q.Reservations()
	held := make([]QuotaHeld, len(rs))
	for i, r := range rs {
		held[i] = QuotaHeld(r)
	}
	return QuotaSummarized{OwnerID: q.owner, Held: held, SummarizedAt: now.UTC()}
}

// Release stops counting a task as active and/or its bytes as stored. What
// is no longer counted is skipped; when nothing is left to release it
// records nothing, so a repeated release is harmless.
func (q *Quota) Release(taskID uuid.UUID, active, stored bool, now time.Time) {
	r, ok := q.held[taskID]
	if !ok {
		return
	}
	active, stored = active && r.Active, stored && r.Stored
	if !active && !stored {
		return
	}
	q.record(QuotaReleased{OwnerID: q.owner, TaskID: taskID, Bytes: r.Bytes, Active: active, Stored: stored, ReleasedAt: now.UTC()})
}

// Reconcile releases what a task's stream says is over for reservation r:
// t is the task folded from its stream (the zero Task when the stream does
// not exist). A reservation without a task stream is released only once it
// is older than grace, since its creation may still be between its two
// appends; one whose stream belongs to another owner is not this user's.
// It reports whether it recorded a release.
func (q *Quota) Reconcile(r Reservation, t *Task, grace time.Duration, now time.Time) bool {
	before := len(q.changes)
	switch {
	case !t.Exists():
		if now.Sub(r.ReservedAt) > grace {
			q.Release(r.TaskID, true, true, now)
		}
	case t.Owner() != q.owner:
		q.Release(r.TaskID, true, true, now)
	default:
		q.Release(r.TaskID, !t.Active(), !t.Stored(), now)
	}
	return len(q.changes) > before
}

// Version is the number of events folded.
func (q *Quota) Version() int { return q.version }

// Changes are the events recorded since the load, to append.
func (q *Quota) Changes() []events.Event { return slices.Clone(q.changes) }

func (q *Quota) record(e events.Event) {
	if err := q.apply(e); err != nil {
		panic(err) // only this aggregate's own, valid events reach here
	}
	q.changes = append(q.changes, e)
}

func (q *Quota) apply(e events.Event) error {
	q.sinceSummary++
	switch e := e.(type) {
	case QuotaSummarized:
		q.owner = e.OwnerID
		q.held = make(map[uuid.UUID]Reservation, len(e.Held))
		q.active, q.stored, q.sinceSummary = 0, 0, 0
		for _, h := range e.Held {
			if _, dup := q.held[h.TaskID]; dup {
				return fmt.Errorf("task: quota summary counts task %s twice", h.TaskID)
			}
			if !h.Active && !h.Stored {
				continue
			}
			q.held[h.TaskID] = Reservation(h)
			if h.Active {
				q.active++
			}
			if h.Stored {
				q.stored += h.Bytes
			}
		}
	case QuotaReserved:
		q.owner = e.OwnerID
		q.held[e.TaskID] = Reservation{TaskID: e.TaskID, Bytes: e.Bytes, Active: true, Stored: true, ReservedAt: e.ReservedAt}
		q.active++
		q.stored += e.Bytes
	case QuotaReleased:
		r, ok := q.held[e.TaskID]
		if !ok {
			return nil // a release of what was never counted changes nothing
		}
		if e.Active && r.Active {
			r.Active = false
			q.active--
		}
		if e.Stored && r.Stored {
			r.Stored = false
			q.stored -= r.Bytes
		}
		if !r.Active && !r.Stored {
			// Forgotten, so the state stays as small as what is counted; a
			// retried creation of a task whose reservation was reconciled
			// away reserves afresh.
			delete(q.held, e.TaskID)
		} else {
			q.held[e.TaskID] = r
		}
	default:
		return fmt.Errorf("task: unexpected event %T on a quota stream", e)
	}
	return nil
}

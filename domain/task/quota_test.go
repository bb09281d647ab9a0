package task_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/events"
)

var limits = task.Limits{MaxActiveTasks: 2, MaxStoredBytes: 1000}

func givenQuota(t *testing.T, history ...events.Event) *task.Quota {
	t.Helper()
	q, err := task.QuotaFromHistory(history)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func reserved(id uuid.UUID, bytes int64) task.QuotaReserved {
	return task.QuotaReserved{OwnerID: ownerID, TaskID: id, Bytes: bytes, ReservedAt: t0}
}

func released(id uuid.UUID, bytes int64, active, stored bool) task.QuotaReleased {
	return task.QuotaReleased{OwnerID: ownerID, TaskID: id, Bytes: bytes, Active: active, Stored: stored, ReleasedAt: t0}
}

func thenQuota(t *testing.T, q *task.Quota, active int, stored int64, want ...events.Event) {
	t.Helper()
	if q.ActiveTasks() != active || q.StoredBytes() != stored {
		t.Fatalf("quota counts %d active, %d bytes; want %d, %d", q.ActiveTasks(), q.StoredBytes(), active, stored)
	}
	got := q.Changes()
	if len(got) != len(want) {
		t.Fatalf("events:\n got %#v\nwant %#v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("event %d:\n got %#v\nwant %#v", i, got[i], want[i])
		}
	}
}

func TestLimitsValidate(t *testing.T) {
	t.Parallel()
	if err := task.DefaultLimits().Validate(); err != nil {
		t.Fatal(err)
	}
	if d := task.DefaultLimits(); d.MaxActiveTasks != 10 || d.MaxStoredBytes != 500<<20 {
		t.Fatalf("defaults %+v", d)
	}
	err := task.Limits{}.Validate()
	if j, ok := err.(interface{ Unwrap() []error }); !ok || len(j.Unwrap()) != 2 {
		t.Fatalf("both problems at once: %v", err)
	}
}

func TestReserve(t *testing.T) {
	t.Parallel()
	a, b := uuid.New(), uuid.New()
	q := givenQuota(t)
	if err := q.Reserve(ownerID, a, 600, limits, t0); err != nil {
		t.Fatal(err)
	}
	thenQuota(t, q, 1, 600, reserved(a, 600))

	// A retried creation of the same task records nothing.
	q = givenQuota(t, reserved(a, 600))
	if err := q.Reserve(ownerID, a, 600, limits, t0); err != nil {
		t.Fatal(err)
	}
	thenQuota(t, q, 1, 600)

	// Exactly at the byte limit is allowed.
	if err := q.Reserve(ownerID, b, 400, limits, t0); err != nil {
		t.Fatal(err)
	}
	thenQuota(t, q, 2, 1000, reserved(b, 400))
}

func TestReserveRefused(t *testing.T) {
	t.Parallel()
	a, b := uuid.New(), uuid.New()
	for _, tc := range []struct {
		name    string
		history []events.Event
		bytes   int64
	}{
		{"active tasks", []events.Event{reserved(a, 1), reserved(b, 1)}, 1},
		{"bytes", []events.Event{reserved(a, 600)}, 401},
		{"one file over the whole quota", nil, 1001},
		// Completed tasks free their active slot but keep their bytes.
		{"bytes of inactive tasks", []events.Event{reserved(a, 900), released(a, 900, true, false)}, 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := givenQuota(t, tc.history...)
			active, stored := q.ActiveTasks(), q.StoredBytes()
			if err := q.Reserve(ownerID, uuid.New(), tc.bytes, limits, t0); !errors.Is(err, task.ErrQuotaExceeded) {
				t.Fatalf("error %v", err)
			}
			thenQuota(t, q, active, stored)
		})
	}
	q := givenQuota(t)
	if err := q.Reserve(ownerID, uuid.Nil, 1, limits, t0); !errors.Is(err, task.ErrInvalidInput) {
		t.Fatalf("error %v", err)
	}
	q = givenQuota(t, reserved(a, 1))
	if err := q.Reserve(otherID, b, 1, limits, t0); err == nil {
		t.Fatal("reserved for another owner on this owner's stream")
	}
}

func TestRelease(t *testing.T) {
	t.Parallel()
	a := uuid.New()
	q := givenQuota(t, reserved(a, 600))
	q.Release(a, true, false, t0)
	thenQuota(t, q, 0, 600, released(a, 600, true, false))

	// Releasing the rest releases only what is still counted.
	q = givenQuota(t, reserved(a, 600), released(a, 600, true, false))
	q.Release(a, true, true, t0)
	thenQuota(t, q, 0, 0, released(a, 600, false, true))
	if _, ok := q.Reservation(a); ok {
		t.Fatal("a fully released task is still held")
	}

	// Releasing again, or what was never counted, records nothing.
	q = givenQuota(t, reserved(a, 600), released(a, 600, true, true))
	q.Release(a, true, true, t0)
	q.Release(uuid.New(), true, true, t0)
	thenQuota(t, q, 0, 0)

	// A task whose reservation was released may reserve afresh.
	if err := q.Reserve(ownerID, a, 600, limits, t0); err != nil {
		t.Fatal(err)
	}
	thenQuota(t, q, 1, 600, reserved(a, 600))
}

func TestReconcile(t *testing.T) {
	t.Parallel()
	grace := 10 * time.Minute
	wantReservation := task.Reservation{TaskID: taskID, Bytes: 100, Active: true, Stored: true, ReservedAt: t0}
	for _, tc := range []struct {
		name   string
		tk     func(*testing.T) *task.Task
		now    time.Time
		active int
		stored int64
		want   []events.Event
	}{
		{"queued: nothing", queuedTask, t0.Add(time.Hour), 1, 100, nil},
		{"retryable failure: nothing", failedTask, t0.Add(time.Hour), 1, 100, nil},
		{"completed: active", completedTask, t0, 0, 100, []events.Event{released(taskID, 100, true, false)}},
		{"final failure: active", finallyFailedTask, t0, 0, 100, []events.Event{released(taskID, 100, true, false)}},
		{"cancelled: active", cancelledTask, t0, 0, 100, []events.Event{released(taskID, 100, true, false)}},
		{"deleted: both", deletedTask, t0, 0, 0, []events.Event{released(taskID, 100, true, true)}},
		{"expired: both", expiredTask, t0, 0, 0, []events.Event{released(taskID, 100, true, true)}},
		{"no stream within the grace: nothing", func(t *testing.T) *task.Task { return given(t) }, t0.Add(grace), 1, 100, nil},
		{"no stream past the grace: both", func(t *testing.T) *task.Task { return given(t) }, t0.Add(grace + time.Second), 0, 0, []events.Event{func() task.QuotaReleased {
			r := released(taskID, 100, true, true)
			r.ReleasedAt = t0.Add(grace + time.Second)
			return r
		}()}},
		{"another owner's stream: both", func(t *testing.T) *task.Task {
			return given(t, task.Created{TaskID: taskID, OwnerID: otherID, MaxAttempts: 3, CreatedAt: t0})
		}, t0, 0, 0, []events.Event{released(taskID, 100, true, true)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := givenQuota(t, reserved(taskID, 100))
			r, _ := q.Reservation(taskID)
			if r != wantReservation {
				t.Fatalf("reservation %+v", r)
			}
			for i := range 2 { // the second pass must find nothing left to do
				got := q.Reconcile(r, tc.tk(t), grace, tc.now)
				if got != (i == 0 && len(tc.want) > 0) {
					t.Fatalf("pass %d reported %v", i, got)
				}
				if r, _ = q.Reservation(taskID); r.TaskID == uuid.Nil {
					break
				}
			}
			thenQuota(t, q, tc.active, tc.stored, tc.want...)
		})
	}
}

func TestQuotaFromHistoryRefusesForeignEvents(t *testing.T) {
	t.Parallel()
	if _, err := task.QuotaFromHistory([]events.Event{task.Created{}}); err == nil {
		t.Fatal("a task event folded into a quota")
	}
}

// churn is n events of tasks reserved and released whole: they lengthen
// the stream and leave nothing counted.
func churn(n int) []events.Event {
	var out []events.Event
	for len(out) < n {
		id := uuid.New()
		out = append(out, reserved(id, 1))
		if len(out) < n {
			out = append(out, released(id, 1, true, true))
		}
	}
	return out
}

var roomy = task.Limits{MaxActiveTasks: 1000, MaxStoredBytes: 1 << 40}

func TestReserveSummarizesOnceEnoughEventsFollowTheLastSummary(t *testing.T) {
	t.Parallel()
	kept, fresh := uuid.New(), uuid.New()
	history := append([]events.Event{reserved(kept, 5)}, churn(task.SummarizeAfter-2)...)

	// One event short (the churn's last release cut off, so its task still
	// counts): the reservation alone.
	q := givenQuota(t, history[:len(history)-1]...)
	if err := q.Reserve(ownerID, fresh, 7, roomy, t0); err != nil {
		t.Fatal(err)
	}
	thenQuota(t, q, 3, 13, reserved(fresh, 7))

	// The reservation is the SummarizeAfter-th event: it is followed by a
	// summary of both tasks counted, oldest first, in the same append.
	q = givenQuota(t, history...)
	if err := q.Reserve(ownerID, fresh, 7, roomy, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	got := q.Changes()
	if len(got) != 2 || got[0] != events.Event(task.QuotaReserved{OwnerID: ownerID, TaskID: fresh, Bytes: 7, ReservedAt: t0.Add(time.Second)}) {
		t.Fatalf("changes %#v", got)
	}
	want := task.QuotaSummarized{OwnerID: ownerID, SummarizedAt: t0.Add(time.Second), Held: []task.QuotaHeld{
		{TaskID: kept, Bytes: 5, Active: true, Stored: true, ReservedAt: t0},
		{TaskID: fresh, Bytes: 7, Active: true, Stored: true, ReservedAt: t0.Add(time.Second)},
	}}
	if !reflect.DeepEqual(got[1], want) {
		t.Fatalf("summary\n got %#v\nwant %#v", got[1], want)
	}
	if q.ActiveTasks() != 2 || q.StoredBytes() != 12 || q.Version() != len(history) {
		t.Fatalf("after the summary: %d active, %d bytes, version %d", q.ActiveTasks(), q.StoredBytes(), q.Version())
	}
}

// A summary is never longer than the events since the last one: with more
// reservations counted than SummarizeAfter, it waits for as many events.
func TestReserveSummarizesNoMoreOftenThanTheReservationsCounted(t *testing.T) {
	t.Parallel()
	held := make([]task.QuotaHeld, task.SummarizeAfter+50)
	for i := range held {
		held[i] = task.QuotaHeld{TaskID: uuid.New(), Bytes: 1, Active: false, Stored: true, ReservedAt: t0}
	}
	start := task.QuotaSummarized{OwnerID: ownerID, Held: held, SummarizedAt: t0}
	n := len(held) + 1 // counted after the next reservation

	q := givenQuota(t, append([]events.Event{start}, churn(n-2)...)...)
	if err := q.Reserve(ownerID, uuid.New(), 1, roomy, t0); err != nil {
		t.Fatal(err)
	}
	if len(q.Changes()) != 1 {
		t.Fatalf("summarized after %d events with %d counted", n-1, n)
	}
	q = givenQuota(t, append([]events.Event{start}, churn(n-1)...)...)
	if err := q.Reserve(ownerID, uuid.New(), 1, roomy, t0); err != nil {
		t.Fatal(err)
	}
	if c := q.Changes(); len(c) != 2 || len(c[1].(task.QuotaSummarized).Held) != n {
		t.Fatalf("changes after %d events with %d counted: %d", n, n, len(c))
	}
}

// Folding from the last summary gives what folding the whole stream gives.
func TestQuotaFromTheLastSummaryAgreesWithTheWholeStream(t *testing.T) {
	t.Parallel()
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	history := append([]events.Event{reserved(a, 5), reserved(b, 6), released(b, 6, true, false)}, churn(task.SummarizeAfter)...)
	q := givenQuota(t, history...)
	if err := q.Reserve(ownerID, c, 7, roomy, t0); err != nil {
		t.Fatal(err)
	}
	history = append(history, q.Changes()...)
	base := len(history) - 1
	if _, ok := history[base].(task.QuotaSummarized); !ok {
		t.Fatalf("no summary at the end: %T", history[base])
	}
	history = append(history, released(a, 5, true, true), released(c, 7, true, false))

	whole := givenQuota(t, history...)
	tail, err := task.QuotaFrom(base, history[base:])
	if err != nil {
		t.Fatal(err)
	}
	if whole.ActiveTasks() != 0 || whole.StoredBytes() != 13 {
		t.Fatalf("whole stream: %d active, %d bytes", whole.ActiveTasks(), whole.StoredBytes())
	}
	if tail.ActiveTasks() != whole.ActiveTasks() || tail.StoredBytes() != whole.StoredBytes() || tail.Version() != whole.Version() ||
		!reflect.DeepEqual(tail.Reservations(), whole.Reservations()) {
		t.Fatalf("from the summary: %d active, %d bytes, version %d, %v\nwhole: %d, %d, %d, %v",
			tail.ActiveTasks(), tail.StoredBytes(), tail.Version(), tail.Reservations(),
			whole.ActiveTasks(), whole.StoredBytes(), whole.Version(), whole.Reservations())
	}
}

func TestQuotaFromRefusesATailThatDoesNotStartAtASummary(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		base    int
		history []events.Event
	}{
		"negative":      {-1, nil},
		"empty":         {3, nil},
		"not a summary": {3, []events.Event{reserved(uuid.New(), 1)}},
		"a task twice":  {0, []events.Event{task.QuotaSummarized{OwnerID: ownerID, Held: []task.QuotaHeld{{TaskID: ownerID, Active: true}, {TaskID: ownerID, Active: true}}}}},
	} {
		if _, err := task.QuotaFrom(tc.base, tc.history); err == nil {
			t.Errorf("%s: folded", name)
		}
	}
}

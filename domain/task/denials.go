package task

import (
	"maps"
	"time"

	"github.com/google/uuid"
)

// DenialWindow coalesces one requester's refusals (AccessDenied) over a
// window: the refusal that opens it is recorded in full, the ones after it
// until End are only counted, and Summary turns the count into one
// DenialsCounted. So a requester reading random ids writes two events per
// window, not one per read, and the audit trail still shows that refusals
// happened, how many, and why. The window lives in memory (commands hold
// the open ones); it decides nothing the log must remember.
type DenialWindow struct {
	UserID   uuid.UUID
	OpenedBy uuid.UUID // event id of the opening AccessDenied; Nil if it was never written
	Start    time.Time
	End      time.Time

	count       int
	reasons     map[string]int
	kinds       map[string]int
	first, last time.Time
}

// OpenDenialWindow starts a window at the refusal d, recorded as the event
// openedBy, lasting length.
func OpenDenialWindow(d AccessDenied, openedBy uuid.UUID, length time.Duration) *DenialWindow {
	return &DenialWindow{UserID: d.UserID, OpenedBy: openedBy, Start: d.DeniedAt, End: d.DeniedAt.Add(length)}
}

// Open reports whether a refusal at now falls inside the window.
func (w *DenialWindow) Open(now time.Time) bool { return now.Before(w.End) }

// Count adds a refusal that is not recorded in full.
func (w *DenialWindow) Count(d AccessDenied) {
	if w.reasons == nil {
		w.reasons, w.kinds = map[string]int{}, map[string]int{}
	}
	w.count++
	w.reasons[d.Reason]++
	w.kinds[d.ResourceKind]++
	if w.first.IsZero() || d.DeniedAt.Before(w.first) {
		w.first = d.DeniedAt
	}
	if d.DeniedAt.After(w.last) {
		w.last = d.DeniedAt
	}
}

// Counted is the number of refusals Count added.
func (w *DenialWindow) Counted() int { return w.count }

// Merge adds o's counted refusals to w (a summary that could not be
// written is carried into the next). w keeps its own opening event.
func (w *DenialWindow) Merge(o *DenialWindow) {
	if o == nil || o.count == 0 {
		return
	}
	if w.reasons == nil {
		w.reasons, w.kinds = map[string]int{}, map[string]int{}
	}
	w.count += o.count
	for k, n := range o.reasons {
		w.reasons[k] += n
	}
	for k, n := range o.kinds {
		w.kinds[k] += n
	}
	if w.first.IsZero() || o.first.Before(w.first) {
		w.first = o.first
	}
	if o.last.After(w.last) {
		w.last = o.last
	}
	if o.Start.Before(w.Start) {
		w.Start = o.Start
	}
	if w.OpenedBy == uuid.Nil {
		w.OpenedBy = o.OpenedBy
	}
}

// Summary is the event that records the counted refusals, false when there
// were none (a window whose only refusal is the opening one writes nothing
// more).
func (w *DenialWindow) Summary() (DenialsCounted, bool) {
	if w.count == 0 {
		return DenialsCounted{}, false
	}
	return DenialsCounted{
		UserID: w.UserID, OpenedBy: w.OpenedBy, Count: w.count,
		Reasons: maps.Clone(w.reasons), ResourceKinds: maps.Clone(w.kinds),
		FirstDeniedAt: w.first.UTC(), LastDeniedAt: w.last.UTC(), WindowStart: w.Start.UTC(), WindowEnd: w.End.UTC(),
	}, true
}

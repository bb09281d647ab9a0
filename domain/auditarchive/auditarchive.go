// Package auditarchive holds the event that moves the oldest rows of the
// audit trail out of the database into a signed archive file (audit
// retention): the log records each archiving, and the audit trail
// projection deletes the rows it names when it applies it, so that a
// rebuild of the trail from the log arrives at the same rows.
package auditarchive

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/authledger/authledger/events"
)

// StreamName is the one stream of archivings, in order: each archives the
// rows after the previous one's ThroughSeq.
const StreamName = "audit-archive"

// EventArchived is the event name: data in the log, never renamed.
const EventArchived = "audit.archived.v1"

// Archived records that the audit trail's rows up to ThroughSeq were
// written to an archive file and leave the table. AnchorLink is the keyed
// chain link of row ThroughSeq (hex): the rows that stay chain on from it,
// so `authledger audit verify` checks them from this anchor, and an
// archive file whose last row has this link is the one that was cut off.
// FileSHA256 is the SHA-256 of the archive file's bytes.
type Archived struct {
	FromSeq        int64     `json:"from_seq"`
	ThroughSeq     int64     `json:"through_seq"`
	AnchorLink     string    `json:"anchor_link"`
	AnchorEventID  string    `json:"anchor_event_id"`
	AnchorPosition string    `json:"anchor_position"`
	RecordedBefore time.Time `json:"recorded_before"`
	File           string    `json:"file"`
	FileSHA256     string    `json:"file_sha256"`
	ArchivedAt     time.Time `json:"archived_at"`
}

// EventName implements events.Event.
func (Archived) EventName() string { return EventArchived }

// AllEvents lists one zero value of every event type of this package.
func AllEvents() []events.Event { return []events.Event{Archived{}} }

// RegisterEvents adds the archive event to r.
func RegisterEvents(r *events.Registry) error { return r.Register(AllEvents()...) }

// ErrOutOfOrder: an archiving that does not start right after the
// previous one (another instance archived first, or a gap).
var ErrOutOfOrder = errors.New("auditarchive: the archived rows do not follow the previous archiving")

// Archive is the retention stream folded: where the last archiving ended.
type Archive struct {
	last    Archived
	version int
	changes []events.Event
}

// FromHistory folds the stream's events.
func FromHistory(history []events.Event) (*Archive, error) {
	a := &Archive{}
	for _, e := range history {
		ev, ok := e.(Archived)
		if !ok {
			return nil, fmt.Errorf("auditarchive: unexpected event %T", e)
		}
		a.last = ev
		a.version++
	}
	return a, nil
}

// Last is the latest archiving (zero before the first).
func (a *Archive) Last() Archived { return a.last }

// Version is the number of events folded.
func (a *Archive) Version() int { return a.version }

// Changes are the events to append.
func (a *Archive) Changes() []events.Event { return slices.Clone(a.changes) }

// Record records an archiving of rows FromSeq..ThroughSeq, which must
// start right after the last one (ErrOutOfOrder) and hold a row.
func (a *Archive) Record(e Archived) error {
	if e.FromSeq != a.last.ThroughSeq+1 || e.ThroughSeq < e.FromSeq || e.AnchorLink == "" || e.File == "" {
		return fmt.Errorf("%w: rows %d..%d after %d", ErrOutOfOrder, e.FromSeq, e.ThroughSeq, a.last.ThroughSeq)
	}
	e.ArchivedAt = e.ArchivedAt.UTC()
	e.RecordedBefore = e.RecordedBefore.UTC()
	a.changes = append(a.changes, e)
	a.last = e
	return nil
}

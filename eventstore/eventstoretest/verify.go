package eventstoretest

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/eventstore"
)

// ViolationKind names a broken rule found by the concurrency check.
type ViolationKind string

// The rules the concurrency check holds a store to.
const (
	// Lost: a committed event missing from the final log or a delivery.
	Lost ViolationKind = "lost"
	// Duplicated: an event delivered (or stored) more than once.
	Duplicated ViolationKind = "duplicated"
	// OutOfOrder: a delivery not in the order of the final full ReadAll.
	OutOfOrder ViolationKind = "out-of-order"
	// NonContiguous: a stream's revisions not 0,1,2,... in log order.
	NonContiguous ViolationKind = "non-contiguous"
	// RolledBackVisible: an event of a rolled-back transaction was stored
	// or delivered.
	RolledBackVisible ViolationKind = "rolled-back-visible"
	// Unknown: an event nobody appended was stored or delivered.
	Unknown ViolationKind = "unknown"
	// Mismatch: a delivered event or an append result disagrees with the
	// final log (position, stream, revision), or an expected revision was
	// not honoured.
	Mismatch ViolationKind = "mismatch"
	// Misuse: the handler was called concurrently or after Subscribe
	// returned, or Subscribe returned the wrong error.
	Misuse ViolationKind = "misuse"
)

// Violation is one broken rule.
type Violation struct {
	Kind       ViolationKind
	Subscriber string // empty for violations of the log itself
	Event      uuid.UUID
	Detail     string
}

func (v Violation) String() string {
	where := "log"
	if v.Subscriber != "" {
		where = "subscriber " + v.Subscriber
	}
	return fmt.Sprintf("%s: %s: event %s: %s", where, v.Kind, v.Event, v.Detail)
}

// SubscriberReport is what one subscriber of the run saw.
type SubscriberReport struct {
	Name      string
	Filter    eventstore.Filter
	Delivered int
	Expected  int
	Restarts  int
}

// Report is the outcome of a concurrency run: its figures and every
// violation found. The run passed when OK is true.
type Report struct {
	Seed          uint64
	Writers       int
	Elapsed       time.Duration
	Transactions  int // committed transactions or appends
	Committed     int // events committed
	RolledBack    int // events rolled back on purpose
	Conflicts     int // wrong expected version, retried after re-reading
	NewTxRetries  int // ErrRetryInNewTransaction, retried
	LogEvents     int // events in the final ReadAll
	Streams       int
	HeldCommitted bool // the transaction held open committed
	Restarts      int  // restarts of the killed subscriber
	Subscribers   []SubscriberReport
	Violations    []Violation // at most maxViolations
	Counts        map[ViolationKind]int
}

const maxViolations = 200

// OK reports whether the run found no violation.
func (r Report) OK() bool { return r.ViolationCount() == 0 }

// ViolationCount is the number of violations, including those not listed.
func (r Report) ViolationCount() int {
	n := 0
	for _, c := range r.Counts {
		n += c
	}
	return n
}

func (r *Report) add(v Violation) {
	if r.Counts == nil {
		r.Counts = map[ViolationKind]int{}
	}
	r.Counts[v.Kind]++
	if len(r.Violations) < maxViolations {
		r.Violations = append(r.Violations, v)
	}
}

// String renders the figures and the first violations.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "concurrency: seed %d, %d writers, %v: %d transactions, %d events committed in %d streams, %d rolled back, %d conflicts retried, %d new-transaction retries, held transaction committed: %v, log %d events\n",
		r.Seed, r.Writers, r.Elapsed.Round(time.Millisecond), r.Transactions, r.Committed, r.Streams, r.RolledBack, r.Conflicts, r.NewTxRetries, r.HeldCommitted, r.LogEvents)
	for _, s := range r.Subscribers {
		fmt.Fprintf(&b, "  subscriber %s (filter %+v): %d delivered of %d expected, %d restarts\n", s.Name, s.Filter, s.Delivered, s.Expected, s.Restarts)
	}
	if r.OK() {
		b.WriteString("  no violation")
		return b.String()
	}
	kinds := make([]string, 0, len(r.Counts))
	for k, n := range r.Counts {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	fmt.Fprintf(&b, "  %d violations (%s):\n", r.ViolationCount(), strings.Join(kinds, ", "))
	// Causes first: a lost event also shows as a revision gap further on.
	rank := map[ViolationKind]int{Lost: 0, RolledBackVisible: 1, Unknown: 2, Duplicated: 3, OutOfOrder: 4, Mismatch: 5, NonContiguous: 6, Misuse: 7}
	vs := append([]Violation(nil), r.Violations...)
	sort.SliceStable(vs, func(i, j int) bool { return rank[vs[i].Kind] < rank[vs[j].Kind] })
	for i, v := range vs {
		if i == 30 {
			fmt.Fprintf(&b, "  ... %d more listed in Report.Violations\n", len(r.Violations)-i)
			break
		}
		b.WriteString("  " + v.String() + "\n")
	}
	return b.String()
}

// appendRecord is what a writer knows of one append it made.
type appendRecord struct {
	stream   string
	expected eventstore.ExpectedRevision
	ids      []uuid.UUID
	result   eventstore.AppendResult
	// resultKnown is false when the result cannot be checked (never for
	// a successful append).
	resultKnown bool
}

// delivery is what one subscriber received, in order, plus what went
// wrong with its handler.
type delivery struct {
	name   string
	filter eventstore.Filter
	events []eventstore.RecordedEvent
	misuse []string
}

// verify checks the final log against what the writers committed and
// rolled back, and each delivery against the final log.
func verify(r *Report, final []eventstore.RecordedEvent, committed []appendRecord, rolledBack map[uuid.UUID]bool, deliveries []delivery) {
	r.LogEvents = len(final)
	index := map[uuid.UUID]int{}
	known := map[uuid.UUID]bool{}
	for _, a := range committed {
		for _, id := range a.ids {
			known[id] = true
		}
	}
	// The log itself: each committed event once, nothing else, positions
	// strictly increasing, revisions contiguous per stream.
	next := map[string]uint64{}
	for i, e := range final {
		if j, dup := index[e.ID]; dup {
			r.add(Violation{Kind: Duplicated, Event: e.ID, Detail: fmt.Sprintf("stored at log indexes %d and %d", j, i)})
			continue
		}
		index[e.ID] = i
		switch {
		case rolledBack[e.ID]:
			r.add(Violation{Kind: RolledBackVisible, Event: e.ID, Detail: "in the final ReadAll"})
		case !known[e.ID]:
			r.add(Violation{Kind: Unknown, Event: e.ID, Detail: "in the final ReadAll"})
		}
		if i > 0 && final[i-1].Position.Compare(e.Position) >= 0 {
			r.add(Violation{Kind: OutOfOrder, Event: e.ID, Detail: fmt.Sprintf("ReadAll position %v not after %v", e.Position, final[i-1].Position)})
		}
		if e.Revision != next[e.Stream] {
			r.add(Violation{Kind: NonContiguous, Event: e.ID, Detail: fmt.Sprintf("ReadAll has %s revision %d where %d was due", e.Stream, e.Revision, next[e.Stream])})
		}
		next[e.Stream] = e.Revision + 1
	}
	r.Streams = len(next)
	for _, a := range committed {
		for k, id := range a.ids {
			i, ok := index[id]
			if !ok {
				r.add(Violation{Kind: Lost, Event: id, Detail: "committed but not in the final ReadAll"})
				continue
			}
			e := final[i]
			if e.Stream != a.stream {
				r.add(Violation{Kind: Mismatch, Event: id, Detail: fmt.Sprintf("appended to %s, stored in %s", a.stream, e.Stream)})
			}
			if k > 0 {
				if j, ok := index[a.ids[k-1]]; ok && final[j].Revision+1 != e.Revision {
					r.add(Violation{Kind: NonContiguous, Event: id, Detail: "events of one append got non-consecutive revisions"})
				}
			}
			if k == 0 {
				switch x := a.expected.(type) {
				case eventstore.NoStream:
					if e.Revision != 0 {
						r.add(Violation{Kind: Mismatch, Event: id, Detail: fmt.Sprintf("appended with NoStream, stored at revision %d", e.Revision)})
					}
				case eventstore.Revision:
					if e.Revision != uint64(x)+1 {
						r.add(Violation{Kind: Mismatch, Event: id, Detail: fmt.Sprintf("appended with expected revision %d, stored at revision %d", x, e.Revision)})
					}
				case eventstore.StreamExists:
					if e.Revision == 0 {
						r.add(Violation{Kind: Mismatch, Event: id, Detail: "appended with StreamExists, stored at revision 0"})
					}
				}
			}
			if k == len(a.ids)-1 && a.resultKnown && (a.result.NextRevision != e.Revision || a.result.Position != e.Position) {
				r.add(Violation{Kind: Mismatch, Event: id, Detail: fmt.Sprintf("append result %d@%v, stored as %d@%v", a.result.NextRevision, a.result.Position, e.Revision, e.Position)})
			}
		}
	}
	for _, d := range deliveries {
		verifyDelivery(r, final, index, rolledBack, d)
	}
}

// verifyDelivery checks that d delivered exactly the events of the final
// log that match its filter, each once, in log order, as stored.
func verifyDelivery(r *Report, final []eventstore.RecordedEvent, index map[uuid.UUID]int, rolledBack map[uuid.UUID]bool, d delivery) {
	for _, m := range d.misuse {
		r.add(Violation{Kind: Misuse, Subscriber: d.name, Detail: m})
	}
	seen := map[uuid.UUID]bool{}
	last := -1
	next := map[string]uint64{}
	for _, e := range d.events {
		if seen[e.ID] {
			r.add(Violation{Kind: Duplicated, Subscriber: d.name, Event: e.ID, Detail: "delivered again"})
			continue
		}
		seen[e.ID] = true
		i, ok := index[e.ID]
		if !ok {
			kind := Unknown
			if rolledBack[e.ID] {
				kind = RolledBackVisible
			}
			r.add(Violation{Kind: kind, Subscriber: d.name, Event: e.ID, Detail: "delivered but not in the final ReadAll"})
			continue
		}
		s := final[i]
		if s.Position != e.Position || s.Stream != e.Stream || s.Revision != e.Revision || s.Type != e.Type {
			r.add(Violation{Kind: Mismatch, Subscriber: d.name, Event: e.ID, Detail: fmt.Sprintf("delivered as %s@%d at %v, stored as %s@%d at %v", e.Stream, e.Revision, e.Position, s.Stream, s.Revision, s.Position)})
		}
		if !d.filter.Matches(s.Stream, s.Type) {
			r.add(Violation{Kind: Mismatch, Subscriber: d.name, Event: e.ID, Detail: "delivered though the filter does not match it"})
		}
		if i < last {
			r.add(Violation{Kind: OutOfOrder, Subscriber: d.name, Event: e.ID, Detail: fmt.Sprintf("delivered after %s, which follows it in the final ReadAll", final[last].ID)})
		} else {
			last = i
		}
		if d.filter.IsEmpty() {
			if s.Revision != next[s.Stream] {
				r.add(Violation{Kind: NonContiguous, Subscriber: d.name, Event: e.ID, Detail: fmt.Sprintf("delivered %s revision %d where %d was due", s.Stream, s.Revision, next[s.Stream])})
			}
			next[s.Stream] = s.Revision + 1
		} else if n, ok := next[s.Stream]; ok && s.Revision < n {
			r.add(Violation{Kind: NonContiguous, Subscriber: d.name, Event: e.ID, Detail: fmt.Sprintf("delivered %s revision %d after revision %d", s.Stream, s.Revision, n-1)})
		} else {
			next[s.Stream] = s.Revision + 1
		}
	}
	for _, e := range final {
		if d.filter.Matches(e.Stream, e.Type) && !seen[e.ID] {
			r.add(Violation{Kind: Lost, Subscriber: d.name, Event: e.ID, Detail: fmt.Sprintf("%s@%d in the final ReadAll, never delivered", e.Stream, e.Revision)})
		}
	}
}

package eventstoretest

import (
	"testing"

	"github.com/google/uuid"

	"github.com/authledger/authledger/eventstore"
)

// The checker itself must catch each kind of violation: a check that
// cannot fail proves nothing. These cases are hand-written logs and
// deliveries, not a store.

func rec(stream string, rev uint64, pos uint64) eventstore.RecordedEvent {
	return eventstore.RecordedEvent{ID: uuid.New(), Stream: stream, Revision: rev, Position: eventstore.Position{Commit: pos, Prepare: pos}, Type: "t.v1"}
}

func committedOf(log []eventstore.RecordedEvent) []appendRecord {
	var out []appendRecord
	for _, e := range log {
		out = append(out, appendRecord{stream: e.Stream, expected: eventstore.Any{}, ids: []uuid.UUID{e.ID}, result: eventstore.AppendResult{NextRevision: e.Revision, Position: e.Position}, resultKnown: true})
	}
	return out
}

func TestVerify(t *testing.T) {
	t.Parallel()
	a0, b0, a1, b1 := rec("a", 0, 1), rec("b", 0, 2), rec("a", 1, 3), rec("b", 1, 4)
	good := []eventstore.RecordedEvent{a0, b0, a1, b1}
	ghost := rec("c", 0, 5)
	cases := []struct {
		name       string
		final      []eventstore.RecordedEvent
		committed  []appendRecord
		rolledBack []uuid.UUID
		delivered  []eventstore.RecordedEvent
		want       ViolationKind // "" for none
	}{
		{"correct", good, committedOf(good), nil, good, ""},
		{"delivery lost", good, committedOf(good), nil, []eventstore.RecordedEvent{a0, b0, b1}, Lost},
		{"delivery duplicated", good, committedOf(good), nil, []eventstore.RecordedEvent{a0, b0, b0, a1, b1}, Duplicated},
		{"delivery out of order", good, committedOf(good), nil, []eventstore.RecordedEvent{a0, a1, b0, b1}, OutOfOrder},
		{"committed but not stored", good[:3], committedOf(good), nil, good[:3], Lost},
		{"rolled back stored", append(good, ghost), committedOf(good), []uuid.UUID{ghost.ID}, append(good, ghost), RolledBackVisible},
		{"rolled back delivered", good, committedOf(good), []uuid.UUID{ghost.ID}, append(good, ghost), RolledBackVisible},
		{"unknown stored", append(good, ghost), committedOf(good), nil, append(good, ghost), Unknown},
		{"revision gap", []eventstore.RecordedEvent{a0, b0, rec("a", 2, 3)}, nil, nil, nil, NonContiguous},
		{"revisions reversed in log", []eventstore.RecordedEvent{a1, a0}, nil, nil, nil, NonContiguous},
		{"positions not increasing", []eventstore.RecordedEvent{a0, rec("b", 0, 1)}, nil, nil, nil, OutOfOrder},
		{"delivered at another position", good, committedOf(good), nil, []eventstore.RecordedEvent{a0, b0, a1, func() eventstore.RecordedEvent { x := b1; x.Position.Prepare++; return x }()}, Mismatch},
		{"expected revision ignored", good, func() []appendRecord {
			c := committedOf(good)
			c[2].expected = eventstore.Revision(5)
			return c
		}(), nil, good, Mismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rb := map[uuid.UUID]bool{}
			for _, id := range tc.rolledBack {
				rb[id] = true
			}
			var r Report
			var ds []delivery
			if tc.delivered != nil {
				ds = append(ds, delivery{name: "s", events: tc.delivered})
			}
			verify(&r, tc.final, tc.committed, rb, ds)
			if tc.want == "" {
				if !r.OK() {
					t.Fatalf("violations in a correct run:\n%s", r.String())
				}
				return
			}
			if r.Counts[tc.want] == 0 {
				t.Fatalf("no %s violation found:\n%s", tc.want, r.String())
			}
		})
	}
}

func TestVerifyFilteredDelivery(t *testing.T) {
	t.Parallel()
	a0, b0, a1 := rec("a", 0, 1), rec("b", 0, 2), rec("a", 1, 3)
	final := []eventstore.RecordedEvent{a0, b0, a1}
	f := eventstore.Filter{StreamPrefixes: []string{"a"}}
	var r Report
	verify(&r, final, committedOf(final), nil, []delivery{{name: "f", filter: f, events: []eventstore.RecordedEvent{a0, a1}}})
	if !r.OK() {
		t.Fatalf("violations for a correct filtered delivery:\n%s", r.String())
	}
	r = Report{}
	verify(&r, final, committedOf(final), nil, []delivery{{name: "f", filter: f, events: []eventstore.RecordedEvent{a0, b0, a1}}})
	if r.Counts[Mismatch] == 0 {
		t.Fatalf("an event outside the filter was delivered unnoticed:\n%s", r.String())
	}
}

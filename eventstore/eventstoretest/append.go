package eventstoretest

import (
	"github.com/authledger/authledger/eventstore"
)

// prepared appends n events to a new stream and returns the stream's name.
func (e *env) prepared(prefix string, n int) string {
	e.t.Helper()
	s := stream(prefix)
	if n > 0 {
		e.appendOK(s, eventstore.NoStream{}, evs("test.seeded.v1", n)...)
	}
	return s
}

// unchanged checks that a failed append wrote nothing: the stream still
// has want events (0: does not exist) and the log still has logLen.
func (e *env) unchanged(s string, want int, logLen int) {
	e.t.Helper()
	got, err := e.s.ReadStream(e.ctx, s, eventstore.ReadStreamOptions{})
	if want == 0 {
		wantErrIs(e.t, err, eventstore.ErrStreamNotFound, "ReadStream after a failed append to a missing stream")
	} else {
		if err != nil {
			e.t.Fatalf("ReadStream: %v", err)
		}
		if len(got) != want {
			e.t.Fatalf("stream %q has %d events after a failed append, want %d: %s", s, len(got), want, describe(got))
		}
	}
	if all := e.readAll(eventstore.ReadAllOptions{}); len(all) != logLen {
		e.t.Fatalf("log has %d events after a failed append, want %d", len(all), logLen)
	}
}

// appended checks a successful append: the result names the last event
// written, its revision and position match what ReadStream and ReadAll
// say, and the events got the revisions first, first+1, ...
func (e *env) appended(s string, res eventstore.AppendResult, first uint64, events []eventstore.EventData) {
	e.t.Helper()
	last := first + uint64(len(events)) - 1
	if res.NextRevision != last {
		e.t.Errorf("AppendResult.NextRevision = %d, want %d", res.NextRevision, last)
	}
	got := e.readStream(s, eventstore.ReadStreamOptions{From: first})
	if len(got) < len(events) {
		e.t.Fatalf("stream %q from %d has %d events, want at least %d", s, first, len(got), len(events))
	}
	got = got[:len(events)]
	wantIDs(e.t, "appended events", got, dataIDs(events)...)
	for i, r := range got {
		if r.Revision != first+uint64(i) {
			e.t.Errorf("event %d has revision %d, want %d", i, r.Revision, first+uint64(i))
		}
	}
	if res.Position != got[len(got)-1].Position {
		e.t.Errorf("AppendResult.Position = %v, want the last event's position %v", res.Position, got[len(got)-1].Position)
	}
	var inAll bool
	for _, r := range e.readAll(eventstore.ReadAllOptions{}) {
		if r.ID == got[len(got)-1].ID {
			inAll = true
			if r.Position != res.Position {
				e.t.Errorf("AppendResult.Position = %v, but ReadAll has the event at %v", res.Position, r.Position)
			}
		}
	}
	if !inAll {
		e.t.Errorf("the last appended event is not in ReadAll")
	}
}

func expectedRevisionTests() []test {
	return []test{
		{"AnyOnNewStream", func(e *env) {
			s := stream("any")
			events := evs("test.any.v1", 1)
			e.appended(s, e.appendOK(s, eventstore.Any{}, events...), 0, events)
		}},
		{"AnyOnExistingStream", func(e *env) {
			s := e.prepared("any", 2)
			events := evs("test.any.v1", 2)
			e.appended(s, e.appendOK(s, eventstore.Any{}, events...), 2, events)
		}},
		{"NoStreamOnNewStream", func(e *env) {
			s := stream("nostream")
			events := evs("test.nostream.v1", 3)
			e.appended(s, e.appendOK(s, eventstore.NoStream{}, events...), 0, events)
		}},
		{"NoStreamOnExistingStream", func(e *env) {
			s := e.prepared("nostream", 3)
			_, err := e.s.Append(e.ctx, s, eventstore.NoStream{}, evs("test.nostream.v1", 1)...)
			wantWrongVersion(e.t, err, s, eventstore.NoStream{}, true, 2)
			e.unchanged(s, 3, 3)
		}},
		{"StreamExistsOnMissingStream", func(e *env) {
			other := e.prepared("other", 1) // the log is not empty
			_ = other
			s := stream("exists")
			_, err := e.s.Append(e.ctx, s, eventstore.StreamExists{}, evs("test.exists.v1", 1)...)
			wantWrongVersion(e.t, err, s, eventstore.StreamExists{}, false, 0)
			e.unchanged(s, 0, 1)
		}},
		{"StreamExistsOnExistingStream", func(e *env) {
			s := e.prepared("exists", 1)
			events := evs("test.exists.v1", 2)
			e.appended(s, e.appendOK(s, eventstore.StreamExists{}, events...), 1, events)
		}},
		{"RevisionRight", func(e *env) {
			s := e.prepared("rev", 1)
			events := evs("test.rev.v1", 1)
			res := e.appendOK(s, eventstore.Revision(0), events...)
			e.appended(s, res, 1, events)
			events = evs("test.rev.v1", 3)
			e.appended(s, e.appendOK(s, eventstore.Revision(res.NextRevision), events...), 2, events)
		}},
		{"RevisionTooLow", func(e *env) {
			s := e.prepared("rev", 3)
			_, err := e.s.Append(e.ctx, s, eventstore.Revision(1), evs("test.rev.v1", 1)...)
			wantWrongVersion(e.t, err, s, eventstore.Revision(1), true, 2)
			e.unchanged(s, 3, 3)
		}},
		{"RevisionTooHigh", func(e *env) {
			s := e.prepared("rev", 3)
			_, err := e.s.Append(e.ctx, s, eventstore.Revision(3), evs("test.rev.v1", 1)...)
			wantWrongVersion(e.t, err, s, eventstore.Revision(3), true, 2)
			_, err = e.s.Append(e.ctx, s, eventstore.Revision(10), evs("test.rev.v1", 1)...)
			wantWrongVersion(e.t, err, s, eventstore.Revision(10), true, 2)
			e.unchanged(s, 3, 3)
		}},
		{"RevisionOnMissingStream", func(e *env) {
			e.prepared("other", 1)
			s := stream("rev")
			_, err := e.s.Append(e.ctx, s, eventstore.Revision(0), evs("test.rev.v1", 1)...)
			wantWrongVersion(e.t, err, s, eventstore.Revision(0), false, 0)
			e.unchanged(s, 0, 1)
		}},
		{"RevisionsAreContiguous", func(e *env) {
			// Several appends of several events: revisions 0..n-1 with no gap,
			// and the stream's name is matched exactly (not as a prefix).
			s := stream("contig")
			longer := s + "0"
			var all []eventstore.EventData
			next := eventstore.ExpectedRevision(eventstore.NoStream{})
			for i := 1; i <= 4; i++ {
				batch := evs("test.contig.v1", i)
				res := e.appendOK(s, next, batch...)
				e.appendOK(longer, eventstore.Any{}, evs("test.other.v1", 1)...)
				all = append(all, batch...)
				if res.NextRevision != uint64(len(all)-1) {
					e.t.Fatalf("append %d: NextRevision = %d, want %d", i, res.NextRevision, len(all)-1)
				}
				next = eventstore.Revision(res.NextRevision)
			}
			got := e.readStream(s, eventstore.ReadStreamOptions{})
			wantIDs(e.t, "ReadStream", got, dataIDs(all)...)
			for i, r := range got {
				if r.Revision != uint64(i) || r.Stream != s {
					e.t.Fatalf("event %d: stream %q revision %d, want %q revision %d", i, r.Stream, r.Revision, s, i)
				}
			}
		}},
		{"FailedAppendInBatchWritesNothing", func(e *env) {
			// A conflict on a multi-event append writes none of them, and the
			// stream stays appendable at its real revision.
			s := e.prepared("batch", 2)
			_, err := e.s.Append(e.ctx, s, eventstore.Revision(0), evs("test.batch.v1", 3)...)
			wantWrongVersion(e.t, err, s, eventstore.Revision(0), true, 1)
			e.unchanged(s, 2, 2)
			events := evs("test.batch.v1", 3)
			e.appended(s, e.appendOK(s, eventstore.Revision(1), events...), 2, events)
		}},
	}
}

func idempotencyTests() []test {
	return []test{
		{"SameIDsSameRevision", func(e *env) {
			s := e.prepared("idem", 2)
			events := evs("test.idem.v1", 2)
			first := e.appendOK(s, eventstore.Revision(1), events...)
			again, err := e.s.Append(e.ctx, s, eventstore.Revision(1), events...)
			if err != nil {
				e.t.Fatalf("re-append of the same ids at the same revision: %v, want success", err)
			}
			if again != first {
				e.t.Errorf("re-append returned %+v, want the original result %+v", again, first)
			}
			e.unchanged(s, 4, 4)
			e.appended(s, first, 2, events)
		}},
		{"SameIDsNoStream", func(e *env) {
			s := stream("idem")
			events := evs("test.idem.v1", 3)
			first := e.appendOK(s, eventstore.NoStream{}, events...)
			again, err := e.s.Append(e.ctx, s, eventstore.NoStream{}, events...)
			if err != nil {
				e.t.Fatalf("re-append of the same ids with NoStream: %v, want success", err)
			}
			if again != first {
				e.t.Errorf("re-append returned %+v, want the original result %+v", again, first)
			}
			e.unchanged(s, 3, 3)
		}},
		{"SameIDsAfterLaterAppends", func(e *env) {
			// The retry arrives after someone else appended: it still names the
			// revision it was decided on, so it is recognised as done.
			s := stream("idem")
			events := evs("test.idem.v1", 2)
			first := e.appendOK(s, eventstore.NoStream{}, events...)
			e.appendOK(s, eventstore.Revision(1), evs("test.later.v1", 1)...)
			again, err := e.s.Append(e.ctx, s, eventstore.NoStream{}, events...)
			if err != nil {
				e.t.Fatalf("re-append of the same ids with NoStream after a later append: %v, want success", err)
			}
			if again != first {
				e.t.Errorf("re-append returned %+v, want the original result %+v", again, first)
			}
			e.unchanged(s, 3, 3)
		}},
		{"DifferentIDsStaleRevision", func(e *env) {
			s := e.prepared("idem", 1)
			e.appendOK(s, eventstore.Revision(0), evs("test.idem.v1", 2)...)
			_, err := e.s.Append(e.ctx, s, eventstore.Revision(0), evs("test.idem.v1", 2)...)
			wantWrongVersion(e.t, err, s, eventstore.Revision(0), true, 2)
			_, err = e.s.Append(e.ctx, s, eventstore.NoStream{}, evs("test.idem.v1", 1)...)
			wantWrongVersion(e.t, err, s, eventstore.NoStream{}, true, 2)
			e.unchanged(s, 3, 3)
		}},
	}
}

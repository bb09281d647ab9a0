package readapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/audit"
	"github.com/authledger/authledger/projections/taskviews"
	"github.com/authledger/authledger/readapi"
)

// accessEvents reads user's access stream.
func (s *taskServer) accessEvents(t *testing.T, user uuid.UUID) []eventstore.RecordedEvent {
	t.Helper()
	evs, err := s.env.Store.ReadStream(s.ctx, task.AccessStream(user), eventstore.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// Reads that are refused must not grow the log one event each: within a
// window, the first refusal is recorded in full and the rest counted into
// one access.denials_counted.v1, written when the window has ended (by the
// next refusal after it, or Denials.Run) and on shutdown.
func TestRepeatedRefusalsAreCountedNotRecordedOneByOne(t *testing.T) {
	t.Parallel()
	s := newTaskServer(t)
	s.cmds = newTaskCommands(t, s.env, time.Hour)
	var mu sync.Mutex
	now := time.Now().UTC()
	s.cmds.AuthorizeRead.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s.engine = s.newEngine(t, nil)
	f := seed(t, s)
	s.env.WaitCaughtUp(t, s.ctx, f.last, taskviews.Name)

	mallory := uuid.New()
	for i := range 200 {
		path := "/v1/tasks/" + uuid.NewString()
		if i%4 == 0 {
			path = "/v1/tasks/" + f.invoice.ID.String() // alice's; the first opens the window
		}
		if w := s.get(t, path, mallory); w.Code != http.StatusNotFound {
			t.Fatalf("read %d: %d", i, w.Code)
		}
	}
	evs := s.accessEvents(t, mallory)
	if len(evs) != 1 || evs[0].Type != task.EventAccessDenied {
		t.Fatalf("200 refused reads appended %d events, want the first one only", len(evs))
	}
	opened := evs[0].ID

	// The next refusal after the window writes the window's count, then
	// itself in full, in one append.
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	if w := s.get(t, "/v1/tasks/"+uuid.NewString(), mallory); w.Code != http.StatusNotFound {
		t.Fatalf("read after the window: %d", w.Code)
	}
	evs = s.accessEvents(t, mallory)
	if len(evs) != 3 || evs[1].Type != task.EventDenialsCounted || evs[2].Type != task.EventAccessDenied {
		t.Fatalf("after the window: %d events %v", len(evs), evs)
	}
	var counted task.DenialsCounted
	if err := json.Unmarshal(evs[1].Data, &counted); err != nil {
		t.Fatal(err)
	}
	if counted.Count != 199 || counted.Reasons[task.DenyMissing] != 150 || counted.Reasons[task.DenyNotOwner] != 49 ||
		counted.ResourceKinds[task.ResourceKindTask] != 199 || counted.OpenedBy != opened || counted.UserID != mallory {
		t.Fatalf("counted = %+v (opened by %s)", counted, opened)
	}
	var md struct {
		CausationID string `json:"causation_id"`
	}
	if err := json.Unmarshal(evs[1].Metadata, &md); err != nil || md.CausationID != opened.String() {
		t.Fatalf("the count's metadata %s does not name the refusal that opened its window", evs[1].Metadata)
	}

	// Shutdown writes every open window out.
	for range 3 {
		s.get(t, "/v1/tasks/"+uuid.NewString(), mallory)
	}
	if err := s.cmds.Denials.Flush(s.ctx, true); err != nil {
		t.Fatal(err)
	}
	evs = s.accessEvents(t, mallory)
	if err := json.Unmarshal(evs[len(evs)-1].Data, &counted); err != nil || len(evs) != 4 || counted.Count != 3 {
		t.Fatalf("after the flush: %d events, last %s", len(evs), evs[len(evs)-1].Data)
	}
}

// GET /v1/me/audit must not tell another user's task from a missing one,
// as the 404 does not; the auditors' trail keeps the true reason.
func TestMyAuditShowsOneReasonForRefusedReads(t *testing.T) {
	t.Parallel()
	s := newTaskServer(t) // every refusal recorded in full
	f := seed(t, s)
	s.env.WaitCaughtUp(t, s.ctx, f.last, taskviews.Name)
	for _, id := range []uuid.UUID{f.invoice.ID, uuid.New()} { // alice's real task, a random id
		if w := s.get(t, "/v1/tasks/"+id.String(), f.bob); w.Code != http.StatusNotFound {
			t.Fatalf("bob reads %s: %d", id, w.Code)
		}
	}
	evs := s.accessEvents(t, f.bob)
	s.env.WaitCaughtUp(t, s.ctx, evs[len(evs)-1].Position, audit.Name)

	reasons := func(path, user, roles string) []string {
		t.Helper()
		w := s.do(t, nil, http.MethodGet, path, nil, uuid.MustParse(user), roles)
		var p struct{ Items []audit.Entry }
		if err := json.Unmarshal(decodeAs[json.RawMessage](t, w), &p); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range p.Items {
			var sum struct{ Reason string }
			if err := json.Unmarshal(e.Summary, &sum); err != nil {
				t.Fatal(err)
			}
			out = append(out, sum.Reason)
		}
		return out
	}
	mine := reasons("/v1/me/audit?type="+task.EventAccessDenied, f.bob.String(), "user")
	if fmt.Sprint(mine) != fmt.Sprint([]string{readapi.ReasonNotFound, readapi.ReasonNotFound}) {
		t.Fatalf("bob's own trail shows reasons %v: it tells which id exists", mine)
	}
	all := reasons("/v1/audit?type="+task.EventAccessDenied+"&actor="+f.bob.String(), uuid.NewString(), "auditor")
	if fmt.Sprint(all) != fmt.Sprint([]string{task.DenyMissing, task.DenyNotOwner}) { // newest first
		t.Fatalf("the auditors' trail shows %v, want the true reasons", all)
	}
}

// A counted window's split by reason is hidden from the caller the same
// way.
func TestMyAuditHidesTheReasonsOfCountedRefusals(t *testing.T) {
	t.Parallel()
	s := newTaskServer(t)
	s.cmds = newTaskCommands(t, s.env, time.Hour)
	s.engine = s.newEngine(t, nil)
	f := seed(t, s)
	s.env.WaitCaughtUp(t, s.ctx, f.last, taskviews.Name)
	for _, id := range []uuid.UUID{uuid.New(), f.invoice.ID, uuid.New()} {
		s.get(t, "/v1/tasks/"+id.String(), f.bob)
	}
	if err := s.cmds.Denials.Flush(s.ctx, true); err != nil {
		t.Fatal(err)
	}
	evs := s.accessEvents(t, f.bob)
	s.env.WaitCaughtUp(t, s.ctx, evs[len(evs)-1].Position, audit.Name)
	w := s.do(t, nil, http.MethodGet, "/v1/me/audit?type="+task.EventDenialsCounted, nil, f.bob, "user")
	var p struct{ Items []audit.Entry }
	if err := json.Unmarshal(decodeAs[json.RawMessage](t, w), &p); err != nil || len(p.Items) != 1 {
		t.Fatalf("bob's counted refusals: %s (%v)", w.Body, err)
	}
	var sum struct {
		Count   int
		Reasons map[string]int
	}
	if err := json.Unmarshal(p.Items[0].Summary, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Count != 2 || len(sum.Reasons) != 1 || sum.Reasons[readapi.ReasonNotFound] != 2 {
		t.Fatalf("bob's own trail shows %s", p.Items[0].Summary)
	}
}

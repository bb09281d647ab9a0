package main

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/stream"
	"github.com/authledger/authledger/test/natstest"
	"github.com/authledger/authledger/test/pgtest"
)

// tailWriter collects `stream tail`'s lines and stops the command once
// one of them holds want.
type tailWriter struct {
	mu   sync.Mutex
	b    strings.Builder
	want string
	stop context.CancelFunc
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if strings.Contains(w.b.String(), w.want) {
		w.stop()
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// serve with AUTHLEDGER_NATS_URL publishes a login to JetStream,
// `stream tail -type` prints it (and nothing of another type), and the
// publisher shows in `projections status` as a policy, caught up, and in
// the projection metrics.
func TestServePublishesAndStreamTailPrints(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	streamName, prefix := natstest.Names(t)
	envm := map[string]string{
		"DATABASE_URL": db, "AUTHLEDGER_NATS_URL": natstest.URL(t), "AUTHLEDGER_NATS_STREAM": streamName,
		"AUTHLEDGER_NATS_SUBJECT_PREFIX": prefix, "AUTHLEDGER_LOG_LEVEL": "warn",
	}
	r := startService(t, envm)
	_, userID := r.loginAs("stream-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "@example.com")

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"stream", "tail", "-from-start", "-type", "authledger.session.started.v1"}, `"user_id":"` + userID.String() + `"`},
		{[]string{"stream", "tail", "-from-start", "-json", "-type", "authledger.user.registered.v1,authledger.session.started.v1"}, `"subject":"` + userID.String() + `"`},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		out := &tailWriter{want: c.want, stop: cancel}
		var errOut strings.Builder
		code := run(ctx, c.args, envOf(envm), out, &errOut)
		cancel()
		got := out.String()
		if code != exitOK || !strings.Contains(got, c.want) {
			t.Fatalf("%v: exit %d, output lacks %s:\n%s\n%s", c.args, code, c.want, got, errOut.String())
		}
		if c.args[3] == "-type" && strings.Contains(got, "authledger.user.registered.v1") {
			t.Errorf("tail -type session.started printed another type:\n%s", got)
		}
		if c.args[3] == "-json" {
			line := strings.SplitN(got, "\n", 2)[0]
			var ev map[string]any
			if err := json.Unmarshal([]byte(line), &ev); err != nil || ev["specversion"] != "1.0" || ev["type"] != "authledger.user.registered.v1" {
				t.Errorf("first -json line is not the registration's CloudEvent: %v\n%s", err, line)
			}
		}
	}

	if code, _, errOut := runCmd(t, envm, "stream", "tail", "-type", "authledger.session.refreshed.v1"); code != exitUsage || !strings.Contains(errOut, "not a published type") {
		t.Errorf("tail of an internal-only type: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runCmd(t, map[string]string{"DATABASE_URL": db}, "stream", "tail"); code != exitUsage || !strings.Contains(errOut, "AUTHLEDGER_NATS_URL") {
		t.Errorf("tail without NATS: exit %d: %s", code, errOut)
	}

	for deadline := time.Now().Add(30 * time.Second); ; {
		s := statusOf(t, envm, stream.Name)
		if s.Kind == "policy" && s.State == projector.StateRunning && s.LagEvents == 0 && s.EventsApplied > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections status: %+v", s)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := r.metric(`authledger_projection_events_applied_total{projection="event_stream"}`); n < 2 {
		t.Errorf("/metrics: the publisher applied %v events (registration and login at least)", n)
	}
	code, out, _ := runCmd(t, envm, "projections", "status")
	if code != exitOK || !strings.Contains(out, stream.Name) {
		t.Errorf("status table lacks %s:\n%s", stream.Name, out)
	}
}

package signin

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/events"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestStreamsHoldNoSecret(t *testing.T) {
	state := "the-state-secret"
	for _, s := range []string{FlowStream(state), CodeStream(state)} {
		if strings.Contains(s, state) {
			t.Fatalf("stream %q holds the secret", s)
		}
	}
	if FlowStream("a") == FlowStream("b") || FlowStream("a")[len("signin_flow-"):] != CodeStream("a")[len("signin_code-"):] {
		t.Fatal("streams are not a function of the secret")
	}
}

// folded replays f's changes as a stream would hold them.
func foldedFlow(t *testing.T, changes []events.Event) *Flow {
	t.Helper()
	f, err := FlowFromHistory(changes)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFlowIsSingleUseForItsProviderBeforeItExpires(t *testing.T) {
	uid := uuid.New()
	f := StartFlow("mock", "https://spa.example/cb", &uid, t0, 10*time.Minute)
	stored := f.Changes()

	if _, err := foldedFlow(t, stored).Complete("github", "callback", t0.Add(time.Minute)); !errors.Is(err, ErrExpired) {
		t.Fatalf("another provider's callback: %v", err)
	}
	if _, err := foldedFlow(t, stored).Complete("mock", "callback", t0.Add(10*time.Minute)); !errors.Is(err, ErrExpired) {
		t.Fatalf("at expiry: %v", err)
	}
	live := foldedFlow(t, stored)
	got, err := live.Complete("mock", "callback", t0.Add(time.Minute))
	if err != nil || got.RedirectURI != "https://spa.example/cb" || got.LinkUserID == nil || *got.LinkUserID != uid {
		t.Fatalf("complete: %+v %v", got, err)
	}
	if live.Version() != 1 || len(live.Changes()) != 1 {
		t.Fatalf("version %d, changes %d", live.Version(), len(live.Changes()))
	}
	used := foldedFlow(t, append(stored, live.Changes()...))
	if _, err := used.Complete("mock", "callback", t0.Add(2*time.Minute)); !errors.Is(err, ErrUsed) {
		t.Fatalf("replay: %v", err)
	}
	if _, err := foldedFlow(t, nil).Complete("mock", "callback", t0); !errors.Is(err, ErrExpired) {
		t.Fatalf("never started: %v", err)
	}
	if _, err := FlowFromHistory([]events.Event{CodeIssued{}}); err == nil {
		t.Fatal("a code event folded into a flow")
	}
}

func TestCodeIsRedeemedOnceBeforeItExpires(t *testing.T) {
	uid := uuid.New()
	c := IssueCode(CodeIssued{Kind: KindSignIn, UserID: uid, Provider: "mock", ExternalUserID: "sub"}, t0, time.Minute)
	stored := c.Changes()
	if got, ok := c.Issued(); !ok || !got.ExpiresAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("issued: %+v %v", got, ok)
	}
	fold := func(h []events.Event) *Code {
		c, err := CodeFromHistory(h)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if _, err := fold(stored).Redeem(t0.Add(time.Minute)); !errors.Is(err, ErrExpired) {
		t.Fatalf("at expiry: %v", err)
	}
	live := fold(stored)
	got, err := live.Redeem(t0.Add(30 * time.Second))
	if err != nil || got.UserID != uid || got.Kind != KindSignIn {
		t.Fatalf("redeem: %+v %v", got, err)
	}
	if _, err := fold(append(stored, live.Changes()...)).Redeem(t0.Add(31 * time.Second)); !errors.Is(err, ErrUsed) {
		t.Fatalf("replay: %v", err)
	}
	if _, ok := fold(nil).Issued(); ok {
		t.Fatal("an empty stream has an issue")
	}
	if _, err := CodeFromHistory([]events.Event{FlowStarted{}}); err == nil {
		t.Fatal("a flow event folded into a code")
	}
}

package signingkey_test

import (
	"testing"

	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/signingkey"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
)

// The identity packages register into one registry without a name clash,
// as cmd/ wires them.
func TestIdentityEventsShareOneRegistry(t *testing.T) {
	t.Parallel()
	r := events.NewRegistry()
	for _, register := range []func(*events.Registry) error{user.RegisterEvents, session.RegisterEvents, signingkey.RegisterEvents} {
		if err := register(r); err != nil {
			t.Fatal(err)
		}
	}
	want := len(user.AllEvents()) + len(session.AllEvents()) + len(signingkey.AllEvents())
	if got := len(r.Names()); got != want {
		t.Fatalf("%d names for %d types", got, want)
	}
	t.Logf("identity events: %v", r.Names())
}

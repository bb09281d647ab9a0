package task_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/events"
)

// Every type round-trips through the registry under its own name, and no
// two types share one (the ZITADEL copy-paste bug).
func TestEventsRoundTripUnderTheirOwnNames(t *testing.T) {
	t.Parallel()
	r := events.NewRegistry()
	if err := task.RegisterEvents(r); err != nil {
		t.Fatal(err)
	}
	all := task.AllEvents()
	if len(r.Names()) != len(all) {
		t.Fatalf("%d names for %d types: two types share a name", len(r.Names()), len(all))
	}
	for _, e := range all {
		name, data, err := events.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(name, ".v1") {
			t.Errorf("%s is not versioned", name)
		}
		got, err := r.Decode(name, data)
		if err != nil {
			t.Fatal(err)
		}
		if reflect.TypeOf(got) != reflect.TypeOf(e) || got.EventName() != name {
			t.Errorf("%s decodes to %T named %s", name, got, got.EventName())
		}
	}
}

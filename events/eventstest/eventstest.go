// Package eventstest checks a domain package's events against the registry
// rules every domain package follows.
package eventstest

import (
	"reflect"
	"strings"
	"testing"

	"github.com/authledger/authledger/events"
)

// RoundTrip checks that register gives every one of all a name of its own
// (two types sharing a name is the ZITADEL copy-paste bug), that each name
// is versioned, and that each event encodes and decodes back to its own
// type under its own name.
func RoundTrip(t *testing.T, register func(*events.Registry) error, all []events.Event) {
	t.Helper()
	r := events.NewRegistry()
	if err := register(r); err != nil {
		t.Fatal(err)
	}
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

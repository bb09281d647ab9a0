package eventstest_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/events/eventstest"
)

// renamedV1 is the first version of an event whose field was renamed in v2.
type renamedV1 struct {
	Name string `json:"name"`
}

func (renamedV1) EventName() string { return "thing.renamed.v1" }

type renamedV2 struct {
	DisplayName string `json:"display_name"`
	Count       int    `json:"count"`
}

func (renamedV2) EventName() string { return "thing.renamed.v2" }

type unversioned struct{}

func (unversioned) EventName() string { return "thing.happened" }

// upcastV1 rewrites a v1's data into a v2's.
func upcastV1(data json.RawMessage) (string, json.RawMessage, error) {
	var v1 renamedV1
	if err := json.Unmarshal(data, &v1); err != nil {
		return "", nil, err
	}
	b, err := json.Marshal(renamedV2{DisplayName: v1.Name})
	return "thing.renamed.v2", b, err
}

func TestRoundTripAcceptsAV2WithItsUpcaster(t *testing.T) {
	register := func(r *events.Registry) error {
		r.RegisterUpcaster("thing.renamed.v1", upcastV1)
		return r.Register(renamedV2{})
	}
	if p := eventstest.Problems(register, []events.Event{renamedV2{}}); len(p) > 0 {
		t.Fatalf("a v2 with an upcaster from v1: %q", p)
	}
	// And the registry reads the log's v1 as the v2.
	r := events.NewRegistry()
	if err := register(r); err != nil {
		t.Fatal(err)
	}
	got, err := r.Decode("thing.renamed.v1", json.RawMessage(`{"name":"Ada"}`))
	if err != nil || got != (renamedV2{DisplayName: "Ada"}) {
		t.Fatalf("v1 decodes to %#v, %v", got, err)
	}
}

func TestRoundTripRefusesAV2WithoutUpcasterAndAnUnversionedName(t *testing.T) {
	p := eventstest.Problems(func(r *events.Registry) error { return r.Register(renamedV2{}, unversioned{}) },
		[]events.Event{renamedV2{}, unversioned{}})
	if !slices.ContainsFunc(p, func(s string) bool {
		return strings.Contains(s, "thing.renamed.v2 has no upcaster from thing.renamed.v1")
	}) {
		t.Errorf("a v2 without an upcaster passed: %q", p)
	}
	if !slices.ContainsFunc(p, func(s string) bool { return strings.Contains(s, "thing.happened is not versioned") }) {
		t.Errorf("an unversioned name passed: %q", p)
	}
}

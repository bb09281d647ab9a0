package signingkey_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/authledger/authledger/domain/signingkey"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/events/eventstest"
)

var (
	t0     = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	pub    = json.RawMessage(`{"kty":"OKP","crv":"Ed25519","x":"abc"}`)
	retain = 15*time.Minute + 30*time.Second
)

func added(id string, at time.Time) signingkey.Added {
	return signingkey.Added{KeyID: id, Algorithm: "EdDSA", PublicKey: pub, AddedAt: at}
}

func given(t *testing.T, history ...events.Event) *signingkey.Ring {
	t.Helper()
	r, err := signingkey.FromHistory(history)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ringWithActiveKey has key "a" added and active since t0.
func ringWithActiveKey(t *testing.T, more ...events.Event) *signingkey.Ring {
	t.Helper()
	return given(t, append([]events.Event{added("a", t0), signingkey.Activated{KeyID: "a", ActivatedAt: t0}}, more...)...)
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	h := time.Hour
	for _, tc := range []struct {
		name string
		ring func(*testing.T) *signingkey.Ring
		when func(*signingkey.Ring) error
		err  error
		want []events.Event
	}{
		{"first key", func(t *testing.T) *signingkey.Ring { return given(t) },
			func(r *signingkey.Ring) error { return r.Add("a", "EdDSA", pub, t0) }, nil, []events.Event{added("a", t0)}},
		{"duplicate id", func(t *testing.T) *signingkey.Ring { return ringWithActiveKey(t) },
			func(r *signingkey.Ring) error { return r.Add("a", "EdDSA", pub, t0) }, signingkey.ErrKeyExists, nil},
		{"no public key", func(t *testing.T) *signingkey.Ring { return given(t) },
			func(r *signingkey.Ring) error { return r.Add("a", "EdDSA", nil, t0) }, signingkey.ErrInvalidInput, nil},
		{"first activation retires nothing", func(t *testing.T) *signingkey.Ring { return given(t, added("a", t0)) },
			func(r *signingkey.Ring) error { return r.Activate("a", t0, retain) }, nil,
			[]events.Event{signingkey.Activated{KeyID: "a", ActivatedAt: t0}}},
		{"rotation retires the old key in the same append", func(t *testing.T) *signingkey.Ring { return ringWithActiveKey(t, added("b", t0.Add(h))) },
			func(r *signingkey.Ring) error { return r.Activate("b", t0.Add(2*h), retain) }, nil,
			[]events.Event{
				signingkey.Retired{KeyID: "a", RetiredAt: t0.Add(2 * h), RetainUntil: t0.Add(2*h + retain)},
				signingkey.Activated{KeyID: "b", ActivatedAt: t0.Add(2 * h)},
			}},
		{"activating the active key", func(t *testing.T) *signingkey.Ring { return ringWithActiveKey(t) },
			func(r *signingkey.Ring) error { return r.Activate("a", t0.Add(h), retain) }, nil, nil},
		{"a retired key stays retired", func(t *testing.T) *signingkey.Ring {
			return ringWithActiveKey(t, signingkey.Retired{KeyID: "a", RetiredAt: t0.Add(h), RetainUntil: t0.Add(h)})
		}, func(r *signingkey.Ring) error { return r.Activate("a", t0.Add(2*h), retain) }, signingkey.ErrRetired, nil},
		{"unknown key", func(t *testing.T) *signingkey.Ring { return ringWithActiveKey(t) },
			func(r *signingkey.Ring) error { return r.Activate("zz", t0, retain) }, signingkey.ErrUnknownKey, nil},
		{"retire a compromised key at once", func(t *testing.T) *signingkey.Ring { return ringWithActiveKey(t) },
			func(r *signingkey.Ring) error { return r.Retire("a", t0.Add(h), 0) }, nil,
			[]events.Event{signingkey.Retired{KeyID: "a", RetiredAt: t0.Add(h), RetainUntil: t0.Add(h)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := tc.ring(t)
			if err := tc.when(r); !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if got := r.Changes(); (len(got) != 0 || len(tc.want) != 0) && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("events\n got %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestDueForActivation(t *testing.T) {
	t.Parallel()
	r := ringWithActiveKey(t, added("b", t0.Add(time.Hour)))
	if _, ok := r.DueForActivation(t0.Add(time.Hour+5*time.Minute), 10*time.Minute); ok {
		t.Fatal("due before the overlap window passed")
	}
	k, ok := r.DueForActivation(t0.Add(time.Hour+10*time.Minute), 10*time.Minute)
	if !ok || k.ID != "b" {
		t.Fatalf("due: %v %v", k, ok)
	}
	if a, ok := r.Active(); !ok || a.ID != "a" {
		t.Fatal("active key")
	}
}

func TestEventsRoundTripUnderTheirOwnNames(t *testing.T) {
	t.Parallel()
	eventstest.RoundTrip(t, signingkey.RegisterEvents, signingkey.AllEvents())
	reg := events.NewRegistry()
	if err := signingkey.RegisterEvents(reg); err != nil {
		t.Fatal(err)
	}
	if len(reg.Names()) != len(signingkey.AllEvents()) {
		t.Fatal("two types share a name")
	}
	for _, e := range []events.Event{added("a", t0), signingkey.Activated{KeyID: "a", ActivatedAt: t0}, signingkey.Retired{KeyID: "a", RetiredAt: t0, RetainUntil: t0}} {
		name, data, err := events.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := reg.Decode(name, data)
		if err != nil {
			t.Fatal(err)
		}
		if got.EventName() != name || reflect.TypeOf(got) != reflect.TypeOf(e) {
			t.Fatalf("%s decodes to %T", name, got)
		}
	}
}

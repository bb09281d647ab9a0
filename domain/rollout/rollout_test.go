package rollout_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/authledger/authledger/domain/rollout"
	"github.com/authledger/authledger/events/eventstest"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func pct(n int) *int { return &n }

func TestEventsRoundTripUnderTheirOwnNames(t *testing.T) {
	t.Parallel()
	eventstest.RoundTrip(t, rollout.RegisterEvents, rollout.AllEvents())
}

func TestConfigure(t *testing.T) {
	t.Parallel()
	r, _ := rollout.FromHistory(nil)
	if err := r.Configure(rollout.Change{Mode: rollout.ModeStaged, Percentage: pct(20), Allow: []string{"b@x.com", "a@x.com", "a@x.com"}}, t0); err != nil {
		t.Fatal(err)
	}
	want := rollout.Configured{Mode: "staged", Percentage: 20, AllowlistAdded: []string{"a@x.com", "b@x.com"}, ConfiguredAt: t0}
	if got := r.Changes(); len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("changes %#v", got)
	}
	// Folded again, a change of the allowlist only keeps mode and
	// percentage; a change that changes nothing records nothing.
	again, _ := rollout.FromHistory(r.Changes())
	if err := again.Configure(rollout.Change{Disallow: []string{"b@x.com", "c@x.com"}}, t0); err != nil {
		t.Fatal(err)
	}
	if got := again.Changes(); len(got) != 1 || !reflect.DeepEqual(got[0], rollout.Configured{Mode: "staged", Percentage: 20, AllowlistRemoved: []string{"b@x.com"}, ConfiguredAt: t0}) {
		t.Fatalf("changes %#v", got)
	}
	s := again.Settings()
	if !s.Configured || !s.Allowlist["a@x.com"] || s.Allowlist["b@x.com"] {
		t.Errorf("settings %+v", s)
	}
	same, _ := rollout.FromHistory(append(r.Changes(), again.Changes()...))
	if err := same.Configure(rollout.Change{Mode: rollout.ModeStaged, Percentage: pct(20), Allow: []string{"a@x.com"}}, t0); err != nil || len(same.Changes()) != 0 {
		t.Errorf("a change that changes nothing: %v %v", err, same.Changes())
	}
}

// The first change keeps the deployment's mode unless it names one.
func TestTheFirstChangeKeepsTheDeploymentsMode(t *testing.T) {
	t.Parallel()
	r, _ := rollout.FromHistory(nil)
	if err := r.Configure(rollout.Change{Allow: []string{"a@x.com"}, Unconfigured: rollout.ModeStaged}, t0); err != nil {
		t.Fatal(err)
	}
	if s := r.Settings(); s.Mode != rollout.ModeStaged || !s.Configured {
		t.Errorf("settings %+v", s)
	}
	// Once configured, the stream's mode is kept, not the deployment's.
	again, _ := rollout.FromHistory(r.Changes())
	if err := again.Configure(rollout.Change{Percentage: pct(5), Unconfigured: rollout.ModeOn}, t0); err != nil || again.Settings().Mode != rollout.ModeStaged {
		t.Errorf("%v %+v", err, again.Settings())
	}
}

func TestConfigureRefuses(t *testing.T) {
	t.Parallel()
	for _, c := range []rollout.Change{{Mode: "maybe"}, {Percentage: pct(101)}, {Percentage: pct(-1)}, {Allow: []string{""}}} {
		r, _ := rollout.FromHistory(nil)
		if err := r.Configure(c, t0); !errors.Is(err, rollout.ErrInvalidInput) || len(r.Changes()) != 0 {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	s := rollout.Settings{Mode: rollout.ModeStaged, Percentage: 30, Allowlist: map[string]bool{"vip@x.com": true}}
	if !s.External("vip@x.com", 99) {
		t.Error("an allowlisted address is not routed external")
	}
	// Stable and spread: the same bucket for the same address, about the
	// percentage of addresses routed.
	external := 0
	for i := range 1000 {
		e := "user" + string(rune('a'+i%26)) + "@" + string(rune('a'+i/26%26)) + string(rune('a'+i/676)) + ".com"
		b := rollout.Bucket(key, e)
		if b != rollout.Bucket(key, e) || b < 0 || b > 99 {
			t.Fatalf("bucket %d of %s", b, e)
		}
		if s.External(e, b) {
			external++
		}
	}
	if external < 230 || external > 370 {
		t.Errorf("%d of 1000 routed external at 30%%", external)
	}
	for _, mode := range []string{rollout.ModeOff, rollout.ModeOn} {
		s.Mode = mode
		if got := s.External("vip@x.com", 0); got != (mode == rollout.ModeOn) {
			t.Errorf("mode %s routes external: %v", mode, got)
		}
	}
}

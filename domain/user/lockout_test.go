package user_test

import (
	"errors"
	"testing"
	"time"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
)

// Sources of the throttle tests: two strangers' networks and the owner's
// known device (on the first stranger's network, as behind one NAT).
var (
	strangerA = user.LoginAttempt{Source: "198.51.100.7"}
	strangerB = user.LoginAttempt{Source: "203.0.113.9"}
	laptop    = user.LoginAttempt{Source: "198.51.100.7", Device: "0199d6a0-0000-7000-8000-000000000001", Trusted: true}
)

func failedFrom(a user.LoginAttempt, at time.Time) user.LoginFailed {
	return user.LoginFailed{UserID: userID, FailedAt: at, Source: a.Source, Device: a.Device}
}

// failures are n failures of a, one second apart from start.
func failures(a user.LoginAttempt, start time.Time, n int) []events.Event {
	var out []events.Event
	for i := range n {
		out = append(out, failedFrom(a, start.Add(time.Duration(i)*time.Second)))
	}
	return out
}

func concat(parts ...[]events.Event) []events.Event {
	var out []events.Event
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	p := policy // 5 per source, 20 per account, 1s doubling to 15m, over 24h
	last := t0.Add(4 * time.Second)

	t.Run("failures below the threshold are recorded and free", func(t *testing.T) {
		t.Parallel()
		u := registeredUser(t, failures(strangerA, t0, 4)...)
		if wait := u.LoginRetryAfter(strangerA, last, p); wait != 0 {
			t.Fatalf("wait after 4 failures = %s", wait)
		}
		if err := u.RecordLoginFailure(strangerA, last, p); err != nil {
			t.Fatal(err)
		}
		thenEvents(t, u, failedFrom(strangerA, last))
	})
	t.Run("the fifth failure of a source makes it wait, doubling", func(t *testing.T) {
		t.Parallel()
		u := registeredUser(t, failures(strangerA, t0, 5)...)
		if wait := u.LoginRetryAfter(strangerA, last, p); wait != time.Second {
			t.Fatalf("wait after 5 failures = %s, want 1s", wait)
		}
		err := u.RecordLoginFailure(strangerA, last.Add(500*time.Millisecond), p)
		var te *user.ThrottledError
		if !errors.As(err, &te) || !errors.Is(err, user.ErrThrottled) || te.RetryAfter != 500*time.Millisecond {
			t.Fatalf("RecordLoginFailure too soon = %v", err)
		}
		thenEvents(t, u) // a throttled attempt records nothing
		u = registeredUser(t, failures(strangerA, t0, 8)...)
		if wait := u.LoginRetryAfter(strangerA, t0.Add(7*time.Second), p); wait != 8*time.Second {
			t.Fatalf("wait after 8 failures = %s, want 8s", wait)
		}
	})
	t.Run("the wait is capped", func(t *testing.T) {
		t.Parallel()
		u := registeredUser(t, failures(strangerA, t0, 60)...)
		if wait := u.LoginRetryAfter(strangerA, t0.Add(59*time.Second), p); wait != p.MaxDelay {
			t.Fatalf("wait after 60 failures = %s, want %s", wait, p.MaxDelay)
		}
	})
	t.Run("another source is not slowed by a stranger's failures", func(t *testing.T) {
		t.Parallel()
		u := registeredUser(t, failures(strangerA, t0, 10)...)
		if wait := u.LoginRetryAfter(strangerB, t0.Add(10*time.Second), p); wait != 0 {
			t.Fatalf("stranger B waits %s for A's failures", wait)
		}
		if wait := u.LoginRetryAfter(laptop, t0.Add(10*time.Second), p); wait != 0 {
			t.Fatalf("the known device behind A's address waits %s", wait)
		}
	})
	t.Run("failures spread over many sources slow untrusted attempts, not a known device", func(t *testing.T) {
		t.Parallel()
		var h []events.Event
		for i := range 5 {
			h = append(h, failures(user.LoginAttempt{Source: "192.0.2." + string(rune('1'+i))}, t0.Add(time.Duration(i)*time.Minute), 4)...)
		}
		u := registeredUser(t, h...) // 20 failures, no source past 4
		now := t0.Add(4*time.Minute + 3*time.Second)
		if wait := u.LoginRetryAfter(strangerB, now, p); wait != time.Second {
			t.Fatalf("a new source waits %s, want 1s", wait)
		}
		if wait := u.LoginRetryAfter(laptop, now, p); wait != 0 {
			t.Fatalf("the known device waits %s", wait)
		}
	})
	t.Run("a known device is held to its own count", func(t *testing.T) {
		t.Parallel()
		u := registeredUser(t, failures(laptop, t0, 5)...)
		if wait := u.LoginRetryAfter(laptop, last, p); wait != time.Second {
			t.Fatalf("the device waits %s after 5 failures of its own, want 1s", wait)
		}
		if wait := u.LoginRetryAfter(strangerA, last, p); wait != 0 {
			t.Fatalf("its network waits %s for the device's failures", wait)
		}
	})
	t.Run("failures outside the window do not count", func(t *testing.T) {
		t.Parallel()
		u := registeredUser(t, failures(strangerA, t0, 5)...)
		if wait := u.LoginRetryAfter(strangerA, t0.Add(p.Window), p); wait != 0 {
			t.Fatalf("wait a window later = %s", wait)
		}
	})
	t.Run("a success forgets its source's failures only", func(t *testing.T) {
		t.Parallel()
		u := registeredUser(t, concat(failures(strangerA, t0, 4), failures(strangerB, t0, 5))...)
		if err := u.RecordLoginSuccess(strangerA, last); err != nil {
			t.Fatal(err)
		}
		thenEvents(t, u, user.LoginFailuresCleared{UserID: userID, Source: strangerA.Source, ClearedAt: last})
		if u.HasLoginFailures(strangerA) || !u.HasLoginFailures(strangerB) {
			t.Fatal("the success cleared the wrong source")
		}
		if wait := u.LoginRetryAfter(strangerB, last, p); wait == 0 {
			t.Fatal("B's failures were forgotten by A's success")
		}
		u = registeredUser(t, failures(strangerB, t0, 2)...)
		if err := u.RecordLoginSuccess(strangerA, last); err != nil {
			t.Fatal(err)
		}
		thenEvents(t, u) // nothing to clear, nothing recorded
	})
	t.Run("the former lockout events forget failures and lock nothing", func(t *testing.T) {
		t.Parallel()
		u := registeredUser(t, concat(failures(user.LoginAttempt{}, t0, 5),
			[]events.Event{user.Locked{UserID: userID, LockedAt: last, LockedUntil: last.Add(24 * time.Hour), Lockout: 7}})...)
		if wait := u.LoginRetryAfter(user.LoginAttempt{}, last, p); wait != 0 {
			t.Fatalf("an old lockout still holds: wait %s", wait)
		}
	})
	t.Run("unlock clears every source", func(t *testing.T) {
		t.Parallel()
		u := registeredUser(t, concat(failures(strangerA, t0, 5), failures(strangerB, t0, 5))...)
		_ = u.Unlock(last)
		thenEvents(t, u, user.Unlocked{UserID: userID, UnlockedAt: last})
		if u.LoginRetryAfter(strangerA, last, p) != 0 || u.LoginRetryAfter(strangerB, last, p) != 0 {
			t.Fatal("unlock left a wait")
		}
		u = registeredUser(t)
		_ = u.Unlock(last)
		thenEvents(t, u)
	})
}

// The same rule, fed the same events in memory, throttles an address that
// has no account: that is how commands keep unknown addresses from
// standing out.
func TestLoginThrottleInMemory(t *testing.T) {
	t.Parallel()
	var th user.LoginThrottle
	u := registeredUser(t)
	for i, e := range failures(strangerA, t0, 6) {
		th.Observe(e)
		if err := u.RecordLoginFailure(strangerA, t0.Add(time.Duration(i)*time.Second), policy); err != nil {
			t.Fatal(err)
		}
	}
	now := t0.Add(6 * time.Second) // 6 failures: the next waits 2s after the last
	if a, b := th.RetryAfter(strangerA, now, policy), u.LoginRetryAfter(strangerA, now, policy); a != b || a == 0 {
		t.Fatalf("in memory %s, folded from the user stream %s", a, b)
	}
}

func TestSource(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"::ffff:192.0.2.1":     "192.0.2.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"":                     "",
		"not an address":       "not an address",
	} {
		if got := user.Source(in); got != want {
			t.Errorf("Source(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestThrottlePolicyValidate(t *testing.T) {
	t.Parallel()
	if err := user.DefaultThrottlePolicy().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (user.ThrottlePolicy{}).Validate(); err == nil {
		t.Fatal("zero policy is valid")
	}
	p := user.DefaultThrottlePolicy()
	p.AccountMaxFailures = p.MaxFailures - 1
	p.MaxDelay = 2 * p.Window
	if err := p.Validate(); err == nil {
		t.Fatal("an account threshold below the source's and a wait past the window are valid")
	}
}

package user

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/authledger/authledger/events"
)

// The login throttle (docs/login-throttling.md). Failed logins are counted
// per account *and* source: the source is the client's network, or the
// known device the attempt came from. Past ThrottlePolicy.MaxFailures
// failures in the window, that source must wait before its next attempt on
// that account, a wait that doubles with each further failure up to
// MaxDelay. Nothing ever locks the account itself: a stranger's failures
// slow the stranger down, not the owner.
//
// A second rule catches a guess spread over many sources: past
// AccountMaxFailures failures on the account from all sources together,
// every attempt that is not trusted (a known device, or a verified second
// factor once there is one) waits too. The owner's known devices keep
// getting in.
//
// A success resets its source's count. The domain never reads the clock:
// commands pass now in.

// ThrottlePolicy decides how failed logins slow a source down.
type ThrottlePolicy struct {
	// MaxFailures of one source on one account within Window are free;
	// from then on each attempt of that source waits (default 5).
	MaxFailures int
	// AccountMaxFailures on one account within Window, from all sources
	// together, make every untrusted attempt on it wait (default 20).
	AccountMaxFailures int
	// Window is how far back failures count (default 24 hours).
	Window time.Duration
	// Delay is the wait after the failure that reaches a threshold
	// (default 1 second); each further failure doubles it.
	Delay time.Duration
	// MaxDelay caps the doubling (default 15 minutes).
	MaxDelay time.Duration
}

// DefaultThrottlePolicy: five free failures per account and source, twenty
// per account, counted over a day; then 1 s, 2 s, 4 s ... up to 15 minutes
// between attempts.
func DefaultThrottlePolicy() ThrottlePolicy {
	return ThrottlePolicy{
		MaxFailures:        5,
		AccountMaxFailures: 20,
		Window:             24 * time.Hour,
		Delay:              time.Second,
		MaxDelay:           15 * time.Minute,
	}
}

// Validate reports every problem at once.
func (p ThrottlePolicy) Validate() error {
	var errs []error
	if p.MaxFailures < 1 || p.MaxFailures > maxRememberedFailures {
		errs = append(errs, fmt.Errorf("user: throttle max failures must be between 1 and %d", maxRememberedFailures))
	}
	if p.AccountMaxFailures < p.MaxFailures || p.AccountMaxFailures > maxRememberedFailures {
		errs = append(errs, fmt.Errorf("user: throttle account max failures must be between max failures and %d", maxRememberedFailures))
	}
	if p.Window <= 0 {
		errs = append(errs, errors.New("user: throttle window must be positive"))
	}
	if p.Delay <= 0 {
		errs = append(errs, errors.New("user: throttle delay must be positive"))
	}
	if p.MaxDelay < p.Delay {
		errs = append(errs, errors.New("user: throttle max delay must be at least the delay"))
	}
	if p.MaxDelay > p.Window {
		// A wait longer than the window would outlive the failures it
		// is computed from.
		errs = append(errs, errors.New("user: throttle max delay must not exceed the window"))
	}
	return errors.Join(errs...)
}

// delay is the wait after the n-th failure past a threshold (n >= 1).
func (p ThrottlePolicy) delay(n int) time.Duration {
	d := p.Delay
	for i := 1; i < n; i++ {
		if d >= p.MaxDelay/2 {
			return p.MaxDelay
		}
		d *= 2
	}
	return min(d, p.MaxDelay)
}

// wait is how long after last an attempt must wait, given n failures
// against a threshold of free ones.
func (p ThrottlePolicy) wait(n, free int, last, now time.Time) time.Duration {
	if n < free {
		return 0
	}
	return max(0, last.Add(p.delay(n-free+1)).Sub(now))
}

// ErrThrottled: the attempt came too soon after failed ones. Nothing was
// checked or recorded. Answer 429 rate-limited with the ThrottledError's
// RetryAfter, for an unknown address exactly as for an account.
var ErrThrottled = errors.New("user: login throttled")

// ThrottledError is ErrThrottled with the wait.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("user: login throttled, retry after %s", e.RetryAfter)
}

// Is makes errors.Is(err, ErrThrottled) true.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// LoginAttempt is where a login comes from, as the throttle sees it.
type LoginAttempt struct {
	// Source is the client's network (Source of its IP).
	Source string
	// Device is the id of the known device the attempt proved it comes
	// from, "" when none. Failures are then counted for that device
	// rather than the network, so that a device's owner is not slowed by
	// strangers behind the same address.
	Device string
	// Trusted attempts (a known device; later a verified second factor)
	// are only held to their own source's count, never to the account's.
	Trusted bool
	// Method is the login method that refused the attempt ("password",
	// "external"), recorded for reports; the throttle counts both alike.
	Method string
}

// key is the source the attempt's failures count against.
func (a LoginAttempt) key() string { return failureKey(a.Source, a.Device) }

func failureKey(source, device string) string {
	if device != "" {
		return "device:" + device
	}
	return "net:" + source
}

// Source is the network a client IP is counted as: an IPv4 address as it
// is, an IPv6 address as its /64 (one subscriber's allocation, which one
// client can roam across freely). Anything unparsable is kept, cut to 64
// bytes; "" stays "".
func Source(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		if len(ip) > 64 {
			return ip[:64]
		}
		return ip
	}
	addr = addr.Unmap()
	if addr.Is4() {
		return addr.String()
	}
	p, err := addr.WithZone("").Prefix(64)
	if err != nil {
		return addr.String()
	}
	return p.String()
}

// LoginThrottle is the throttle's state: the failures still remembered,
// each with its source. It is folded from the user stream's login events
// (User keeps one), and commands keep others in memory, fed with the same
// events without appending them, for addresses that have no account (so
// that an unknown address is throttled exactly like a known one). The
// zero value is a throttle without failures. It is not safe for concurrent
// use.
type LoginThrottle struct {
	failures []failure // oldest first, at most maxRememberedFailures
}

type failure struct {
	at  time.Time
	key string
}

// Observe folds one event: LoginFailed counts, LoginFailuresCleared forgets
// one source's failures, Locked and Unlocked (of the former lockout, and
// an administrator's unlock) forget them all. Other events change nothing.
func (t *LoginThrottle) Observe(e events.Event) {
	switch e := e.(type) {
	case LoginFailed:
		t.failures = append(t.failures, failure{at: e.FailedAt, key: failureKey(e.Source, e.Device)})
		if len(t.failures) > maxRememberedFailures {
			t.failures = slices.Delete(t.failures, 0, len(t.failures)-maxRememberedFailures)
		}
	case LoginFailuresCleared:
		k := failureKey(e.Source, e.Device)
		t.failures = slices.DeleteFunc(t.failures, func(f failure) bool { return f.key == k })
	case Locked, Unlocked:
		t.failures = nil
	}
}

// RetryAfter is how long a attempts must wait at now; 0 means it may go
// ahead.
func (t *LoginThrottle) RetryAfter(a LoginAttempt, now time.Time, p ThrottlePolicy) time.Duration {
	k := a.key()
	var mine, all int
	var mineLast, allLast time.Time
	for _, f := range t.failures {
		if now.Sub(f.at) >= p.Window {
			continue
		}
		all++
		allLast = later(allLast, f.at)
		if f.key == k {
			mine++
			mineLast = later(mineLast, f.at)
		}
	}
	wait := p.wait(mine, p.MaxFailures, mineLast, now)
	if !a.Trusted {
		wait = max(wait, p.wait(all, p.AccountMaxFailures, allLast, now))
	}
	return wait
}

// WithPending returns a copy of t that also counts pending: failures a
// command has answered and is still appending (recorded off the response
// path), which the stream t was folded from does not hold yet, so that
// the next attempt is throttled as if they were in it. The caller tells
// which those are (by revision, not by time: two failures can share one).
func (t *LoginThrottle) WithPending(pending []LoginFailed) LoginThrottle {
	c := LoginThrottle{failures: slices.Clone(t.failures)}
	for _, e := range pending {
		c.Observe(e)
	}
	return c
}

// HasFailures reports whether a's source has failures remembered, which a
// success would clear.
func (t *LoginThrottle) HasFailures(a LoginAttempt) bool {
	k := a.key()
	return slices.ContainsFunc(t.failures, func(f failure) bool { return f.key == k })
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

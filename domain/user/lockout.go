package user

import (
	"errors"
	"time"
)

// LockoutPolicy decides when failed logins lock an account. The domain
// never reads the clock: commands pass now in.
type LockoutPolicy struct {
	// MaxFailures within Window lock the account (default 5).
	MaxFailures int
	// Window is how far back failures count (default 15 minutes). Failures
	// before the end of the last lockout never count again.
	Window time.Duration
	// BaseDuration is the first lockout's length (default 15 minutes); each
	// consecutive lockout doubles it.
	BaseDuration time.Duration
	// MaxDuration caps the doubling (default 24 hours).
	MaxDuration time.Duration
	// ResetAfter: a lockout that starts more than this long after the
	// previous one ended counts as a first lockout again (default 24 hours).
	ResetAfter time.Duration
}

// DefaultLockoutPolicy: 5 failures in 15 minutes lock for 15 minutes,
// doubling on each consecutive lockout up to 24 hours; the doubling resets
// after 24 hours without one.
func DefaultLockoutPolicy() LockoutPolicy {
	return LockoutPolicy{
		MaxFailures:  5,
		Window:       15 * time.Minute,
		BaseDuration: 15 * time.Minute,
		MaxDuration:  24 * time.Hour,
		ResetAfter:   24 * time.Hour,
	}
}

// Validate reports every problem at once.
func (p LockoutPolicy) Validate() error {
	var errs []error
	if p.MaxFailures < 1 || p.MaxFailures > maxRememberedFailures {
		errs = append(errs, errors.New("user: lockout max failures must be between 1 and 100"))
	}
	if p.Window <= 0 {
		errs = append(errs, errors.New("user: lockout window must be positive"))
	}
	if p.BaseDuration <= 0 {
		errs = append(errs, errors.New("user: lockout duration must be positive"))
	}
	if p.MaxDuration < p.BaseDuration {
		errs = append(errs, errors.New("user: lockout max duration must be at least the base duration"))
	}
	if p.ResetAfter < 0 {
		errs = append(errs, errors.New("user: lockout reset-after must not be negative"))
	}
	return errors.Join(errs...)
}

// duration of the n-th consecutive lockout (n >= 1).
func (p LockoutPolicy) duration(n int) time.Duration {
	d := p.BaseDuration
	for i := 1; i < n; i++ {
		if d >= p.MaxDuration/2 {
			return p.MaxDuration
		}
		d *= 2
	}
	return min(d, p.MaxDuration)
}

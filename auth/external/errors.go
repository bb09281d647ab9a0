package external

import (
	"errors"
	"fmt"
	"time"
)

// The three classes of failure (see the package documentation). Every
// error a Client call returns is an *Error whose Kind is one of them, so
// errors.Is(err, ErrUnavailable) and the like decide the answer.
var (
	// ErrInvalidCredentials: the provider answered 401.
	ErrInvalidCredentials = errors.New("external auth: invalid credentials")
	// ErrUnavailable: no usable answer, for a reason that may pass.
	ErrUnavailable = errors.New("external auth: provider unavailable")
	// ErrProviderFailure: an answer that retrying will not mend.
	ErrProviderFailure = errors.New("external auth: provider failure")
)

// Reason says in one stable word why a call failed; it is the outcome
// label of the metrics and safe to log.
type Reason string

// The reasons, by class: invalid_credentials (ErrInvalidCredentials);
// breaker_open, timeout, transport, server_error, rate_limited
// (ErrUnavailable); unexpected_status, bad_body (ErrProviderFailure).
const (
	ReasonInvalidCredentials Reason = "invalid_credentials" // #nosec G101 -- a metric label, not a credential
	ReasonBreakerOpen        Reason = "breaker_open"
	ReasonTimeout            Reason = "timeout"
	ReasonTransport          Reason = "transport"
	ReasonServerError        Reason = "server_error"
	ReasonRateLimited        Reason = "rate_limited"
	ReasonUnexpectedStatus   Reason = "unexpected_status"
	ReasonBadBody            Reason = "bad_body"
)

// Error is a failed call. It never carries a token, a password or a
// response body, only what is safe to log.
type Error struct {
	// Op is the call: "login", "refresh" or "me".
	Op string
	// Kind is ErrInvalidCredentials, ErrUnavailable or ErrProviderFailure.
	Kind error
	// Reason refines Kind.
	Reason Reason
	// Status is the last HTTP status received (0 when none came).
	Status int
	// Attempts is how many attempts reached the provider.
	Attempts int
	// RetryAfter, for ErrUnavailable, is when the provider may answer
	// again: the breaker's remaining delay while it is open, or the
	// provider's Retry-After; 0 when unknown (see RetryAfter).
	RetryAfter time.Duration
	// Err is the underlying cause, if any.
	Err error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("external auth: %s: %s", e.Op, e.Reason)
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Attempts > 1 {
		s += fmt.Sprintf(" after %d attempts", e.Attempts)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is matches the error's class.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// RetryAfter is the Retry-After an answer to err should carry: the
// error's own when it has one, else one second; 0 when err is not
// ErrUnavailable. Whole seconds, rounded up, since the header has no
// finer unit.
func RetryAfter(err error) time.Duration {
	var e *Error
	if !errors.As(err, &e) || !errors.Is(e.Kind, ErrUnavailable) {
		return 0
	}
	d := max(e.RetryAfter, time.Second)
	if r := d % time.Second; r != 0 {
		d += time.Second - r
	}
	return d
}

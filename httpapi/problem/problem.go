// Package problem is the error vocabulary every layer returns and the HTTP
// layer turns into RFC 9457 application/problem+json (httpapi.WriteError is
// the one place that does so).
//
// It imports neither gin nor net/http, so commands, auth and even pure code
// can return these errors without depending on the transport. A client reads
// the Type slug, never the Detail text, to decide what to do: slugs are part
// of the API contract and must not be renamed.
package problem

import (
	"errors"
	"strconv"
	"time"
)

// TypeBase prefixes every slug to form the problem's `type` URI.
const TypeBase = "https://authledger.dev/problems/"

// Kind is a category of failure a client can act on. Its value is the
// category's default slug; an Error may carry a more specific slug of the
// same kind (a Conflict with slug "email-taken").
//
// A Kind is itself an error so that callers can test a category with
// errors.Is(err, problem.KindNotFound), whatever the specific slug.
type Kind string

// The categories. Each maps to one HTTP status (Kind.Status).
const (
	KindNotFound         Kind = "not-found"
	KindConflict         Kind = "conflict"
	KindInvalidInput     Kind = "invalid-input"
	KindUnauthenticated  Kind = "unauthenticated"
	KindForbidden        Kind = "forbidden"
	KindRateLimited      Kind = "rate-limited"
	KindTooLarge         Kind = "too-large"
	KindUnsupportedType  Kind = "unsupported-type"
	KindUnavailable      Kind = "unavailable"
	KindStorageFull      Kind = "storage-full"
	KindMethodNotAllowed Kind = "method-not-allowed"
	// KindInternal is what every error outside this vocabulary becomes. Its
	// detail never reveals the cause.
	KindInternal Kind = "internal-error"
)

// Error implements error; it is the category's slug.
func (k Kind) Error() string { return "problem: " + string(k) }

// Status is the HTTP status code of the category. Numbers, not net/http
// constants, keep this package free of the transport.
func (k Kind) Status() int {
	switch k {
	case KindNotFound:
		return 404
	case KindConflict:
		return 409
	case KindInvalidInput:
		return 400
	case KindUnauthenticated:
		return 401
	case KindForbidden:
		return 403
	case KindRateLimited:
		return 429
	case KindTooLarge:
		return 413
	case KindUnsupportedType:
		return 415
	case KindUnavailable:
		return 503
	case KindStorageFull:
		return 507
	case KindMethodNotAllowed:
		return 405
	case KindInternal:
		return 500
	}
	return 500
}

// Title is the short, human-readable summary of the category; RFC 9457 says
// it should not change from occurrence to occurrence.
func (k Kind) Title() string {
	switch k {
	case KindNotFound:
		return "Not found"
	case KindConflict:
		return "Conflict"
	case KindInvalidInput:
		return "Invalid input"
	case KindUnauthenticated:
		return "Unauthenticated"
	case KindForbidden:
		return "Forbidden"
	case KindRateLimited:
		return "Too many requests"
	case KindTooLarge:
		return "Payload too large"
	case KindUnsupportedType:
		return "Unsupported media type"
	case KindUnavailable:
		return "Service unavailable"
	case KindStorageFull:
		return "Insufficient storage"
	case KindMethodNotAllowed:
		return "Method not allowed"
	case KindInternal:
		return "Internal server error"
	}
	return "Internal server error"
}

// FieldError names one invalid input field. Field is the JSON name (dotted
// for nested fields, "files[2]" for list items), never a Go field name.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is a failure in the vocabulary. Build it with the constructors
// (NotFound, Conflict, ...). Detail is shown to the client, so it must not
// leak internals or tell whether an account exists; Cause is logged, never
// shown.
type Error struct {
	Kind Kind
	// Slug is the specific problem type ("email-taken"); empty means the
	// Kind's default slug.
	Slug   string
	Detail string
	Fields []FieldError
	// RetryAfter, when positive, becomes the Retry-After header (whole
	// seconds, rounded up).
	RetryAfter time.Duration
	// Cause is the underlying error, for logs and errors.Is/As.
	Cause error
}

// Error renders the problem for logs.
func (e *Error) Error() string {
	s := "problem: " + e.TypeSlug()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Is matches the error's Kind, so errors.Is(err, KindConflict) holds for an
// "email-taken" conflict.
func (e *Error) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind
}

// TypeSlug is the specific slug, or the Kind's when none was given.
func (e *Error) TypeSlug() string {
	if e.Slug != "" {
		return e.Slug
	}
	return string(e.Kind)
}

// TypeURI is the problem's `type` member.
func (e *Error) TypeURI() string { return TypeBase + e.TypeSlug() }

// Status is the HTTP status of the error's Kind.
func (e *Error) Status() int { return e.Kind.Status() }

// WithCause returns a copy of e that wraps cause (for logs; never shown).
// Use it on package-level sentinels so the sentinel itself stays unchanged.
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.Cause = cause
	return &c
}

// WithDetail returns a copy of e with another detail.
func (e *Error) WithDetail(detail string) *Error {
	c := *e
	c.Detail = detail
	return &c
}

// NotFound: the resource does not exist or the caller may not know it does
// (a task of another user answers exactly like a missing one).
func NotFound(detail string) *Error { return &Error{Kind: KindNotFound, Detail: detail} }

// Conflict: the request contradicts the current state. slug names the rule
// ("email-taken", "not-retryable"); empty means plain "conflict".
func Conflict(slug, detail string) *Error {
	return &Error{Kind: KindConflict, Slug: slug, Detail: detail}
}

// Invalid: the input is malformed; fields say which parts and why.
func Invalid(detail string, fields ...FieldError) *Error {
	return &Error{Kind: KindInvalidInput, Detail: detail, Fields: fields}
}

// Unauthenticated: no valid credentials. slug names the case the client may
// distinguish ("invalid-credentials", "invalid-token"); the detail must be
// identical for an unknown account and a wrong password.
func Unauthenticated(slug, detail string) *Error {
	return &Error{Kind: KindUnauthenticated, Slug: slug, Detail: detail}
}

// Forbidden: authenticated, but not allowed.
func Forbidden(detail string) *Error { return &Error{Kind: KindForbidden, Detail: detail} }

// RateLimited: too many attempts or a quota reached ("task-quota"); the
// client may retry after retryAfter.
func RateLimited(slug string, retryAfter time.Duration, detail string) *Error {
	return &Error{Kind: KindRateLimited, Slug: slug, RetryAfter: retryAfter, Detail: detail}
}

// TooLarge: the body, a file or a count exceeds a limit.
func TooLarge(detail string) *Error { return &Error{Kind: KindTooLarge, Detail: detail} }

// UnsupportedType: the content type (as sniffed, not as declared) is not accepted.
func UnsupportedType(detail string) *Error {
	return &Error{Kind: KindUnsupportedType, Detail: detail}
}

// Unavailable: a dependency is down or a bounded wait ran out (a consistency
// token the read models did not reach in time); retry after retryAfter.
func Unavailable(retryAfter time.Duration, detail string) *Error {
	return &Error{Kind: KindUnavailable, RetryAfter: retryAfter, Detail: detail}
}

// StorageFull: the disk or quota the request would write to is full; the
// request wrote nothing and may succeed once space is freed.
func StorageFull(detail string) *Error { return &Error{Kind: KindStorageFull, Detail: detail} }

// From returns the *Error in err's chain, or an internal error wrapping err
// (with a detail that reveals nothing) when there is none. From(nil) is nil.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	var k Kind
	if errors.As(err, &k) {
		return &Error{Kind: k, Cause: err}
	}
	return &Error{Kind: KindInternal, Detail: "The server could not complete the request.", Cause: err}
}

// Document is the RFC 9457 body.
type Document struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Errors   []FieldError `json:"errors,omitempty"`
}

// Document renders e as the body a client sees. instance identifies this
// occurrence (the request id as a URN is a good choice); it may be empty.
func (e *Error) Document(instance string) Document {
	d := Document{
		Type:     e.TypeURI(),
		Title:    e.Kind.Title(),
		Status:   e.Status(),
		Detail:   e.Detail,
		Instance: instance,
		Errors:   e.Fields,
	}
	if d.Detail == "" {
		d.Detail = d.Title + "."
	}
	return d
}

// RetryAfterSeconds is the Retry-After header value, or "" when none applies.
func (e *Error) RetryAfterSeconds() string {
	if e.RetryAfter <= 0 {
		return ""
	}
	secs := int64((e.RetryAfter + time.Second - 1) / time.Second)
	return strconv.FormatInt(secs, 10)
}

package user

import "errors"

var (
	// ErrInvalidInput is matched by every *InvalidInputError.
	ErrInvalidInput = errors.New("user: invalid input")
	// ErrEmailTaken: the address is reserved by another user. The HTTP
	// layer answers 409 email-taken.
	ErrEmailTaken = errors.New("user: email taken")
	// ErrNotRegistered: a command on a user stream with no registration.
	ErrNotRegistered = errors.New("user: not registered")
	// ErrAlreadyRegistered: Register on a stream that already has a user.
	ErrAlreadyRegistered = errors.New("user: already registered")
	// ErrNotReservedBy: releasing an address held by someone else or nobody.
	ErrNotReservedBy = errors.New("user: email not reserved by this user")
)

// InvalidInputError names the input field that broke a rule, with a
// message fit for the client (the errors list of a 400 invalid-input).
type InvalidInputError struct {
	Field   string
	Message string
}

func (e *InvalidInputError) Error() string { return "user: " + e.Field + " " + e.Message }

// Is makes errors.Is(err, ErrInvalidInput) true.
func (e *InvalidInputError) Is(target error) bool { return target == ErrInvalidInput }

func invalid(field, msg string) error { return &InvalidInputError{Field: field, Message: msg} }

// FieldErrors collects every *InvalidInputError in err, including each
// one joined by errors.Join (Register reports email and display name
// problems together), for the errors list of a 400 answer.
func FieldErrors(err error) []*InvalidInputError {
	var out []*InvalidInputError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if ie, ok := e.(*InvalidInputError); ok {
			out = append(out, ie)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

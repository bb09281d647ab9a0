package problem_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/authledger/authledger/httpapi/problem"
)

func TestKindMatchesEverySlugOfItsCategory(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("register: %w", problem.Conflict("email-taken", "taken"))
	if !errors.Is(err, problem.KindConflict) {
		t.Error("an email-taken conflict is not a KindConflict")
	}
	if errors.Is(err, problem.KindNotFound) {
		t.Error("a conflict matched KindNotFound")
	}
}

func TestSentinelsStayUnchanged(t *testing.T) {
	t.Parallel()
	errTaken := problem.Conflict("email-taken", "That email address cannot be registered.")
	cause := errors.New("wrong expected version")
	wrapped := errTaken.WithCause(cause)
	if errTaken.Cause != nil {
		t.Fatal("WithCause changed the sentinel")
	}
	if !errors.Is(wrapped, cause) || !errors.Is(wrapped, problem.KindConflict) {
		t.Error("WithCause lost the cause or the kind")
	}
	if errTaken.WithDetail("x").Detail != "x" || errTaken.Detail == "x" {
		t.Error("WithDetail must copy")
	}
}

func TestFrom(t *testing.T) {
	t.Parallel()
	if problem.From(nil) != nil {
		t.Error("From(nil) is not nil")
	}
	internal := problem.From(errors.New("connection reset by db.internal"))
	if internal.Kind != problem.KindInternal || internal.Status() != 500 {
		t.Errorf("unknown error became %v", internal)
	}
	doc := internal.Document("")
	if doc.Detail == "" || doc.Type != problem.TypeBase+"internal-error" {
		t.Errorf("document %+v", doc)
	}
	if k := problem.From(fmt.Errorf("x: %w", problem.KindForbidden)); k.Status() != 403 {
		t.Errorf("bare kind became %v", k)
	}
}

func TestStatusAndTitleOfEveryKind(t *testing.T) {
	t.Parallel()
	kinds := map[problem.Kind]int{
		problem.KindNotFound: 404, problem.KindConflict: 409, problem.KindInvalidInput: 400,
		problem.KindUnauthenticated: 401, problem.KindForbidden: 403, problem.KindRateLimited: 429,
		problem.KindTooLarge: 413, problem.KindUnsupportedType: 415, problem.KindUnavailable: 503,
		problem.KindMethodNotAllowed: 405, problem.KindInternal: 500,
	}
	for k, status := range kinds {
		if k.Status() != status {
			t.Errorf("%s: status %d, want %d", k, k.Status(), status)
		}
		if k.Title() == "" || (k != problem.KindInternal && k.Title() == problem.KindInternal.Title()) {
			t.Errorf("%s: title %q", k, k.Title())
		}
	}
}

func TestRetryAfterRoundsUp(t *testing.T) {
	t.Parallel()
	cases := map[time.Duration]string{0: "", -time.Second: "", time.Millisecond: "1", time.Second: "1", 1001 * time.Millisecond: "2", time.Minute: "60"}
	for d, want := range cases {
		if got := problem.Unavailable(d, "").RetryAfterSeconds(); got != want {
			t.Errorf("RetryAfter %s → %q, want %q", d, got, want)
		}
	}
}

package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi/problem"
	"github.com/authledger/authledger/outage"
)

// ContentTypeProblem is the media type of every error body (RFC 9457).
const ContentTypeProblem = "application/problem+json"

// WriteError is the one place where an error becomes an HTTP answer: it
// maps err to a problem (see Problem), writes it as
// application/problem+json with Retry-After where one applies, records err
// for the access log and aborts the handler chain. Errors outside the
// problem vocabulary answer 500 without revealing their text.
func WriteError(c *gin.Context, err error) {
	pe := Problem(err)
	writeProblem(c, pe, pe.Document(instance(c)))
	if err != nil {
		_ = c.Error(err)
	}
}

// OutageRetryAfter is the Retry-After of an answer to a request that failed
// because a dependency is down.
const OutageRetryAfter = time.Second

// Problem maps any error to the problem vocabulary: a *problem.Error (or a
// problem.Kind) in the chain wins; a few well-known errors of lower layers
// get their natural meaning (a conflict, a timeout, a full disk: 507, a
// dependency down: 503 with Retry-After, see package outage); everything
// else is an internal error. Problem(nil)
// is an internal error too: a handler that calls WriteError without an error
// has a bug.
func Problem(err error) *problem.Error {
	var pe *problem.Error
	switch {
	case err == nil:
		return problem.From(errors.New("httpapi: WriteError called with a nil error"))
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, eventstore.ErrWrongExpectedVersion):
		// A command retries on conflict; reaching here means it gave up.
		return problem.Conflict("", "The resource was changed concurrently; retry the request.").WithCause(err)
	case errors.Is(err, context.DeadlineExceeded):
		return problem.Unavailable(time.Second, "The request took too long; retry it.").WithCause(err)
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer.
		return problem.Unavailable(time.Second, "The request was cancelled.").WithCause(err)
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return problem.TooLarge("The request body exceeds the limit of this endpoint.").WithCause(err)
	case outage.StorageFull(err):
		return problem.StorageFull("There is no room to store this request; nothing was kept. Retry once space is freed.").WithCause(err)
	case outage.Is(err) || outage.Contention(err):
		// The database, the event store or the file store is down or did
		// not answer: the request may succeed in a moment. A bug is not
		// retryable and stays a 500.
		return problem.Unavailable(OutageRetryAfter, "A service this request needs is unavailable; retry shortly.").WithCause(err)
	}
	return problem.From(err)
}

func writeProblem(c *gin.Context, pe *problem.Error, body any) {
	if ra := pe.RetryAfterSeconds(); ra != "" {
		c.Header("Retry-After", ra)
	}
	b, err := json.Marshal(body)
	if err != nil {
		// Cannot happen with the types we render; answer something valid.
		b = []byte(`{"type":"` + problem.TypeBase + `internal-error","title":"Internal server error","status":500}`)
		pe = &problem.Error{Kind: problem.KindInternal}
	}
	c.Abort()
	if c.Writer.Written() {
		// Headers are gone (a streamed response failed half-way); the error
		// is still recorded for the log.
		return
	}
	c.Data(pe.Status(), ContentTypeProblem, b)
}

// instance identifies this occurrence of a problem by its request id, which
// the client also has in X-Request-ID and support can find in the logs.
func instance(c *gin.Context) string {
	if id := RequestID(c); id != "" {
		return "urn:authledger:request:" + id
	}
	return ""
}

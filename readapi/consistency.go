package readapi

import (
	"context"
	"errors"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
)

// DefaultConsistencyTimeout bounds the wait for a consistency token.
const DefaultConsistencyTimeout = 2 * time.Second

// Waiter waits until projections have applied the log up to a position.
// runtime.Waiter (projections/projector) implements it.
type Waiter interface {
	WaitFor(ctx context.Context, pos eventstore.Position, projections ...string) error
}

// Consistency returns middleware for routes that read the named
// projections: when the request carries X-Consistency-Token it waits until
// every one of them has applied the log up to that position, at most
// timeout (DefaultConsistencyTimeout when 0), then answers 503 with
// Retry-After. A malformed token answers 400. Requests without the header
// pass straight through.
func Consistency(w Waiter, timeout time.Duration, projections ...string) gin.HandlerFunc {
	if timeout <= 0 {
		timeout = DefaultConsistencyTimeout
	}
	retryAfter := max(time.Second, timeout/2)
	return func(c *gin.Context) {
		tok := c.GetHeader(httpapi.HeaderConsistencyToken)
		if tok == "" {
			c.Next()
			return
		}
		pos, err := eventstore.ParsePosition(tok)
		if err != nil {
			httpapi.WriteError(c, problem.Invalid("The consistency token is malformed.",
				problem.FieldError{Field: httpapi.HeaderConsistencyToken, Message: "must be a token returned by a command response"}))
			c.Abort()
			return
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), timeout)
		err = w.WaitFor(ctx, pos, projections...)
		cancel()
		switch {
		case err == nil:
			c.Next()
			return
		case c.Request.Context().Err() != nil:
			// The client went away; nobody reads an answer.
			c.Abort()
			return
		case errors.Is(err, context.DeadlineExceeded):
			httpapi.WriteError(c, problem.Unavailable(retryAfter, "The read models have not caught up with your last write yet; retry shortly.").WithCause(err))
		default:
			httpapi.WriteError(c, problem.Unavailable(retryAfter, "The read models are not available; retry later.").WithCause(err))
		}
		c.Abort()
	}
}

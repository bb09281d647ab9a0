package esdb

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/outage"
)

var (
	// The client reports a failed append's expectation only in its message:
	// "wrong expected version: expecting '5' but got 'no_stream'".
	appendCurrentRE = regexp.MustCompile(`but got '([^']*)'`)
	// Delete and tombstone fail with EventStoreDB's RpcException, whose
	// message carries the versions: "... Actual version: -1".
	removeCurrentRE = regexp.MustCompile(`Actual version: (-?\d+)`)
)

// mapError is the one place where the client's errors become the port's:
// wrong expected version (*eventstore.WrongExpectedVersionError, with the
// current revision), stream not found, stream deleted, the caller's
// context, and the server being unreachable (outage.ErrUnavailable).
// Everything else is wrapped with the operation and the stream.
func (s *Store) mapError(ctx context.Context, op, stream string, expected eventstore.ExpectedRevision, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("esdb: %s %q: %w", op, stream, ctxErr)
	}
	var e *client.Error
	if errors.As(err, &e) {
		switch e.Code() {
		case client.ErrorCodeWrongExpectedVersion:
			return s.wrongVersion(ctx, stream, expected, appendCurrentRE, e)
		case client.ErrorCodeStreamDeleted:
			return fmt.Errorf("esdb: %s %q: %w", op, stream, eventstore.ErrStreamDeleted)
		case client.ErrorCodeResourceNotFound:
			return fmt.Errorf("esdb: %s %q: %w", op, stream, eventstore.ErrStreamNotFound)
		case client.ErrorCodeDeadlineExceeded:
			return fmt.Errorf("esdb: %s %q: %w: %w", op, stream, context.DeadlineExceeded, err)
		case client.ErrorCodeConnectionClosed, client.ErrorCodeNotLeader:
			return fmt.Errorf("esdb: %s %q: %w: %w", op, stream, outage.ErrUnavailable, err)
		}
	}
	if st, ok := status.FromError(err); ok && (st.Code() == codes.Unavailable || st.Code() == codes.ResourceExhausted) {
		return fmt.Errorf("esdb: %s %q: %w: %w", op, stream, outage.ErrUnavailable, err)
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.FailedPrecondition &&
		strings.Contains(strings.ToLower(st.Message()), "wrongexpectedversion") {
		return s.wrongVersion(ctx, stream, expected, removeCurrentRE, err)
	}
	return fmt.Errorf("esdb: %s %q: %w", op, stream, err)
}

// wrongVersion builds the port's error. The current revision comes from
// the error message; when a server words it differently, from a read.
func (s *Store) wrongVersion(ctx context.Context, stream string, expected eventstore.ExpectedRevision, re *regexp.Regexp, err error) error {
	out := &eventstore.WrongExpectedVersionError{Stream: stream, Expected: expected}
	if m := re.FindStringSubmatch(err.Error()); m != nil {
		switch n, perr := strconv.ParseInt(m[1], 10, 64); {
		case m[1] == "no_stream" || (perr == nil && n < 0):
			return out
		case perr == nil:
			out.CurrentExists, out.Current = true, uint64(n)
			return out
		}
	}
	evs, rerr := s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
	if rerr == nil && len(evs) == 1 {
		out.CurrentExists, out.Current = true, evs[0].Revision
	}
	return out
}

package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/authledger/authledger/events"
)

// ReadDecoded reads a whole stream and decodes each event through reg,
// the one decode path (ADR 0022): what a log-fed view reads when its
// follower cannot vouch for memory. A stream that does not exist is no
// events, not an error.
func ReadDecoded(ctx context.Context, s Store, reg *events.Registry, stream string) ([]events.Event, error) {
	recs, err := s.ReadStream(ctx, stream, ReadStreamOptions{})
	if errors.Is(err, ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s cannot be read: %w", stream, err)
	}
	out := make([]events.Event, 0, len(recs))
	for _, r := range recs {
		e, err := reg.Decode(r.Type, r.Data)
		if err != nil {
			return nil, fmt.Errorf("decode %s@%d: %w", stream, r.Revision, err)
		}
		out = append(out, e)
	}
	return out, nil
}

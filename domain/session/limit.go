package session

import (
	"slices"
	"time"

	"github.com/google/uuid"
)

// Summary is what the per-user limit needs to know of an active session.
type Summary struct {
	ID        uuid.UUID
	StartedAt time.Time
}

// OldestBeyondLimit returns the ids of the sessions to revoke (reason
// limit_exceeded) so that, once one more session starts, at most limit are
// active: the oldest first, ties broken by id so every instance picks the
// same. limit 0 means no cap. The caller supplies the active sessions:
// reactors/sessionlimit reads them from the sessions read model once it
// has reached the login, and revokes through the session streams.
func OldestBeyondLimit(active []Summary, limit int) []uuid.UUID {
	if limit <= 0 || len(active) < limit {
		return nil
	}
	s := slices.Clone(active)
	slices.SortFunc(s, func(a, b Summary) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return slices.Compare(a.ID[:], b.ID[:])
	})
	n := len(s) - limit + 1
	out := make([]uuid.UUID, n)
	for i := range n {
		out[i] = s[i].ID
	}
	return out
}

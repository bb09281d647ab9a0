// Package vaultrelease is the policy that deletes a session's external
// provider tokens from the vault (auth/vault) once the session is revoked,
// whoever revoked it: a logout or DELETE /v1/auth/sessions/{id} (which
// delete them in the request too), the session limit, reuse detection,
// expiry, an administrator. Tokens kept for a session that has ended
// would be secrets with no use, and the refresher would go on renewing
// them at the provider.
//
// Under the projection runtime it runs once per revocation, resumes from
// its checkpoint after a restart, and shows in `projections status`.
// Deleting is idempotent, so a revocation handled twice deletes nothing
// the second time.
package vaultrelease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
)

// Name is the policy's checkpoint name.
const Name = "vault_release"

// Deleter deletes a session's tokens (*vault.Vault).
type Deleter interface {
	Delete(ctx context.Context, session uuid.UUID) (bool, error)
}

// Filter selects the revocations.
var Filter = eventstore.Filter{EventTypes: []string{session.EventRevoked}}

// New returns the policy, run like a projection (projector.Runner). A
// failed deletion is retried as the runtime retries any failed event.
func New(vault Deleter, log *slog.Logger) (projector.Projection, error) {
	if vault == nil {
		return nil, errors.New("vaultrelease: a vault is required")
	}
	return projector.NewSideEffect(projector.SideEffect{Name: Name, Filter: Filter, Logger: log,
		Apply: func(ctx context.Context, ev eventstore.RecordedEvent) error {
			// The session id is the stream's: no need to read the
			// event's data.
			sid, err := uuid.Parse(strings.TrimPrefix(ev.Stream, session.StreamPrefix))
			if err != nil {
				return fmt.Errorf("%s on stream %q: %w", ev.Type, ev.Stream, err)
			}
			if _, err := vault.Delete(ctx, sid); err != nil {
				return fmt.Errorf("delete the provider tokens of session %s: %w", sid, err)
			}
			return nil
		}})
}

package commands

import (
	"context"
	"time"

	"github.com/google/uuid"

	domain "github.com/authledger/authledger/domain/apikey"
	"github.com/authledger/authledger/eventstore"
)

// RevokeAPIKey ends key KeyID of OwnerID (another owner's key is
// domain.ErrNotFound, like a missing one).
type RevokeAPIKey struct {
	KeyID   uuid.UUID
	OwnerID uuid.UUID
	Meta    Meta
}

// RevokeAPIKeyResult is the revocation appended (Revoked is zero and
// Position too when the key was revoked already).
type RevokeAPIKeyResult struct {
	Revoked  domain.Revoked
	Position eventstore.Position
}

// RevokeAPIKeyHandler appends api_key.revoked.v1.
type RevokeAPIKeyHandler struct {
	Keys *Repository[*domain.Key]
	Now  func() time.Time
}

// Handle revokes.
func (h *RevokeAPIKeyHandler) Handle(ctx context.Context, cmd RevokeAPIKey) (RevokeAPIKeyResult, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	var out RevokeAPIKeyResult
	res, err := h.Keys.Update(ctx, domain.StreamName(cmd.KeyID), cmd.Meta, func(k *domain.Key) error {
		if err := k.Revoke(cmd.OwnerID, now); err != nil {
			return err
		}
		out.Revoked = domain.Revoked{}
		for _, e := range k.Changes() {
			out.Revoked, _ = e.(domain.Revoked)
		}
		return nil
	})
	out.Position = res.Position
	return out, err
}

package commands

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/eventstore"
)

// RecordExternalRefresh records a renewal of a session's provider tokens
// by the vault's refresher (vault.RefresherConfig.OnRenewed).
type RecordExternalRefresh struct {
	SessionID uuid.UUID
	Tokens    session.ExternalTokens
	// RefreshedAt is when the vault stored the new tokens.
	RefreshedAt time.Time
	Meta        Meta
}

// RecordExternalRefreshHandler appends session.external_tokens_refreshed.v1
// (the fingerprints and expiry, never the tokens). A session revoked
// meanwhile records nothing and is no error: its tokens are on their way
// out of the vault.
//
// The event becomes the session stream's last, which session.Resume does
// not resume from: the next refresh of our tokens folds the whole stream
// once (a renewal is hourly, our refreshes every few minutes).
type RecordExternalRefreshHandler struct {
	Sessions *Repository[*session.Session]
}

// Handle records the renewal.
func (h *RecordExternalRefreshHandler) Handle(ctx context.Context, cmd RecordExternalRefresh) (eventstore.AppendResult, error) {
	res, err := h.Sessions.Update(ctx, session.StreamName(cmd.SessionID), cmd.Meta, func(s *session.Session) error {
		return s.RecordExternalTokensRefreshed(cmd.Tokens, cmd.RefreshedAt)
	})
	if errors.Is(err, session.ErrRevoked) {
		return eventstore.AppendResult{}, nil
	}
	return res, err
}

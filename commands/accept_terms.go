package commands

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// AcceptTerms records a user accepting a version of the terms of service.
type AcceptTerms struct {
	UserID  uuid.UUID
	Version string
	Meta    Meta
}

// AcceptTermsHandler appends user.terms_accepted.v1; the version must be
// Current (AUTHLEDGER_TERMS_VERSION): nobody accepts a version that is not
// offered.
type AcceptTermsHandler struct {
	Users   *Repository[*user.User]
	Current string
	Now     func() time.Time
}

// Handle accepts. A version other than Current is an invalid input on
// terms_version; accepting the version accepted last appends nothing.
func (h *AcceptTermsHandler) Handle(ctx context.Context, cmd AcceptTerms) (eventstore.AppendResult, error) {
	if h.Current == "" || cmd.Version != h.Current {
		return eventstore.AppendResult{}, &user.InvalidInputError{Field: "terms_version", Message: "must be the current terms version"}
	}
	now := nowOf(h.Now)
	return h.Users.Update(ctx, user.StreamName(cmd.UserID), cmd.Meta, func(u *user.User) error {
		if !u.Registered() {
			return ErrUserNotFound
		}
		return u.AcceptTerms(cmd.Version, now)
	})
}

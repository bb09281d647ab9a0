package commands

import (
	"errors"
	"time"

	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
)

// ErrUserNotFound: an administrator's command names no registered user.
// Only callers allowed to list users get it, so it tells them nothing
// they could not see.
var ErrUserNotFound = errors.New("commands: no such user")

// AdminHandlers are the administrators' commands: roles, grants, account
// states and bulk revocation. The CLI (`authledger users grant-role`) and
// the admin API run the same handlers; the actor is in each command's
// Meta.
type AdminHandlers struct {
	GrantRole      *GrantRoleHandler
	RevokeRole     *RevokeRoleHandler
	DefineRole     *DefineRoleHandler
	ChangeAccount  *ChangeAccountHandler
	RevokeSessions *RevokeSessionsBeforeHandler
}

// NewAdminHandlers builds them on store. registry must hold the user,
// session and role events. now is the clock (nil: time.Now).
func NewAdminHandlers(store eventstore.Store, registry *events.Registry, now func() time.Time) (*AdminHandlers, error) {
	users, err := NewRepository(store, registry, user.FromHistory)
	if err != nil {
		return nil, err
	}
	roles, err := NewRepository(store, registry, access.FromHistory)
	if err != nil {
		return nil, err
	}
	cutoffs, err := NewRepository(store, registry, session.CutoffsFromHistory)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	revoke := &RevokeSessionsBeforeHandler{Cutoffs: cutoffs, Now: now}
	return &AdminHandlers{
		GrantRole:      &GrantRoleHandler{Users: users, Roles: roles, Now: now},
		RevokeRole:     &RevokeRoleHandler{Users: users, Now: now},
		DefineRole:     &DefineRoleHandler{Roles: roles, Now: now},
		ChangeAccount:  &ChangeAccountHandler{Users: users, Revoke: revoke, Now: now},
		RevokeSessions: revoke,
	}, nil
}

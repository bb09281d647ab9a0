package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/eventstore"
)

// The ways DefineRole changes the catalog.
const (
	RoleCreate = "create"
	RoleChange = "change"
	RoleDelete = "delete"
)

// DefineRole creates, changes or deletes a custom role.
type DefineRole struct {
	// Op is RoleCreate, RoleChange or RoleDelete.
	Op         string
	Name       string
	Definition access.Definition
	Meta       Meta
}

// DefineRoleResult is the role after the change (zero after a delete)
// and the position written.
type DefineRoleResult struct {
	Role     access.Role
	Position eventstore.AppendResult
}

// DefineRoleHandler decides on the whole catalog (the one roles stream)
// and appends at its revision, so that two changes that together would
// close a cycle cannot both pass.
type DefineRoleHandler struct {
	Roles *Repository[*access.Catalog]
	Now   func() time.Time
}

// Handle defines.
func (h *DefineRoleHandler) Handle(ctx context.Context, cmd DefineRole) (DefineRoleResult, error) {
	var role access.Role
	res, err := h.Roles.Update(ctx, access.StreamName, cmd.Meta, func(c *access.Catalog) error {
		var err error
		switch cmd.Op {
		case RoleCreate:
			err = c.Create(cmd.Name, cmd.Definition, h.Now())
		case RoleChange:
			err = c.Change(cmd.Name, cmd.Definition, h.Now())
		case RoleDelete:
			err = c.Delete(cmd.Name, h.Now())
		default:
			return fmt.Errorf("commands: unknown role operation %q", cmd.Op)
		}
		role, _ = c.Role(cmd.Name)
		return err
	})
	return DefineRoleResult{Role: role, Position: res}, err
}

package access

import (
	"errors"

	"github.com/authledger/authledger/domain/user"
)

var (
	// ErrRoleNotFound: no role (built-in or custom, not deleted) of that
	// name.
	ErrRoleNotFound = errors.New("access: no such role")
	// ErrRoleExists: a role of that name exists, or existed and was
	// deleted (names are not reused).
	ErrRoleExists = errors.New("access: role exists")
	// ErrBuiltinRole: admin, auditor and user cannot be changed or
	// deleted.
	ErrBuiltinRole = errors.New("access: built-in role")
	// ErrRoleInUse: a role other roles inherit cannot be deleted.
	ErrRoleInUse = errors.New("access: role inherited by another role")
)

// invalid is the user package's field error, so that one 400
// invalid-input answer lists every broken field of a role as of a user.
func invalid(field, msg string) error { return &user.InvalidInputError{Field: field, Message: msg} }

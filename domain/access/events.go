package access

import (
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/events"
)

// StreamName is the one stream of custom roles (Catalog).
const StreamName = "roles"

// Event names: data in the log, never renamed.
const (
	EventRoleCreated = "role.created.v1"
	EventRoleChanged = "role.changed.v1"
	EventRoleDeleted = "role.deleted.v1"
)

// RoleCreated adds a custom role: its permissions and the roles it
// inherits (parents), all of which existed when it was created.
type RoleCreated struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Permissions []Permission `json:"permissions"`
	Parents     []string     `json:"parents,omitempty"`
	CreatedAt   time.Time    `json:"created_at"`
}

// RoleChanged replaces a custom role's description, permissions and
// parents (the whole of each, not a difference).
type RoleChanged struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Permissions []Permission `json:"permissions"`
	Parents     []string     `json:"parents,omitempty"`
	ChangedAt   time.Time    `json:"changed_at"`
}

// RoleDeleted removes a custom role. Its grants stay on the user streams
// and count for nothing; its name is not given to a new role (Create
// refuses it), so that no old grant comes back to life.
type RoleDeleted struct {
	Name      string    `json:"name"`
	DeletedAt time.Time `json:"deleted_at"`
}

func (RoleCreated) EventName() string { return EventRoleCreated }
func (RoleChanged) EventName() string { return EventRoleChanged }
func (RoleDeleted) EventName() string { return EventRoleDeleted }

// AllEvents lists one zero value of every event type of this package.
func AllEvents() []events.Event {
	return []events.Event{RoleCreated{}, RoleChanged{}, RoleDeleted{}, BootstrapAdminApplied{}}
}

// RegisterEvents adds the role events to r as value types.
func RegisterEvents(r *events.Registry) error { return r.Register(AllEvents()...) }

// EventBootstrapAdminApplied is the name of BootstrapAdminApplied.
const EventBootstrapAdminApplied = "access.bootstrap_admin_applied.v1"

// BootstrapStreamPrefix starts the stream that records the bootstrap
// admin (AUTHLEDGER_BOOTSTRAP_ADMIN) applied to one user:
// "bootstrap-admin-<user id>", appended with NoStream once.
const BootstrapStreamPrefix = "bootstrap-admin-"

// BootstrapAdminApplied records that the bootstrap admin setting gave
// UserID the admin role, so that no later start (of any instance) gives
// it again after an administrator revoked it.
type BootstrapAdminApplied struct {
	UserID    uuid.UUID `json:"user_id"`
	AppliedAt time.Time `json:"applied_at"`
}

// EventName implements events.Event.
func (BootstrapAdminApplied) EventName() string { return EventBootstrapAdminApplied }

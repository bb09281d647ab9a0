package access

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
)

// The built-in roles: they exist from the start, on every deployment,
// and cannot be changed or deleted.
const (
	RoleAdmin   = user.RoleAdmin
	RoleAuditor = user.RoleAuditor
	RoleUser    = user.DefaultRole
)

// MaxRoles bounds the custom roles (every instance holds the catalog in
// memory and folds it at each change); MaxParents a role's parents;
// MaxDescriptionLength a description, in code points.
const (
	MaxRoles             = 1000
	MaxParents           = 16
	MaxDescriptionLength = 500
)

// Role is a named set of permissions, with the roles it inherits.
type Role struct {
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Permissions []Permission `json:"permissions"`
	Parents     []string     `json:"parents"`
	Builtin     bool         `json:"builtin"`
}

// builtins are the built-in roles. The admin holds every permission of
// Table (so a new permission is the admin's at once); the user role what
// every registered user may do with their own things.
func builtins() map[string]Role {
	all := make([]Permission, 0, len(table))
	for _, d := range table {
		all = append(all, d.Permission)
	}
	return map[string]Role{
		RoleAdmin: {Name: RoleAdmin, Description: "Every permission.", Permissions: all, Builtin: true},
		RoleAuditor: {Name: RoleAuditor, Description: "Reads the whole audit trail, the users and the roles.",
			Permissions: []Permission{AuditRead, UsersRead, RolesRead}, Builtin: true},
		RoleUser: {Name: RoleUser, Description: "Uses the service for oneself; granted at registration.",
			Permissions: []Permission{AccountRead, AccountSessionsRevoke, AccountIdentities, AccountAPIKeys, AccountWrite, TasksCreate, TasksRead, TasksWrite}, Builtin: true},
	}
}

// Catalog is the aggregate of the roles stream: the built-in roles and
// the custom ones. The zero value is not usable; build one with
// FromHistory (FromHistory(nil) for a deployment without custom roles).
type Catalog struct {
	roles map[string]Role
	// deleted names, never reused.
	deleted map[string]bool

	version int
	changes []events.Event
}

// FromHistory folds the roles stream, oldest first.
func FromHistory(history []events.Event) (*Catalog, error) {
	c := &Catalog{roles: builtins(), deleted: map[string]bool{}}
	for _, e := range history {
		if err := c.apply(e); err != nil {
			return nil, err
		}
		c.version++
	}
	return c, nil
}

// Builtin is the catalog of a log without custom roles.
func Builtin() *Catalog {
	c, _ := FromHistory(nil)
	return c
}

// Version is the number of events folded (see commands.Aggregate).
func (c *Catalog) Version() int { return c.version }

// Changes are the events recorded since loading.
func (c *Catalog) Changes() []events.Event { return slices.Clone(c.changes) }

// Role returns the role named name.
func (c *Catalog) Role(name string) (Role, bool) {
	r, ok := c.roles[name]
	return cloneRole(r), ok
}

// Roles lists every role, built-in ones first, then by name.
func (c *Catalog) Roles() []Role {
	out := make([]Role, 0, len(c.roles))
	for _, r := range c.roles {
		out = append(out, cloneRole(r))
	}
	slices.SortFunc(out, func(a, b Role) int {
		if a.Builtin != b.Builtin {
			if a.Builtin {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// Effective is every permission a holder of roles has: each role's own
// and those of every role it inherits, transitively. A name that is no
// role (a deleted one, a role granted before the catalog knew it) counts
// for nothing.
func (c *Catalog) Effective(roles []string) Set {
	out := Set{}
	seen := map[string]bool{}
	var walk func(string)
	walk = func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		r, ok := c.roles[name]
		if !ok {
			return
		}
		for _, p := range r.Permissions {
			out[p] = struct{}{}
		}
		for _, parent := range r.Parents {
			walk(parent)
		}
	}
	for _, r := range roles {
		walk(r)
	}
	return out
}

// Definition is what a Create or Change sets.
type Definition struct {
	Description string
	Permissions []Permission
	Parents     []string
}

// Create adds a custom role. The name follows user.ValidateRole; every
// permission must be in Table, every parent an existing role; a deleted
// role's name is refused (ErrRoleExists).
func (c *Catalog) Create(name string, d Definition, now time.Time) error {
	if err := user.ValidateRole(name); err != nil {
		return err
	}
	if _, ok := c.roles[name]; ok || c.deleted[name] {
		return fmt.Errorf("%w: %s", ErrRoleExists, name)
	}
	if len(c.roles)-len(builtins()) >= MaxRoles {
		return invalid("name", fmt.Sprintf("at most %d custom roles may exist", MaxRoles))
	}
	d, err := c.check(name, d)
	if err != nil {
		return err
	}
	c.record(RoleCreated{Name: name, Description: d.Description, Permissions: d.Permissions, Parents: d.Parents, CreatedAt: now.UTC()})
	return nil
}

// Change replaces a custom role's definition. A parent that would make
// the role inherit itself, directly or through others, is refused; the
// same definition records nothing.
func (c *Catalog) Change(name string, d Definition, now time.Time) error {
	r, ok := c.roles[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrRoleNotFound, name)
	}
	if r.Builtin {
		return fmt.Errorf("%w: %s", ErrBuiltinRole, name)
	}
	d, err := c.check(name, d)
	if err != nil {
		return err
	}
	if d.Description == r.Description && slices.Equal(d.Permissions, r.Permissions) && slices.Equal(d.Parents, r.Parents) {
		return nil
	}
	c.record(RoleChanged{Name: name, Description: d.Description, Permissions: d.Permissions, Parents: d.Parents, ChangedAt: now.UTC()})
	return nil
}

// Delete removes a custom role no other role inherits.
func (c *Catalog) Delete(name string, now time.Time) error {
	r, ok := c.roles[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrRoleNotFound, name)
	}
	if r.Builtin {
		return fmt.Errorf("%w: %s", ErrBuiltinRole, name)
	}
	for _, o := range c.roles {
		if slices.Contains(o.Parents, name) {
			return fmt.Errorf("%w: %s inherits %s", ErrRoleInUse, o.Name, name)
		}
	}
	c.record(RoleDeleted{Name: name, DeletedAt: now.UTC()})
	return nil
}

// check validates and normalises d (sorted, without duplicates) for the
// role name, refusing a cycle through its parents.
func (c *Catalog) check(name string, d Definition) (Definition, error) {
	var errs []error
	d.Description = strings.TrimSpace(d.Description)
	if !utf8.ValidString(d.Description) || utf8.RuneCountInString(d.Description) > MaxDescriptionLength {
		errs = append(errs, invalid("description", fmt.Sprintf("must be valid UTF-8 and at most %d characters long", MaxDescriptionLength)))
	}
	for _, p := range d.Permissions {
		if !Known(p) {
			errs = append(errs, invalid("permissions", fmt.Sprintf("%q is not a permission (GET /v1/admin/permissions lists them)", p)))
		}
	}
	if len(d.Parents) > MaxParents {
		errs = append(errs, invalid("parents", fmt.Sprintf("at most %d parents", MaxParents)))
	}
	for _, p := range d.Parents {
		if _, ok := c.roles[p]; !ok {
			errs = append(errs, invalid("parents", fmt.Sprintf("%q is not a role", p)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return d, err
	}
	d.Permissions = slices.Compact(slices.Sorted(slices.Values(d.Permissions)))
	d.Parents = slices.Compact(slices.Sorted(slices.Values(d.Parents)))
	if d.Permissions == nil {
		d.Permissions = []Permission{}
	}
	for _, p := range d.Parents {
		if p == name || c.inherits(p, name) {
			return d, invalid("parents", fmt.Sprintf("%q inherits %q: roles may not inherit in a cycle", p, name))
		}
	}
	return d, nil
}

// inherits reports whether role from reaches role to through parents.
func (c *Catalog) inherits(from, to string) bool {
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(n string) bool {
		if n == to {
			return true
		}
		if seen[n] {
			return false
		}
		seen[n] = true
		return slices.ContainsFunc(c.roles[n].Parents, walk)
	}
	return walk(from)
}

func (c *Catalog) record(e events.Event) {
	if err := c.apply(e); err != nil {
		panic(err)
	}
	c.changes = append(c.changes, e)
}

func (c *Catalog) apply(e events.Event) error {
	switch e := e.(type) {
	case RoleCreated:
		c.roles[e.Name] = Role{Name: e.Name, Description: e.Description, Permissions: slices.Clone(e.Permissions), Parents: slices.Clone(e.Parents)}
	case RoleChanged:
		c.roles[e.Name] = Role{Name: e.Name, Description: e.Description, Permissions: slices.Clone(e.Permissions), Parents: slices.Clone(e.Parents)}
	case RoleDeleted:
		delete(c.roles, e.Name)
		c.deleted[e.Name] = true
	default:
		return fmt.Errorf("access: unexpected event %T on the roles stream", e)
	}
	return nil
}

func cloneRole(r Role) Role {
	r.Permissions = slices.Clone(r.Permissions)
	r.Parents = slices.Clone(r.Parents)
	if r.Permissions == nil {
		r.Permissions = []Permission{}
	}
	if r.Parents == nil {
		r.Parents = []string{}
	}
	return r
}

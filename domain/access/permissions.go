// Package access is who may do what: the permissions the service knows
// (one table, Table), the roles that bundle them (the built-in admin,
// auditor and user, and custom roles created at run time, which may
// inherit other roles), and the effective permissions of a holder of
// some roles (Catalog.Effective).
//
// Custom roles live on one stream, "roles" (Catalog), so that a change
// that could close a cycle of inheritance is decided against every role
// at once and appended at that stream's revision. Grants of a role to a
// user live on the user's stream (domain/user Grant), with an optional
// expiry: Grant.ActiveAt tells whether one counts at a given time, so an
// expired grant stops counting without an event.
//
// The package is pure: time comes in as an argument.
package access

import (
	"slices"
	"strings"

	"github.com/google/uuid"
)

// Permission is a "resource:action" string, optionally ":any" for the
// resources of every owner (tasks:read is the caller's own tasks,
// tasks:read:any everyone's). Only the permissions of Table exist.
type Permission string

// The permissions the service checks. Adding one: add it here and to
// Table (TestTableDescribesEveryPermission holds them equal); the admin
// role holds every permission of Table.
const (
	AccountRead           Permission = "account:read"
	AccountSessionsRevoke Permission = "account:sessions:revoke"
	AccountIdentities     Permission = "account:identities:write"
	AccountWrite          Permission = "account:write"
	TasksCreate           Permission = "tasks:create"
	TasksRead             Permission = "tasks:read"
	TasksReadAny          Permission = "tasks:read:any"
	TasksWrite            Permission = "tasks:write"
	TasksDeleteAny        Permission = "tasks:delete:any"
	AuditRead             Permission = "audit:read"
	UsersRead             Permission = "users:read"
	UsersWrite            Permission = "users:write"
	SessionsRevokeAny     Permission = "sessions:revoke:any"
	RolesRead             Permission = "roles:read"
	RolesWrite            Permission = "roles:write"
	GrantsWrite           Permission = "grants:write"
	RolloutRead           Permission = "rollout:read"
	RolloutWrite          Permission = "rollout:write"
	AccountAPIKeys        Permission = "account:api_keys"
	ServiceAccountsRead   Permission = "service_accounts:read"
	ServiceAccountsWrite  Permission = "service_accounts:write"
	TokensIntrospect      Permission = "tokens:introspect"
	WebhooksManage        Permission = "webhooks:manage"
	UsersExport           Permission = "users:export"
	UsersErase            Permission = "users:erase"
)

// Described is one row of Table.
type Described struct {
	Permission  Permission `json:"permission"`
	Description string     `json:"description"`
}

// table is the one list of permissions, in the order GET
// /v1/admin/permissions shows them.
var table = []Described{
	{AccountRead, "Read one's own profile, sessions and audit trail."},
	{AccountSessionsRevoke, "End one's own sessions (log out, end a session by id)."},
	{AccountIdentities, "Link an upstream sign-in provider to one's own account and unlink it."},
	{AccountWrite, "Change one's own profile (display name, email address) and password."},
	{TasksCreate, "Upload files as a new task."},
	{TasksRead, "List and read one's own tasks, their history, statistics and files."},
	{TasksReadAny, "Read any user's task and download its files (each read is recorded)."},
	{TasksWrite, "Delete or retry one's own tasks."},
	{TasksDeleteAny, "Delete any user's task."},
	{AuditRead, "Read the whole audit trail."},
	{UsersRead, "List users, read any user's account and sessions."},
	{UsersWrite, "Lock, unlock, disable, enable and force the logout of users."},
	{SessionsRevokeAny, "Revoke sessions in bulk (every session issued before a time, for everyone, one user or one role)."},
	{RolesRead, "List roles and permissions."},
	{RolesWrite, "Create, change and delete custom roles."},
	{GrantsWrite, "Grant roles to users (with an optional expiry) and revoke them."},
	{RolloutRead, "Read the staged rollout of external login."},
	{RolloutWrite, "Change the staged rollout of external login."},
	{AccountAPIKeys, "Create, list and revoke one's own API keys (each holding some of one's own permissions)."},
	{ServiceAccountsRead, "List service accounts and their API keys."},
	{ServiceAccountsWrite, "Create service accounts (with roles one holds all of) and create and revoke their API keys."},
	{UsersExport, "Export any user's data (profile, sessions, identities, API keys, tasks with their files, audit trail, consents) as one archive."},
	{UsersErase, "Erase any user's account for good (crypto-shredding: the personal data in the log can no longer be read)."},
	{TokensIntrospect, "Introspect (RFC 7662) and revoke (RFC 7009) any access token, refresh token or API key: for services that accept our tokens."},
	{WebhooksManage, "Register, list, disable, enable and delete webhook endpoints, and read and resend their deliveries."},
}

// Table returns every permission with its description.
func Table() []Described { return slices.Clone(table) }

// Known reports whether p is in Table.
func Known(p Permission) bool {
	return slices.ContainsFunc(table, func(d Described) bool { return d.Permission == p })
}

// Any is p's ":any" form (the same permission over every owner's
// resources); p itself when it is already one.
func (p Permission) Any() Permission {
	if strings.HasSuffix(string(p), ":any") {
		return p
	}
	return p + ":any"
}

// Set is a set of permissions. The zero value holds none.
type Set map[Permission]struct{}

// NewSet returns a set of ps.
func NewSet(ps ...Permission) Set {
	s := make(Set, len(ps))
	for _, p := range ps {
		s[p] = struct{}{}
	}
	return s
}

// Has reports whether s holds p.
func (s Set) Has(p Permission) bool { _, ok := s[p]; return ok }

// Allows decides one request by the holder of s, caller, on a resource
// of owner: uuid.Nil for a resource no user owns (the audit trail, the
// user list), where need alone decides; the caller's own resource, where
// need or need.Any() does; another user's, where only need.Any() does.
func (s Set) Allows(need Permission, caller, owner uuid.UUID) bool {
	switch owner {
	case uuid.Nil:
		return s.Has(need)
	case caller:
		return s.Has(need) || s.Has(need.Any())
	default:
		return s.Has(need.Any())
	}
}

// Sorted lists s in Table order.
func (s Set) Sorted() []Permission {
	out := make([]Permission, 0, len(s))
	for _, d := range table {
		if s.Has(d.Permission) {
			out = append(out, d.Permission)
		}
	}
	return out
}

// Intersect is the permissions both s and o hold (an API key's scopes
// against its owner's permissions now).
func (s Set) Intersect(o Set) Set {
	out := Set{}
	for p := range s {
		if o.Has(p) {
			out[p] = struct{}{}
		}
	}
	return out
}

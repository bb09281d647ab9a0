// Package admin serves the administrators' commands under /v1/admin:
// account states (lock, unlock, disable, enable, force logout), roles
// (create, change, delete; listed from the instance's role catalog),
// grants (with an optional expiry) and bulk revocation. The user list, a
// user's profile and sessions are queries (readapi). Every route declares
// its permission (httpapi.Require); every change is an event whose actor
// is the administrator, so it shows in the audit trail.
package admin

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
)

// Catalog is the role catalog as this instance knows it
// (auth/access.Live).
type Catalog interface {
	Catalog(ctx context.Context) (*access.Catalog, error)
}

// Deps are what the endpoints need, built by cmd/.
type Deps struct {
	Admin   *commands.AdminHandlers
	Catalog Catalog
	// Now is the clock of "before now" checks (nil: time.Now).
	Now func() time.Time
}

// Validate reports every missing dependency at once.
func (d Deps) Validate() error {
	var errs []error
	if d.Admin == nil || d.Admin.GrantRole == nil || d.Admin.RevokeRole == nil || d.Admin.DefineRole == nil ||
		d.Admin.ChangeAccount == nil || d.Admin.RevokeSessions == nil {
		errs = append(errs, errors.New("httpapi/admin: Deps needs every admin handler"))
	}
	if d.Catalog == nil {
		errs = append(errs, errors.New("httpapi/admin: Deps needs the Catalog"))
	}
	return errors.Join(errs...)
}

// Mount registers the endpoints on rg (the /v1 group, behind the
// authentication middleware).
func Mount(rg *gin.RouterGroup, d Deps) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	h := &handlers{d: d}
	usersWrite := httpapi.Require(access.UsersWrite)
	for _, op := range []string{commands.AccountLock, commands.AccountUnlock, commands.AccountDisable, commands.AccountEnable} {
		rg.POST("/admin/users/:id/"+op, usersWrite, h.changeAccount(op))
	}
	rg.POST("/admin/users/:id/logout", usersWrite, h.forceLogout)
	rg.PUT("/admin/users/:id/roles/:role", httpapi.Require(access.GrantsWrite), h.grant)
	rg.DELETE("/admin/users/:id/roles/:role", httpapi.Require(access.GrantsWrite), h.revoke)

	rolesRead, rolesWrite := httpapi.Require(access.RolesRead), httpapi.Require(access.RolesWrite)
	rg.GET("/admin/permissions", rolesRead, h.permissions)
	rg.GET("/admin/roles", rolesRead, h.roles)
	rg.GET("/admin/roles/:role", rolesRead, h.role)
	rg.POST("/admin/roles", rolesWrite, h.createRole)
	rg.PUT("/admin/roles/:role", rolesWrite, h.changeRole)
	rg.DELETE("/admin/roles/:role", rolesWrite, h.deleteRole)

	rg.POST("/admin/sessions/revoke", httpapi.Require(access.SessionsRevokeAny), h.revokeSessions)
	return nil
}

type handlers struct{ d Deps }

// meta is the metadata of the events the administrator's request
// appends: the administrator is the actor.
func meta(c *gin.Context) (commands.Meta, bool) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return commands.Meta{}, false
	}
	return commands.RequestMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent(), p.Actor()), true
}

// onUser is the metadata of an administrator's request on the user of
// the path; a path id that is no UUID names no user.
func onUser(c *gin.Context) (commands.Meta, uuid.UUID, bool) {
	m, ok := meta(c)
	if !ok {
		return m, uuid.Nil, false
	}
	id, err := uuid.Parse(c.Param("id"))
	if err != nil || id == uuid.Nil {
		httpapi.WriteError(c, commands.ErrUserNotFound)
		return m, uuid.Nil, false
	}
	return m, id, true
}

// done answers a command: 204 with the position written, if any.
func done(c *gin.Context, res eventstore.AppendResult, err error) {
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	if !res.Position.IsZero() {
		httpapi.SetConsistencyToken(c, res.Position)
	}
	c.Status(http.StatusNoContent)
}

// reason reads an optional {"reason": "..."} body; an empty body is no
// reason.
func reason(c *gin.Context) (string, bool) {
	var body struct {
		Reason string `json:"reason"`
	}
	if c.Request.ContentLength != 0 {
		if err := httpapi.BindJSON(c, &body); err != nil {
			httpapi.WriteError(c, err)
			return "", false
		}
	}
	return body.Reason, true
}

func (h *handlers) changeAccount(op string) gin.HandlerFunc {
	return func(c *gin.Context) {
		m, id, ok := onUser(c)
		if !ok {
			return
		}
		why, ok := reason(c)
		if !ok {
			return
		}
		res, err := h.d.Admin.ChangeAccount.Handle(c.Request.Context(), commands.ChangeAccount{UserID: id, Op: op, Reason: why, Meta: m})
		done(c, res, err)
	}
}

// forceLogout ends every session of the user: a cutoff at now for them.
func (h *handlers) forceLogout(c *gin.Context) {
	m, id, ok := onUser(c)
	if !ok {
		return
	}
	why, ok := reason(c)
	if !ok {
		return
	}
	if why == "" {
		why = "force logout"
	}
	if err := h.d.Admin.ChangeAccount.Exists(c.Request.Context(), id); err != nil {
		httpapi.WriteError(c, err)
		return
	}
	res, err := h.d.Admin.RevokeSessions.Handle(c.Request.Context(), commands.RevokeSessionsBefore{Before: h.d.Now(), UserID: id, Reason: why, Meta: m})
	done(c, res, err)
}

// GrantResponse is the body of PUT /v1/admin/users/{id}/roles/{role}.
type GrantResponse struct {
	UserID    uuid.UUID  `json:"user_id"`
	Role      string     `json:"role"`
	ExpiresAt *time.Time `json:"expires_at"`
}

func (h *handlers) grant(c *gin.Context) {
	m, id, ok := onUser(c)
	if !ok {
		return
	}
	var body struct {
		ExpiresAt *time.Time `json:"expires_at"`
	}
	if c.Request.ContentLength != 0 {
		if err := httpapi.BindJSON(c, &body); err != nil {
			httpapi.WriteError(c, err)
			return
		}
	}
	var until time.Time
	if body.ExpiresAt != nil {
		until = body.ExpiresAt.UTC()
	}
	role := c.Param("role")
	res, err := h.d.Admin.GrantRole.Handle(c.Request.Context(), commands.GrantRole{UserID: id, Role: role, ExpiresAt: until, Meta: m})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	if !res.Position.IsZero() {
		httpapi.SetConsistencyToken(c, res.Position)
	}
	c.JSON(http.StatusOK, GrantResponse{UserID: id, Role: role, ExpiresAt: body.ExpiresAt})
}

func (h *handlers) revoke(c *gin.Context) {
	m, id, ok := onUser(c)
	if !ok {
		return
	}
	res, err := h.d.Admin.RevokeRole.Handle(c.Request.Context(), commands.RevokeRole{UserID: id, Role: c.Param("role"), Meta: m})
	done(c, res, err)
}

// PermissionsResponse is the body of GET /v1/admin/permissions.
type PermissionsResponse struct {
	Items []access.Described `json:"items"`
}

func (h *handlers) permissions(c *gin.Context) {
	c.JSON(http.StatusOK, PermissionsResponse{Items: access.Table()})
}

// RolesResponse is the body of GET /v1/admin/roles.
type RolesResponse struct {
	Items []access.Role `json:"items"`
}

func (h *handlers) roles(c *gin.Context) {
	cat, err := h.d.Catalog.Catalog(c.Request.Context())
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, RolesResponse{Items: cat.Roles()})
}

// role answers one role, as this instance knows it: a change made a
// moment ago on another instance may take the follower's lag to show.
func (h *handlers) role(c *gin.Context) {
	cat, err := h.d.Catalog.Catalog(c.Request.Context())
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	r, ok := cat.Role(c.Param("role"))
	if !ok {
		httpapi.WriteError(c, access.ErrRoleNotFound)
		return
	}
	c.JSON(http.StatusOK, r)
}

// roleBody is the body of POST and PUT /v1/admin/roles.
type roleBody struct {
	Name        string              `json:"name"`
	Description string              `json:"description"`
	Permissions []access.Permission `json:"permissions"`
	Parents     []string            `json:"parents"`
}

func (b roleBody) definition() access.Definition {
	return access.Definition{Description: b.Description, Permissions: b.Permissions, Parents: b.Parents}
}

func (h *handlers) defineRole(c *gin.Context, op, name string, def access.Definition, status int) {
	m, ok := meta(c)
	if !ok {
		return
	}
	res, err := h.d.Admin.DefineRole.Handle(c.Request.Context(), commands.DefineRole{Op: op, Name: name, Definition: def, Meta: m})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	if !res.Position.Position.IsZero() {
		httpapi.SetConsistencyToken(c, res.Position.Position)
	}
	if status == http.StatusNoContent {
		c.Status(status)
		return
	}
	c.JSON(status, res.Role)
}

func (h *handlers) createRole(c *gin.Context) {
	var b roleBody
	if err := httpapi.BindJSON(c, &b); err != nil {
		httpapi.WriteError(c, err)
		return
	}
	h.defineRole(c, commands.RoleCreate, b.Name, b.definition(), http.StatusCreated)
}

func (h *handlers) changeRole(c *gin.Context) {
	var b roleBody
	if err := httpapi.BindJSON(c, &b); err != nil {
		httpapi.WriteError(c, err)
		return
	}
	if b.Name != "" && b.Name != c.Param("role") {
		httpapi.WriteError(c, problem.Invalid("The role is invalid.", problem.FieldError{Field: "name", Message: "must be the role of the path, or absent (roles are not renamed)"}))
		return
	}
	h.defineRole(c, commands.RoleChange, c.Param("role"), b.definition(), http.StatusOK)
}

func (h *handlers) deleteRole(c *gin.Context) {
	h.defineRole(c, commands.RoleDelete, c.Param("role"), access.Definition{}, http.StatusNoContent)
}

// RevokeResponse is the body of POST /v1/admin/sessions/revoke.
type RevokeResponse struct {
	Before time.Time  `json:"before"`
	UserID *uuid.UUID `json:"user_id"`
	Role   *string    `json:"role"`
}

// revokeSessions is the security-incident button: every session started
// before "before" (default now), optionally only one user's or one
// role's holders.
func (h *handlers) revokeSessions(c *gin.Context) {
	m, ok := meta(c)
	if !ok {
		return
	}
	var b struct {
		Before *time.Time `json:"before"`
		UserID *uuid.UUID `json:"user_id"`
		Role   *string    `json:"role"`
		Reason string     `json:"reason"`
	}
	if err := httpapi.BindJSON(c, &b); err != nil {
		httpapi.WriteError(c, err)
		return
	}
	cmd := commands.RevokeSessionsBefore{Before: h.d.Now(), Reason: b.Reason, Meta: m}
	if b.Before != nil {
		cmd.Before = *b.Before
	}
	if b.UserID != nil {
		if err := h.d.Admin.ChangeAccount.Exists(c.Request.Context(), *b.UserID); err != nil {
			httpapi.WriteError(c, err)
			return
		}
		cmd.UserID = *b.UserID
	}
	if b.Role != nil {
		cat, err := h.d.Catalog.Catalog(c.Request.Context())
		if err != nil {
			httpapi.WriteError(c, err)
			return
		}
		if _, ok := cat.Role(*b.Role); !ok {
			httpapi.WriteError(c, problem.Invalid("The revocation is invalid.", problem.FieldError{Field: "role", Message: "is not a role"}))
			return
		}
		cmd.Role = *b.Role
	}
	res, err := h.d.Admin.RevokeSessions.Handle(c.Request.Context(), cmd)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	httpapi.SetConsistencyToken(c, res.Position)
	c.JSON(http.StatusOK, RevokeResponse{Before: cmd.Before.UTC(), UserID: b.UserID, Role: b.Role})
}

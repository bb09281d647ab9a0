// Package apikeys serves API keys and service accounts: a caller's own
// keys (/v1/me/api-keys) and the service accounts an administrator
// creates for machines, with their keys (/v1/admin/service-accounts).
// A key is shown once, in the answer that creates it; lists show what it
// may do and when it was last used, never the key.
package apikeys

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	authapikey "github.com/authledger/authledger/auth/apikey"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/access"
	domain "github.com/authledger/authledger/domain/apikey"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/httpapi"
)

// Keys is the instance's view of keys and service accounts
// (auth/apikey.Keys).
type Keys interface {
	Owned(owner uuid.UUID) []domain.View
	Active(owner uuid.UUID, now time.Time) int
	ServiceAccounts() []authapikey.ServiceAccount
	ServiceAccount(id uuid.UUID) (authapikey.ServiceAccount, bool)
	Observe(e events.Event)
}

// LastUsed answers when keys were last used (auth/apikey.Usage).
type LastUsed interface {
	LastUsed(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]time.Time, error)
}

// Access is what users and service accounts hold now
// (auth/access.Live).
type Access interface {
	Roles(ctx context.Context, userID uuid.UUID) ([]string, *access.Catalog, error)
	Catalog(ctx context.Context) (*access.Catalog, error)
}

// Deps are what the routes need, built by cmd/.
type Deps struct {
	Create        *commands.CreateAPIKeyHandler
	Revoke        *commands.RevokeAPIKeyHandler
	CreateAccount *commands.CreateServiceAccountHandler
	Keys          Keys
	LastUsed      LastUsed
	Access        Access
}

// Validate reports every missing dependency at once.
func (d Deps) Validate() error {
	if d.Create == nil || d.Revoke == nil || d.CreateAccount == nil || d.Keys == nil || d.LastUsed == nil || d.Access == nil {
		return errors.New("httpapi/apikeys: Deps needs the create, revoke and create-account handlers, Keys, LastUsed and Access")
	}
	return nil
}

// Mount registers the routes on v1, the /v1 group behind the
// authentication middleware.
func Mount(v1 *gin.RouterGroup, d Deps) error {
	if err := d.Validate(); err != nil {
		return err
	}
	h := &handlers{d: d}
	v1.POST("/me/api-keys", httpapi.Require(access.AccountAPIKeys), h.createMine)
	v1.GET("/me/api-keys", httpapi.Require(access.AccountAPIKeys), h.listMine)
	v1.DELETE("/me/api-keys/:id", httpapi.Require(access.AccountAPIKeys), h.revokeMine)
	v1.POST("/admin/service-accounts", httpapi.Require(access.ServiceAccountsWrite), h.createAccount)
	v1.GET("/admin/service-accounts", httpapi.Require(access.ServiceAccountsRead), h.listAccounts)
	v1.POST("/admin/service-accounts/:id/api-keys", httpapi.Require(access.ServiceAccountsWrite), h.createAccountKey)
	v1.GET("/admin/service-accounts/:id/api-keys", httpapi.Require(access.ServiceAccountsRead), h.listAccountKeys)
	v1.DELETE("/admin/service-accounts/:id/api-keys/:key_id", httpapi.Require(access.ServiceAccountsWrite), h.revokeAccountKey)
	return nil
}

type handlers struct{ d Deps }

// keyJSON is a key as listed.
type keyJSON struct {
	domain.View
	Active     bool       `json:"active"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func meta(c *gin.Context, p httpapi.Principal) commands.Meta {
	return commands.RequestMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent(), p.Actor())
}

type createBody struct {
	Name        string              `json:"name"`
	Permissions []access.Permission `json:"permissions"`
	ExpiresAt   time.Time           `json:"expires_at"`
}

func (h *handlers) createMine(c *gin.Context) {
	p, _ := httpapi.Caller(c)
	h.create(c, p, p.UserID, false)
}

func (h *handlers) createAccountKey(c *gin.Context) {
	p, _ := httpapi.Caller(c)
	id, ok := h.account(c)
	if !ok {
		return
	}
	h.create(c, p, id, true)
}

// create makes a key for owner holding at most what the caller holds
// now (and, for a service account, what the account holds now).
func (h *handlers) create(c *gin.Context, p httpapi.Principal, owner uuid.UUID, serviceAccount bool) {
	var body createBody
	if err := httpapi.BindJSON(c, &body); err != nil {
		httpapi.WriteError(c, err)
		return
	}
	now := time.Now()
	res, err := h.d.Create.Handle(c.Request.Context(), commands.CreateAPIKey{
		OwnerID: owner, Name: body.Name, Permissions: body.Permissions, ExpiresAt: body.ExpiresAt,
		Held: p.Permissions, Active: h.d.Keys.Active(owner, now), ServiceAccount: serviceAccount, Meta: meta(c, p),
	})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	h.d.Keys.Observe(res.Created)
	var v domain.View
	_ = domain.Apply(&v, res.Created)
	httpapi.SetConsistencyToken(c, res.Position)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, struct {
		keyJSON
		Key string `json:"key"`
	}{keyJSON{View: v, Active: true}, res.Secret})
}

func (h *handlers) listMine(c *gin.Context) {
	p, _ := httpapi.Caller(c)
	h.list(c, p.UserID)
}

func (h *handlers) listAccountKeys(c *gin.Context) {
	if id, ok := h.account(c); ok {
		h.list(c, id)
	}
}

func (h *handlers) list(c *gin.Context, owner uuid.UUID) {
	views := h.d.Keys.Owned(owner)
	ids := make([]uuid.UUID, len(views))
	for i, v := range views {
		ids[i] = v.ID
	}
	used, err := h.d.LastUsed.LastUsed(c.Request.Context(), ids)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	now := time.Now()
	items := make([]keyJSON, len(views))
	for i, v := range views {
		items[i] = keyJSON{View: v, Active: v.ActiveAt(now)}
		if at, ok := used[v.ID]; ok {
			items[i].LastUsedAt = &at
		}
	}
	c.Header("Cache-Control", "private, no-store")
	c.JSON(http.StatusOK, gin.H{"items": items})
}

func (h *handlers) revokeMine(c *gin.Context) {
	p, _ := httpapi.Caller(c)
	h.revoke(c, p, p.UserID, c.Param("id"))
}

func (h *handlers) revokeAccountKey(c *gin.Context) {
	p, _ := httpapi.Caller(c)
	if id, ok := h.account(c); ok {
		h.revoke(c, p, id, c.Param("key_id"))
	}
}

func (h *handlers) revoke(c *gin.Context, p httpapi.Principal, owner uuid.UUID, rawID string) {
	id, err := uuid.Parse(rawID)
	if err != nil {
		httpapi.WriteError(c, domain.ErrNotFound)
		return
	}
	res, err := h.d.Revoke.Handle(c.Request.Context(), commands.RevokeAPIKey{KeyID: id, OwnerID: owner, Meta: meta(c, p)})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	if res.Revoked.KeyID != uuid.Nil {
		h.d.Keys.Observe(res.Revoked)
	}
	httpapi.SetConsistencyToken(c, res.Position)
	c.Status(http.StatusNoContent)
}

// account is the service account of the :id parameter, or false after
// answering 404.
func (h *handlers) account(c *gin.Context) (uuid.UUID, bool) {
	id, err := uuid.Parse(c.Param("id"))
	if err == nil {
		if _, ok := h.d.Keys.ServiceAccount(id); ok {
			return id, true
		}
	}
	httpapi.WriteError(c, domain.ErrServiceAccountNotFound)
	return uuid.Nil, false
}

type accountJSON struct {
	ID        uuid.UUID `json:"id"`
	Name      string    `json:"name"`
	Roles     []string  `json:"roles"`
	CreatedAt time.Time `json:"created_at"`
}

func (h *handlers) createAccount(c *gin.Context) {
	p, _ := httpapi.Caller(c)
	var body struct {
		Name  string   `json:"name"`
		Roles []string `json:"roles"`
	}
	if err := httpapi.BindJSON(c, &body); err != nil {
		httpapi.WriteError(c, err)
		return
	}
	catalog, err := h.d.Access.Catalog(c.Request.Context())
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	for _, r := range body.Roles {
		if _, ok := catalog.Role(r); !ok {
			httpapi.WriteError(c, access.ErrRoleNotFound)
			return
		}
	}
	// No one makes an account that holds more than they do: every
	// permission the roles give must be the creator's (the one check).
	for _, perm := range catalog.Effective(body.Roles).Sorted() {
		if err := httpapi.Authorize(p, perm, uuid.Nil); err != nil {
			httpapi.WriteError(c, err)
			return
		}
	}
	res, err := h.d.CreateAccount.Handle(c.Request.Context(), commands.CreateServiceAccount{Name: body.Name, Roles: body.Roles, Meta: meta(c, p)})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	h.d.Keys.Observe(res.Registered)
	httpapi.SetConsistencyToken(c, res.Position)
	r := res.Registered
	c.JSON(http.StatusCreated, accountJSON{ID: r.UserID, Name: r.DisplayName, Roles: r.Roles, CreatedAt: r.RegisteredAt})
}

func (h *handlers) listAccounts(c *gin.Context) {
	accounts := h.d.Keys.ServiceAccounts()
	items := make([]accountJSON, len(accounts))
	for i, a := range accounts {
		roles, _, err := h.d.Access.Roles(c.Request.Context(), a.ID)
		if err != nil {
			httpapi.WriteError(c, err)
			return
		}
		items[i] = accountJSON{ID: a.ID, Name: a.Name, Roles: append([]string{}, slices.Sorted(slices.Values(roles))...), CreatedAt: a.CreatedAt}
	}
	c.Header("Cache-Control", "private, no-store")
	c.JSON(http.StatusOK, gin.H{"items": items})
}

package readapi

import (
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
	"github.com/authledger/authledger/projections/userviews"
)

// UserItem is one user of GET /v1/admin/users.
type UserItem struct {
	ID          uuid.UUID  `json:"id"`
	Email       string     `json:"email"`
	DisplayName string     `json:"display_name"`
	Roles       []string   `json:"roles"`
	CreatedAt   time.Time  `json:"created_at"`
	LastLoginAt *time.Time `json:"last_login_at"`
	// Locked: an administrator locked the account (logins refused until
	// unlocked); Disabled: the account is disabled.
	Locked   bool `json:"locked"`
	Disabled bool `json:"disabled"`
}

// adminUsers is GET /v1/admin/users?q=&page=&page_size=: users by
// address, q matching the address or display name.
func (h *handlers) adminUsers(c *gin.Context) {
	page, size, err := parsePage(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	q := c.Query("q")
	if utf8.RuneCountInString(q) > maxQueryLen || !utf8.ValidString(q) {
		httpapi.WriteError(c, problem.Invalid("The query parameters are invalid.", problem.FieldError{Field: "q", Message: "must be valid UTF-8 of at most 200 characters"}))
		return
	}
	list, total, err := userviews.ListAccounts(c.Request.Context(), h.d.Pool, q, page, size)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	body := listPage[UserItem]{Items: make([]UserItem, 0, len(list)), Page: page, PageSize: size, Total: total}
	for _, a := range list {
		body.Items = append(body.Items, UserItem{ID: a.UserID, Email: a.Email, DisplayName: a.DisplayName, Roles: a.Roles,
			CreatedAt: a.CreatedAt.UTC(), LastLoginAt: utcPtr(a.LastLoginAt), Locked: a.Locked, Disabled: a.Disabled})
	}
	c.Header("Cache-Control", "private, no-store")
	c.JSON(http.StatusOK, body)
}

// adminUserSessions is GET /v1/admin/users/{id}/sessions: the user's
// active sessions, as GET /v1/auth/sessions shows one's own (no current).
func (h *handlers) adminUserSessions(c *gin.Context) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		httpapi.WriteError(c, userviews.ErrNotFound)
		return
	}
	page, size, err := parsePage(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	if _, err := userviews.GetProfile(c.Request.Context(), h.d.Pool, id); err != nil {
		httpapi.WriteError(c, err)
		return
	}
	h.writeSessions(c, id, uuid.Nil, page, size)
}

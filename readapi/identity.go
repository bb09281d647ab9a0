package readapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/timetravel"
	"github.com/authledger/authledger/projections/userviews"
)

// MeResponse is the body of GET /v1/me. Email is the normalised address
// (the log holds no other spelling); LastLoginAt is null until the first
// login is projected. ExternalUserID and ProviderEmail are the link an
// external login made, null for an account never linked.
type MeResponse struct {
	ID    uuid.UUID `json:"id"`
	Email string    `json:"email"`
	// EmailVerified: the user proved control of Email.
	EmailVerified  bool       `json:"email_verified"`
	DisplayName    string     `json:"display_name"`
	Roles          []string   `json:"roles"`
	CreatedAt      time.Time  `json:"created_at"`
	LastLoginAt    *time.Time `json:"last_login_at"`
	ExternalUserID *string    `json:"external_user_id"`
	ProviderEmail  *string    `json:"provider_email"`
	// LastTokenRefresh is the last renewal of the user's provider tokens;
	// null before the first (or for an account never linked).
	LastTokenRefresh *time.Time `json:"last_token_refresh"`
	// ErasedAt is when the account was erased (ADR 0034): the address and
	// name are then empty. Null for an account that was not. It is read
	// from user_privacy, which X-Consistency-Token does not wait for.
	ErasedAt *time.Time `json:"erased_at"`
}

func (h *handlers) me(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	// Not found: a token whose subject is not one of our users, or a
	// registration the projection has not reached (the caller sent no
	// consistency token).
	h.profile(c, p.UserID)
}

// identities is GET /v1/me/identities: the caller's linked identities
// (upstream providers and the external auth API), by provider.
func (h *handlers) identities(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	list, err := userviews.ListExternalIdentities(c.Request.Context(), h.d.Pool, p.UserID)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	for i := range list {
		list[i].LinkedAt = list[i].LinkedAt.UTC()
	}
	c.Header("Cache-Control", "private, no-store")
	c.JSON(http.StatusOK, gin.H{"identities": list})
}

// adminUser is GET /v1/admin/users/{id}: any user's profile, as /v1/me
// shows one's own (role admin, checked before).
func (h *handlers) adminUser(c *gin.Context) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		// No user can have this id: the answer of a missing one.
		httpapi.WriteError(c, userviews.ErrNotFound)
		return
	}
	if at, ok := c.GetQuery("at"); ok {
		h.profileAt(c, id, at)
		return
	}
	h.profile(c, id)
}

// profile answers with the user's profile and external link.
func (h *handlers) profile(c *gin.Context, id uuid.UUID) {
	me, err := readProfile(c, h.d.Pool, id)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	c.Header("Cache-Control", "private, no-store")
	c.JSON(http.StatusOK, me)
}

// profileAt answers GET /v1/admin/users/{id}?at=TIME: the profile as it
// was at TIME, folded from the log (the user's events recorded at or
// before it) through the profile read models' own code in a transaction
// that is rolled back (timetravel.Fold). A user who did not exist yet is
// not found, as one who never did.
func (h *handlers) profileAt(c *gin.Context, id uuid.UUID, raw string) {
	at, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil || h.d.Log == nil {
		msg := "must be an RFC 3339 time (2006-01-02T15:04:05Z)"
		if err == nil {
			msg = "time travel is not available on this server"
		}
		httpapi.WriteError(c, problem.Invalid("The query parameters are invalid.", problem.FieldError{Field: "at", Message: msg}))
		return
	}
	var me MeResponse
	projs := []projector.Projection{userviews.NewProfiles(), userviews.NewExternalIdentities(), userviews.NewEmailVerifications(), userviews.NewPrivacy()}
	_, err = timetravel.Fold(c.Request.Context(), h.d.Pool, h.d.Log, projs, at.UTC(), userviews.AboutUser(id), func(ctx context.Context, tx pgx.Tx) error {
		var err error
		me, err = readProfile(c, tx, id)
		return err
	})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	c.Header("Cache-Control", "private, no-store")
	c.JSON(http.StatusOK, me)
}

// readProfile reads the user's profile, external link and verification
// through q (the pool, or a time-travel transaction).
func readProfile(c *gin.Context, q userviews.Querier, id uuid.UUID) (MeResponse, error) {
	ctx := c.Request.Context()
	prof, err := userviews.GetProfile(ctx, q, id)
	if err != nil {
		return MeResponse{}, err
	}
	link, linked, err := userviews.GetExternalIdentity(ctx, q, id)
	if err != nil {
		return MeResponse{}, err
	}
	verified, err := userviews.EmailVerified(ctx, q, id, prof.Email)
	if err != nil {
		return MeResponse{}, err
	}
	priv, err := userviews.GetPrivacy(ctx, q, id)
	if err != nil {
		return MeResponse{}, err
	}
	me := MeResponse{
		ID: prof.UserID, Email: prof.Email, EmailVerified: verified, DisplayName: prof.DisplayName, Roles: prof.Roles,
		CreatedAt: prof.CreatedAt.UTC(), LastLoginAt: utcPtr(prof.LastLoginAt), ErasedAt: utcPtr(priv.ErasedAt),
	}
	if linked {
		me.ExternalUserID, me.ProviderEmail = &link.ExternalUserID, &link.ProviderEmail
		me.LastTokenRefresh = utcPtr(link.LastTokenRefresh)
	}
	return me, nil
}

// SessionItem is one entry of GET /v1/auth/sessions. Current marks the
// session of the access token that made the request. IP and UserAgent are
// the latest the session was used from; Method is the login method
// ("password") and AMR its RFC 8176 references.
type SessionItem struct {
	ID         uuid.UUID `json:"id"`
	StartedAt  time.Time `json:"started_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
	Method     string    `json:"method"`
	AMR        []string  `json:"amr"`
	ExpiresAt  time.Time `json:"expires_at"`
	Current    bool      `json:"current"`
}

// SessionsPage is the body of GET /v1/auth/sessions: the list convention
// of API.md.
type SessionsPage struct {
	Items    []SessionItem `json:"items"`
	Page     int           `json:"page"`
	PageSize int           `json:"page_size"`
	Total    int64         `json:"total"`
}

func (h *handlers) sessions(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	page, size, err := parsePage(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	h.writeSessions(c, p.UserID, p.SessionID, page, size)
}

// writeSessions answers one page of userID's active sessions, marking
// current.
func (h *handlers) writeSessions(c *gin.Context, userID, current uuid.UUID, page, size int) {
	body := SessionsPage{Items: []SessionItem{}, Page: page, PageSize: size}
	c.Header("Cache-Control", "private, no-store")
	list, total, err := userviews.ListActiveSessions(c.Request.Context(), h.d.Pool, userID, h.d.Now(), page, size)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	body.Total = total
	for _, s := range list {
		// The expiry shown is the earlier of the absolute and idle ends:
		// when the session stops working unless refreshed.
		exp := s.ExpiresAt
		if s.IdleExpiresAt.Before(exp) {
			exp = s.IdleExpiresAt
		}
		body.Items = append(body.Items, SessionItem{
			ID: s.SessionID, StartedAt: s.StartedAt.UTC(), LastUsedAt: s.LastUsedAt.UTC(), IP: s.IP,
			UserAgent: s.UserAgent, Method: s.Method, AMR: s.AMR, ExpiresAt: exp.UTC(),
			Current: s.SessionID == current && current != uuid.Nil,
		})
	}
	c.JSON(http.StatusOK, body)
}

// parsePage reads page and page_size (API.md: default 20, at most 100),
// reporting every invalid one.
func parsePage(c *gin.Context) (page, size int, err error) {
	var fields []problem.FieldError
	page, size = 1, DefaultPageSize
	if v := c.Query("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			fields = append(fields, problem.FieldError{Field: "page", Message: "must be a whole number from 1 to 1000000"})
		} else {
			page = n
		}
	}
	if v := c.Query("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			fields = append(fields, problem.FieldError{Field: "page_size", Message: "must be a whole number from 1 to 100"})
		} else {
			size = n
		}
	}
	if len(fields) > 0 {
		return 0, 0, problem.Invalid("The query parameters are invalid.", fields...)
	}
	return page, size, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

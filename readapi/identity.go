package readapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
	"github.com/authledger/authledger/projections/identity"
)

// IdentityConfig is what the identity read endpoints need.
type IdentityConfig struct {
	// Pool holds the read models. Required.
	Pool *pgxpool.Pool
	// Waiter serves X-Consistency-Token (runtime.NewWaiter). Required.
	Waiter Waiter
	// ConsistencyTimeout bounds a consistency wait (default 2s).
	ConsistencyTimeout time.Duration
	// Now is the clock that decides which sessions have expired (default
	// time.Now).
	Now func() time.Time
}

// Validate reports every problem of c at once.
func (c IdentityConfig) Validate() error {
	var errs []error
	if c.Pool == nil {
		errs = append(errs, errors.New("readapi: identity: Pool is required"))
	}
	if c.Waiter == nil {
		errs = append(errs, errors.New("readapi: identity: Waiter is required"))
	}
	if c.ConsistencyTimeout < 0 {
		errs = append(errs, errors.New("readapi: identity: ConsistencyTimeout must not be negative"))
	}
	return errors.Join(errs...)
}

// MountIdentity registers the identity read endpoints on rg (the /v1 group,
// behind the authentication middleware that calls SetPrincipal with the
// user id and the session id of the token):
//
//	GET me             the caller's profile (projection user_profiles)
//	GET auth/sessions  the caller's active sessions (projection sessions)
//
// Each honours X-Consistency-Token against the one projection it reads, so
// the token of a register or login response makes the next read see it.
// Without a token a read may briefly miss a write just made: /v1/me of a
// user who has just registered and logged in can answer 404 until the
// profile projection catches up (typically milliseconds).
func MountIdentity(rg *gin.RouterGroup, cfg IdentityConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	h := &identityHandlers{pool: cfg.Pool, now: now}
	rg.GET("/me", requirePrincipal, Consistency(cfg.Waiter, cfg.ConsistencyTimeout, identity.ProfilesName), h.me)
	rg.GET("/auth/sessions", requirePrincipal, Consistency(cfg.Waiter, cfg.ConsistencyTimeout, identity.SessionsName), h.sessions)
	return nil
}

type identityHandlers struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// MeResponse is the body of GET /v1/me. Email is the normalised address
// (the log holds no other spelling); LastLoginAt is null until the first
// login is projected.
type MeResponse struct {
	ID          uuid.UUID  `json:"id"`
	Email       string     `json:"email"`
	DisplayName string     `json:"display_name"`
	Roles       []string   `json:"roles"`
	CreatedAt   time.Time  `json:"created_at"`
	LastLoginAt *time.Time `json:"last_login_at"`
}

// notFoundProfile is the one answer for a caller without a profile row: a
// token whose subject is not one of our user ids, or a registration the
// projection has not reached (the caller sent no consistency token).
func notFoundProfile() error {
	return problem.NotFound("No profile for this account yet. If you have just registered or logged in, send the X-Consistency-Token of that response.")
}

func (h *identityHandlers) me(c *gin.Context) {
	p, _ := PrincipalFrom(c)
	id, err := uuid.Parse(p.UserID)
	if err != nil {
		httpapi.WriteError(c, notFoundProfile())
		return
	}
	prof, err := identity.GetProfile(c.Request.Context(), h.pool, id)
	if errors.Is(err, identity.ErrNotFound) {
		httpapi.WriteError(c, notFoundProfile())
		return
	}
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	c.Header("Cache-Control", "private, no-store")
	c.JSON(http.StatusOK, MeResponse{
		ID: prof.UserID, Email: prof.Email, DisplayName: prof.DisplayName, Roles: prof.Roles,
		CreatedAt: prof.CreatedAt.UTC(), LastLoginAt: utcPtr(prof.LastLoginAt),
	})
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

func (h *identityHandlers) sessions(c *gin.Context) {
	page, size, err := parsePage(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	p, _ := PrincipalFrom(c)
	body := SessionsPage{Items: []SessionItem{}, Page: page, PageSize: size}
	c.Header("Cache-Control", "private, no-store")
	uid, err := uuid.Parse(p.UserID)
	if err != nil {
		// Not one of our users: they have no session here.
		c.JSON(http.StatusOK, body)
		return
	}
	now := h.now()
	list, total, err := identity.ListActiveSessions(c.Request.Context(), h.pool, uid, now, page, size)
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
			Current: p.SessionID != "" && s.SessionID.String() == p.SessionID,
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

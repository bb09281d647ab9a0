// Package readapi serves queries over the read models (never the command
// side: it imports no command package, and reaches the log only through
// the Authorize hook cmd wires). It holds the read-your-writes middleware
// (Consistency) and every query endpoint (Mount).
package readapi

import (
	"errors"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
	"github.com/authledger/authledger/projections/audit"
	"github.com/authledger/authledger/projections/taskviews"
	"github.com/authledger/authledger/projections/userviews"
)

// Page size limits of list endpoints.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// Deps are what the query endpoints need, built by cmd/.
type Deps struct {
	// Pool holds the read models. Required.
	Pool *pgxpool.Pool
	// Waiter serves X-Consistency-Token (runtime.NewWaiter). Required.
	Waiter Waiter
	// ConsistencyTimeout bounds a consistency wait (default 2s).
	ConsistencyTimeout time.Duration
	// Now is the clock that decides which sessions have expired (default
	// time.Now).
	Now func() time.Time
	// Authorize is the command that decides on the task stream, and
	// records in the log, what a read the read model cannot answer from
	// the caller's own tasks is (commands.AuthorizeTaskReadHandler, wired
	// by cmd/: the read side never writes the log itself). It is called
	// with asAdmin false when GET /tasks/{id} finds no task of the caller
	// (another user's, a missing or a removed one alike, so that neither
	// the answer nor its timing tells them apart): it records the refusal
	// and returns task.ErrNotFound. It is called with asAdmin true before
	// a caller with the admin role is shown another user's task: it
	// records the read, and an error refuses it. The caller is
	// httpapi.Caller(c). Required.
	Authorize func(c *gin.Context, taskID uuid.UUID, asAdmin bool) error
}

// Validate reports every problem of d at once.
func (d Deps) Validate() error {
	var errs []error
	if d.Pool == nil {
		errs = append(errs, errors.New("readapi: Pool is required"))
	}
	if d.Waiter == nil {
		errs = append(errs, errors.New("readapi: Waiter is required"))
	}
	if d.Authorize == nil {
		errs = append(errs, errors.New("readapi: Authorize is required"))
	}
	if d.ConsistencyTimeout < 0 {
		errs = append(errs, errors.New("readapi: ConsistencyTimeout must not be negative"))
	}
	return errors.Join(errs...)
}

// Mount registers the query endpoints on rg (the /v1 group, behind the
// authentication middleware that records the caller):
//
//	GET  me               the caller's profile (projection user_profiles)
//	GET  auth/sessions    the caller's active sessions (projection sessions)
//	GET  tasks            the caller's live tasks (?status=&from=&to=&q=&sort=&page=&page_size=)
//	GET  tasks/:id        one task with its files and result (404 for another user's)
//	GET  history          every task of the caller, deleted and expired ones included
//	GET  history/stats    {total, by_status, success_rate, avg_processing_ms, files, bytes}
//	POST history/export   {format: "csv"|"json", filters}, streamed
//	GET  audit            the whole trail; role auditor or admin
//	GET  me/audit         the caller's own trail (events the caller caused)
//
// Each honours X-Consistency-Token against the projection it reads, so
// the token of a command response makes the next read see its write.
// Without a token a read may briefly miss a write just made: /v1/me of a
// user who has just registered and logged in can answer 404 until the
// profile projection catches up (typically milliseconds).
//
// The tasks/:id wildcard is named "id": other GET routes under tasks/:id
// (file downloads) must use the same name.
func Mount(rg *gin.RouterGroup, d Deps) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	h := &handlers{d: d}
	consistent := func(projections ...string) gin.HandlerFunc {
		return Consistency(d.Waiter, d.ConsistencyTimeout, projections...)
	}
	rg.GET("/me", consistent(userviews.ProfilesName, userviews.ExternalIdentitiesName), h.me)
	rg.GET("/me/identities", consistent(userviews.ExternalIdentitiesName), h.identities)
	rg.GET("/admin/users/:id", requireRole(user.RoleAdmin), consistent(userviews.ProfilesName, userviews.ExternalIdentitiesName), h.adminUser)
	rg.GET("/auth/sessions", consistent(userviews.SessionsName), h.sessions)

	taskRead := consistent(taskviews.Name)
	rg.GET("/tasks", taskRead, h.tasks)
	rg.GET("/tasks/:id", taskRead, h.task)
	rg.GET("/history", taskRead, h.history)
	rg.GET("/history/stats", taskRead, h.stats)
	rg.POST("/history/export", taskRead, h.export)

	auditRead := consistent(audit.Name)
	rg.GET("/audit", requireRole(user.RoleAuditor, user.RoleAdmin), auditRead, h.audit)
	rg.GET("/me/audit", auditRead, h.myAudit)
	return nil
}

// handlers serve the query endpoints; every one reads its caller with
// httpapi.Caller.
type handlers struct{ d Deps }

// requireRole answers 401 without a caller and 403 to a caller with none
// of roles, before the route waits for any read model.
func requireRole(roles ...string) gin.HandlerFunc {
	need := "This endpoint needs the role " + roles[0] + "."
	if len(roles) > 1 {
		need = "This endpoint needs one of the roles " + strings.Join(roles[:len(roles)-1], ", ") + " or " + roles[len(roles)-1] + "."
	}
	return func(c *gin.Context) {
		p, err := httpapi.Caller(c)
		if err != nil {
			httpapi.WriteError(c, err)
			return
		}
		if !p.HasRole(roles...) {
			httpapi.WriteError(c, problem.Forbidden(need))
			return
		}
		c.Next()
	}
}

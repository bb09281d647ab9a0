// Package readapi serves queries over the read models (never the command
// side: it imports no command package, and reaches the log only through
// the Authorize hook cmd wires). It holds the read-your-writes middleware
// (Consistency) and every query endpoint (Mount).
package readapi

import (
	"errors"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/projections/audit"
	"github.com/authledger/authledger/projections/taskviews"
	"github.com/authledger/authledger/projections/timetravel"
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
	// Log reads the event log for GET /v1/admin/users/{id}?at=TIME, which
	// answers from the log, not the read models (time travel). Without it
	// ?at= answers 400 (unsupported here). It is a reader: nothing of
	// readapi appends.
	Log timetravel.LogReader
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
//	GET  audit            the whole trail (audit:read)
//	GET  me/audit         the caller's own trail (events the caller caused)
//	GET  admin/users      users by address (?q=&page=&page_size=; users:read)
//	GET  admin/users/:id  one user's profile (users:read); ?at=TIME folds it from the log as it was then
//	GET  admin/users/:id/sessions  one user's active sessions (users:read)
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
	rg.GET("/me", httpapi.Require(access.AccountRead), consistent(userviews.ProfilesName, userviews.ExternalIdentitiesName, userviews.EmailVerificationsName), h.me)
	usersRead := httpapi.Require(access.UsersRead)
	rg.GET("/me/identities", httpapi.Require(access.AccountRead), consistent(userviews.ExternalIdentitiesName), h.identities)
	rg.GET("/admin/users", usersRead, consistent(userviews.ProfilesName, userviews.AccountStatesName), h.adminUsers)
	rg.GET("/admin/users/:id/sessions", usersRead, consistent(userviews.ProfilesName, userviews.SessionsName), h.adminUserSessions)
	rg.GET("/admin/users/:id", usersRead, consistent(userviews.ProfilesName, userviews.ExternalIdentitiesName, userviews.EmailVerificationsName), h.adminUser)
	rg.GET("/auth/sessions", httpapi.Require(access.AccountRead), consistent(userviews.SessionsName), h.sessions)

	taskRead := consistent(taskviews.Name)
	tasksRead := httpapi.Require(access.TasksRead)
	rg.GET("/tasks", tasksRead, taskRead, h.tasks)
	rg.GET("/tasks/:id", tasksRead, taskRead, h.task)
	rg.GET("/history", tasksRead, taskRead, h.history)
	rg.GET("/history/stats", tasksRead, taskRead, h.stats)
	rg.POST("/history/export", tasksRead, taskRead, h.export)

	auditRead := consistent(audit.Name)
	rg.GET("/audit", httpapi.Require(access.AuditRead), auditRead, h.audit)
	rg.GET("/me/audit", httpapi.Require(access.AccountRead), auditRead, h.myAudit)
	return nil
}

// handlers serve the query endpoints; every one reads its caller with
// httpapi.Caller.
type handlers struct{ d Deps }

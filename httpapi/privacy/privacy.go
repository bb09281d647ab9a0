// Package privacy serves the data subject's rights (issue 22 item 4, ADR
// 0034): the export of everything the service holds about a user as one
// zip archive, erasure by crypto-shredding, and consent to the terms of
// service.
//
//	GET    /v1/me/export               the caller's archive (account:read)
//	GET    /v1/admin/users/{id}/export a user's archive (users:export)
//	DELETE /v1/me                      erase the caller ({"password"}; account:write)
//	DELETE /v1/admin/users/{id}        erase a user (users:erase)
//	GET    /v1/me/consents             the current terms version and the caller's acceptances
//	POST   /v1/me/consents             accept the current version ({"terms_version"}; account:write)
//
// The archive is read from the read models (and the blob store for the
// files' bytes); docs/gdpr.md lists its members.
package privacy

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/blob"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/projections/audit"
	"github.com/authledger/authledger/projections/taskviews"
	"github.com/authledger/authledger/projections/userviews"
)

// Opener opens what the audit trail keeps sealed (eventstore/sealed.Store).
type Opener interface {
	OpenData(ctx context.Context, doc json.RawMessage) json.RawMessage
	OpenMetadataText(ctx context.Context, member, text string) string
}

// Deps are what the routes need, built by cmd/.
type Deps struct {
	Pool        *pgxpool.Pool
	Blobs       blob.Store
	Erase       *commands.EraseUserHandler
	AcceptTerms *commands.AcceptTermsHandler
	// TermsVersion is AUTHLEDGER_TERMS_VERSION ("" for none).
	TermsVersion string
	// APIKeys lists the metadata of a user's API keys (never a secret).
	APIKeys func(owner uuid.UUID) any
	Opener  Opener
	// AuthorizeRead records an administrator's read of another user's task
	// in the log (commands.AuthorizeTaskReadHandler with asAdmin, as
	// readapi's GET /v1/tasks/{id} does): an export by an administrator
	// records one for every live task it includes.
	AuthorizeRead func(c *gin.Context, taskID uuid.UUID, asAdmin bool) error
	// Consistent is the read-your-writes middleware over the named
	// projections (readapi.Consistency with the server's waiter).
	Consistent func(projections ...string) gin.HandlerFunc
	Now        func() time.Time
}

// Validate reports every missing dependency at once.
func (d Deps) Validate() error {
	var errs []error
	if d.Pool == nil || d.Blobs == nil || d.Erase == nil || d.AcceptTerms == nil || d.APIKeys == nil || d.Opener == nil || d.AuthorizeRead == nil || d.Consistent == nil {
		errs = append(errs, errors.New("httpapi/privacy: Pool, Blobs, Erase, AcceptTerms, APIKeys, Opener, AuthorizeRead and Consistent are required"))
	}
	return errors.Join(errs...)
}

// Mount registers the routes on rg (the /v1 group, behind the
// authentication middleware).
func Mount(rg *gin.RouterGroup, d Deps) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	h := &handlers{d: d}
	// The export waits (X-Consistency-Token) for every read model it reads.
	exported := d.Consistent(userviews.ProfilesName, userviews.SessionsName, userviews.ExternalIdentitiesName,
		userviews.PrivacyName, taskviews.Name, audit.Name)
	rg.GET("/me/export", httpapi.Require(access.AccountRead), exported, h.exportMine)
	rg.GET("/admin/users/:id/export", httpapi.Require(access.UsersExport), exported, h.exportUser)
	rg.DELETE("/me", httpapi.Require(access.AccountWrite), h.eraseMine)
	rg.DELETE("/admin/users/:id", httpapi.Require(access.UsersErase), h.eraseUser)
	rg.GET("/me/consents", httpapi.Require(access.AccountRead), d.Consistent(userviews.PrivacyName), h.consents)
	rg.POST("/me/consents", httpapi.Require(access.AccountWrite), h.accept)
	return nil
}

type handlers struct{ d Deps }

func meta(c *gin.Context, p httpapi.Principal) commands.Meta {
	return commands.RequestMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent(), p.Actor())
}

func userParam(c *gin.Context) (uuid.UUID, bool) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil || id == uuid.Nil {
		httpapi.WriteError(c, commands.ErrUserNotFound)
		return uuid.Nil, false
	}
	return id, true
}

func (h *handlers) eraseMine(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	var body struct {
		Password string `json:"password"`
	}
	if err := httpapi.BindJSON(c, &body); err != nil {
		httpapi.WriteError(c, err)
		return
	}
	res, err := h.d.Erase.Handle(c.Request.Context(), commands.EraseUser{UserID: p.UserID, By: p.UserID, Password: body.Password, Meta: meta(c, p)})
	done(c, res, err)
}

func (h *handlers) eraseUser(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	id, ok := userParam(c)
	if !ok {
		return
	}
	res, err := h.d.Erase.Handle(c.Request.Context(), commands.EraseUser{UserID: id, By: p.UserID, AsAdmin: true, Meta: meta(c, p)})
	done(c, res, err)
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

// consentsJSON is the body of GET /v1/me/consents.
type consentsJSON struct {
	// CurrentVersion is the version to accept (null when none is set).
	CurrentVersion *string                `json:"current_version"`
	Accepted       *string                `json:"accepted_version"`
	Required       bool                   `json:"acceptance_required"`
	Consents       []userviews.ConsentRow `json:"consents"`
}

func (h *handlers) consents(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	st, err := userviews.GetPrivacy(c.Request.Context(), h.d.Pool, p.UserID)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	out := consentsJSON{Consents: st.Consents}
	if h.d.TermsVersion != "" {
		v := h.d.TermsVersion
		out.CurrentVersion = &v
		out.Required = st.TermsVersion != v
	}
	if st.TermsVersion != "" {
		out.Accepted = &st.TermsVersion
	}
	c.JSON(http.StatusOK, out)
}

func (h *handlers) accept(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	var body struct {
		TermsVersion string `json:"terms_version"`
	}
	if err := httpapi.BindJSON(c, &body); err != nil {
		httpapi.WriteError(c, err)
		return
	}
	res, err := h.d.AcceptTerms.Handle(c.Request.Context(), commands.AcceptTerms{UserID: p.UserID, Version: body.TermsVersion, Meta: meta(c, p)})
	done(c, res, err)
}

func (h *handlers) exportMine(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	h.export(c, p.UserID, nil)
}

func (h *handlers) exportUser(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	id, ok := userParam(c)
	if !ok {
		return
	}
	var recordRead func(uuid.UUID) error
	if id != p.UserID {
		recordRead = func(task uuid.UUID) error { return h.d.AuthorizeRead(c, task, true) }
	}
	h.export(c, id, recordRead)
}

// export gathers every member but the files first, so that a failure
// answers a problem; the files are streamed after (a blob that went
// missing meanwhile is listed in files_missing.json instead). recordRead,
// when set, records each live task read on the user's behalf before it
// is included.
func (h *handlers) export(c *gin.Context, id uuid.UUID, recordRead func(uuid.UUID) error) {
	ctx := c.Request.Context()
	profile, err := userviews.GetProfile(ctx, h.d.Pool, id)
	if errors.Is(err, userviews.ErrNotFound) {
		httpapi.WriteError(c, commands.ErrUserNotFound)
		return
	}
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	a, err := h.gather(ctx, id, profile, recordRead)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	c.Header("Content-Type", "application/zip")
	c.Header("Content-Disposition", `attachment; filename="authledger-export-`+id.String()+`.zip"`)
	c.Header("Cache-Control", "private, no-store")
	c.Status(http.StatusOK)
	if err := a.write(ctx, c.Writer, h.d.Blobs); err != nil {
		// The status is sent; cutting the stream short is all that is left
		// (a client sees a truncated zip, not a complete one).
		_ = c.Error(err)
		panic(http.ErrAbortHandler)
	}
}

// archive is the export before it is written.
type archive struct {
	members map[string]any
	files   []archivedFile
}

type archivedFile struct {
	path   string
	sha256 string
}

// profileJSON is profile.json.
type profileJSON struct {
	UserID          uuid.UUID              `json:"user_id"`
	Email           string                 `json:"email"`
	DisplayName     string                 `json:"display_name"`
	Roles           []string               `json:"roles"`
	CreatedAt       time.Time              `json:"created_at"`
	LastLoginAt     *time.Time             `json:"last_login_at"`
	Erased          bool                   `json:"erased"`
	ErasedAt        *time.Time             `json:"erased_at"`
	TermsVersion    string                 `json:"terms_version"`
	TermsAcceptedAt *time.Time             `json:"terms_accepted_at"`
	Consents        []userviews.ConsentRow `json:"consents"`
}

func (h *handlers) gather(ctx context.Context, id uuid.UUID, p userviews.Profile, recordRead func(uuid.UUID) error) (*archive, error) {
	priv, err := userviews.GetPrivacy(ctx, h.d.Pool, id)
	if err != nil {
		return nil, err
	}
	a := &archive{members: map[string]any{}}
	a.members["profile.json"] = profileJSON{UserID: p.UserID, Email: p.Email, DisplayName: p.DisplayName, Roles: p.Roles,
		CreatedAt: p.CreatedAt, LastLoginAt: p.LastLoginAt, Erased: priv.ErasedAt != nil, ErasedAt: priv.ErasedAt,
		TermsVersion: priv.TermsVersion, TermsAcceptedAt: priv.TermsAcceptedAt, Consents: priv.Consents}
	sessions, err := userviews.ListAllSessions(ctx, h.d.Pool, id)
	if err != nil {
		return nil, err
	}
	a.members["sessions.json"] = sessionsJSON(sessions)
	identities, err := userviews.ListExternalIdentities(ctx, h.d.Pool, id)
	if err != nil {
		return nil, err
	}
	if identities == nil {
		identities = []userviews.Identity{}
	}
	a.members["identities.json"] = identities
	a.members["api_keys.json"] = h.d.APIKeys(id)

	var history []taskviews.HistoryEntry
	if err := taskviews.EachHistory(ctx, h.d.Pool, taskviews.Filter{Owner: id}, taskviews.SortCreatedAsc, func(e taskviews.HistoryEntry) error {
		history = append(history, e)
		return nil
	}); err != nil {
		return nil, err
	}
	if history == nil {
		history = []taskviews.HistoryEntry{}
	}
	a.members["task_history.json"] = history
	tasks := []taskviews.Task{}
	for _, e := range history {
		if e.DeletedAt != nil || e.ExpiredAt != nil {
			continue
		}
		t, look, err := taskviews.Get(ctx, h.d.Pool, e.TaskID, id)
		if err != nil {
			return nil, err
		}
		if look != taskviews.Found {
			continue
		}
		if recordRead != nil {
			if err := recordRead(t.TaskID); err != nil {
				return nil, err
			}
		}
		for _, f := range t.Files {
			a.files = append(a.files, archivedFile{path: filePath(t.TaskID, f), sha256: f.SHA256})
		}
		tasks = append(tasks, t)
	}
	a.members["tasks.json"] = tasks

	trail, err := h.trail(ctx, id)
	if err != nil {
		return nil, err
	}
	a.members["audit.json"] = trail
	return a, nil
}

// filePath names a file in the archive: files/<task>/<file id>-<name>,
// the name cut to its base (the client's name was sanitised at upload,
// and a zip member must not climb out of its directory).
func filePath(task uuid.UUID, f taskviews.File) string {
	name := path.Base(strings.ReplaceAll(f.Name, `\`, "/"))
	if name == "." || name == "/" || name == ".." {
		name = ""
	}
	if name == "" {
		return fmt.Sprintf("files/%s/%s", task, f.FileID)
	}
	return fmt.Sprintf("files/%s/%s-%s", task, f.FileID, name)
}

// sessionJSON is one session in sessions.json.
type sessionJSON struct {
	SessionID  uuid.UUID  `json:"session_id"`
	Method     string     `json:"method"`
	IP         string     `json:"ip"`
	UserAgent  string     `json:"user_agent"`
	StartedAt  time.Time  `json:"started_at"`
	LastUsedAt time.Time  `json:"last_used_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

func sessionsJSON(ss []userviews.Session) []sessionJSON {
	out := make([]sessionJSON, len(ss))
	for i, s := range ss {
		out[i] = sessionJSON{SessionID: s.SessionID, Method: s.Method, IP: s.IP, UserAgent: s.UserAgent, StartedAt: s.StartedAt,
			LastUsedAt: s.LastUsedAt, ExpiresAt: s.ExpiresAt, RevokedAt: s.RevokedAt}
	}
	return out
}

// trailPage is how many audit rows one read takes.
const trailPage = 500

// trail is the user's audit trail (the events they caused and those about
// them), oldest first, with the personal data the trail keeps sealed
// opened while the user's key lives.
func (h *handlers) trail(ctx context.Context, id uuid.UUID) ([]audit.Entry, error) {
	var all []audit.Entry
	for page := 1; ; page++ {
		items, total, err := audit.List(ctx, h.d.Pool, audit.Filter{Subject: id.String()}, page, trailPage)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if len(items) < trailPage || int64(len(all)) >= total {
			break
		}
	}
	// List is newest first.
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	for i := range all {
		all[i].Summary = h.d.Opener.OpenData(ctx, all[i].Summary)
		all[i].ClientIP = h.d.Opener.OpenMetadataText(ctx, "client_ip", all[i].ClientIP)
		all[i].UserAgent = h.d.Opener.OpenMetadataText(ctx, "user_agent", all[i].UserAgent)
	}
	if all == nil {
		all = []audit.Entry{}
	}
	return all, nil
}

// memberOrder is the order of the JSON members in the archive.
var memberOrder = []string{"profile.json", "sessions.json", "identities.json", "api_keys.json", "tasks.json", "task_history.json", "audit.json"}

func (a *archive) write(ctx context.Context, w io.Writer, blobs blob.Store) error {
	zw := zip.NewWriter(w)
	for _, name := range memberOrder {
		f, err := zw.Create(name)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(f)
		enc.SetIndent("", "  ")
		if err := enc.Encode(a.members[name]); err != nil {
			return err
		}
	}
	var missing []string
	for _, file := range a.files {
		r, _, err := blobs.Open(ctx, file.sha256)
		if errors.Is(err, blob.ErrNotFound) {
			missing = append(missing, file.path)
			continue
		}
		if err != nil {
			return err
		}
		f, err := zw.Create(file.path)
		if err == nil {
			_, err = io.Copy(f, r)
		}
		_ = r.Close()
		if err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		f, err := zw.Create("files_missing.json")
		if err != nil {
			return err
		}
		if err := json.NewEncoder(f).Encode(missing); err != nil {
			return err
		}
	}
	return zw.Close()
}

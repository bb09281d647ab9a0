package readapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
	"github.com/authledger/authledger/projections/audit"
)

// auditPage is the list body: {items, page, page_size, total}.
type auditPage struct {
	Items    []audit.Entry `json:"items"`
	Page     int           `json:"page"`
	PageSize int           `json:"page_size"`
	Total    int64         `json:"total"`
}

func (h *handlers) audit(c *gin.Context) {
	f, page, size, err := parseAuditQuery(c, true)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	h.auditPage(c, f, page, size)
}

func (h *handlers) myAudit(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	f, page, size, err := parseAuditQuery(c, false)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	f.Subject = p.UserID.String()
	h.auditPage(c, f, page, size, hideDenialReasons)
}

func (h *handlers) auditPage(c *gin.Context, f audit.Filter, page, size int, views ...func([]audit.Entry) error) {
	items, total, err := audit.List(c.Request.Context(), h.d.Pool, f, page, size)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	for _, v := range views {
		if err := v(items); err != nil {
			httpapi.WriteError(c, err)
			return
		}
	}
	c.JSON(http.StatusOK, auditPage{Items: items, Page: page, PageSize: size, Total: total})
}

// ReasonNotFound is the one reason the caller's own trail (GET
// /v1/me/audit) shows for a refused read of a task or file that belongs to
// someone else or does not exist: the 404 answered both alike, and the
// trail must not tell them apart either (it would tell which ids exist).
// The auditors' trail (GET /v1/audit) keeps the true reason.
const ReasonNotFound = "not_found"

// hidden are the reasons ReasonNotFound stands for. task.DenyGone stays: a
// caller is only ever told "gone" about a task of their own.
var hidden = map[string]bool{task.DenyNotOwner: true, task.DenyMissing: true}

// hideDenialReasons rewrites the reasons of refusals in entries for the
// caller's view: access.denied.v1's reason, and the split of
// access.denials_counted.v1's reasons. The entry's hash is that of the
// recorded summary, which the caller's view no longer shows verbatim.
func hideDenialReasons(entries []audit.Entry) error {
	for i, e := range entries {
		if e.Type != task.EventAccessDenied && e.Type != task.EventDenialsCounted {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(e.Summary, &m); err != nil {
			return fmt.Errorf("readapi: audit summary of %s: %w", e.EventID, err)
		}
		if r, ok := m["reason"].(string); ok && hidden[r] {
			m["reason"] = ReasonNotFound
		}
		if rs, ok := m["reasons"].(map[string]any); ok {
			merged := map[string]any{}
			for r, n := range rs {
				if hidden[r] {
					r = ReasonNotFound
				}
				c, _ := merged[r].(float64)
				k, _ := n.(float64)
				merged[r] = c + k
			}
			m["reasons"] = merged
		}
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		entries[i].Summary = b
	}
	return nil
}

// parseAuditQuery reads page, page_size, type, stream, from, to and (when
// withActor) actor, reporting every invalid one.
func parseAuditQuery(c *gin.Context, withActor bool) (audit.Filter, int, int, error) {
	var f audit.Filter
	var fields []problem.FieldError
	page, size := 1, DefaultPageSize
	if v := c.Query("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			fields = append(fields, problem.FieldError{Field: "page", Message: "must be a whole number of at least 1"})
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
	if page > 1_000_000 {
		fields = append(fields, problem.FieldError{Field: "page", Message: "is too large"})
	}
	text := func(name string) string {
		v := c.Query(name)
		if !validText(v) {
			fields = append(fields, problem.FieldError{Field: name, Message: textRule})
		}
		return v
	}
	f.EventType = text("type")
	f.Stream = text("stream")
	if withActor {
		f.ActorID = text("actor")
	}
	parseTime := func(name string) time.Time {
		v := c.Query(name)
		if v == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			fields = append(fields, problem.FieldError{Field: name, Message: "must be an RFC 3339 date-time such as 2026-01-02T15:04:05Z"})
		}
		return t
	}
	f.From, f.To = parseTime("from"), parseTime("to")
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		fields = append(fields, problem.FieldError{Field: "to", Message: "must be after from"})
	}
	if len(fields) > 0 {
		return f, 0, 0, problem.Invalid("The query parameters are invalid.", fields...)
	}
	return f, page, size, nil
}

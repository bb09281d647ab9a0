package readapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
	"github.com/authledger/authledger/projections/taskviews"
)

// listPage is the list body of every paged query: {items, page, page_size, total}.
type listPage[T any] struct {
	Items    []T   `json:"items"`
	Page     int   `json:"page"`
	PageSize int   `json:"page_size"`
	Total    int64 `json:"total"`
}

func (h *handlers) tasks(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	q, err := parseTaskQuery(queryParams(c), taskviews.LiveStatuses, true)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	q.filter.Owner = p.UserID
	items, total, err := taskviews.ListTasks(c.Request.Context(), h.d.Pool, q.filter, q.sort, q.page, q.size)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, listPage[taskviews.Task]{Items: items, Page: q.page, PageSize: q.size, Total: total})
}

// task answers one task: the caller's own, or, to an administrator,
// anyone's (the read is recorded). Every other case answers
// task.ErrNotFound, whatever the reason, and is recorded as refused.
func (h *handlers) task(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		// No task can have this id; there is nothing to name in an event.
		httpapi.WriteError(c, task.ErrNotFound)
		return
	}
	// With tasks:read:any the read model is asked for anyone's task (the
	// read of another's is recorded below); without, for the caller's.
	asOwner := p.UserID
	if httpapi.Permitted(p, access.TasksReadAny, uuid.Nil) {
		asOwner = uuid.Nil
	}
	ctx := c.Request.Context()
	t, look, err := taskviews.Get(ctx, h.d.Pool, id, asOwner)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	if look != taskviews.Found {
		// The command reads the task stream, records why (coalesced per
		// requester) and says not found; a task the read model has not
		// reached yet is not found either, for now.
		if err := h.d.Authorize(c, id, false); err != nil && !errors.Is(err, task.ErrNotFound) {
			httpapi.WriteError(c, err)
			return
		}
		httpapi.WriteError(c, task.ErrNotFound)
		return
	}
	if t.OwnerID != p.UserID {
		if err := h.d.Authorize(c, id, true); err != nil {
			httpapi.WriteError(c, err)
			return
		}
	}
	c.JSON(http.StatusOK, t)
}

// taskQuery is a parsed list query.
type taskQuery struct {
	filter     taskviews.Filter
	sort       taskviews.Sort
	page, size int
}

// params reads named parameters from a query string or a JSON body.
type params func(name string) string

func queryParams(c *gin.Context) params { return c.Query }

// maxQueryLen bounds the text search.
const maxQueryLen = 200

// parseTaskQuery reads status, from, to, q, sort and (withPage) page and
// page_size, reporting every invalid one. statuses are the accepted ones.
func parseTaskQuery(get params, statuses []string, withPage bool) (taskQuery, error) {
	q := taskQuery{sort: taskviews.SortCreatedDesc, page: 1, size: DefaultPageSize}
	var fields []problem.FieldError
	bad := func(field, msg string) { fields = append(fields, problem.FieldError{Field: field, Message: msg}) }
	if withPage {
		if v := get("page"); v != "" {
			n, err := strconv.Atoi(v)
			switch {
			case err != nil || n < 1:
				bad("page", "must be a whole number of at least 1")
			case n > 1_000_000:
				bad("page", "is too large")
			default:
				q.page = n
			}
		}
		if v := get("page_size"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxPageSize {
				bad("page_size", "must be a whole number from 1 to 100")
			} else {
				q.size = n
			}
		}
	}
	if v := get("status"); v != "" {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if !contains(statuses, s) {
				bad("status", "must be one or more of "+strings.Join(statuses, ", ")+", separated by commas")
				break
			}
			q.filter.Statuses = append(q.filter.Statuses, s)
		}
	}
	if v := get("sort"); v != "" {
		ok := false
		for _, s := range taskviews.Sorts {
			if string(s) == v {
				q.sort, ok = s, true
			}
		}
		if !ok {
			names := make([]string, len(taskviews.Sorts))
			for i, s := range taskviews.Sorts {
				names[i] = string(s)
			}
			bad("sort", "must be one of "+strings.Join(names, ", "))
		}
	}
	var err error
	if q.filter.From, err = parseInstant(get("from")); err != nil {
		bad("from", err.Error())
	}
	if q.filter.To, err = parseInstant(get("to")); err != nil {
		bad("to", err.Error())
	}
	if !q.filter.From.IsZero() && !q.filter.To.IsZero() && !q.filter.From.Before(q.filter.To) {
		bad("to", "must be after from")
	}
	q.filter.Query = strings.TrimSpace(get("q"))
	switch {
	case !validText(q.filter.Query):
		bad("q", textRule)
	case len([]rune(q.filter.Query)) > maxQueryLen:
		bad("q", fmt.Sprintf("must be at most %d characters", maxQueryLen))
	}
	if len(fields) > 0 {
		return q, problem.Invalid("The query parameters are invalid.", fields...)
	}
	return q, nil
}

// parseInstant reads an RFC 3339 date-time, or a date (midnight UTC).
func parseInstant(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("must be an RFC 3339 date-time such as 2026-01-02T15:04:05Z, or a date such as 2026-01-02")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

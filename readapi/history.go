package readapi

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
	"github.com/authledger/authledger/projections/taskviews"
)

func (h *handlers) history(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	q, err := parseTaskQuery(queryParams(c), taskviews.Statuses, true)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	q.filter.Owner = p.UserID
	items, total, err := taskviews.ListHistory(c.Request.Context(), h.d.Pool, q.filter, q.sort, q.page, q.size)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, listPage[taskviews.HistoryEntry]{Items: items, Page: q.page, PageSize: q.size, Total: total})
}

// stats answers the caller's statistics over whole UTC days: every day the
// range [from, to) touches (the read model keeps them per day of creation).
func (h *handlers) stats(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	var fields []problem.FieldError
	from, err := parseInstant(c.Query("from"))
	if err != nil {
		fields = append(fields, problem.FieldError{Field: "from", Message: err.Error()})
	}
	to, err := parseInstant(c.Query("to"))
	if err != nil {
		fields = append(fields, problem.FieldError{Field: "to", Message: err.Error()})
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		fields = append(fields, problem.FieldError{Field: "to", Message: "must be after from"})
	}
	if len(fields) > 0 {
		httpapi.WriteError(c, problem.Invalid("The query parameters are invalid.", fields...))
		return
	}
	var toDay time.Time
	if !to.IsZero() {
		// The day holding the last instant before to, included.
		toDay = taskviews.Day(to.Add(-time.Nanosecond)).AddDate(0, 0, 1)
	}
	s, err := taskviews.StatsFor(c.Request.Context(), h.d.Pool, p.UserID, from, toDay)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, s)
}

// exportRequest is the body of POST /history/export.
type exportRequest struct {
	Format  string        `json:"format"`
	Filters exportFilters `json:"filters"`
}

// exportFilters are the list filters as JSON; status may be a string
// (comma-separated) or a list.
type exportFilters struct {
	Status stringList `json:"status"`
	From   string     `json:"from"`
	To     string     `json:"to"`
	Q      string     `json:"q"`
	Sort   string     `json:"sort"`
}

type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("must be a string or a list of strings")
	}
	*l = many
	return nil
}

// exportFlushEvery is how many rows are written between flushes, so the
// client receives the export while it is produced.
const exportFlushEvery = 256

func (h *handlers) export(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	var req exportRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		httpapi.WriteError(c, err)
		return
	}
	var fields []problem.FieldError
	if req.Format != "csv" && req.Format != "json" {
		fields = append(fields, problem.FieldError{Field: "format", Message: `must be "csv" or "json"`})
	}
	f := req.Filters
	q, err := parseTaskQuery(func(name string) string {
		switch name {
		case "status":
			return strings.Join(f.Status, ",")
		case "from":
			return f.From
		case "to":
			return f.To
		case "q":
			return f.Q
		case "sort":
			return f.Sort
		}
		return ""
	}, taskviews.Statuses, false)
	var pe *problem.Error
	if errors.As(err, &pe) {
		for _, fe := range pe.Fields {
			fields = append(fields, problem.FieldError{Field: "filters." + fe.Field, Message: fe.Message})
		}
	}
	if len(fields) > 0 {
		httpapi.WriteError(c, problem.Invalid("The export request is invalid.", fields...))
		return
	}
	q.filter.Owner = p.UserID

	var w exportWriter
	if req.Format == "csv" {
		w = newCSVExport(c.Writer)
	} else {
		w = &jsonExport{w: c.Writer}
	}
	started := false
	start := func() {
		started = true
		name := "history-" + time.Now().UTC().Format("20060102T150405Z") + "." + req.Format
		c.Header("Content-Type", w.contentType())
		c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
		c.Header("Cache-Control", "no-store")
		c.Status(http.StatusOK)
	}
	n := 0
	err = taskviews.EachHistory(c.Request.Context(), h.d.Pool, q.filter, q.sort, func(e taskviews.HistoryEntry) error {
		if !started {
			start()
			if err := w.begin(); err != nil {
				return err
			}
		}
		if err := w.row(e); err != nil {
			return err
		}
		n++
		if n%exportFlushEvery == 0 {
			return w.flush(c.Writer)
		}
		return nil
	})
	if err == nil {
		if !started {
			start()
			err = w.begin()
		}
		if err == nil {
			err = w.end()
		}
		if err == nil {
			err = w.flush(c.Writer)
		}
	}
	if err != nil {
		if !started {
			httpapi.WriteError(c, err)
			return
		}
		// The status and some rows are gone. Ending the response normally
		// would hand the client a short file that looks complete (a CSV
		// one cannot tell), so the connection is cut instead: the client
		// sees a failed transfer. The access log records the error.
		_ = c.Error(err)
		if c.Request.Context().Err() != nil {
			return // the client left: there is no transfer to cut
		}
		panic(http.ErrAbortHandler)
	}
}

// exportWriter writes one export format row by row.
type exportWriter interface {
	contentType() string
	begin() error
	row(taskviews.HistoryEntry) error
	end() error
	flush(http.Flusher) error
}

// exportColumns are the CSV columns, in order.
var exportColumns = []string{"task_id", "status", "created_at", "started_at", "finished_at", "deleted_at", "expired_at",
	"processing_ms", "attempts", "max_attempts", "file_count", "bytes", "file_names", "error"}

type csvExport struct {
	w *csv.Writer
}

func newCSVExport(w io.Writer) *csvExport { return &csvExport{w: csv.NewWriter(w)} }

func (*csvExport) contentType() string { return "text/csv; charset=utf-8" }

func (e *csvExport) begin() error { return e.w.Write(exportColumns) }

func (e *csvExport) row(h taskviews.HistoryEntry) error {
	ts := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	errText := ""
	if h.Error != nil {
		errText = *h.Error
	}
	return e.w.Write([]string{h.TaskID.String(), h.Status, h.CreatedAt.UTC().Format(time.RFC3339Nano), ts(h.StartedAt),
		ts(h.FinishedAt), ts(h.DeletedAt), ts(h.ExpiredAt), strconv.FormatInt(h.ProcessingMS, 10), strconv.Itoa(h.Attempts),
		strconv.Itoa(h.MaxAttempts), strconv.Itoa(h.FileCount), strconv.FormatInt(h.Bytes, 10),
		cell(strings.Join(h.FileNames, "; ")), cell(errText)})
}

// cell defuses spreadsheet formulas in client-supplied text (OWASP CSV
// injection): a cell starting with = + - @ or a control character is
// prefixed with a quote.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func (*csvExport) end() error { return nil }

func (e *csvExport) flush(f http.Flusher) error {
	e.w.Flush()
	if err := e.w.Error(); err != nil {
		return err
	}
	f.Flush()
	return nil
}

// jsonExport writes a JSON array, one element per row.
type jsonExport struct {
	w    io.Writer
	buf  bytes.Buffer
	rows int
}

func (*jsonExport) contentType() string { return "application/json" }

func (e *jsonExport) begin() error { e.buf.WriteByte('['); return nil }

func (e *jsonExport) row(h taskviews.HistoryEntry) error {
	if e.rows > 0 {
		e.buf.WriteByte(',')
	}
	e.rows++
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	e.buf.WriteByte('\n')
	e.buf.Write(b)
	return nil
}

func (e *jsonExport) end() error { e.buf.WriteString("\n]\n"); return nil }

func (e *jsonExport) flush(f http.Flusher) error {
	if _, err := e.w.Write(e.buf.Bytes()); err != nil {
		return err
	}
	e.buf.Reset()
	f.Flush()
	return nil
}

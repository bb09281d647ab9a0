package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi/problem"
	"github.com/authledger/authledger/outage"
)

// ContentTypeProblem is the media type of every error body (RFC 9457).
const ContentTypeProblem = "application/problem+json"

// WriteError is the one place where an error becomes an HTTP answer: it
// maps err with the engine's error table (Config.Errors, see
// ErrorTable.Problem), writes the problem as application/problem+json with
// Retry-After where one applies, records err for the access log and aborts
// the handler chain. Errors outside the table and the problem vocabulary
// answer 500 without revealing their text.
//
// Handlers pass domain and command errors as they are: the table, not the
// handler, decides their status and type.
func WriteError(c *gin.Context, err error) {
	pe := errorTable(c).Problem(err)
	writeProblem(c, pe, pe.Document(instance(c)))
	if err != nil {
		_ = c.Error(err)
	}
}

// WriteErrorMembers is WriteError with extension members added to the
// problem document (RFC 9457 section 3.2), such as the mfa_token of an
// mfa-required answer. A member never replaces a standard one.
func WriteErrorMembers(c *gin.Context, err error, members map[string]any) {
	pe := errorTable(c).Problem(err)
	doc := pe.Document(instance(c))
	body := map[string]any{}
	if b, merr := json.Marshal(doc); merr == nil {
		_ = json.Unmarshal(b, &body)
	}
	for k, v := range members {
		if _, taken := body[k]; !taken {
			body[k] = v
		}
	}
	writeProblem(c, pe, body)
	if err != nil {
		_ = c.Error(err)
	}
}

// OutageRetryAfter is the Retry-After of an answer to a request that failed
// because a dependency is down.
const OutageRetryAfter = time.Second

// ErrorRule maps every error that matches Err (errors.Is) to Problem.
type ErrorRule struct {
	// Err is the domain or command error (a sentinel, or the sentinel a
	// typed error matches with its Is method).
	Err error
	// Problem is the answer. Its kind (hence status) and type slug are the
	// contract clients branch on; its detail must not tell whether an
	// account exists.
	Problem *problem.Error
	// Details, when set, adds what the matched error carries (the invalid
	// fields, a wait) to a copy of Problem. It cannot change the kind or
	// the slug.
	Details func(err error, p *problem.Error)
}

// ErrorTable is the table from the application's domain and command
// errors to problems (package httpapi/errtable builds it; cmd hands it to
// the engine as Config.Errors). Rules are tried in order and the first
// whose Err matches wins, so a rule for an error that wraps another comes
// before the rule for the wrapped one.
type ErrorTable []ErrorRule

// Problem maps any error to the problem vocabulary:
//
//  1. a *problem.Error (or a problem.Kind) in the chain wins: what a
//     handler built from the request itself (a malformed body, a bad
//     query parameter);
//  2. then the first rule of t that matches;
//  3. then the errors of lower layers, with their natural meaning: a
//     conflict on append (409), a timeout, a body past its limit (413), a
//     full disk (507), a dependency down (503 with Retry-After, see
//     package outage);
//  4. everything else is an internal error (500), as is Problem(nil): a
//     handler that calls WriteError without an error has a bug.
//
// A nil table maps only steps 1, 3 and 4.
func (t ErrorTable) Problem(err error) *problem.Error {
	var (
		pe *problem.Error
		k  problem.Kind
	)
	switch {
	case err == nil:
		return problem.From(errors.New("httpapi: WriteError called with a nil error"))
	case errors.As(err, &pe):
		return pe
	case errors.As(err, &k):
		return problem.From(err)
	}
	for _, r := range t {
		if errors.Is(err, r.Err) {
			return r.apply(err)
		}
	}
	return lowerLayers(err)
}

func (r ErrorRule) apply(err error) *problem.Error {
	p := r.Problem.WithCause(err)
	if r.Details != nil {
		r.Details(err, p)
		p.Kind, p.Slug = r.Problem.Kind, r.Problem.Slug
	}
	return p
}

// lowerLayers maps the errors of the layers below the commands (the event
// store port, the standard library, package outage), which every
// deployment shares whatever its table.
func lowerLayers(err error) *problem.Error {
	switch {
	case errors.Is(err, eventstore.ErrWrongExpectedVersion):
		// A command retries on conflict; reaching here means it gave up.
		return problem.Conflict("", "The resource was changed concurrently; retry the request.").WithCause(err)
	case errors.Is(err, context.DeadlineExceeded):
		return problem.Unavailable(time.Second, "The request took too long; retry it.").WithCause(err)
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer.
		return problem.Unavailable(time.Second, "The request was cancelled.").WithCause(err)
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return problem.TooLarge("The request body exceeds the limit of this endpoint.").WithCause(err)
	case outage.StorageFull(err):
		return problem.StorageFull("There is no room to store this request; nothing was kept. Retry once space is freed.").WithCause(err)
	case outage.Is(err) || outage.Contention(err):
		// The database, the event store or the file store is down or did
		// not answer: the request may succeed in a moment. A bug is not
		// retryable and stays a 500.
		return problem.Unavailable(OutageRetryAfter, "A service this request needs is unavailable; retry shortly.").WithCause(err)
	}
	return problem.From(err)
}

const keyErrorTable = "authledger.error_table"

// errorTable is the table of the engine that serves c (nil outside one).
func errorTable(c *gin.Context) ErrorTable {
	v, _ := c.Get(keyErrorTable)
	t, _ := v.(ErrorTable)
	return t
}

func writeProblem(c *gin.Context, pe *problem.Error, body any) {
	if ra := pe.RetryAfterSeconds(); ra != "" {
		c.Header("Retry-After", ra)
	}
	b, err := json.Marshal(body)
	if err != nil {
		// Cannot happen with the types we render; answer something valid.
		b = []byte(`{"type":"` + problem.TypeBase + `internal-error","title":"Internal server error","status":500}`)
		pe = &problem.Error{Kind: problem.KindInternal}
	}
	c.Abort()
	if c.Writer.Written() {
		// Headers are gone (a streamed response failed half-way); the error
		// is still recorded for the log.
		return
	}
	c.Data(pe.Status(), ContentTypeProblem, b)
}

// instance identifies this occurrence of a problem by its request id, which
// the client also has in X-Request-ID and support can find in the logs.
func instance(c *gin.Context) string {
	if id := RequestID(c); id != "" {
		return "urn:authledger:request:" + id
	}
	return ""
}

// errorPage is the page a browser lands on when a flow it follows fails
// (an upstream sign-in's callback): the problem's title and detail, no
// more.
var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Detail}}</p><p><small>{{.Instance}}</small></p></body></html>
`))

// WriteErrorPage is WriteError for a browser (Accept: text/html): the same
// mapping and status, as a small HTML page instead of problem+json.
func WriteErrorPage(c *gin.Context, err error) {
	pe := errorTable(c).Problem(err)
	if err != nil {
		_ = c.Error(err)
	}
	c.Abort()
	if ra := pe.RetryAfterSeconds(); ra != "" {
		c.Header("Retry-After", ra)
	}
	doc := pe.Document(instance(c))
	var b bytes.Buffer
	if err := errorPage.Execute(&b, doc); err != nil {
		b.Reset()
		b.WriteString("<!doctype html><title>Error</title><h1>Error</h1>")
	}
	c.Data(pe.Status(), "text/html; charset=utf-8", b.Bytes())
}

package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authledger/authledger/httpapi/problem"
)

// DefaultMaxBody bounds a request body when Limits.MaxBody is 0.
const DefaultMaxBody = 64 << 10

// NoBodyLimit as RouteLimit.MaxBody leaves the body to the handler, which
// must bound it itself (the multipart upload reads up to its own limit).
const NoBodyLimit = -1

// RouteLimit bounds one route.
type RouteLimit struct {
	// MaxBody is the largest request body the route reads, in bytes: 0
	// takes Limits.MaxBody; NoBodyLimit leaves it to the handler.
	MaxBody int64
	// Timeout, when positive, replaces the server's read and write
	// timeouts for this route: reading the request and writing the answer
	// must end within Timeout of the handler's start. Streams (downloads,
	// exports) and uploads need it; elsewhere the server's bounds hold.
	Timeout time.Duration
}

// Limits bounds every request's body and, per route, its deadlines.
type Limits struct {
	// MaxBody is the largest body of a route without its own (bytes); 0
	// means DefaultMaxBody.
	MaxBody int64
	// Routes are keyed by method and the path as registered
	// ("GET /v1/tasks/:id/files/:file_id"). A key no route has is a
	// mistake: cmd/authledger tests that every key names a route.
	Routes map[string]RouteLimit
}

func (l Limits) validate() error {
	var errs []error
	if l.MaxBody < 0 {
		errs = append(errs, errors.New("httpapi: Limits.MaxBody must not be negative"))
	}
	for k, r := range l.Routes {
		if method, path, ok := strings.Cut(k, " "); !ok || method == "" || !strings.HasPrefix(path, "/") {
			errs = append(errs, fmt.Errorf("httpapi: Limits.Routes key %q is not \"METHOD /path\"", k))
		}
		if r.MaxBody < NoBodyLimit || r.Timeout < 0 {
			errs = append(errs, fmt.Errorf("httpapi: Limits.Routes[%q] has a negative bound", k))
		}
	}
	return errors.Join(errs...)
}

const keyBodyLimit = "authledger.body_limit"

// limits applies l to each request: a declared Content-Length over the
// route's limit is answered 413 before a byte of the body is read (and
// the connection closed, so net/http does not drain it either); any other
// body is read through http.MaxBytesReader, which fails past the limit
// and makes net/http close the connection after the answer. A route with
// a Timeout gets its own read and write deadlines.
func limits(l Limits) gin.HandlerFunc {
	if l.MaxBody == 0 {
		l.MaxBody = DefaultMaxBody
	}
	return func(c *gin.Context) {
		rl := l.Routes[c.Request.Method+" "+c.FullPath()]
		if rl.Timeout > 0 {
			deadline := time.Now().Add(rl.Timeout)
			rc := http.NewResponseController(c.Writer)
			// Both: net/http cancels a request's context when the read
			// deadline passes, even once its body is read.
			// ErrNotSupported (a recorder in tests) keeps the server's.
			_ = rc.SetReadDeadline(deadline)
			_ = rc.SetWriteDeadline(deadline)
		}
		limit := rl.MaxBody
		if limit == 0 {
			limit = l.MaxBody
		}
		if limit == NoBodyLimit {
			c.Next()
			return
		}
		c.Set(keyBodyLimit, limit)
		if c.Request.ContentLength > limit {
			c.Header("Connection", "close")
			WriteError(c, tooLarge(limit))
			return
		}
		if c.Request.Body != nil && c.Request.Body != http.NoBody {
			c.Request.Body = http.MaxBytesReader(rawWriter(c.Writer), c.Request.Body, limit)
		}
		c.Next()
	}
}

func tooLarge(limit int64) *problem.Error {
	return problem.TooLarge(fmt.Sprintf("The request body exceeds the limit of %d bytes of this endpoint.", limit))
}

// rawWriter is net/http's own writer under gin's: http.MaxBytesReader
// tells only that one to close the connection after the answer.
func rawWriter(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/httpapi/problem"
)

// HeaderRequestID carries the request id both ways.
const HeaderRequestID = "X-Request-ID"

// MaxRequestIDLength bounds a client-supplied request id; a longer one is
// replaced, not truncated, so that two different ids never collide.
const MaxRequestIDLength = 128

const keyRequestID = "authledger.request_id"

// RequestID returns the request's id (set by the request-id middleware):
// the correlation id of every event the request appends.
func RequestID(c *gin.Context) string { return c.GetString(keyRequestID) }

// ValidRequestID reports whether a client-supplied id may be echoed: 1 to
// 128 characters from a set that is safe in headers, logs and URNs.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > MaxRequestIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		case ch == '-', ch == '_', ch == '.', ch == ':', ch == '~', ch == '+', ch == '/', ch == '=', ch == '@':
		default:
			return false
		}
	}
	return true
}

// withErrors makes t the table WriteError maps errors with.
func withErrors(t ErrorTable) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(keyErrorTable, t)
		c.Next()
	}
}

// requestID echoes a valid client X-Request-ID or makes one (UUIDv7, so ids
// sort by time in logs) and bounds the User-Agent: handlers read both, with
// c.ClientIP(), into the metadata of the events they append.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(HeaderRequestID)
		if !ValidRequestID(id) {
			id = newRequestID()
		}
		c.Set(keyRequestID, id)
		c.Header(HeaderRequestID, id)
		// The user agent is cut here, in the request itself, so that every
		// later reader (event metadata, sessions, the audit trail) sees the
		// bounded one; commands bound metadata again (events.Metadata.Bounded).
		if ua := c.Request.UserAgent(); ua != "" {
			if cut := events.Truncate(ua, events.MaxUserAgentBytes); cut != ua {
				c.Request.Header.Set("User-Agent", cut)
			}
		}
		c.Next()
	}
}

func newRequestID() string {
	if u, err := uuid.NewV7(); err == nil {
		return u.String()
	}
	return uuid.NewString()
}

// quietPaths are polled by orchestrators and scrapers; logging each poll at
// info would drown the log.
var quietPaths = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// accessLog writes one structured line per request. It logs the path
// without the query string, which may carry secrets.
func accessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		finished := false
		// Deferred, so that a request whose handler cut the connection
		// (http.ErrAbortHandler, which recovery lets through) is logged
		// too, as aborted.
		defer func() { logRequest(log, c, start, !finished) }()
		c.Next()
		finished = true
	}
}

// logRequest writes the access log line of a request (see accessLog).
func logRequest(log *slog.Logger, c *gin.Context, start time.Time, aborted bool) {
	status := c.Writer.Status()
	level := slog.LevelInfo
	switch {
	case status >= 500 || aborted:
		level = slog.LevelError
	case quietPaths[c.Request.URL.Path] && status < 400:
		level = slog.LevelDebug
	}
	ctx := c.Request.Context()
	if !log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", RequestID(c)),
		slog.String("method", c.Request.Method),
		slog.String("path", c.Request.URL.Path),
		slog.String("route", c.FullPath()),
		slog.Int("status", status),
		slog.Float64("latency_ms", float64(time.Since(start).Microseconds())/1000),
		slog.Int("bytes", c.Writer.Size()),
		slog.String("client_ip", c.ClientIP()),
	}
	if p, ok := principal(c); ok {
		attrs = append(attrs, slog.String("user_id", p.UserID.String()))
	}
	if aborted {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	if len(c.Errors) > 0 {
		// Causes are for operators: they may name internals the client
		// never sees.
		attrs = append(attrs, slog.String("error", c.Errors.String()))
	}
	log.LogAttrs(ctx, level, "http request", attrs...)
}

// recovery turns a panic into a logged 500 problem, so one bad handler
// cannot take the process down or leave the client without an answer.
func recovery(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			rec := recover()
			if rec == nil {
				return
			}
			if rec == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
				// The handler chose to abort the connection: let net/http do it.
				panic(rec)
			}
			log.LogAttrs(c.Request.Context(), slog.LevelError, "panic in handler",
				slog.String("request_id", RequestID(c)),
				slog.String("panic", fmt.Sprint(rec)),
				slog.String("stack", string(debug.Stack())),
			)
			WriteError(c, problem.From(fmt.Errorf("panic: %v", rec)))
		}()
		c.Next()
	}
}

// HSTSValue is the Strict-Transport-Security of an https deployment: a
// year, the value browsers' preload lists ask for at least. No
// includeSubDomains: the service does not own its parent domain's other
// hosts.
const HSTSValue = "max-age=31536000"

// secureHeaders sets defaults suitable for every API answer: bodies are
// JSON (never to be sniffed into HTML) and often carry tokens (never to be
// cached); behind https, HSTS (Config.HSTS). A handler serving cacheable
// content overrides Cache-Control.
func secureHeaders(hsts bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		if hsts {
			h.Set("Strict-Transport-Security", HSTSValue)
		}
		c.Next()
	}
}

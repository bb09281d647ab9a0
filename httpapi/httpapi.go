// Package httpapi assembles the gin engine every endpoint hangs off: the
// shared middleware (request id, access log, panic recovery, metrics), the
// operational routes (/healthz, /readyz, /metrics, /openapi.yaml), and the
// one function that turns errors into RFC 9457 problem documents
// (WriteError).
//
// Feature packages register their routes on the engine New returns; they
// pass errors to WriteError, which maps them with the engine's error table
// (Config.Errors), and read the caller with Caller.
package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/authledger/authledger/httpapi/problem"
)

// Config configures the engine. Logger and OpenAPI are required.
type Config struct {
	// Logger receives the access log and every internal error.
	Logger *slog.Logger
	// Version is reported by /healthz.
	Version string
	// TrustedProxies are the addresses or CIDRs whose X-Forwarded-For and
	// X-Real-IP headers are believed. Empty trusts none: the client IP is the
	// peer address. Trusting too much lets any client forge the IP recorded
	// in events and used for rate limits.
	TrustedProxies []string
	// Readiness checks run on every GET /readyz; the service is ready when
	// all pass. Projections add theirs here.
	Readiness []Check
	// ReadinessTimeout bounds one /readyz evaluation; 0 means 2s.
	ReadinessTimeout time.Duration
	// Registry receives the HTTP metrics and is what /metrics exposes. Nil
	// means a fresh registry with the Go and process collectors.
	Registry *prometheus.Registry
	// OpenAPI is the specification served at /openapi.yaml.
	OpenAPI []byte
	// Limits bounds request bodies (every route: DefaultMaxBody unless
	// set) and the deadlines of routes that stream.
	Limits Limits
	// Errors is the table from domain and command errors to problems that
	// WriteError applies (errtable.Table). Nil maps only the problem
	// vocabulary and the errors of lower layers: a domain error then
	// answers 500.
	Errors ErrorTable
	// HSTS sets Strict-Transport-Security on every answer: true when the
	// public URL (AUTHLEDGER_PUBLIC_URL) is https, so that a browser that
	// reached us over TLS never sends a password or a token in clear
	// again. Behind plain http the header would be ignored, or, through
	// a TLS proxy that forwards to a development server, pin a host that
	// has no TLS of its own.
	HSTS bool
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Logger == nil {
		errs = append(errs, errors.New("httpapi: Logger is required"))
	}
	if len(c.OpenAPI) == 0 {
		errs = append(errs, errors.New("httpapi: OpenAPI is required"))
	}
	if c.ReadinessTimeout < 0 {
		errs = append(errs, errors.New("httpapi: ReadinessTimeout must not be negative"))
	}
	if err := c.Limits.validate(); err != nil {
		errs = append(errs, err)
	}
	for i, chk := range c.Readiness {
		if chk.Name == "" || chk.Func == nil {
			errs = append(errs, errors.New("httpapi: readiness check "+strconv.Itoa(i)+" needs a Name and a Func"))
		}
	}
	return errors.Join(errs...)
}

// New builds the engine: gin in release mode, the shared middleware, the
// operational routes, and problem+json answers for unknown routes (404) and
// wrong methods (405, with Allow).
func New(cfg Config) (*gin.Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ReadinessTimeout == 0 {
		cfg.ReadinessTimeout = 2 * time.Second
	}
	if cfg.Registry == nil {
		cfg.Registry = NewRegistry()
	}
	metrics, err := newHTTPMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	if err := e.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, errors.Join(errors.New("httpapi: trusted proxies"), err)
	}
	// An API answers a wrong path with a problem, not a redirect a POST
	// client might not follow.
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = true
	// Handlers may pass c as a context.Context; let it see the request's
	// deadline and cancellation.
	e.ContextWithFallback = true

	// Order matters: the error table is there before anything can fail;
	// the request id exists before anything logs; the access
	// log and metrics wrap recovery so that a panic is logged as the 500 it
	// became.
	e.Use(
		withErrors(cfg.Errors),
		requestID(),
		accessLog(cfg.Logger),
		metrics.middleware(),
		recovery(cfg.Logger),
		secureHeaders(cfg.HSTS),
		limits(cfg.Limits),
	)
	e.NoRoute(func(c *gin.Context) {
		WriteError(c, problem.NotFound("No resource at this path."))
	})
	e.NoMethod(func(c *gin.Context) {
		WriteError(c, &problem.Error{Kind: problem.KindMethodNotAllowed, Detail: "The resource does not support this method; see the Allow header."})
	})

	e.GET("/healthz", healthz(cfg.Version))
	e.GET("/readyz", readyz(cfg.Logger, cfg.Readiness, cfg.ReadinessTimeout))
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry})))
	spec := cfg.OpenAPI
	e.GET("/openapi.yaml", func(c *gin.Context) {
		c.Header("Cache-Control", "no-cache")
		c.Data(http.StatusOK, "application/yaml", spec)
	})
	return e, nil
}

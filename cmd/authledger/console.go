package main

// console.go mounts the web console (AUTHLEDGER_CONSOLE) and the CORS
// headers for single-page apps hosted elsewhere (AUTHLEDGER_CORS_ORIGINS).

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"

	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/console"
)

// mountConsole mounts the console at / on a.engine. It calls the API on
// the same engine in process; h.consoleAPI may wrap that (tests check
// those calls against openapi.yaml too).
func mountConsole(a *app, cfg config.Config, ident *identityCore, tasks *taskCore, log *slog.Logger, h hooks) (*console.Console, error) {
	var api http.Handler = a.engine
	if h.consoleAPI != nil {
		api = h.consoleAPI(api)
	}
	c, err := console.New(console.Config{
		API:           api,
		Key:           ident.consoleKey,
		Secure:        strings.HasPrefix(strings.ToLower(cfg.PublicURL), "https://"),
		SessionMaxAge: cfg.Identity.SessionIdle,
		Upload: console.UploadLimits{
			MaxFileBytes: cfg.Tasks.MaxFileBytes, MaxRequestBytes: cfg.Tasks.MaxRequestBytes,
			MaxFiles: cfg.Tasks.MaxFiles, Types: tasks.types.List(),
		},
		TermsVersion: cfg.Account.TermsVersion,
		Logger:       log,
	})
	if err != nil {
		return nil, err
	}
	c.Mount(&a.engine.RouterGroup)
	return c, nil
}

// corsMiddleware answers the browsers of the configured origins on the
// API's paths: bearer tokens only (no credentials mode, so no cookie of
// ours ever goes cross-origin), the API's own request and answer
// headers. The console's pages are left alone: its forms carry an Origin
// the CORS check would refuse, and cross-origin use of them is exactly
// what the console's CSRF check refuses.
func corsMiddleware(origins []string) gin.HandlerFunc {
	handle := cors.New(cors.Config{
		AllowOrigins:     origins,
		AllowMethods:     []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete},
		AllowHeaders:     []string{"Authorization", "Content-Type", "X-Consistency-Token", "X-Request-ID", "Idempotency-Key"},
		ExposeHeaders:    []string{"X-Consistency-Token", "X-Request-ID", "Retry-After", "Content-Disposition", "Location"},
		AllowCredentials: false,
		MaxAge:           10 * time.Minute,
	})
	return func(c *gin.Context) {
		p := c.Request.URL.Path
		if strings.HasPrefix(p, "/v1/") || strings.HasPrefix(p, "/.well-known/") || strings.HasPrefix(p, "/oauth2/") {
			handle(c)
			return
		}
		c.Next()
	}
}

package main

import (
	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/httpapi"
)

// routeLimits is every route's bound on its request body and, for the
// routes that stream, its own deadline instead of the server's read and
// write timeouts (docs/adr/0008). Routes not named here read at most
// AUTHLEDGER_JSON_MAX_BYTES and live within the server's timeouts.
func routeLimits(cfg config.Config) httpapi.Limits {
	auth := httpapi.RouteLimit{MaxBody: cfg.HTTP.AuthMaxBodyBytes}
	stream := httpapi.RouteLimit{Timeout: cfg.HTTP.StreamTimeout}
	return httpapi.Limits{
		MaxBody: cfg.HTTP.JSONMaxBytes,
		Routes: map[string]httpapi.RouteLimit{
			"POST /v1/auth/register": auth,
			"POST /v1/auth/login":    auth,
			"POST /v1/auth/refresh":  auth,
			"POST /v1/auth/logout":   auth,
			// The upload bounds its multipart body itself
			// (AUTHLEDGER_UPLOAD_MAX_REQUEST_BYTES).
			"POST /v1/tasks":                   {MaxBody: httpapi.NoBodyLimit, Timeout: cfg.HTTP.UploadTimeout},
			"GET /v1/tasks/:id/files/:file_id": stream,
			"POST /v1/history/export":          stream,
		},
	}
}

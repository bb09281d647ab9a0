package main

import (
	"fmt"
	"log/slog"

	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/ratelimit"
)

// rateLimitAccountKeyPurpose names the HKDF derivation of the key that
// turns an email into the account rate limit's key (an HMAC, so Redis
// holds no addresses). Instances sharing Redis share the master key, and
// so this key.
const rateLimitAccountKeyPurpose = "rate limit account v1"

// routeClasses are the authenticated routes whose rate-limit class is not
// the one their method gives (GET and HEAD read, the others write).
var routeClasses = map[string]ratelimit.Class{
	"POST /v1/tasks": ratelimit.ClassUpload,
}

// newRateLimiter builds every rate limit of AUTHLEDGER_*RATE_LIMIT_* and
// AUTHLEDGER_REDIS_URL (docs/adr/0026).
func newRateLimiter(cfg config.Config, accountKey []byte, log *slog.Logger) (*ratelimit.Limiter, error) {
	rate := func(r config.RateLimitRate) ratelimit.Rate {
		return ratelimit.Rate{PerSecond: r.PerSecond, Burst: r.Burst}
	}
	rl := cfg.RateLimit
	l, err := ratelimit.New(ratelimit.Policy{
		IP:         rate(rl.IP),
		Account:    rate(rl.Account),
		Credential: rate(rl.Credential),
		Classes: map[ratelimit.Class]ratelimit.Rate{
			ratelimit.ClassRead: rate(rl.Read), ratelimit.ClassWrite: rate(rl.Write), ratelimit.ClassUpload: rate(rl.Upload),
		},
		Trusted: rl.Trusted,
	}, ratelimit.Options{RedisURL: rl.RedisURL, AccountSecret: accountKey, Classes: routeClasses, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("AUTHLEDGER_*RATE_LIMIT_*: %w", err)
	}
	if rl.RedisURL != "" && l != nil {
		log.Info("rate limits: counters in Redis, shared by every instance (AUTHLEDGER_REDIS_URL)")
	}
	return l, nil
}

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
			// The anonymous account-security routes: as small as a login.
			"POST /v1/auth/verify-email":           auth,
			"POST /v1/auth/verify-email/resend":    auth,
			"POST /v1/auth/password-reset":         auth,
			"POST /v1/auth/password-reset/confirm": auth,
			"POST /v1/me/password":                 auth,
			// The upload bounds its multipart body itself
			// (AUTHLEDGER_UPLOAD_MAX_REQUEST_BYTES).
			"POST /v1/tasks":                   {MaxBody: httpapi.NoBodyLimit, Timeout: cfg.HTTP.UploadTimeout},
			"GET /v1/tasks/:id/files/:file_id": stream,
			"POST /v1/history/export":          stream,
			// The console's upload streams its body to POST /v1/tasks
			// unread (which bounds it); its download and export stream.
			"POST /upload":                    {MaxBody: httpapi.NoBodyLimit, Timeout: cfg.HTTP.UploadTimeout},
			"GET /history/:id/files/:file_id": stream,
			"POST /history/export":            stream,
		},
	}
}

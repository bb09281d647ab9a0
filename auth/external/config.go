package external

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Default paths of the external auth API (the seeds' API,
// https://pj-auth-api.vercel.app/api/auth/login).
const (
	DefaultLoginPath   = "/api/auth/login"
	DefaultRefreshPath = "/api/auth/refresh"
	DefaultMePath      = "/api/auth/me"
)

// Config configures a Client and a TokenValidator. The first block are the
// settings an operator sets (their environment variables in brackets, read
// by cmd/ only); the rest have defaults meant to be left alone. Zero
// values take the defaults; Validate reports every problem at once.
type Config struct {
	// URL is the external auth API's base URL, scheme and host (and an
	// optional path prefix), without query (AUTHLEDGER_EXTERNAL_AUTH_URL).
	// It must be https:// unless AllowInsecure.
	URL string
	// LoginPath, RefreshPath and MePath are appended to URL
	// (AUTHLEDGER_EXTERNAL_AUTH_LOGIN_PATH, _REFRESH_PATH, _ME_PATH;
	// defaults /api/auth/login, /api/auth/refresh, /api/auth/me).
	LoginPath   string
	RefreshPath string
	MePath      string
	// Issuer is the OpenID issuer of the provider's tokens
	// (AUTHLEDGER_EXTERNAL_AUTH_ISSUER), exactly as its tokens' iss claim
	// and its discovery document's issuer spell it; for Azure AD v2 tokens
	// https://login.microsoftonline.com/{tenant}/v2.0. Its discovery
	// document is Issuer + /.well-known/openid-configuration.
	Issuer string
	// Audience is the aud the provider's tokens carry for us
	// (AUTHLEDGER_EXTERNAL_AUTH_AUDIENCE; for Azure AD the application's
	// client id or its api:// URI).
	Audience string
	// Timeout bounds each attempt of a call, reading the body included
	// (AUTHLEDGER_EXTERNAL_AUTH_TIMEOUT, default 3s, 100ms to 60s). A call
	// makes up to MaxAttempts attempts.
	Timeout time.Duration
	// RefreshBuffer is how long before the provider's access token expires
	// the vault's refresher renews it (AUTHLEDGER_TOKEN_REFRESH_BUFFER,
	// default 5m, at most 30m).
	RefreshBuffer time.Duration
	// AllowInsecure accepts http:// URLs for URL and Issuer
	// (AUTHLEDGER_EXTERNAL_AUTH_ALLOW_INSECURE). Meant for tests: over
	// plain HTTP passwords and tokens cross the network in clear.
	AllowInsecure bool

	// MaxAttempts is how many attempts a call makes in all (default 3;
	// 1 means no retry). Only transport errors, timeouts and 5xx are
	// retried.
	MaxAttempts int
	// RetryBackoff is the delay before the first retry, doubled for each
	// further one up to RetryMaxBackoff (defaults 100ms and 1s), each
	// varied by ±RetryJitter of itself (default 0.25) so that instances
	// that failed together do not retry together.
	RetryBackoff    time.Duration
	RetryMaxBackoff time.Duration
	RetryJitter     float64
	// BreakerFailures is how many consecutive failed attempts open the
	// circuit breaker (default 5). While open, calls fail at once with
	// ErrUnavailable; after BreakerDelay (default 30s) one trial attempt
	// is let through, and BreakerSuccesses (default 1) successes close it.
	BreakerFailures  int
	BreakerDelay     time.Duration
	BreakerSuccesses int

	// KeyRefreshInterval is the least time between two fetches of the
	// provider's keys caused by a token with an unknown kid (default 1m):
	// forged kids must not turn us into a load generator against the
	// issuer.
	KeyRefreshInterval time.Duration
	// KeyMaxAge is how long fetched keys are used before they are fetched
	// again on the next validation (default 1h). A failed refetch keeps
	// the old keys.
	KeyMaxAge time.Duration
	// ClockSkew is the leeway allowed on exp, nbf and iat (default 30s).
	ClockSkew time.Duration
	// Algorithms are the JWS algorithms accepted on the provider's tokens
	// (default RS256, what Azure AD signs with). Only asymmetric ones.
	Algorithms []string
	// Mapping is the API's JSON shape (zero: DefaultMapping).
	Mapping Mapping
	// RootCAs verifies the provider's certificates (nil: the system pool).
	RootCAs *x509.CertPool
	// Logger receives breaker transitions and key refreshes
	// (slog.Default() when nil). Never a token or a password.
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// asymmetric are the JWS algorithms Algorithms may name: a shared-secret
// algorithm (HS256) or none has no place in verifying a third party's
// tokens against its published keys.
var asymmetric = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	str := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	dur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	num := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	str(&c.LoginPath, DefaultLoginPath)
	str(&c.RefreshPath, DefaultRefreshPath)
	str(&c.MePath, DefaultMePath)
	dur(&c.Timeout, 3*time.Second)
	dur(&c.RefreshBuffer, 5*time.Minute)
	num(&c.MaxAttempts, 3)
	dur(&c.RetryBackoff, 100*time.Millisecond)
	dur(&c.RetryMaxBackoff, time.Second)
	if c.RetryJitter == 0 {
		c.RetryJitter = 0.25
	}
	num(&c.BreakerFailures, 5)
	dur(&c.BreakerDelay, 30*time.Second)
	num(&c.BreakerSuccesses, 1)
	dur(&c.KeyRefreshInterval, time.Minute)
	dur(&c.KeyMaxAge, time.Hour)
	dur(&c.ClockSkew, 30*time.Second)
	if len(c.Algorithms) == 0 {
		c.Algorithms = []string{"RS256"}
	}
	if c.Mapping == (Mapping{}) {
		c.Mapping = DefaultMapping
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.URL = strings.TrimRight(c.URL, "/")
	return c
}

// Validate reports every problem of c (after WithDefaults) at once, each
// naming its environment variable where it has one.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("external auth: "+format, args...)) }

	if err := checkURL(c.URL, c.AllowInsecure); err != nil {
		bad("AUTHLEDGER_EXTERNAL_AUTH_URL: %v", err)
	}
	for _, p := range []struct{ name, v string }{
		{"AUTHLEDGER_EXTERNAL_AUTH_LOGIN_PATH", c.LoginPath},
		{"AUTHLEDGER_EXTERNAL_AUTH_REFRESH_PATH", c.RefreshPath},
		{"AUTHLEDGER_EXTERNAL_AUTH_ME_PATH", c.MePath},
	} {
		if !strings.HasPrefix(p.v, "/") || strings.ContainsAny(p.v, "?# ") {
			bad("%s: %q must be a path starting with / (no query, fragment or spaces)", p.name, p.v)
		}
	}
	if err := checkURL(c.Issuer, c.AllowInsecure); err != nil {
		bad("AUTHLEDGER_EXTERNAL_AUTH_ISSUER: %v", err)
	}
	if strings.TrimSpace(c.Audience) == "" {
		bad("AUTHLEDGER_EXTERNAL_AUTH_AUDIENCE is required: the aud the provider's tokens carry for us")
	}
	if c.Timeout < 100*time.Millisecond || c.Timeout > time.Minute {
		bad("AUTHLEDGER_EXTERNAL_AUTH_TIMEOUT: %s is outside 100ms to 60s", c.Timeout)
	}
	if c.RefreshBuffer <= 0 || c.RefreshBuffer > 30*time.Minute {
		bad("AUTHLEDGER_TOKEN_REFRESH_BUFFER: %s is outside (0, 30m]: provider access tokens live about an hour, a larger buffer refreshes them all the time", c.RefreshBuffer)
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 10 {
		bad("MaxAttempts %d is outside 1 to 10", c.MaxAttempts)
	}
	if c.RetryBackoff < 0 || c.RetryMaxBackoff < c.RetryBackoff {
		bad("RetryBackoff %s must be at least 0 and at most RetryMaxBackoff %s", c.RetryBackoff, c.RetryMaxBackoff)
	}
	if c.RetryJitter < 0 || c.RetryJitter >= 1 {
		bad("RetryJitter %v is outside [0, 1)", c.RetryJitter)
	}
	if c.BreakerFailures < 1 || c.BreakerSuccesses < 1 {
		bad("BreakerFailures (%d) and BreakerSuccesses (%d) must be at least 1", c.BreakerFailures, c.BreakerSuccesses)
	}
	if c.BreakerDelay <= 0 {
		bad("BreakerDelay %s must be positive", c.BreakerDelay)
	}
	if c.KeyRefreshInterval <= 0 || c.KeyMaxAge < c.KeyRefreshInterval {
		bad("KeyRefreshInterval %s must be positive and at most KeyMaxAge %s", c.KeyRefreshInterval, c.KeyMaxAge)
	}
	if c.ClockSkew < 0 || c.ClockSkew > 5*time.Minute {
		bad("ClockSkew %s is outside 0 to 5m", c.ClockSkew)
	}
	for _, a := range c.Algorithms {
		if !slices.Contains(asymmetric, a) {
			bad("algorithm %q is not accepted on provider tokens (one of %s)", a, strings.Join(asymmetric, ", "))
		}
	}
	if err := c.Mapping.validate(); err != nil {
		errs = append(errs, fmt.Errorf("external auth: mapping: %w", err))
	}
	return errors.Join(errs...)
}

// checkURL accepts an absolute https URL (http too when insecure is
// allowed) with a host, and without credentials, query or fragment, which
// would end up in logs and error messages.
func checkURL(raw string, insecure bool) error {
	if raw == "" {
		return errors.New("is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	switch {
	case u.Scheme == "http" && !insecure:
		return fmt.Errorf("%q is plain http: passwords and tokens would cross the network in clear; use https (AUTHLEDGER_EXTERNAL_AUTH_ALLOW_INSECURE=true is for tests)", raw)
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%q must be an https:// URL", raw)
	case u.Host == "":
		return fmt.Errorf("%q has no host", raw)
	case u.User != nil:
		return errors.New("must not carry credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q must not have a query or fragment", raw)
	}
	return nil
}

// Package config is the service's configuration: one table of environment
// variables (name, default, description) from which both the parser and the
// help text are made, so the two cannot drift apart.
//
// The package never reads the environment itself: cmd/ passes a lookup
// function (os.LookupEnv), and tests pass a map.
package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/authledger/authledger/auth/external"
)

// Event store kinds (AUTHLEDGER_EVENT_STORE).
const (
	EventStorePostgres = "postgres"
	EventStoreESDB     = "esdb"
)

// Config is the whole service configuration. Load fills it from the
// environment; Validate checks it.
type Config struct {
	// DatabaseURL is the PostgreSQL connection string: the log (with the
	// postgres event store) and the read models. It may hold a password:
	// never log it.
	DatabaseURL string
	// Listen is the HTTP listen address (host:port).
	Listen string
	// PublicURL is the issuer (iss) and the base of every absolute URL the
	// server publishes. No trailing slash.
	PublicURL string
	// EventStore is EventStorePostgres or EventStoreESDB.
	EventStore string
	// ESDBURL is the EventStoreDB connection string, required with the esdb
	// store. It may hold credentials: never log it.
	ESDBURL string
	// DataDir holds local state (uploaded files and the like).
	DataDir string
	// AuditRetention: audit rows recorded longer ago than this are
	// archived to signed files under DataDir/audit-archive and leave the
	// table (0: kept forever).
	AuditRetention time.Duration
	LogLevel       slog.Level
	LogFormat      string
	// ConsistencyWait bounds how long a query carrying X-Consistency-Token
	// waits for the read models before answering 503.
	ConsistencyWait time.Duration
	// ReadyMaxLag is how far behind the log a projection or a log follower
	// may fall before /readyz answers 503.
	ReadyMaxLag time.Duration
	// MigrateOnStart makes serve apply migrations before it listens.
	MigrateOnStart bool
	// StartupTimeout bounds connecting to the stores and migrating.
	StartupTimeout time.Duration
	// ShutdownTimeout bounds the graceful drain after SIGINT/SIGTERM.
	ShutdownTimeout time.Duration
	// ReadHeaderTimeout bounds reading a request's headers (slowloris).
	ReadHeaderTimeout time.Duration
	// TrustedProxies are IPs or CIDRs whose forwarding headers are believed.
	TrustedProxies []string
	// HTTP bounds what one client can hold of the server: request bodies,
	// connection time, connections (docs/adr/0008).
	HTTP HTTP

	Identity Identity
	// Account is outgoing mail and account security.
	Account Account
	// MFA is second factors.
	MFA MFA
	// WebAuthn is passkeys.
	WebAuthn WebAuthn
	// RateLimit is every request rate limit (docs/adr/0026).
	RateLimit RateLimit
	// Stream is the analytics stream to NATS JetStream.
	Stream Stream
	// Webhooks is the delivery of webhooks.
	Webhooks Webhooks
	Tasks    Tasks
	// External is login through the external auth API.
	External ExternalAuth
	// OIDC is sign-in with upstream providers.
	OIDC OIDC
	// Console serves the web console at / (docs/console.md).
	Console bool
	// CORSOrigins are the origins of single-page apps hosted elsewhere
	// that call the API with bearer tokens (none: no CORS headers).
	CORSOrigins []string
}

// Tasks is the configuration of uploads, quotas, processing and retention.
type Tasks struct {
	// Workers is the embedded worker's concurrency in serve (0: none; run
	// `authledger worker` instead).
	Workers         int
	MaxFileBytes    int64
	MaxRequestBytes int64
	MaxFiles        int
	// Types are the accepted content types (png, jpeg, tiff, webp, pdf,
	// gif, bmp or media types), sniffed from the bytes.
	Types []string
	// MaxImagePixels and MaxImageSide bound each uploaded image's (each
	// TIFF page's) dimensions, read from its header.
	MaxImagePixels int64
	MaxImageSide   int
	MaxActiveTasks int
	MaxStoredBytes int64
	// RetentionDays expires tasks older than this (0: keep forever).
	RetentionDays int
	// RetentionByUser overrides RetentionDays for some users.
	RetentionByUser map[string]int
	Lease           time.Duration
	// AccessDenialWindow coalesces a user's refused reads: the first in a
	// window is recorded, the rest counted into one event (0: each one
	// recorded).
	AccessDenialWindow time.Duration
	// Tesseract is the OCR binary; OCRLanguages its -l argument.
	Tesseract    string
	OCRLanguages string
	// OCRTimeout bounds the OCR of one file; OCRMaxMemoryBytes is each
	// tesseract process's address-space limit (0: none).
	OCRTimeout        time.Duration
	OCRMaxMemoryBytes int64
}

// Identity is the configuration of registration, login, sessions and keys.
type Identity struct {
	// MasterKey (base64 of 32 bytes) encrypts the signing keys at rest and
	// derives the email-reservation HMAC key. Secret: never log it.
	MasterKey string
	// MasterKeyFile holds the master key instead (mode 0600). With neither
	// set, serve creates a development key file under DataDir and says so.
	MasterKeyFile string
	// SigningAlgorithm signs access tokens: ES256, RS256 or EdDSA.
	SigningAlgorithm string
	// KeyOverlap is how long a rotated-in key is published before it signs.
	KeyOverlap      time.Duration
	AccessTokenTTL  time.Duration
	SessionIdle     time.Duration
	SessionLifetime time.Duration
	RefreshGrace    time.Duration
	// MaxSessionsPerUser caps concurrent sessions (0: no cap).
	MaxSessionsPerUser int
	// BootstrapAdmin is the address whose user serve gives the admin role,
	// once per user over the deployment's life (at start-up, or when that
	// user registers); "" for none.
	BootstrapAdmin string
	// Argon2 parameters (OWASP defaults).
	Argon2MemoryKiB   int
	Argon2Iterations  int
	Argon2Parallelism int
	// The login throttle (user.ThrottlePolicy, docs/login-throttling.md):
	// past LockoutMaxFailures failures of one source on one account (or
	// LockoutAccountMaxFailures on the account from sources that are not
	// known devices) within LockoutWindow, the next attempt waits
	// LockoutDuration, doubling per failure up to LockoutMaxDuration.
	LockoutMaxFailures        int
	LockoutAccountMaxFailures int
	LockoutWindow             time.Duration
	LockoutDuration           time.Duration
	LockoutMaxDuration        time.Duration
	// KnownDeviceTTL is how long a login's device token marks a known
	// device (0: none issued).
	KnownDeviceTTL time.Duration
}

// Var is one environment variable of the table.
type Var struct {
	Name string
	// Default is used when the variable is unset or empty.
	Default string
	// DefaultDoc, when set, is shown instead of Default (for derived or
	// absent defaults).
	DefaultDoc  string
	Description string
	set         func(c *Config, v string) error
}

// ShownDefault is the default as help and README show it.
func (v Var) ShownDefault() string {
	if v.DefaultDoc != "" {
		return v.DefaultDoc
	}
	return v.Default
}

// table is the single declaration of every variable. Add new variables
// here: Load, Usage and the README table (checked by a test) follow.
var table = []Var{
	{
		Name:        "DATABASE_URL",
		DefaultDoc:  "(required; `make run` starts a private PostgreSQL when unset)",
		Description: "PostgreSQL connection string for the read models and, with the postgres store, the log.",
		set:         func(c *Config, v string) error { c.DatabaseURL = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_LISTEN",
		Default:     "127.0.0.1:8080",
		Description: "HTTP listen address (host:port).",
		set:         func(c *Config, v string) error { c.Listen = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_PUBLIC_URL",
		DefaultDoc:  "http:// + AUTHLEDGER_LISTEN",
		Description: "Issuer (iss) and base of every absolute URL the server publishes. An unspecified listen host becomes localhost.",
		set:         func(c *Config, v string) error { c.PublicURL = strings.TrimRight(v, "/"); return nil },
	},
	{
		Name:        "AUTHLEDGER_EVENT_STORE",
		Default:     EventStorePostgres,
		Description: "Event store: postgres (the log in DATABASE_URL) or esdb (EventStoreDB at ESDB_URL).",
		set:         func(c *Config, v string) error { c.EventStore = strings.ToLower(v); return nil },
	},
	{
		Name:        "ESDB_URL",
		Description: "EventStoreDB connection string (esdb://host:2113?tls=false); required when AUTHLEDGER_EVENT_STORE=esdb.",
		set:         func(c *Config, v string) error { c.ESDBURL = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_DATA_DIR",
		Default:     ".data",
		Description: "Directory for local state (uploaded files and the like).",
		set:         func(c *Config, v string) error { c.DataDir = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_AUDIT_RETENTION",
		Default:     "0",
		DefaultDoc:  "0 (audit rows are kept forever)",
		Description: "Audit rows recorded longer ago than this (e.g. 2160h) are archived hourly by serve to signed, hash-chained files in $AUTHLEDGER_DATA_DIR/audit-archive and leave the audit table; `authledger audit verify` goes on checking the chain from the last archive's anchor (docs/audit.md).",
		set:         duration(func(c *Config) *time.Duration { return &c.AuditRetention }),
	},
	{
		Name:        "AUTHLEDGER_LOG_LEVEL",
		Default:     "info",
		Description: "Log level: debug, info, warn or error.",
		set: func(c *Config, v string) error {
			if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
				return errors.New("not a log level (debug, info, warn, error)")
			}
			return nil
		},
	},
	{
		Name:        "AUTHLEDGER_LOG_FORMAT",
		Default:     "json",
		Description: "Log format: json or text.",
		set:         func(c *Config, v string) error { c.LogFormat = strings.ToLower(v); return nil },
	},
	{
		Name:        "AUTHLEDGER_CONSISTENCY_WAIT",
		Default:     "2s",
		Description: "How long a query with X-Consistency-Token waits for the read models before answering 503.",
		set:         duration(func(c *Config) *time.Duration { return &c.ConsistencyWait }),
	},
	{
		Name:        "AUTHLEDGER_READY_MAX_LAG",
		Default:     "30s",
		Description: "How far behind the log (age of the oldest event not yet handled) a projection, policy or log follower may be before /readyz answers 503 naming it.",
		set:         duration(func(c *Config) *time.Duration { return &c.ReadyMaxLag }),
	},
	{
		Name:        "AUTHLEDGER_MIGRATE_ON_START",
		Default:     "true",
		Description: "Apply database migrations when serve starts (turn off when a separate `authledger migrate` step does it).",
		set: func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return errors.New("not a boolean")
			}
			c.MigrateOnStart = b
			return nil
		},
	},
	{
		Name:        "AUTHLEDGER_STARTUP_TIMEOUT",
		Default:     "30s",
		Description: "Bound on connecting to the stores and migrating at start-up.",
		set:         duration(func(c *Config) *time.Duration { return &c.StartupTimeout }),
	},
	{
		Name:        "AUTHLEDGER_SHUTDOWN_TIMEOUT",
		Default:     "15s",
		Description: "Bound on the graceful drain of requests after SIGINT or SIGTERM.",
		set:         duration(func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
	},
	{
		Name:        "AUTHLEDGER_READ_HEADER_TIMEOUT",
		Default:     "10s",
		Description: "Bound on reading a request's headers.",
		set:         duration(func(c *Config) *time.Duration { return &c.ReadHeaderTimeout }),
	},
	{
		Name:        "AUTHLEDGER_READ_TIMEOUT",
		Default:     "30s",
		Description: "Bound on reading a whole request, body included (uploads: AUTHLEDGER_UPLOAD_TIMEOUT); it also bounds the handling of a request that is not a stream.",
		set:         duration(func(c *Config) *time.Duration { return &c.HTTP.ReadTimeout }),
	},
	{
		Name:        "AUTHLEDGER_WRITE_TIMEOUT",
		Default:     "30s",
		Description: "Bound on answering a request, from the end of its headers (downloads and exports: AUTHLEDGER_STREAM_TIMEOUT).",
		set:         duration(func(c *Config) *time.Duration { return &c.HTTP.WriteTimeout }),
	},
	{
		Name:        "AUTHLEDGER_IDLE_TIMEOUT",
		Default:     "60s",
		Description: "How long a keep-alive connection may wait for its next request.",
		set:         duration(func(c *Config) *time.Duration { return &c.HTTP.IdleTimeout }),
	},
	{
		Name:        "AUTHLEDGER_STREAM_TIMEOUT",
		Default:     "10m",
		Description: "Bound on a file download (GET /v1/tasks/{id}/files/{file_id}) or a history export (POST /v1/history/export), instead of the read and write timeouts.",
		set:         duration(func(c *Config) *time.Duration { return &c.HTTP.StreamTimeout }),
	},
	{
		Name:        "AUTHLEDGER_UPLOAD_TIMEOUT",
		Default:     "10m",
		Description: "Bound on a multipart upload (POST /v1/tasks), reading and answering, instead of the read and write timeouts.",
		set:         duration(func(c *Config) *time.Duration { return &c.HTTP.UploadTimeout }),
	},
	{
		Name:        "AUTHLEDGER_MAX_CONNECTIONS",
		Default:     "1024",
		Description: "Open client connections at most; past it a new connection closes an idle or the slowest unfinished one (docs/adr/0008), or is refused when every one is being answered.",
		set:         integer(func(c *Config) *int { return &c.HTTP.MaxConnections }),
	},
	{
		Name:        "AUTHLEDGER_AUTH_MAX_BODY_BYTES",
		Default:     "8192",
		Description: "Largest request body of register, login, refresh and logout (bytes); larger answers 413 too-large without being read.",
		set:         integer64(func(c *Config) *int64 { return &c.HTTP.AuthMaxBodyBytes }),
	},
	{
		Name:        "AUTHLEDGER_JSON_MAX_BYTES",
		Default:     "65536",
		Description: "Largest request body of every other route but the upload (bytes; POST /v1/history/export among them); larger answers 413 too-large without being read.",
		set:         integer64(func(c *Config) *int64 { return &c.HTTP.JSONMaxBytes }),
	},
	{
		Name:        "AUTHLEDGER_CONSOLE",
		Default:     "true",
		Description: "Serve the web console at / (sign-in, upload, task history; docs/console.md). Its cookies are Secure when AUTHLEDGER_PUBLIC_URL is https.",
		set: func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return errors.New("not a boolean")
			}
			c.Console = b
			return nil
		},
	},
	{
		Name:        "AUTHLEDGER_CORS_ORIGINS",
		DefaultDoc:  "(none)",
		Description: "Comma-separated origins (https://app.example) of single-page apps hosted elsewhere that call the API with bearer tokens; they get CORS headers (no cookies). None: no CORS.",
		set: func(c *Config, v string) error {
			c.CORSOrigins = nil
			for o := range strings.SplitSeq(v, ",") {
				if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
					c.CORSOrigins = append(c.CORSOrigins, o)
				}
			}
			return nil
		},
	},
	{
		Name:        "AUTHLEDGER_TRUSTED_PROXIES",
		DefaultDoc:  "(none)",
		Description: "Comma-separated IPs or CIDRs whose X-Forwarded-For is believed for the client IP; none means the peer address.",
		set: func(c *Config, v string) error {
			c.TrustedProxies = nil
			for p := range strings.SplitSeq(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					c.TrustedProxies = append(c.TrustedProxies, p)
				}
			}
			return nil
		},
	},
	{
		Name:        "AUTHLEDGER_MASTER_KEY",
		DefaultDoc:  "(none)",
		Description: "Base64 of 32 random bytes (`openssl rand -base64 32`): encrypts signing keys and the users' data keys (docs/gdpr.md) at rest and derives the email-reservation key and the audit chain and head keys (`authledger audit`). Secret; keep it stable, and keep it out of the database.",
		set:         func(c *Config, v string) error { c.Identity.MasterKey = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_MASTER_KEY_FILE",
		DefaultDoc:  "(none: serve creates `$AUTHLEDGER_DATA_DIR/dev-master.key` and logs a warning)",
		Description: "File holding the master key (mode 0600), instead of AUTHLEDGER_MASTER_KEY.",
		set:         func(c *Config, v string) error { c.Identity.MasterKeyFile = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_SIGNING_ALG",
		Default:     "ES256",
		Description: "Access-token signature algorithm for new keys: ES256, RS256 or EdDSA.",
		set:         func(c *Config, v string) error { c.Identity.SigningAlgorithm = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_KEY_OVERLAP",
		Default:     "1h",
		Description: "How long a key added by `authledger keys rotate` is published in the JWKS before it signs.",
		set:         duration(func(c *Config) *time.Duration { return &c.Identity.KeyOverlap }),
	},
	{
		Name:        "AUTHLEDGER_ACCESS_TOKEN_TTL",
		Default:     "15m",
		Description: "Access-token lifetime (1m to 24h).",
		set:         duration(func(c *Config) *time.Duration { return &c.Identity.AccessTokenTTL }),
	},
	{
		Name:        "AUTHLEDGER_SESSION_IDLE_TIMEOUT",
		Default:     "168h",
		Description: "A session not refreshed for this long ends.",
		set:         duration(func(c *Config) *time.Duration { return &c.Identity.SessionIdle }),
	},
	{
		Name:        "AUTHLEDGER_SESSION_LIFETIME",
		Default:     "720h",
		Description: "A session ends this long after login, however often it is refreshed.",
		set:         duration(func(c *Config) *time.Duration { return &c.Identity.SessionLifetime }),
	},
	{
		Name:        "AUTHLEDGER_REFRESH_GRACE",
		Default:     "0s",
		Description: "Window (at most 1m) in which the immediately previous refresh token may be used once more; 0 means any reuse revokes the session.",
		set:         duration(func(c *Config) *time.Duration { return &c.Identity.RefreshGrace }),
	},
	{
		Name:        "AUTHLEDGER_MAX_SESSIONS_PER_USER",
		Default:     "0",
		Description: "Concurrent sessions per user; a login beyond it revokes the oldest. 0 means no cap.",
		set:         integer(func(c *Config) *int { return &c.Identity.MaxSessionsPerUser }),
	},
	{
		Name:        "AUTHLEDGER_BOOTSTRAP_ADMIN",
		Description: "Email address of the first administrator: serve grants that user the admin role once (at start-up, or as soon as the address registers), recorded in the log so that no restart or other instance grants it again.",
		set:         func(c *Config, v string) error { c.Identity.BootstrapAdmin = strings.TrimSpace(v); return nil },
	},
	{
		Name:        "AUTHLEDGER_ARGON2_MEMORY_KIB",
		Default:     "19456",
		Description: "argon2id memory (KiB) for new password hashes; hashes with other parameters are upgraded at the next login.",
		set:         integer(func(c *Config) *int { return &c.Identity.Argon2MemoryKiB }),
	},
	{
		Name:        "AUTHLEDGER_ARGON2_ITERATIONS",
		Default:     "2",
		Description: "argon2id iterations (t).",
		set:         integer(func(c *Config) *int { return &c.Identity.Argon2Iterations }),
	},
	{
		Name:        "AUTHLEDGER_ARGON2_PARALLELISM",
		Default:     "1",
		Description: "argon2id parallelism (p).",
		set:         integer(func(c *Config) *int { return &c.Identity.Argon2Parallelism }),
	},
	{
		Name:        "AUTHLEDGER_LOCKOUT_MAX_FAILURES",
		Default:     "5",
		Description: "Failed logins of one source (network or known device) on one account within AUTHLEDGER_LOCKOUT_WINDOW before that source must wait between attempts (429 rate-limited); nothing locks the account (docs/login-throttling.md).",
		set:         integer(func(c *Config) *int { return &c.Identity.LockoutMaxFailures }),
	},
	{
		Name:        "AUTHLEDGER_LOCKOUT_ACCOUNT_MAX_FAILURES",
		Default:     "20",
		Description: "Failed logins on one account from all sources within AUTHLEDGER_LOCKOUT_WINDOW before every attempt not from a known device waits too.",
		set:         integer(func(c *Config) *int { return &c.Identity.LockoutAccountMaxFailures }),
	},
	{
		Name:        "AUTHLEDGER_LOCKOUT_WINDOW",
		Default:     "24h",
		Description: "How far back failed logins count.",
		set:         duration(func(c *Config) *time.Duration { return &c.Identity.LockoutWindow }),
	},
	{
		Name:        "AUTHLEDGER_LOCKOUT_DURATION",
		Default:     "1s",
		Description: "Wait after the failure that reaches a threshold; each further failure doubles it.",
		set:         duration(func(c *Config) *time.Duration { return &c.Identity.LockoutDuration }),
	},
	{
		Name:        "AUTHLEDGER_LOCKOUT_MAX_DURATION",
		Default:     "15m",
		Description: "Longest wait between attempts (at most AUTHLEDGER_LOCKOUT_WINDOW).",
		set:         duration(func(c *Config) *time.Duration { return &c.Identity.LockoutMaxDuration }),
	},
	{
		Name:        "AUTHLEDGER_KNOWN_DEVICE_TTL",
		Default:     "2160h",
		Description: "How long the device token a login hands out (cookie and device_token) lets that device in while strangers are throttled; 0 hands none out.",
		set:         duration(func(c *Config) *time.Duration { return &c.Identity.KnownDeviceTTL }),
	},
	{
		Name:        "AUTHLEDGER_RATE_LIMIT_PER_SECOND",
		Default:     "5",
		Description: "Register, login and refresh requests per second per client network (the ip level: token bucket; an IPv6 client is its /64); 0 turns the limit off.",
		set:         float(func(c *Config) *float64 { return &c.RateLimit.IP.PerSecond }),
	},
	{
		Name:        "AUTHLEDGER_RATE_LIMIT_BURST",
		Default:     "20",
		Description: "Burst of the per-IP rate limit.",
		set:         integer(func(c *Config) *int { return &c.RateLimit.IP.Burst }),
	},
	{
		Name:        "AUTHLEDGER_ACCOUNT_RATE_LIMIT_PER_SECOND",
		Default:     "0.1",
		Description: "Login attempts per second against one account from every network together (keyed by the normalised email, alike whether the account exists; attempts with a device token are held by the login throttle instead); 0 turns the limit off.",
		set:         float(func(c *Config) *float64 { return &c.RateLimit.Account.PerSecond }),
	},
	{
		Name:        "AUTHLEDGER_ACCOUNT_RATE_LIMIT_BURST",
		Default:     "10",
		Description: "Burst of the per-account login rate limit.",
		set:         integer(func(c *Config) *int { return &c.RateLimit.Account.Burst }),
	},
	{
		Name:        "AUTHLEDGER_USER_RATE_LIMIT_PER_SECOND",
		Default:     "20",
		Description: "Authenticated requests per second per credential (the credential level: the caller's user id, or an API key's id; token bucket); 0 turns the limit off.",
		set:         float(func(c *Config) *float64 { return &c.RateLimit.Credential.PerSecond }),
	},
	{
		Name:        "AUTHLEDGER_USER_RATE_LIMIT_BURST",
		Default:     "100",
		Description: "Burst of the per-credential rate limit.",
		set:         integer(func(c *Config) *int { return &c.RateLimit.Credential.Burst }),
	},
	{
		Name:        "AUTHLEDGER_READ_RATE_LIMIT_PER_SECOND",
		Default:     "0",
		Description: "Authenticated reads (GET, HEAD) per second per credential, within the credential level; 0 leaves reads to the credential level alone.",
		set:         float(func(c *Config) *float64 { return &c.RateLimit.Read.PerSecond }),
	},
	{
		Name:        "AUTHLEDGER_READ_RATE_LIMIT_BURST",
		Default:     "100",
		Description: "Burst of the read class's rate limit.",
		set:         integer(func(c *Config) *int { return &c.RateLimit.Read.Burst }),
	},
	{
		Name:        "AUTHLEDGER_WRITE_RATE_LIMIT_PER_SECOND",
		Default:     "10",
		Description: "Authenticated writes (POST, PUT, PATCH, DELETE but the upload) per second per credential; 0 turns the class limit off.",
		set:         float(func(c *Config) *float64 { return &c.RateLimit.Write.PerSecond }),
	},
	{
		Name:        "AUTHLEDGER_WRITE_RATE_LIMIT_BURST",
		Default:     "50",
		Description: "Burst of the write class's rate limit.",
		set:         integer(func(c *Config) *int { return &c.RateLimit.Write.Burst }),
	},
	{
		Name:        "AUTHLEDGER_UPLOAD_RATE_LIMIT_PER_SECOND",
		Default:     "1",
		Description: "Uploads (POST /v1/tasks) per second per credential; 0 turns the class limit off.",
		set:         float(func(c *Config) *float64 { return &c.RateLimit.Upload.PerSecond }),
	},
	{
		Name:        "AUTHLEDGER_UPLOAD_RATE_LIMIT_BURST",
		Default:     "30",
		Description: "Burst of the upload class's rate limit.",
		set:         integer(func(c *Config) *int { return &c.RateLimit.Upload.Burst }),
	},
	{
		Name:        "AUTHLEDGER_RATE_LIMIT_TRUSTED_NETWORKS",
		DefaultDoc:  "(none)",
		Description: "Comma-separated IPs or CIDRs whose requests bypass every rate limit (the client IP, after AUTHLEDGER_TRUSTED_PROXIES); the login throttle still applies.",
		set:         func(c *Config, v string) error { return c.RateLimit.setTrusted(v) },
	},
	{
		Name:        "AUTHLEDGER_REDIS_URL",
		DefaultDoc:  "(none: counters in memory, per instance)",
		Description: "Redis (redis://[:password@]host:port/db, rediss:// or unix://) holding the rate-limit counters, shared by every instance; while it cannot answer, each level falls back as docs/adr/0026 says. May hold a password.",
		set:         func(c *Config, v string) error { c.RateLimit.RedisURL = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_NATS_URL",
		DefaultDoc:  "(none: no analytics stream)",
		Description: "NATS server (nats://host:4222, with JetStream) that the analytics stream publishes the public events to (docs/analytics.md, docs/events/); `authledger stream tail` reads it. May hold credentials.",
		set:         func(c *Config, v string) error { c.Stream.NATSURL = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_NATS_STREAM",
		Default:     "AUTHLEDGER",
		Description: "JetStream stream of the public events, created (or updated) by serve to hold the subjects under AUTHLEDGER_NATS_SUBJECT_PREFIX.",
		set:         func(c *Config, v string) error { c.Stream.NATSStream = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_NATS_SUBJECT_PREFIX",
		Default:     "authledger",
		Description: "Start of every subject: an event is published to prefix + \".\" + its internal name (authledger.session.started.v1).",
		set:         func(c *Config, v string) error { c.Stream.SubjectPrefix = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_NATS_DUPLICATE_WINDOW",
		Default:     "2m",
		Description: "How long JetStream remembers an event id to drop a republished event (the stream's duplicate window); a publisher that resumes after a crash republishes at most its last batch.",
		set:         duration(func(c *Config) *time.Duration { return &c.Stream.DuplicateWindow }),
	},
	{
		Name:        "AUTHLEDGER_WEBHOOK_ALLOW_HOSTS",
		DefaultDoc:  "(none: public addresses only)",
		Description: "Comma-separated host names, IPs and CIDRs that webhook deliveries may reach though they are private, loopback or link-local (checked after DNS resolution), and that endpoints may name with http:// (docs/webhooks.md). A name is trusted whatever it resolves to.",
		set:         func(c *Config, v string) error { c.Webhooks.AllowHosts = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_WEBHOOK_RETRY_SCHEDULE",
		Default:     "5s,5m,30m,2h,5h,10h,10h",
		Description: "Waits before each retry of a failed webhook delivery (each jittered by ±20%); after the last the delivery is dead-lettered and, when nothing reached the endpoint meanwhile, the endpoint is disabled with the reason.",
		set:         func(c *Config, v string) error { return c.Webhooks.setSchedule(v) },
	},
	{
		Name:        "AUTHLEDGER_WEBHOOK_TIMEOUT",
		Default:     "10s",
		Description: "Bound on one webhook delivery attempt, from connecting to the receiver's answer (at most 1m).",
		set:         duration(func(c *Config) *time.Duration { return &c.Webhooks.Timeout }),
	},
	{
		Name:        "AUTHLEDGER_USE_EXTERNAL_AUTH",
		Default:     ExternalAuthOff,
		Description: "Where logins check passwords: off (the local hashes, whatever the rollout says), on (the external auth API, docs/external-auth.md) or staged (allowlisted addresses and a percentage of the others); on and staged hold until `authledger rollout set` or PUT /v1/admin/rollout records a mode, which then decides.",
		set:         func(c *Config, v string) error { c.External.Mode = strings.ToLower(v); return nil },
	},
	{
		Name:        "AUTHLEDGER_EXTERNAL_AUTH_FALLBACK",
		Default:     FallbackNone,
		Description: "While the external API is unavailable: none answers 503 auth-provider-unavailable; local checks the local password of users who still have one (the others get the wrong-password answer). Never after the provider refused the credentials.",
		set:         func(c *Config, v string) error { c.External.Fallback = strings.ToLower(v); return nil },
	},
	{
		Name:        "AUTHLEDGER_EXTERNAL_AUTH_PROVISION",
		Default:     "false",
		Description: "Create a local user (without a password) at the first external login of an address no local account holds; false answers such a login as a wrong password.",
		set:         boolean(func(c *Config) *bool { return &c.External.Provision }),
	},
	{
		Name:        "AUTHLEDGER_LOCAL_PASSWORDS",
		Default:     "on",
		Description: "off refuses every local password like a wrong one (nothing is deleted; on undoes it): the clean-up once every user logs in through the external API. Needs AUTHLEDGER_USE_EXTERNAL_AUTH on (or staged) and no local fallback.",
		set: func(c *Config, v string) error {
			switch strings.ToLower(v) {
			case "on":
				c.External.LocalPasswords = true
			case "off":
				c.External.LocalPasswords = false
			default:
				return errors.New("neither on nor off")
			}
			return nil
		},
	},
	{
		Name:        "AUTHLEDGER_OIDC_PROVIDERS",
		Description: "Upstream sign-in providers, by name (a,b); each is configured by AUTHLEDGER_OIDC_<NAME>_* (docs/oidc-providers.md). Empty: no upstream sign-in.",
		set:         func(c *Config, v string) error { c.OIDC.Names = splitList(strings.ToLower(v)); return nil },
	},
	{
		Name:        "AUTHLEDGER_ALLOWED_REDIRECTS",
		Description: "The redirect_uri values an upstream sign-in may return to (comma-separated absolute URLs, compared exactly); required with AUTHLEDGER_OIDC_PROVIDERS.",
		set:         func(c *Config, v string) error { c.OIDC.AllowedRedirects = splitList(v); return nil },
	},
	{
		Name:        "AUTHLEDGER_OIDC_PROVISION",
		Default:     "false",
		Description: "Create a user (without a password) at the first upstream sign-in of a verified address no account holds; false refuses it.",
		set:         boolean(func(c *Config) *bool { return &c.OIDC.Provision }),
	},
	{
		Name:        "AUTHLEDGER_OIDC_TIMEOUT",
		Default:     "3s",
		Description: "Each attempt of a request to an upstream provider (100ms to 60s); transport errors and 5xx are retried twice, and each provider has its own circuit breaker.",
		set:         duration(func(c *Config) *time.Duration { return &c.OIDC.Timeout }),
	},
	{
		Name:        "AUTHLEDGER_EXTERNAL_AUTH_URL",
		DefaultDoc:  "(required unless AUTHLEDGER_USE_EXTERNAL_AUTH=off)",
		Description: "Base URL of the external auth API; https only.",
		set:         func(c *Config, v string) error { c.External.Client.URL = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_EXTERNAL_AUTH_LOGIN_PATH",
		Default:     "/api/auth/login",
		Description: "Login path of the external API, appended to its URL.",
		set:         func(c *Config, v string) error { c.External.Client.LoginPath = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_EXTERNAL_AUTH_REFRESH_PATH",
		Default:     "/api/auth/refresh",
		Description: "Refresh path of the external API.",
		set:         func(c *Config, v string) error { c.External.Client.RefreshPath = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_EXTERNAL_AUTH_ME_PATH",
		Default:     "/api/auth/me",
		Description: "User-info path of the external API.",
		set:         func(c *Config, v string) error { c.External.Client.MePath = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_EXTERNAL_AUTH_ISSUER",
		DefaultDoc:  "(required with the URL)",
		Description: "OpenID issuer of the provider's tokens, exactly as their iss claim spells it (Azure AD v2: https://login.microsoftonline.com/{tenant}/v2.0).",
		set:         func(c *Config, v string) error { c.External.Client.Issuer = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_EXTERNAL_AUTH_AUDIENCE",
		DefaultDoc:  "(required with the URL)",
		Description: "The aud the provider's tokens carry for us (Azure AD: the client id or api:// URI).",
		set:         func(c *Config, v string) error { c.External.Client.Audience = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_EXTERNAL_AUTH_TIMEOUT",
		Default:     "3s",
		Description: "Bound on each attempt of a call to the external API, body included (100ms to 60s); a call makes up to 3 attempts.",
		set:         duration(func(c *Config) *time.Duration { return &c.External.Client.Timeout }),
	},
	{
		Name:        "AUTHLEDGER_TOKEN_REFRESH_BUFFER",
		Default:     "5m",
		Description: "How long before expiry the provider's tokens kept for a session are renewed (at most 30m).",
		set:         duration(func(c *Config) *time.Duration { return &c.External.Client.RefreshBuffer }),
	},
	{
		Name:        "AUTHLEDGER_EXTERNAL_AUTH_SUBJECT_CLAIM",
		Default:     "sub",
		Description: "The claim of the provider's tokens that holds the external user id (the API's user.id); oid for Azure AD when user.id is the object id (sub is pairwise per application there).",
		set: func(c *Config, v string) error {
			c.External.Client.Mapping = external.DefaultMapping
			c.External.Client.Mapping.SubjectClaim = v
			return nil
		},
	},
	{
		Name:        "AUTHLEDGER_EXTERNAL_AUTH_CA_FILE",
		DefaultDoc:  "(none: the system's roots)",
		Description: "PEM file of certificate authorities trusted for the external API and issuer, beside the system's (a corporate TLS proxy).",
		set:         func(c *Config, v string) error { c.External.CAFile = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_EXTERNAL_AUTH_ALLOW_INSECURE",
		Default:     "false",
		Description: "Accept http:// for the external URL and issuer; for tests only (passwords and tokens would cross the network in clear).",
		set:         boolean(func(c *Config) *bool { return &c.External.Client.AllowInsecure }),
	},
	{
		Name:        "AUTHLEDGER_WORKERS",
		Default:     "1",
		Description: "Tasks the worker embedded in serve processes at once; 0 runs no worker in serve (run `authledger worker` instead).",
		set:         integer(func(c *Config) *int { return &c.Tasks.Workers }),
	},
	{
		Name:        "AUTHLEDGER_UPLOAD_MAX_FILE_BYTES",
		Default:     "20971520",
		Description: "Largest accepted file (bytes; 20 MiB); larger answers 413.",
		set:         integer64(func(c *Config) *int64 { return &c.Tasks.MaxFileBytes }),
	},
	{
		Name:        "AUTHLEDGER_UPLOAD_MAX_REQUEST_BYTES",
		Default:     "52428800",
		Description: "Largest accepted upload request (bytes; 50 MiB); larger answers 413.",
		set:         integer64(func(c *Config) *int64 { return &c.Tasks.MaxRequestBytes }),
	},
	{
		Name:        "AUTHLEDGER_UPLOAD_MAX_FILES",
		Default:     "10",
		Description: "Files per task.",
		set:         integer(func(c *Config) *int { return &c.Tasks.MaxFiles }),
	},
	{
		Name:        "AUTHLEDGER_UPLOAD_TYPES",
		Default:     "png,jpeg,tiff,webp,pdf",
		Description: "Accepted file types, recognised by their content (png, jpeg, tiff, webp, pdf, gif, bmp); others answer 415.",
		set: func(c *Config, v string) error {
			c.Tasks.Types = nil
			for t := range strings.SplitSeq(v, ",") {
				if t = strings.TrimSpace(t); t != "" {
					c.Tasks.Types = append(c.Tasks.Types, t)
				}
			}
			return nil
		},
	},
	{
		Name:        "AUTHLEDGER_UPLOAD_MAX_IMAGE_PIXELS",
		Default:     "100000000",
		Description: "Largest accepted image (each TIFF page), in pixels (width × height, read from its header; 100 megapixels); more answers 413 image-too-large.",
		set:         integer64(func(c *Config) *int64 { return &c.Tasks.MaxImagePixels }),
	},
	{
		Name:        "AUTHLEDGER_UPLOAD_MAX_IMAGE_SIDE",
		Default:     "20000",
		Description: "Largest accepted image width or height, in pixels; more answers 413 image-too-large.",
		set:         integer(func(c *Config) *int { return &c.Tasks.MaxImageSide }),
	},
	{
		Name:        "AUTHLEDGER_TASK_MAX_ACTIVE",
		Default:     "10",
		Description: "Active (queued, processing, retryable) tasks per user; more answers 429 task-quota.",
		set:         integer(func(c *Config) *int { return &c.Tasks.MaxActiveTasks }),
	},
	{
		Name:        "AUTHLEDGER_TASK_MAX_STORED_BYTES",
		Default:     "524288000",
		Description: "Bytes of files a user's live tasks may hold (500 MiB); more answers 429 task-quota.",
		set:         integer64(func(c *Config) *int64 { return &c.Tasks.MaxStoredBytes }),
	},
	{
		Name:        "AUTHLEDGER_RETENTION_DAYS",
		Default:     "30",
		Description: "Tasks older than this expire and their files are deleted (history keeps the record); 0 keeps them forever.",
		set:         integer(func(c *Config) *int { return &c.Tasks.RetentionDays }),
	},
	{
		Name:        "AUTHLEDGER_RETENTION_DAYS_BY_USER",
		DefaultDoc:  "(none)",
		Description: "Per-user retention overrides: comma-separated user-id=days (0 keeps that user's tasks forever).",
		set: func(c *Config, v string) error {
			c.Tasks.RetentionByUser = nil
			for pair := range strings.SplitSeq(v, ",") {
				if pair = strings.TrimSpace(pair); pair == "" {
					continue
				}
				id, days, ok := strings.Cut(pair, "=")
				n, err := strconv.Atoi(strings.TrimSpace(days))
				if !ok || err != nil || n < 0 {
					return fmt.Errorf("%q is not user-id=days", pair)
				}
				if c.Tasks.RetentionByUser == nil {
					c.Tasks.RetentionByUser = map[string]int{}
				}
				c.Tasks.RetentionByUser[strings.TrimSpace(id)] = n
			}
			return nil
		},
	},
	{
		Name:        "AUTHLEDGER_WORKER_LEASE",
		Default:     "30s",
		Description: "How long a worker's claim on a task lasts without a heartbeat; a stopped worker's task is released after it.",
		set:         duration(func(c *Config) *time.Duration { return &c.Tasks.Lease }),
	},
	{
		Name:        "AUTHLEDGER_ACCESS_DENIAL_WINDOW",
		Default:     "1m",
		Description: "A user's refused reads of tasks and files (404 for another user's or a missing id) within this window after the first are counted into one access.denials_counted.v1 event instead of one access.denied.v1 each; 0 records each one.",
		set:         duration(func(c *Config) *time.Duration { return &c.Tasks.AccessDenialWindow }),
	},
	{
		Name:        "AUTHLEDGER_TESSERACT",
		Default:     "tesseract",
		Description: "The tesseract binary the OCR processor runs (Debian: apt-get install tesseract-ocr).",
		set:         func(c *Config, v string) error { c.Tasks.Tesseract = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_OCR_LANGUAGES",
		Default:     "eng",
		Description: "tesseract languages (-l), such as eng or eng+deu.",
		set:         func(c *Config, v string) error { c.Tasks.OCRLanguages = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_OCR_TIMEOUT",
		Default:     "2m",
		Description: "Bound on the OCR of one file; past it tesseract is killed and the task fails, saying so.",
		set:         duration(func(c *Config) *time.Duration { return &c.Tasks.OCRTimeout }),
	},
	{
		Name:        "AUTHLEDGER_OCR_MAX_MEMORY_BYTES",
		Default:     "2147483648",
		Description: "Address-space limit (RLIMIT_AS) of each tesseract process (bytes; 2 GiB); an image that needs more fails its task, saying so. 0 means none (only where prlimit(2) is missing: not Linux).",
		set:         integer64(func(c *Config) *int64 { return &c.Tasks.OCRMaxMemoryBytes }),
	},
}

func integer64(field func(*Config) *int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return errors.New("not an integer")
		}
		*field(c) = n
		return nil
	}
}

func float(field func(*Config) *float64) func(*Config, string) error {
	return func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return errors.New("not a number")
		}
		*field(c) = f
		return nil
	}
}

func integer(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("not an integer")
		}
		*field(c) = n
		return nil
	}
}

func duration(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return errors.New("not a duration (like 2s, 500ms, 1m)")
		}
		*field(c) = d
		return nil
	}
}

// Variables returns the table of environment variables, in help order.
func Variables() []Var { return append([]Var(nil), table...) }

// Load reads every variable of the table through lookup (os.LookupEnv in
// the binary), applies defaults and validates. It returns the Config even
// when it fails, with every problem joined into the error.
func Load(lookup func(name string) (string, bool)) (Config, error) {
	var c Config
	var errs []error
	for _, v := range table {
		val, ok := lookup(v.Name)
		if !ok || strings.TrimSpace(val) == "" {
			val = v.Default
		}
		if err := v.set(&c, strings.TrimSpace(val)); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", v.Name, val, err))
		}
	}
	if c.PublicURL == "" {
		c.PublicURL = DefaultPublicURL(c.Listen)
	}
	if err := c.OIDC.loadProviders(lookup, c.PublicURL); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	return c, c.Validate()
}

// DefaultPublicURL is http:// + listen, with localhost for an unspecified
// host (":8080", "0.0.0.0:8080"), which no client could reach.
func DefaultPublicURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Validate reports every problem at once (errors.Join), each naming the
// variable to fix.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf(name+": "+format, args...))
	}
	if c.DatabaseURL == "" {
		bad("DATABASE_URL", "required (`make run` starts a private PostgreSQL and sets it)")
	}
	if host, port, err := net.SplitHostPort(c.Listen); err != nil {
		bad("AUTHLEDGER_LISTEN", "%q is not host:port", c.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		bad("AUTHLEDGER_LISTEN", "%q has no valid port", c.Listen)
	} else if host != "" && strings.ContainsAny(host, " /") {
		bad("AUTHLEDGER_LISTEN", "%q has no valid host", c.Listen)
	}
	for _, o := range c.CORSOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil || o == "*" {
			bad("AUTHLEDGER_CORS_ORIGINS", "%q must be an origin: scheme://host[:port], nothing after it", o)
		}
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		bad("AUTHLEDGER_PUBLIC_URL", "%q must be an absolute http(s) URL without credentials, query or fragment", c.PublicURL)
	}
	switch c.EventStore {
	case EventStorePostgres:
	case EventStoreESDB:
		if c.ESDBURL == "" {
			bad("ESDB_URL", "required when AUTHLEDGER_EVENT_STORE=esdb")
		} else if u, err := url.Parse(c.ESDBURL); err != nil || (u.Scheme != "esdb" && u.Scheme != "esdb+discover") {
			bad("ESDB_URL", "must be an esdb:// or esdb+discover:// connection string")
		}
	default:
		bad("AUTHLEDGER_EVENT_STORE", "%q is neither %s nor %s", c.EventStore, EventStorePostgres, EventStoreESDB)
	}
	if c.DataDir == "" {
		bad("AUTHLEDGER_DATA_DIR", "must not be empty")
	}
	if c.AuditRetention < 0 || c.AuditRetention > 0 && c.AuditRetention < time.Hour {
		bad("AUTHLEDGER_AUDIT_RETENTION", "must be 0 (keep forever) or at least 1h, got %s", c.AuditRetention)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("AUTHLEDGER_LOG_FORMAT", "%q is neither json nor text", c.LogFormat)
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"AUTHLEDGER_CONSISTENCY_WAIT", c.ConsistencyWait},
		{"AUTHLEDGER_READY_MAX_LAG", c.ReadyMaxLag},
		{"AUTHLEDGER_STARTUP_TIMEOUT", c.StartupTimeout},
		{"AUTHLEDGER_SHUTDOWN_TIMEOUT", c.ShutdownTimeout},
		{"AUTHLEDGER_READ_HEADER_TIMEOUT", c.ReadHeaderTimeout},
		{"AUTHLEDGER_READ_TIMEOUT", c.HTTP.ReadTimeout},
		{"AUTHLEDGER_WRITE_TIMEOUT", c.HTTP.WriteTimeout},
		{"AUTHLEDGER_IDLE_TIMEOUT", c.HTTP.IdleTimeout},
		{"AUTHLEDGER_STREAM_TIMEOUT", c.HTTP.StreamTimeout},
		{"AUTHLEDGER_UPLOAD_TIMEOUT", c.HTTP.UploadTimeout},
	} {
		if d.d <= 0 {
			bad(d.name, "must be positive, got %s", d.d)
		}
	}
	c.HTTP.validate(c, bad)
	c.Identity.validate(bad)
	c.RateLimit.validate(bad)
	c.Stream.validate(bad)
	c.Webhooks.validate(bad)
	c.Account.validate(bad)
	c.MFA.validate(bad)
	c.WebAuthn.validate(c.PublicURL, bad)
	c.Tasks.validate(bad)
	c.External.validate(bad, &errs)
	c.OIDC.validate(bad, &errs)
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(p); err != nil {
			bad("AUTHLEDGER_TRUSTED_PROXIES", "%q is neither an IP nor a CIDR", p)
		}
	}
	return errors.Join(errs...)
}

// Usage writes the table for --help: every variable with its default.
func Usage(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  VARIABLE\tDEFAULT\tDESCRIPTION")
	for _, v := range table {
		def := v.ShownDefault()
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Name, def, v.Description)
	}
	return tw.Flush()
}

// Markdown renders the table for README.md (kept identical by a test).
func Markdown() string {
	var b strings.Builder
	b.WriteString("| Variable | Default | Description |\n|---|---|---|\n")
	for _, v := range table {
		def := v.ShownDefault()
		switch {
		case def == "":
			def = "—"
		case v.DefaultDoc == "":
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.Name, def, strings.ReplaceAll(v.Description, "|", `\|`))
	}
	return b.String()
}

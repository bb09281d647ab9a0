package config

import (
	"strings"
	"time"
)

// validate checks the identity variables; the components check their own
// invariants again when they are built (token lifetimes, lockout bounds),
// but start-up should fail here, naming the variable.
func (i Identity) validate(bad func(name, format string, args ...any)) {
	if i.MasterKey != "" && i.MasterKeyFile != "" {
		bad("AUTHLEDGER_MASTER_KEY", "set either it or AUTHLEDGER_MASTER_KEY_FILE, not both")
	}
	switch strings.ToUpper(i.SigningAlgorithm) {
	case "ES256", "RS256", "EDDSA":
	default:
		bad("AUTHLEDGER_SIGNING_ALG", "%q is not ES256, RS256 or EdDSA", i.SigningAlgorithm)
	}
	if i.AccessTokenTTL < time.Minute || i.AccessTokenTTL > 24*time.Hour {
		bad("AUTHLEDGER_ACCESS_TOKEN_TTL", "must be between 1m and 24h, got %s", i.AccessTokenTTL)
	}
	if i.KeyOverlap < 0 {
		bad("AUTHLEDGER_KEY_OVERLAP", "must not be negative")
	}
	if i.SessionIdle <= 0 {
		bad("AUTHLEDGER_SESSION_IDLE_TIMEOUT", "must be positive")
	}
	if i.SessionLifetime < i.SessionIdle {
		bad("AUTHLEDGER_SESSION_LIFETIME", "must be at least AUTHLEDGER_SESSION_IDLE_TIMEOUT")
	}
	if i.RefreshGrace < 0 || i.RefreshGrace > time.Minute {
		bad("AUTHLEDGER_REFRESH_GRACE", "must be between 0s and 1m")
	}
	if i.BootstrapAdmin != "" && !strings.Contains(i.BootstrapAdmin, "@") {
		bad("AUTHLEDGER_BOOTSTRAP_ADMIN", "%q is not an email address", i.BootstrapAdmin)
	}
	if i.MaxSessionsPerUser < 0 {
		bad("AUTHLEDGER_MAX_SESSIONS_PER_USER", "must not be negative")
	}
	if i.Argon2MemoryKiB < 8*i.Argon2Parallelism || i.Argon2MemoryKiB > 4<<20 {
		bad("AUTHLEDGER_ARGON2_MEMORY_KIB", "must be between 8×parallelism and 4 GiB, got %d", i.Argon2MemoryKiB)
	}
	if i.Argon2Iterations < 1 || i.Argon2Iterations > 100 {
		bad("AUTHLEDGER_ARGON2_ITERATIONS", "must be between 1 and 100")
	}
	if i.Argon2Parallelism < 1 || i.Argon2Parallelism > 255 {
		bad("AUTHLEDGER_ARGON2_PARALLELISM", "must be between 1 and 255")
	}
	if i.LockoutMaxFailures < 1 || i.LockoutMaxFailures > 100 {
		bad("AUTHLEDGER_LOCKOUT_MAX_FAILURES", "must be between 1 and 100")
	}
	if i.LockoutAccountMaxFailures < i.LockoutMaxFailures || i.LockoutAccountMaxFailures > 100 {
		bad("AUTHLEDGER_LOCKOUT_ACCOUNT_MAX_FAILURES", "must be between AUTHLEDGER_LOCKOUT_MAX_FAILURES and 100")
	}
	if i.LockoutWindow <= 0 {
		bad("AUTHLEDGER_LOCKOUT_WINDOW", "must be positive")
	}
	if i.LockoutDuration <= 0 {
		bad("AUTHLEDGER_LOCKOUT_DURATION", "must be positive")
	}
	if i.LockoutMaxDuration < i.LockoutDuration || i.LockoutMaxDuration > i.LockoutWindow {
		bad("AUTHLEDGER_LOCKOUT_MAX_DURATION", "must be between AUTHLEDGER_LOCKOUT_DURATION and AUTHLEDGER_LOCKOUT_WINDOW")
	}
	if i.KnownDeviceTTL < 0 {
		bad("AUTHLEDGER_KNOWN_DEVICE_TTL", "must not be negative")
	}
}

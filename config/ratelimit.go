package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"strings"
)

// RateLimit is every request rate limit (httpapi/ratelimit, docs/adr/0026).
// A zero PerSecond turns that limit off.
type RateLimit struct {
	// IP bounds register, login and refresh per client network.
	IP RateLimitRate
	// Account bounds login attempts per account, across networks.
	Account RateLimitRate
	// Credential bounds every authenticated request per credential.
	Credential RateLimitRate
	// Read, Write and Upload bound authenticated requests per credential
	// and route class.
	Read, Write, Upload RateLimitRate
	// Trusted networks bypass every level.
	Trusted []netip.Prefix
	// RedisURL, when set, keeps the counters in Redis. It may hold a
	// password: never log it.
	RedisURL string
}

// RateLimitRate is one token bucket.
type RateLimitRate struct {
	PerSecond float64
	Burst     int
}

// setTrusted parses AUTHLEDGER_RATE_LIMIT_TRUSTED_NETWORKS: IPs (a /32 or
// /128) or CIDRs, comma-separated.
func (r *RateLimit) setTrusted(v string) error {
	r.Trusted = nil
	var errs []error
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			r.Trusted = append(r.Trusted, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%q is neither an IP nor a CIDR", s))
			continue
		}
		a = a.Unmap()
		r.Trusted = append(r.Trusted, netip.PrefixFrom(a, a.BitLen()))
	}
	return errors.Join(errs...)
}

func (r RateLimit) validate(bad func(name, format string, args ...any)) {
	for _, l := range []struct {
		name string
		r    RateLimitRate
	}{
		{"AUTHLEDGER_RATE_LIMIT", r.IP},
		{"AUTHLEDGER_ACCOUNT_RATE_LIMIT", r.Account},
		{"AUTHLEDGER_USER_RATE_LIMIT", r.Credential},
		{"AUTHLEDGER_READ_RATE_LIMIT", r.Read},
		{"AUTHLEDGER_WRITE_RATE_LIMIT", r.Write},
		{"AUTHLEDGER_UPLOAD_RATE_LIMIT", r.Upload},
	} {
		if l.r.PerSecond < 0 || math.IsNaN(l.r.PerSecond) || math.IsInf(l.r.PerSecond, 0) {
			bad(l.name+"_PER_SECOND", "must be a number, at least 0")
		}
		if l.r.PerSecond > 0 && l.r.Burst < 1 {
			bad(l.name+"_BURST", "must be at least 1 when the rate limit is on")
		}
	}
	if r.RedisURL != "" {
		// Never quote the value: it may hold a password.
		u, err := url.Parse(r.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			bad("AUTHLEDGER_REDIS_URL", "must be a redis://, rediss:// or unix:// URL")
		}
	}
}

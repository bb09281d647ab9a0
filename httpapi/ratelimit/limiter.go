package ratelimit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
)

// DownMode is what a level does while Redis cannot answer.
type DownMode string

const (
	// DownMemory counts in this instance's memory buckets: the limit holds
	// per instance (N instances allow N times the rate).
	DownMemory DownMode = "memory"
	// DownOpen lets every request through at that level.
	DownOpen DownMode = "open"
)

// DefaultRedisDown is level's behaviour while Redis is down
// (docs/adr/0026): the levels that stand between a guesser and the
// password hashes (ip, account) and the one that holds every caller
// (credential) keep counting in memory; the route classes, which only
// shape capacity under the credential level, let requests through rather
// than hold a second set of buckets per caller through the outage.
func DefaultRedisDown(level Level) DownMode {
	if level == LevelRoute {
		return DownOpen
	}
	return DownMemory
}

// Policy is every limit. A zero Rate turns its level (or class) off.
type Policy struct {
	// IP limits register, login and refresh per client network.
	IP Rate
	// Account limits login attempts per account, from every network.
	Account Rate
	// Credential limits every authenticated request per credential.
	Credential Rate
	// Classes limit authenticated requests per credential and route
	// class (ClassRead, ClassWrite, ClassUpload); a class absent or off
	// is held by Credential alone.
	Classes map[Class]Rate
	// Trusted networks bypass every level (the client IP as gin reports
	// it, after AUTHLEDGER_TRUSTED_PROXIES).
	Trusted []netip.Prefix
	// MaxKeys bounds the memory buckets of each limit (DefaultMaxKeys
	// when 0).
	MaxKeys int
	// RedisDown overrides DefaultRedisDown per level.
	RedisDown map[Level]DownMode
}

// Validate reports every problem at once.
func (p Policy) Validate() error {
	var errs []error
	check := func(name string, r Rate) {
		if err := r.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("ratelimit: %s: %w", name, err))
		}
	}
	check("ip", p.IP)
	check("account", p.Account)
	check("credential", p.Credential)
	for c, r := range p.Classes {
		switch c {
		case ClassRead, ClassWrite, ClassUpload:
		default:
			errs = append(errs, fmt.Errorf("ratelimit: class %q is not read, write or upload", c))
		}
		check("class "+string(c), r)
	}
	if p.MaxKeys < 0 {
		errs = append(errs, errors.New("ratelimit: max keys must not be negative"))
	}
	for l, m := range p.RedisDown {
		known := l == LevelIP || l == LevelAccount || l == LevelCredential || l == LevelRoute
		if !known || (m != DownMemory && m != DownOpen) {
			errs = append(errs, fmt.Errorf("ratelimit: RedisDown[%q] = %q is not a level and memory or open", l, m))
		}
	}
	return errors.Join(errs...)
}

// KeyFunc names the credential a request is counted under, or false for
// a request the credential and route levels do not apply to.
type KeyFunc func(*gin.Context) (string, bool)

// ByCredential is the default credential key: "key:" and the key id for
// a request authenticated by an API key (each of a user's keys has its
// own bucket), otherwise "user:" and the caller's user id.
func ByCredential(c *gin.Context) (string, bool) {
	p, err := httpapi.Caller(c)
	if err != nil {
		return "", false
	}
	if p.APIKeyID != uuid.Nil {
		return "key:" + p.APIKeyID.String(), true
	}
	return "user:" + p.UserID.String(), true
}

// Options are what the limiter needs beside the policy.
type Options struct {
	// RedisURL, when set (redis://, rediss:// or unix://), keeps the
	// counters in Redis, shared by every instance. It may hold a
	// password: never log it.
	RedisURL string
	// AccountSecret keys the HMAC that turns an email into the account
	// level's key (so Redis never holds addresses). Instances that share
	// Redis must share it. Required when Policy.Account is on.
	AccountSecret []byte
	// Credential names a request's credential; nil means ByCredential.
	Credential KeyFunc
	// Classes declares the class of authenticated routes by "METHOD
	// /path" as registered ("POST /v1/tasks": ClassUpload); any other
	// route is ClassRead for GET and HEAD, ClassWrite otherwise.
	Classes map[string]Class
	// Logger reports Redis going down and coming back; nil discards.
	Logger *slog.Logger
	// Now is the memory buckets' clock; nil means time.Now. (Redis
	// decides on its own clock, so instances need not agree on theirs.)
	Now func() time.Time
}

// id names one limit: a level, and for LevelRoute its class.
type id struct {
	level Level
	class Class
}

func (i id) String() string {
	if i.level == LevelRoute {
		return string(i.level) + ":" + string(i.class)
	}
	return string(i.level)
}

type limit struct {
	id   id
	rate Rate
	mem  *buckets
	down DownMode
}

// Limiter applies a Policy. A nil *Limiter allows everything.
type Limiter struct {
	limits     map[id]*limit
	trusted    []netip.Prefix
	secret     []byte
	credential KeyFunc
	classes    map[string]Class
	now        func() time.Time
	redis      *redisStore // nil: memory only
	metrics    *metrics
}

// New builds a limiter, or nil when every level is off. With a RedisURL
// it connects lazily: an unreachable Redis at start-up is an outage like
// any other (each level's DownMode), not a failed start.
func New(p Policy, o Options) (*Limiter, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if p.Account.On() && len(o.AccountSecret) < 16 {
		return nil, errors.New("ratelimit: the account level needs an AccountSecret of at least 16 bytes")
	}
	for k, c := range o.Classes {
		if method, path, ok := strings.Cut(k, " "); !ok || method == "" || !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("ratelimit: Options.Classes key %q is not \"METHOD /path\"", k)
		}
		if c != ClassRead && c != ClassWrite && c != ClassUpload {
			return nil, fmt.Errorf("ratelimit: Options.Classes[%q] = %q is not read, write or upload", k, c)
		}
	}
	maxKeys := p.MaxKeys
	if maxKeys == 0 {
		maxKeys = DefaultMaxKeys
	}
	l := &Limiter{
		limits: map[id]*limit{}, trusted: p.Trusted, secret: o.AccountSecret,
		credential: o.Credential, classes: o.Classes, now: o.Now, metrics: newMetrics(),
	}
	if l.credential == nil {
		l.credential = ByCredential
	}
	if l.now == nil {
		l.now = time.Now
	}
	add := func(i id, r Rate) error {
		if !r.On() {
			return nil
		}
		mem, err := newBuckets(r, maxKeys)
		if err != nil {
			return err
		}
		down := DefaultRedisDown(i.level)
		if m, ok := p.RedisDown[i.level]; ok {
			down = m
		}
		l.limits[i] = &limit{id: i, rate: r, mem: mem, down: down}
		return nil
	}
	errs := []error{
		add(id{LevelIP, ClassAuth}, p.IP),
		add(id{LevelAccount, ClassAuth}, p.Account),
		add(id{level: LevelCredential}, p.Credential),
	}
	for c, r := range p.Classes {
		errs = append(errs, add(id{LevelRoute, c}, r))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(l.limits) == 0 {
		return nil, nil
	}
	if o.RedisURL != "" {
		rs, err := newRedisStore(o.RedisURL, o.Logger, l.metrics)
		if err != nil {
			return nil, err
		}
		l.redis = rs
	}
	return l, nil
}

// Close releases the Redis connections.
func (l *Limiter) Close() error {
	if l == nil || l.redis == nil {
		return nil
	}
	return l.redis.close()
}

// Decision is the answer for one request at one level.
type Decision struct {
	Allowed bool
	// RetryAfter is how long until a refused request would be allowed.
	RetryAfter time.Duration
	// Store is where the decision was made: "memory", "redis", or "open"
	// (Redis down and the level lets requests through), "off" (no such
	// limit).
	Store string
}

// Allow takes one token of key's bucket at level (class names the route
// level's limit; the other levels ignore it). Middlewares call it; so do
// benchmarks.
func (l *Limiter) Allow(ctx context.Context, level Level, class Class, key string) Decision {
	if l == nil {
		return Decision{Allowed: true, Store: "off"}
	}
	i := id{level: level}
	switch level {
	case LevelRoute:
		i.class = class
	case LevelIP, LevelAccount:
		i.class = ClassAuth
	}
	lim := l.limits[i]
	if lim == nil {
		return Decision{Allowed: true, Store: "off"}
	}
	if l.redis != nil {
		ok, wait, err := l.redis.allow(ctx, lim, key)
		if err == nil {
			return Decision{Allowed: ok, RetryAfter: wait, Store: "redis"}
		}
		l.metrics.degraded.WithLabelValues(string(lim.id.level), string(lim.down)).Inc()
		if lim.down == DownOpen {
			return Decision{Allowed: true, Store: "open"}
		}
	}
	ok, wait := lim.mem.allow(key, l.now())
	return Decision{Allowed: ok, RetryAfter: wait, Store: "memory"}
}

// Keys is the number of memory buckets held at level (and class).
func (l *Limiter) Keys(level Level, class Class) int {
	if l == nil {
		return 0
	}
	if level != LevelRoute {
		class = ""
		if level != LevelCredential {
			class = ClassAuth
		}
	}
	if lim := l.limits[id{level, class}]; lim != nil {
		return lim.mem.cache.Len()
	}
	return 0
}

// trustedClient reports whether the request comes from a trusted network.
func (l *Limiter) trustedClient(c *gin.Context) bool {
	if len(l.trusted) == 0 {
		return false
	}
	addr, err := netip.ParseAddr(c.ClientIP())
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range l.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// check decides one level for c and answers 429 when it refuses. detail
// must not depend on the key (an account's existence, say).
func (l *Limiter) check(c *gin.Context, level Level, class Class, key, detail string) bool {
	d := l.Allow(c.Request.Context(), level, class, key)
	if d.Store == "off" {
		return true
	}
	if !d.Allowed {
		l.metrics.decisions.WithLabelValues(string(level), string(class), "limited").Inc()
		httpapi.WriteError(c, problem.RateLimited("rate-limited", max(d.RetryAfter, time.Second), detail))
		c.Abort()
		return false
	}
	l.metrics.decisions.WithLabelValues(string(level), string(class), "allowed").Inc()
	return true
}

// bypass reports (and counts) a trusted request at level.
func (l *Limiter) bypass(c *gin.Context, level Level, class Class) bool {
	if !l.trustedClient(c) {
		return false
	}
	l.metrics.decisions.WithLabelValues(string(level), string(class), "bypassed").Inc()
	return true
}

// The problems' details: the same for every key of a level.
const (
	detailIP         = "Too many requests from this address; retry later."
	detailAccount    = "Too many login attempts for this email address; retry later."
	detailCredential = "Too many requests for this account; retry later."
	detailRoute      = "Too many requests of this kind for this account; retry later."
)

// Anonymous is the ip level of the auth class: mount it on register,
// login and refresh. A nil limiter's passes everything.
func (l *Limiter) Anonymous() gin.HandlerFunc {
	return func(c *gin.Context) {
		if l == nil || l.bypass(c, LevelIP, ClassAuth) {
			c.Next()
			return
		}
		if l.check(c, LevelIP, ClassAuth, user.Source(c.ClientIP()), detailIP) {
			c.Next()
		}
	}
}

// Authenticated is the credential level, then the route level of the
// route's class: mount it after the Bearer middleware. A request without
// a credential (Options.Credential answers false) is not limited here.
func (l *Limiter) Authenticated() gin.HandlerFunc {
	return func(c *gin.Context) {
		if l == nil {
			c.Next()
			return
		}
		class := l.classOf(c)
		if l.bypass(c, LevelCredential, class) {
			c.Next()
			return
		}
		key, ok := l.credential(c)
		if !ok {
			c.Next()
			return
		}
		if l.check(c, LevelCredential, class, key, detailCredential) &&
			l.check(c, LevelRoute, class, key, detailRoute) {
			c.Next()
		}
	}
}

func (l *Limiter) classOf(c *gin.Context) Class {
	if cl, ok := l.classes[c.Request.Method+" "+c.FullPath()]; ok {
		return cl
	}
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead:
		return ClassRead
	}
	return ClassWrite
}

// Account is the account level: the login handler calls it with the
// email of the body, before the command. It answers 429 itself and
// reports false when the attempt is refused. The key is an HMAC of the
// normalised address (an unnormalisable one as typed, lower-cased), so an
// address with an account and one without are counted, and answered,
// alike.
//
// An attempt that presents a device token is not counted here: whether
// the token is a known device only the login command can tell, and it
// holds such attempts to their own throttle (ADR 0009), so that a flood
// of attempts against the account cannot keep its owner's devices out.
func (l *Limiter) Account(c *gin.Context, email string, device bool) bool {
	if l == nil || device || l.bypass(c, LevelAccount, ClassAuth) {
		return true
	}
	return l.check(c, LevelAccount, ClassAuth, l.AccountKey(email), detailAccount)
}

// AccountKey is the account level's key of an email.
func (l *Limiter) AccountKey(email string) string {
	n, err := user.NormalizeEmail(email)
	if err != nil {
		n = strings.ToLower(strings.TrimSpace(email))
	}
	m := hmac.New(sha256.New, l.secret)
	m.Write([]byte(n))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

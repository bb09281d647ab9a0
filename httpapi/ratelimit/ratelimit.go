// Package ratelimit is the one request limiter of the HTTP layer: a token
// bucket per key (a client's network for the anonymous identity routes, a
// user id for the authenticated ones). golang.org/x/time/rate does the
// bucket arithmetic; the buckets live in a fixed-size LRU, so memory follows
// the number of recently active keys and never exceeds MaxKeys of them.
//
// A limiter is per instance: N instances allow N times the rate.
package ratelimit

import (
	"errors"
	"math"
	"time"

	"github.com/gin-gonic/gin"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
)

// DefaultMaxKeys bounds the buckets kept when Config.MaxKeys is 0: about
// 25 MB at the most.
const DefaultMaxKeys = 100_000

// Config is one limit.
type Config struct {
	// PerSecond is the refill rate of every bucket. 0 turns the limit off
	// (New returns a nil Limiter, which allows everything).
	PerSecond float64
	// Burst is a full bucket: requests a key may make at once.
	Burst int
	// MaxKeys bounds the buckets held (DefaultMaxKeys when 0). Past it the
	// least recently used bucket is dropped; its key starts full again,
	// which only ever lets a client in sooner, never locks one out.
	MaxKeys int
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.PerSecond < 0 || math.IsNaN(c.PerSecond) || math.IsInf(c.PerSecond, 0) {
		errs = append(errs, errors.New("ratelimit: per second must be a finite number, at least 0"))
	}
	if c.PerSecond > 0 && c.Burst < 1 {
		errs = append(errs, errors.New("ratelimit: burst must be at least 1 when the limit is on"))
	}
	if c.MaxKeys < 0 {
		errs = append(errs, errors.New("ratelimit: max keys must not be negative"))
	}
	return errors.Join(errs...)
}

// Limiter holds a bucket per key. A nil *Limiter allows everything.
type Limiter struct {
	limit   rate.Limit
	burst   int
	buckets *lru.Cache[string, *rate.Limiter]
}

// New builds a limiter, or nil when cfg.PerSecond is 0 (no limit).
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PerSecond == 0 {
		return nil, nil
	}
	n := cfg.MaxKeys
	if n == 0 {
		n = DefaultMaxKeys
	}
	buckets, err := lru.New[string, *rate.Limiter](n)
	if err != nil {
		return nil, err
	}
	return &Limiter{limit: rate.Limit(cfg.PerSecond), burst: cfg.Burst, buckets: buckets}, nil
}

// Allow takes one token from key's bucket at now, or reports how long
// until one is there (taking nothing).
func (l *Limiter) Allow(key string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	b, ok := l.buckets.Get(key)
	if !ok {
		fresh := rate.NewLimiter(l.limit, l.burst)
		// Two first requests of one key race here: the loser uses the
		// winner's bucket, so neither gets a bucket of its own.
		if prev, found, _ := l.buckets.PeekOrAdd(key, fresh); found {
			b = prev
		} else {
			b = fresh
		}
	}
	r := b.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now)
		return false, wait
	}
	return true, 0
}

// Keys is the number of buckets held.
func (l *Limiter) Keys() int {
	if l == nil {
		return 0
	}
	return l.buckets.Len()
}

// Middleware answers 429 rate-limited, with Retry-After (at least one
// second), once the bucket of the request's key is empty. key returns
// false for a request the limit does not apply to. detail is the
// problem's detail; it must not depend on the key (an account's
// existence, say). A nil limiter's middleware passes everything.
func (l *Limiter) Middleware(key func(*gin.Context) (string, bool), detail string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if l == nil {
			c.Next()
			return
		}
		k, ok := key(c)
		if !ok {
			c.Next()
			return
		}
		if ok, wait := l.Allow(k, time.Now()); !ok {
			httpapi.WriteError(c, problem.RateLimited("rate-limited", max(wait, time.Second), detail))
			return
		}
		c.Next()
	}
}

package identity

import (
	"math"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
)

// RateLimiter is an in-memory token bucket per client IP: Burst requests
// at once, refilled at PerSecond. Buckets idle long enough to be full are
// dropped, so memory follows the number of recently active clients. It is
// per instance: N instances allow N times the rate.
type RateLimiter struct {
	PerSecond float64
	Burst     float64

	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// allow takes one token for key at now, or says how long until one exists.
func (l *RateLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = make(map[string]*bucket)
	}
	full := time.Duration(l.Burst / l.PerSecond * float64(time.Second))
	if now.Sub(l.sweep) > full {
		for k, b := range l.buckets {
			if now.Sub(b.last) > full {
				delete(l.buckets, k)
			}
		}
		l.sweep = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: l.Burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = math.Min(l.Burst, b.tokens+now.Sub(b.last).Seconds()*l.PerSecond)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.PerSecond * float64(time.Second))
}

// Middleware answers 429 rate-limited with Retry-After past the limit. A
// nil limiter allows everything.
func (l *RateLimiter) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		if l == nil || l.PerSecond <= 0 {
			c.Next()
			return
		}
		ok, wait := l.allow(c.ClientIP(), time.Now())
		if !ok {
			if wait < time.Second {
				wait = time.Second
			}
			httpapi.WriteError(c, problem.RateLimited("rate-limited", wait, "Too many requests from this address; retry later."))
			return
		}
		c.Next()
	}
}

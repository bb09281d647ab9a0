// Package ratelimit is the one request limiter of the HTTP layer, at four
// levels (docs/adr/0026):
//
//   - ip: register, login and refresh (the auth route class) per client
//     network (an IPv6 client is its /64);
//   - account: login attempts per account, across every address, keyed by
//     an HMAC of the normalised email, so that a key exists alike for an
//     address with and without an account;
//   - credential: every authenticated request per credential (the caller's
//     user id; an API key plugs its key id in through Options.Credential);
//   - route: authenticated requests per credential and route class (read,
//     write, upload), each class with its own rate.
//
// Each limit is a token bucket (a rate per second and a burst). Without
// Redis the buckets are golang.org/x/time/rate limiters in a fixed-size LRU
// per limit, so memory follows the number of recently active keys and N
// instances allow N times the rate. With Options.RedisURL the buckets are
// GCRA cells in Redis (github.com/go-redis/redis_rate, one atomic Lua
// script per decision, on the server's clock), shared by every instance.
// While Redis cannot answer, each level does what Policy.RedisDown says:
// fall back to this instance's memory buckets, or let requests through;
// it is logged on each change and counted.
//
// Requests from Policy.Trusted networks bypass every level.
package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// DefaultMaxKeys bounds the memory buckets of one limit when
// Policy.MaxKeys is 0: about 25 MB at the most.
const DefaultMaxKeys = 100_000

// Level is what a limit counts by. Its string is the metrics label.
type Level string

const (
	// LevelIP counts by client network.
	LevelIP Level = "ip"
	// LevelAccount counts login attempts by account (normalised email).
	LevelAccount Level = "account"
	// LevelCredential counts authenticated requests by credential.
	LevelCredential Level = "credential"
	// LevelRoute counts authenticated requests by credential and route
	// class.
	LevelRoute Level = "route"
)

// Class is a route's class. Its string is the metrics label.
type Class string

const (
	// ClassAuth is register, login and refresh.
	ClassAuth Class = "auth"
	// ClassRead is an authenticated GET or HEAD.
	ClassRead Class = "read"
	// ClassWrite is any other authenticated method.
	ClassWrite Class = "write"
	// ClassUpload is a route declared an upload (Options.Classes).
	ClassUpload Class = "upload"
)

// Rate is one token bucket. The zero Rate is off.
type Rate struct {
	// PerSecond is the refill rate; 0 turns the limit off.
	PerSecond float64
	// Burst is a full bucket: requests a key may make at once.
	Burst int
}

// On reports whether the limit applies.
func (r Rate) On() bool { return r.PerSecond > 0 }

// Validate reports every problem at once.
func (r Rate) Validate() error {
	var errs []error
	if r.PerSecond < 0 || math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0) {
		errs = append(errs, errors.New("per second must be a finite number, at least 0"))
	}
	if r.PerSecond > 0 && r.Burst < 1 {
		errs = append(errs, errors.New("burst must be at least 1 when the limit is on"))
	}
	return errors.Join(errs...)
}

// buckets is one limit held in memory: a bucket per key in a fixed-size
// LRU. Past its size the least recently used bucket is dropped; its key
// starts full again, which only ever lets a client in sooner, never locks
// one out.
type buckets struct {
	limit rate.Limit
	burst int
	cache *lru.Cache[string, *rate.Limiter]
}

func newBuckets(r Rate, maxKeys int) (*buckets, error) {
	cache, err := lru.New[string, *rate.Limiter](maxKeys)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: %w", err)
	}
	return &buckets{limit: rate.Limit(r.PerSecond), burst: r.Burst, cache: cache}, nil
}

// allow takes one token from key's bucket at now, or reports how long
// until one is there (taking nothing).
func (b *buckets) allow(key string, now time.Time) (bool, time.Duration) {
	l, ok := b.cache.Get(key)
	if !ok {
		fresh := rate.NewLimiter(b.limit, b.burst)
		// Two first requests of one key race here: the loser uses the
		// winner's bucket, so neither gets a bucket of its own.
		if prev, found, _ := b.cache.PeekOrAdd(key, fresh); found {
			l = prev
		} else {
			l = fresh
		}
	}
	r := l.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now)
		return false, wait
	}
	return true, 0
}

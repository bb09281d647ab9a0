package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// redisTimeout bounds one decision in Redis (dial, write, read): a
// request pays it at most once per redisBackoff while Redis is down.
const redisTimeout = 250 * time.Millisecond

// redisBackoff is how long the limiter decides without Redis after a
// failure before it asks Redis again, so that an outage costs one slow
// request per interval, not one per request.
const redisBackoff = time.Second

// keyPrefix namespaces the limiter's keys in a Redis shared with others
// (redis_rate adds its own "rate:" in front).
const keyPrefix = "authledger:ratelimit:"

type redisStore struct {
	client  *redis.Client
	limiter *redis_rate.Limiter
	log     *slog.Logger
	metrics *metrics
	// retryAt is when (unix nanoseconds) Redis may be asked again after a
	// failure; 0 while it answers.
	retryAt atomic.Int64
	down    atomic.Bool
}

func newRedisStore(url string, log *slog.Logger, m *metrics) (*redisStore, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		// The error may quote the URL, password and all: say only which.
		return nil, errors.New("ratelimit: AUTHLEDGER_REDIS_URL is not a redis://, rediss:// or unix:// URL")
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = redisTimeout, redisTimeout, redisTimeout, redisTimeout
	// A retry would double the wait of every request while Redis is down;
	// the fallback is the retry.
	opt.MaxRetries = -1
	opt.ContextTimeoutEnabled = true
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := redis.NewClient(opt)
	s := &redisStore{client: c, limiter: redis_rate.NewLimiter(c), log: log, metrics: m}
	m.redisUp = func() float64 {
		if s.down.Load() {
			return 0
		}
		return 1
	}
	return s, nil
}

func (s *redisStore) close() error { return s.client.Close() }

// gcra is r as redis_rate's limit: one token every 1/PerSecond seconds,
// Burst at once.
func gcra(r Rate) redis_rate.Limit {
	return redis_rate.Limit{Rate: 1, Burst: r.Burst, Period: time.Duration(float64(time.Second) / r.PerSecond)}
}

// allow decides in Redis, or fails at once while backing off.
func (s *redisStore) allow(ctx context.Context, lim *limit, key string) (bool, time.Duration, error) {
	if at := s.retryAt.Load(); at != 0 && time.Now().UnixNano() < at {
		return false, 0, errRedisBackingOff
	}
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	res, err := s.limiter.Allow(ctx, keyPrefix+lim.id.String()+":"+key, gcra(lim.rate))
	if err != nil {
		s.failed(err)
		return false, 0, err
	}
	if s.down.CompareAndSwap(true, false) {
		s.retryAt.Store(0)
		s.log.Info("rate limit: Redis answers again; counters are shared again")
	}
	if res.Allowed > 0 {
		return true, 0, nil
	}
	return false, res.RetryAfter, nil
}

var errRedisBackingOff = errors.New("ratelimit: Redis failed recently; not asked until the back-off ends")

func (s *redisStore) failed(err error) {
	s.metrics.redisErrors.Inc()
	s.retryAt.Store(time.Now().Add(redisBackoff).UnixNano())
	if s.down.CompareAndSwap(false, true) {
		s.log.Warn("rate limit: Redis unreachable; levels fall back to their RedisDown mode (memory per instance, or open) until it answers",
			slog.String("error", fmt.Sprint(err)))
	}
}

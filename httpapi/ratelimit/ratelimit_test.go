package ratelimit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authledger/authledger/httpapi/ratelimit"
	"github.com/authledger/authledger/test/redistest"
)

var secret = []byte("a test account-key secret")

func newLimiter(t *testing.T, p ratelimit.Policy, o ratelimit.Options) *ratelimit.Limiter {
	t.Helper()
	if o.AccountSecret == nil {
		o.AccountSecret = secret
	}
	l, err := ratelimit.New(p, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func fixedClock(at time.Time) func() time.Time { return func() time.Time { return at } }

func TestMemoryBucketsPerKey(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	clock := now
	l := newLimiter(t, ratelimit.Policy{IP: ratelimit.Rate{PerSecond: 1, Burst: 3}}, ratelimit.Options{Now: func() time.Time { return clock }})
	ctx := context.Background()
	for i := range 3 {
		if d := l.Allow(ctx, ratelimit.LevelIP, "", "a"); !d.Allowed || d.Store != "memory" {
			t.Fatalf("request %d of a full bucket: %+v", i+1, d)
		}
	}
	if d := l.Allow(ctx, ratelimit.LevelIP, "", "a"); d.Allowed || d.RetryAfter != time.Second {
		t.Fatalf("fourth at once: %+v", d)
	}
	// A refusal takes nothing: the token is there a second later.
	clock = now.Add(time.Second)
	if d := l.Allow(ctx, ratelimit.LevelIP, "", "a"); !d.Allowed {
		t.Fatal("refill refused")
	}
	if d := l.Allow(ctx, ratelimit.LevelIP, "", "b"); !d.Allowed {
		t.Fatal("another key shares a's bucket")
	}
	// A level that is off allows everything.
	if d := l.Allow(ctx, ratelimit.LevelAccount, "", "a"); !d.Allowed || d.Store != "off" {
		t.Fatalf("an off level: %+v", d)
	}
}

// Each route class has its own bucket; the credential level spans them.
func TestClassesAndCredentialLevel(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, ratelimit.Policy{
		Credential: ratelimit.Rate{PerSecond: 0.001, Burst: 5},
		Classes:    map[ratelimit.Class]ratelimit.Rate{ratelimit.ClassUpload: {PerSecond: 0.001, Burst: 1}},
	}, ratelimit.Options{Now: fixedClock(time.Unix(1_800_000_000, 0))})
	ctx := context.Background()
	if d := l.Allow(ctx, ratelimit.LevelRoute, ratelimit.ClassUpload, "u"); !d.Allowed {
		t.Fatal("first upload refused")
	}
	if d := l.Allow(ctx, ratelimit.LevelRoute, ratelimit.ClassUpload, "u"); d.Allowed {
		t.Fatal("second upload past a burst of 1 allowed")
	}
	if d := l.Allow(ctx, ratelimit.LevelRoute, ratelimit.ClassWrite, "u"); !d.Allowed || d.Store != "off" {
		t.Fatalf("the write class (off) follows the upload class: %+v", d)
	}
	for i := range 5 {
		if d := l.Allow(ctx, ratelimit.LevelCredential, ratelimit.Class([]string{"read", "write"}[i%2]), "u"); !d.Allowed {
			t.Fatalf("credential request %d refused", i+1)
		}
	}
	if d := l.Allow(ctx, ratelimit.LevelCredential, ratelimit.ClassRead, "u"); d.Allowed {
		t.Fatal("the credential level is per class, not across them")
	}
}

// Memory is bounded: past MaxKeys the least recently used bucket goes,
// and its key starts full again (never refused for being forgotten).
func TestMaxKeys(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, ratelimit.Policy{IP: ratelimit.Rate{PerSecond: 0.001, Burst: 1}, MaxKeys: 10}, ratelimit.Options{Now: fixedClock(time.Unix(1_800_000_000, 0))})
	ctx := context.Background()
	for i := range 1000 {
		l.Allow(ctx, ratelimit.LevelIP, "", fmt.Sprint(i))
	}
	if n := l.Keys(ratelimit.LevelIP, ""); n != 10 {
		t.Fatalf("%d buckets held, want 10", n)
	}
	if d := l.Allow(ctx, ratelimit.LevelIP, "", "0"); !d.Allowed {
		t.Fatal("an evicted key is refused")
	}
	if d := l.Allow(ctx, ratelimit.LevelIP, "", "999"); d.Allowed {
		t.Fatal("a recent key's empty bucket was forgotten")
	}
}

func TestOffAndInvalid(t *testing.T) {
	t.Parallel()
	l, err := ratelimit.New(ratelimit.Policy{}, ratelimit.Options{})
	if err != nil || l != nil {
		t.Fatalf("every level off: %v %v", l, err)
	}
	if d := l.Allow(context.Background(), ratelimit.LevelIP, "", "x"); !d.Allowed {
		t.Fatal("a nil limiter refused")
	}
	for name, p := range map[string]ratelimit.Policy{
		"burst 0":          {IP: ratelimit.Rate{PerSecond: 1}},
		"negative keys":    {MaxKeys: -1},
		"unknown class":    {Classes: map[ratelimit.Class]ratelimit.Rate{"auth": {PerSecond: 1, Burst: 1}}},
		"unknown downmode": {RedisDown: map[ratelimit.Level]ratelimit.DownMode{ratelimit.LevelIP: "closed"}},
	} {
		if _, err := ratelimit.New(p, ratelimit.Options{}); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := ratelimit.New(ratelimit.Policy{Account: ratelimit.Rate{PerSecond: 1, Burst: 1}}, ratelimit.Options{}); err == nil {
		t.Error("the account level without a secret accepted")
	}
	if _, err := ratelimit.New(ratelimit.Policy{IP: ratelimit.Rate{PerSecond: 1, Burst: 1}}, ratelimit.Options{RedisURL: "http://user:secret@x"}); err == nil {
		t.Error("a URL that is not Redis accepted")
	}
}

// The account key is the normalised address's: case and Unicode forms
// of one address share a bucket; the key holds no address.
func TestAccountKeyIsTheNormalisedAddress(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, ratelimit.Policy{Account: ratelimit.Rate{PerSecond: 1, Burst: 1}}, ratelimit.Options{})
	a, b := l.AccountKey("Ada@Example.COM"), l.AccountKey(" ada@example.com")
	if a != b {
		t.Fatalf("one address, two keys: %s %s", a, b)
	}
	if a == l.AccountKey("bob@example.com") || len(a) != 32 {
		t.Fatalf("key %q", a)
	}
	other := newLimiter(t, ratelimit.Policy{Account: ratelimit.Rate{PerSecond: 1, Burst: 1}}, ratelimit.Options{AccountSecret: []byte("another secret, another key")})
	if other.AccountKey("ada@example.com") == a {
		t.Fatal("the key does not depend on the secret")
	}
}

// With Redis the bucket is the same GCRA: a burst, then a refusal with
// the wait until the next token; two limiters (two instances) on one
// Redis share it.
func TestRedisBucketsAreShared(t *testing.T) {
	t.Parallel()
	url := redistest.URL(t)
	p := ratelimit.Policy{IP: ratelimit.Rate{PerSecond: 0.5, Burst: 4}}
	one := newLimiter(t, p, ratelimit.Options{RedisURL: url})
	two := newLimiter(t, p, ratelimit.Options{RedisURL: url})
	ctx := context.Background()
	key := uuid.NewString()
	for i := range 4 {
		l := []*ratelimit.Limiter{one, two}[i%2]
		if d := l.Allow(ctx, ratelimit.LevelIP, "", key); !d.Allowed || d.Store != "redis" {
			t.Fatalf("request %d within the shared burst: %+v", i+1, d)
		}
	}
	for _, l := range []*ratelimit.Limiter{one, two} {
		d := l.Allow(ctx, ratelimit.LevelIP, "", key)
		if d.Allowed || d.Store != "redis" || d.RetryAfter <= 0 || d.RetryAfter > 2*time.Second {
			t.Fatalf("past the shared burst: %+v", d)
		}
	}
	if d := one.Allow(ctx, ratelimit.LevelIP, "", uuid.NewString()); !d.Allowed {
		t.Fatal("another key shares the bucket")
	}
}

// Redis stops in the middle: the account level keeps counting in this
// instance's memory, the route classes let requests through, the failure
// is counted; once Redis is back the decisions are Redis's again.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	l := newLimiter(t, ratelimit.Policy{
		Account: ratelimit.Rate{PerSecond: 0.001, Burst: 2},
		Classes: map[ratelimit.Class]ratelimit.Rate{ratelimit.ClassUpload: {PerSecond: 0.001, Burst: 1}},
	}, ratelimit.Options{RedisURL: srv.URL})
	reg := prometheus.NewRegistry()
	if err := l.Register(reg); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if d := l.Allow(ctx, ratelimit.LevelAccount, "", "k"); !d.Allowed || d.Store != "redis" {
		t.Fatalf("before the outage: %+v", d)
	}
	srv.Stop()
	for i := range 2 {
		if d := l.Allow(ctx, ratelimit.LevelAccount, "", "k"); !d.Allowed || d.Store != "memory" {
			t.Fatalf("outage, account attempt %d: %+v", i+1, d)
		}
	}
	if d := l.Allow(ctx, ratelimit.LevelAccount, "", "k"); d.Allowed || d.Store != "memory" || d.RetryAfter <= 0 {
		t.Fatalf("outage, past the burst in memory: %+v", d)
	}
	for i := range 3 {
		if d := l.Allow(ctx, ratelimit.LevelRoute, ratelimit.ClassUpload, "k"); !d.Allowed || d.Store != "open" {
			t.Fatalf("outage, upload %d: %+v", i+1, d)
		}
	}
	if n := gauge(t, reg, "authledger_rate_limit_redis_up"); n != 0 {
		t.Fatalf("redis_up %v during the outage", n)
	}
	if n := gauge(t, reg, "authledger_rate_limit_redis_errors_total"); n < 1 {
		t.Fatalf("redis errors %v", n)
	}
	if n := gauge(t, reg, "authledger_rate_limit_redis_down_decisions_total"); n != 6 {
		t.Fatalf("%v decisions counted without Redis, want 6", n)
	}
	srv.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The back-off passes; the restarted server is empty, so the
		// account's bucket is full there.
		d := l.Allow(ctx, ratelimit.LevelAccount, "", "k")
		if d.Store == "redis" {
			if !d.Allowed {
				t.Fatalf("after the outage: %+v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis never used again: %+v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := gauge(t, reg, "authledger_rate_limit_redis_up"); n != 1 {
		t.Fatalf("redis_up %v after the outage", n)
	}
}

// gauge sums every series of the named metric.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return sum
	}
	t.Fatalf("no metric %s", name)
	return 0
}

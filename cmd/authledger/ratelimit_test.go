package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/test/pgtest"
	"github.com/authledger/authledger/test/redistest"
	"github.com/authledger/authledger/test/testimage"
)

// retryAfter is the answer's Retry-After in seconds, failing the test
// when it is missing or not a positive integer.
func retryAfter(t *testing.T, hdr http.Header) int {
	t.Helper()
	n, err := strconv.Atoi(hdr.Get("Retry-After"))
	if err != nil || n < 1 {
		t.Fatalf("Retry-After %q", hdr.Get("Retry-After"))
	}
	return n
}

// metric is the value of the series of /metrics whose line starts with
// series (name and labels as Prometheus writes them), 0 when absent.
func (r *running) metric(series string) float64 {
	r.t.Helper()
	status, _, body := r.get("/metrics")
	if status != http.StatusOK {
		r.t.Fatalf("/metrics: %d", status)
	}
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				r.t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// uniqueEmail keeps tests that share the run's Redis off each other's
// account buckets.
func uniqueEmail(name string) string {
	return name + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12] + "@example.com"
}

// One account tried from many networks: each network is far below its
// own limit, the account's limit (shared in Redis) stops them, with
// Retry-After; an address without an account is answered exactly alike;
// another account, and the owner's known device, are not affected.
func TestLoginsAgainstOneAccountFromManyNetworksAreLimited(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{
		"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_WORKERS": "0",
		"AUTHLEDGER_TRUSTED_PROXIES":               "127.0.0.1",
		"AUTHLEDGER_REDIS_URL":                     redistest.URL(t),
		"AUTHLEDGER_ACCOUNT_RATE_LIMIT_PER_SECOND": "0.001", "AUTHLEDGER_ACCOUNT_RATE_LIMIT_BURST": "3",
	})
	owner, stranger, other := uniqueEmail("owner"), uniqueEmail("nobody"), uniqueEmail("other")
	for _, e := range []string{owner, other} {
		if status, _, body := r.call("POST", "/v1/auth/register", "", map[string]string{"email": e, "password": "a long enough secret", "display_name": "O"}); status != http.StatusCreated {
			t.Fatalf("register: %d %v", status, body)
		}
	}
	from := func(i int) []string {
		return []string{"X-Forwarded-For", fmt.Sprintf("198.51.%d.%d", 100+i/200, 1+i%200)}
	}
	var limited [2]map[string]any
	var device string
	for n, email := range []string{owner, stranger} {
		for i := range 3 {
			// The right password for the owner: only the rate limit can refuse.
			status, _, body := r.call("POST", "/v1/auth/login", "", map[string]string{"email": strings.ToUpper(email), "password": "a long enough secret"}, from(n*10+i)...)
			if want := []int{http.StatusOK, http.StatusUnauthorized}[n]; status != want {
				t.Fatalf("%s, attempt %d from its own network: %d %v", email, i+1, status, body)
			}
			if d, ok := body["device_token"].(string); ok {
				device = d
			}
		}
		status, hdr, body := r.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "a long enough secret"}, from(n*10+5)...)
		if status != http.StatusTooManyRequests || !strings.HasSuffix(body["type"].(string), "/rate-limited") {
			t.Fatalf("%s, fourth attempt from a fourth network: %d %v", email, status, body)
		}
		if s := retryAfter(t, hdr); s < 900 {
			t.Fatalf("Retry-After %d s, want about 1000 (one token per 1000 s)", s)
		}
		limited[n] = body
	}
	for _, k := range []string{"type", "title", "status", "detail"} {
		if limited[0][k] != limited[1][k] {
			t.Fatalf("the refusal tells an account from none: %q %v / %v", k, limited[0][k], limited[1][k])
		}
	}
	if status, _, body := r.call("POST", "/v1/auth/login", "", map[string]string{"email": other, "password": "a long enough secret"}, from(1)...); status != http.StatusOK {
		t.Fatalf("another account: %d %v", status, body)
	}
	// The owner's known device is held by the login throttle, not here: a
	// flood against the address does not keep it out (ADR 0009).
	if status, _, body := r.call("POST", "/v1/auth/login", "", map[string]string{"email": owner, "password": "a long enough secret", "device_token": device}, from(30)...); status != http.StatusOK {
		t.Fatalf("the owner's known device while the address is limited: %d %v", status, body)
	}
	if n := r.metric(`authledger_rate_limit_decisions_total{class="auth",level="account",outcome="limited"}`); n != 2 {
		t.Fatalf("%v account refusals counted, want 2", n)
	}
}

// Past the per-network burst: 429 with Retry-After. A trusted network is
// never limited, and is counted as bypassed.
func TestTrustedNetworksBypassRateLimits(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{
		"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_WORKERS": "0",
		"AUTHLEDGER_TRUSTED_PROXIES":       "127.0.0.1",
		"AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0.001", "AUTHLEDGER_RATE_LIMIT_BURST": "2",
		"AUTHLEDGER_USER_RATE_LIMIT_PER_SECOND": "0.001", "AUTHLEDGER_USER_RATE_LIMIT_BURST": "3",
		"AUTHLEDGER_RATE_LIMIT_TRUSTED_NETWORKS": "203.0.113.0/24, 2001:db8::1",
	})
	login := map[string]string{"email": "someone@example.com", "password": "not the password"}
	for i := range 2 {
		if status, _, body := r.call("POST", "/v1/auth/login", "", login, "X-Forwarded-For", "198.51.100.7"); status != http.StatusUnauthorized {
			t.Fatalf("attempt %d within the burst: %d %v", i+1, status, body)
		}
	}
	status, hdr, body := r.call("POST", "/v1/auth/login", "", login, "X-Forwarded-For", "198.51.100.7")
	if status != http.StatusTooManyRequests || body["detail"] != "Too many requests from this address; retry later." {
		t.Fatalf("past the burst: %d %v", status, body)
	}
	retryAfter(t, hdr)
	for _, ip := range []string{"203.0.113.9", "203.0.113.200", "2001:db8::1"} {
		for i := range 4 {
			if status, _, body := r.call("POST", "/v1/auth/login", "", login, "X-Forwarded-For", ip); status != http.StatusUnauthorized {
				t.Fatalf("trusted %s, attempt %d: %d %v", ip, i+1, status, body)
			}
		}
	}
	// The authenticated levels too: a token used from a trusted network
	// is not counted, from elsewhere it is.
	if status, _, b := r.call("POST", "/v1/auth/register", "", map[string]string{"email": "svc@example.com", "password": "a long enough secret", "display_name": "S"}, "X-Forwarded-For", "203.0.113.1"); status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, b)
	}
	_, _, tok := r.call("POST", "/v1/auth/login", "", map[string]string{"email": "svc@example.com", "password": "a long enough secret"}, "X-Forwarded-For", "203.0.113.1")
	access, _ := tok["access_token"].(string)
	for i := range 6 {
		if status, _, b := r.call("GET", "/v1/me", access, nil, "X-Forwarded-For", "203.0.113.1"); status != http.StatusOK {
			t.Fatalf("trusted read %d: %d %v", i+1, status, b)
		}
	}
	for i := range 3 {
		if status, _, b := r.call("GET", "/v1/me", access, nil, "X-Forwarded-For", "198.51.100.8"); status != http.StatusOK {
			t.Fatalf("untrusted read %d within the burst: %d %v", i+1, status, b)
		}
	}
	if status, hdr, b := r.call("GET", "/v1/me", access, nil, "X-Forwarded-For", "198.51.100.8"); status != http.StatusTooManyRequests {
		t.Fatalf("untrusted read past the burst: %d %v", status, b)
	} else {
		retryAfter(t, hdr)
	}
	if n := r.metric(`authledger_rate_limit_decisions_total{class="auth",level="ip",outcome="bypassed"}`); n < 12 {
		t.Fatalf("%v trusted requests counted as bypassed, want at least 12", n)
	}
	if n := r.metric(`authledger_rate_limit_decisions_total{class="read",level="credential",outcome="limited"}`); n != 1 {
		t.Fatalf("%v credential refusals counted, want 1", n)
	}
}

// Two instances of one deployment (one database, one master key) on one
// Redis: requests split across them are counted once, at the credential
// level and at the account level.
func TestTwoInstancesShareLimitsInRedis(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	env := map[string]string{
		"DATABASE_URL": db, "AUTHLEDGER_WORKERS": "0", "AUTHLEDGER_MASTER_KEY": testMasterKey,
		"AUTHLEDGER_TRUSTED_PROXIES":            "127.0.0.1",
		"AUTHLEDGER_REDIS_URL":                  redistest.URL(t),
		"AUTHLEDGER_USER_RATE_LIMIT_PER_SECOND": "0.001", "AUTHLEDGER_USER_RATE_LIMIT_BURST": "6",
		"AUTHLEDGER_ACCOUNT_RATE_LIMIT_PER_SECOND": "0.001", "AUTHLEDGER_ACCOUNT_RATE_LIMIT_BURST": "4",
	}
	a := startService(t, env)
	b := startService(t, env)
	email := uniqueEmail("shared")
	if status, _, body := a.call("POST", "/v1/auth/register", "", map[string]string{"email": email, "password": "a long enough secret", "display_name": "S"}); status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, body)
	}
	// Logins alternate between the instances: 4 in all, then a refusal
	// from either.
	var access string
	for i := range 4 {
		srv := []*running{a, b}[i%2]
		status, _, tok := srv.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "a long enough secret"}, "X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i+1))
		if status != http.StatusOK {
			t.Fatalf("login %d on instance %d: %d %v", i+1, i%2, status, tok)
		}
		access = tok["access_token"].(string)
	}
	for _, srv := range []*running{a, b} {
		status, hdr, body := srv.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "a long enough secret"}, "X-Forwarded-For", "192.0.2.99")
		if status != http.StatusTooManyRequests {
			t.Fatalf("fifth login: %d %v", status, body)
		}
		retryAfter(t, hdr)
	}
	for i := range 6 {
		if status, _, body := []*running{a, b}[i%2].call("GET", "/v1/me", access, nil); status != http.StatusOK {
			t.Fatalf("read %d on instance %d: %d %v", i+1, i%2, status, body)
		}
	}
	for _, srv := range []*running{a, b} {
		if status, hdr, body := srv.call("GET", "/v1/me", access, nil); status != http.StatusTooManyRequests {
			t.Fatalf("seventh read: %d %v", status, body)
		} else {
			retryAfter(t, hdr)
		}
	}
}

// Redis stops while the service runs: nothing answers 503, logins go on,
// the account limit holds through this instance's memory, the outage is
// logged and counted; once Redis is back the counters are shared again.
func TestRedisDownKeepsTheAccountLimit(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	r := startService(t, map[string]string{
		"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_WORKERS": "0",
		"AUTHLEDGER_TRUSTED_PROXIES":               "127.0.0.1",
		"AUTHLEDGER_REDIS_URL":                     redis.URL,
		"AUTHLEDGER_ACCOUNT_RATE_LIMIT_PER_SECOND": "0.001", "AUTHLEDGER_ACCOUNT_RATE_LIMIT_BURST": "2",
	})
	email := "owner@example.com"
	access, _ := r.loginAs(email) // one attempt, counted in Redis
	redis.Stop()
	if status, _, body := r.call("GET", "/v1/tasks", access, nil); status != http.StatusOK {
		t.Fatalf("an authenticated read while Redis is down: %d %v", status, body)
	}
	// Memory starts full: two attempts, then the refusal.
	for i := range 2 {
		if status, _, body := r.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "a long enough secret"}, "X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i+1)); status != http.StatusOK {
			t.Fatalf("login %d while Redis is down: %d %v", i+1, status, body)
		}
	}
	status, hdr, body := r.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "a long enough secret"}, "X-Forwarded-For", "192.0.2.50")
	if status != http.StatusTooManyRequests {
		t.Fatalf("past the burst while Redis is down: %d %v", status, body)
	}
	retryAfter(t, hdr)
	if up := r.metric("authledger_rate_limit_redis_up"); up != 0 {
		t.Fatalf("redis_up %v while it is down", up)
	}
	if n := r.metric(`authledger_rate_limit_redis_down_decisions_total{level="account",mode="memory"}`); n < 3 {
		t.Fatalf("%v account decisions made in memory, want at least 3", n)
	}
	if n := r.metric("authledger_rate_limit_redis_errors_total"); n < 1 {
		t.Fatalf("%v Redis errors counted", n)
	}
	if !strings.Contains(r.logs.String(), "Redis unreachable") {
		t.Fatal("the outage is not logged")
	}
	redis.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for r.metric("authledger_rate_limit_redis_up") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("Redis never used again")
		}
		// Any decision asks Redis once the back-off has passed; the
		// restarted Redis is empty, so this account starts full there.
		if status, _, body := r.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "a long enough secret"}, "X-Forwarded-For", "192.0.2.60"); status != http.StatusOK && status != http.StatusTooManyRequests {
			t.Fatalf("login after the outage: %d %v", status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(r.logs.String(), "Redis answers again") {
		t.Fatal("the recovery is not logged")
	}
}

// Each route class has its own limit within the credential's: past the
// upload burst an upload answers 429 naming the kind, while reads and
// other writes go on.
func TestUploadsHaveARateLimitOfTheirOwn(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	r := startService(t, map[string]string{
		"DATABASE_URL": db, "AUTHLEDGER_WORKERS": "0",
		"AUTHLEDGER_UPLOAD_RATE_LIMIT_PER_SECOND": "0.001", "AUTHLEDGER_UPLOAD_RATE_LIMIT_BURST": "2",
	})
	waitTables(t, db)
	access, _ := r.loginAs("uploader@example.com")
	png := testimage.TextPNG(t, "HI")
	for i := range 2 {
		if status, _, body := r.upload(access, "scan.png", png); status != http.StatusAccepted {
			t.Fatalf("upload %d within the burst: %d %v", i+1, status, body)
		}
	}
	status, hdr, body := r.upload(access, "scan.png", png)
	if status != http.StatusTooManyRequests || body["detail"] != "Too many requests of this kind for this account; retry later." {
		t.Fatalf("third upload: %d %v", status, body)
	}
	retryAfter(t, hdr)
	if status, _, body := r.call("GET", "/v1/tasks", access, nil); status != http.StatusOK {
		t.Fatalf("a read after the uploads: %d %v", status, body)
	}
	if n := r.metric(`authledger_rate_limit_decisions_total{class="upload",level="route",outcome="limited"}`); n != 1 {
		t.Fatalf("%v upload refusals counted, want 1", n)
	}
}

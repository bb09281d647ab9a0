package bench

// upstream.go is the `upstream` section (issue 19): complete sign-ins
// with an upstream OpenID provider through `authledger serve` over
// loopback HTTP (start → the provider's authorize → our callback → the
// one-time code's exchange), against an in-process provider
// (github.com/oauth2-proxy/mockoidc, as in the tests). The provider's own
// handling of each request is timed at the provider and subtracted per
// sign-in: what is left is our overhead (the four requests to us, the
// token request's round trip and the ID token's verification).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/authledger/authledger/bench/loadgen"
)

// upstreamSPA is the SPA's redirect_uri of the benchmark's flows (nothing
// serves it: each sign-in stops at its 302).
const upstreamSPA = "http://127.0.0.1:1/bench/callback"

// UpstreamConfig bounds the upstream section.
type UpstreamConfig struct {
	ServerConfig
	// RowDuration is how long the row runs (default 3s).
	RowDuration time.Duration
	// Concurrency is the browsers signing in at once (default 4), each
	// as a provider account of its own.
	Concurrency int
}

// providerClock times the provider's handling of each request: the
// authorize request by its state, the token request by its code.
type providerClock struct {
	mu    sync.Mutex
	spent map[string]time.Duration
	// users maps a flow's state to the account the provider signs in;
	// queue is the provider's user queue, which authorize pops.
	users map[string]mockoidc.User
	queue *mockoidc.UserQueue
}

func (pc *providerClock) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var key string
		switch r.URL.Path {
		case mockoidc.AuthorizationEndpoint:
			key = r.URL.Query().Get("state")
		case mockoidc.TokenEndpoint:
			_ = r.ParseForm()
			key = r.PostForm.Get("code")
		}
		// mockoidc's session store is a map without a lock of its own:
		// every request is served under ours. The wait for it counts as
		// the provider's time (a real provider would not make us wait),
		// so it is never taken for our overhead.
		start := time.Now()
		pc.mu.Lock()
		defer pc.mu.Unlock()
		if u, ok := pc.users[key]; ok {
			// The queue is the provider's only way to choose the account:
			// pushed and popped under the lock, so each flow gets its own.
			delete(pc.users, key)
			pc.queue.Push(u)
		}
		next.ServeHTTP(w, r)
		if key != "" {
			pc.spent[key] += time.Since(start)
		}
	})
}

func (pc *providerClock) expect(state string, u mockoidc.User) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.users[state] = u
}

// take is the provider's time on the requests of these keys, forgotten.
func (pc *providerClock) take(keys ...string) time.Duration {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var d time.Duration
	for _, k := range keys {
		d += pc.spent[k]
		delete(pc.spent, k)
	}
	return d
}

// Upstream prints the upstream sign-in table.
func Upstream(ctx context.Context, w io.Writer, cfg UpstreamConfig) error {
	if cfg.RowDuration <= 0 {
		cfg.RowDuration = 3 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	prov, err := mockoidc.NewServer(nil)
	if err != nil {
		return fmt.Errorf("bench: upstream: %w", err)
	}
	clock := &providerClock{spent: map[string]time.Duration{}, users: map[string]mockoidc.User{}, queue: prov.UserQueue}
	if err := prov.AddMiddleware(clock.middleware); err != nil {
		return fmt.Errorf("bench: upstream: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("bench: upstream: %w", err)
	}
	if err := prov.Start(ln, nil); err != nil {
		return fmt.Errorf("bench: upstream: %w", err)
	}
	defer func() { _ = prov.Shutdown() }()

	p, err := startServe(ctx, cfg.ServerConfig, []string{
		"AUTHLEDGER_OIDC_PROVIDERS=mock",
		"AUTHLEDGER_ALLOWED_REDIRECTS=" + upstreamSPA,
		"AUTHLEDGER_OIDC_PROVISION=true",
		"AUTHLEDGER_OIDC_MOCK_ISSUER=" + prov.Issuer(),
		"AUTHLEDGER_OIDC_MOCK_CLIENT_ID=" + prov.ClientID,
		"AUTHLEDGER_OIDC_MOCK_CLIENT_SECRET=" + prov.ClientSecret,
		"AUTHLEDGER_OIDC_MOCK_ALLOW_INSECURE=true",
	})
	if err != nil {
		return fmt.Errorf("bench: upstream: %w", err)
	}
	defer p.stop()
	transport := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}
	defer transport.CloseIdleConnections()
	client := &http.Client{Timeout: time.Minute, Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	s := &upstreamRun{client: client, base: "http://" + p.addr, clock: clock}

	users := make([]mockoidc.User, cfg.Concurrency)
	for i := range users {
		users[i] = &mockoidc.MockUser{Subject: fmt.Sprintf("bench-upstream-%d", i), Email: fmt.Sprintf("upstream-%d@bench.example", i),
			EmailVerified: true, PreferredUsername: fmt.Sprintf("upstream-%d", i)}
	}
	// Each account's first sign-in provisions it, and the first of all
	// discovers the provider and fetches its keys: not what the row
	// measures.
	for i := range users {
		if _, err := s.signIn(ctx, users[i]); err != nil {
			return fmt.Errorf("bench: upstream: first sign-in: %w", err)
		}
	}
	overheads := make([][]time.Duration, cfg.Concurrency)
	providers := make([][]time.Duration, cfg.Concurrency)
	lat, elapsed, err := loadgen.Latencies(ctx, cfg.Concurrency, cfg.RowDuration, func(ctx context.Context, worker, _ int) error {
		start := time.Now()
		spent, err := s.signIn(ctx, users[worker])
		if err != nil {
			return err
		}
		overheads[worker] = append(overheads[worker], time.Since(start)-spent)
		providers[worker] = append(providers[worker], spent)
		return nil
	})
	if err != nil {
		return fmt.Errorf("bench: upstream: %w", err)
	}
	var over, prv []time.Duration
	for i := range overheads {
		over, prv = append(over, overheads[i]...), append(prv, providers[i]...)
	}
	full, ours, theirs := loadgen.Summarise(lat, elapsed), loadgen.Summarise(over, elapsed), loadgen.Summarise(prv, elapsed)

	fmt.Fprintf(w, "\n## Upstream sign-in (authledger serve over loopback HTTP; mockoidc in process; start, authorize, callback, exchange; %s)\n", p.desc)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "row\tconcurrency\tsign-ins\tsign-ins/s\tp50\tp99\t")
	fmt.Fprintf(tw, "complete sign-in\t%d\t%d\t%.0f\t%s\t%s\t\n", cfg.Concurrency, full.Ops, full.PerSecond(), ms(full.P50), ms(full.P99))
	// The two parts share the sign-ins (and so their rate).
	fmt.Fprintf(tw, "provider's own handling (authorize + token)\t%d\t%d\t%.0f\t%s\t%s\t\n", cfg.Concurrency, theirs.Ops, theirs.PerSecond(), ms(theirs.P50), ms(theirs.P99))
	fmt.Fprintf(tw, "our overhead (sign-in minus the provider's, per sign-in)\t%d\t%d\t%.0f\t%s\t%s\t\n", cfg.Concurrency, ours.Ops, ours.PerSecond(), ms(ours.P50), ms(ours.P99))
	return tw.Flush()
}

// upstreamRun is a browser's part of the flow, step by step.
type upstreamRun struct {
	client *http.Client
	base   string
	clock  *providerClock
}

// signIn runs one complete sign-in of u and returns the provider's time
// on its requests.
func (s *upstreamRun) signIn(ctx context.Context, u mockoidc.User) (time.Duration, error) {
	authorize, cookies, err := s.get(ctx, s.base+"/v1/auth/oidc/mock/start?redirect_uri="+url.QueryEscape(upstreamSPA), nil)
	if err != nil {
		return 0, fmt.Errorf("start: %w", err)
	}
	state := authorize.Query().Get("state")
	s.clock.expect(state, u)
	callback, _, err := s.get(ctx, authorize.String(), nil)
	if err != nil {
		return 0, fmt.Errorf("authorize: %w", err)
	}
	code := callback.Query().Get("code")
	// The callback names our public URL; the server listens elsewhere.
	spa, _, err := s.get(ctx, s.base+callback.RequestURI(), cookies)
	spent := s.clock.take(state, code)
	if err != nil {
		return 0, fmt.Errorf("callback: %w", err)
	}
	body, _ := json.Marshal(map[string]string{"code": spa.Query().Get("code")})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/v1/auth/oidc/exchange", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	ex, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("exchange: %w", err)
	}
	defer ex.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(ex.Body).Decode(&tok); err != nil || ex.StatusCode != http.StatusOK || tok.AccessToken == "" {
		return 0, fmt.Errorf("exchange: %d, %v", ex.StatusCode, err)
	}
	return spent, nil
}

// get follows one step: its 302's Location and cookies (any other
// answer is an error).
func (s *upstreamRun) get(ctx context.Context, target string, cookies []*http.Cookie) (*url.URL, []*http.Cookie, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusFound {
		return nil, nil, errors.New(resp.Status + ": " + string(b))
	}
	loc, err := resp.Location()
	return loc, resp.Cookies(), err
}

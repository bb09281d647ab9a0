package vault_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authledger/authledger/auth/external"
	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/vault"
	"github.com/authledger/authledger/test/extauthserver"
	"github.com/authledger/authledger/test/testclock"
)

var (
	ada   = extauthserver.User{ID: "ext-ada", Email: "ada@example.com", Name: "Ada", Password: "correct horse"}
	quiet = slog.New(slog.DiscardHandler)
)

// fixture is a provider, a client of it and a vault on one clock.
type fixture struct {
	p      *extauthserver.Server
	client *external.Client
	clk    *testclock.Clock
	url    string
	mk     *keys.MasterKey
}

func newFixture(t *testing.T, pcfg extauthserver.Config) *fixture {
	t.Helper()
	pcfg.Users = append(pcfg.Users, ada)
	p := extauthserver.Start(t, pcfg)
	clk := testclock.New()
	cfg := p.ClientConfig()
	cfg.Now, cfg.Logger = clk.Now, quiet
	cfg.MaxAttempts, cfg.RetryBackoff, cfg.RetryMaxBackoff = 1, time.Millisecond, time.Millisecond
	cfg.BreakerFailures = 1000
	c, err := external.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &fixture{p: p, client: c, clk: clk, url: database(t), mk: masterKey(t)}
}

// vault is an instance's vault: its own pool on the fixture's database.
func (f *fixture) vault(t *testing.T) *vault.Vault {
	t.Helper()
	return newVault(t, vault.Config{Pool: pool(t, f.url), MasterKey: f.mk, Now: f.clk.Now})
}

// login logs ada in at the provider and stores the tokens for a new
// session.
func (f *fixture) login(t *testing.T, v *vault.Vault) uuid.UUID {
	t.Helper()
	res, err := f.client.Login(context.Background(), ada.Email, ada.Password)
	if err != nil {
		t.Fatal(err)
	}
	s := uuid.New()
	if _, err := v.Put(context.Background(), s, uuid.New(), res.Tokens); err != nil {
		t.Fatal(err)
	}
	return s
}

// gaveUp collects OnGiveUp's reports.
type gaveUp struct {
	mu   sync.Mutex
	got  []vault.GiveUp
	fail error
}

func (g *gaveUp) report(_ context.Context, r vault.GiveUp) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.got = append(g.got, r)
	return g.fail
}

func (g *gaveUp) reports() []vault.GiveUp {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]vault.GiveUp(nil), g.got...)
}

func (f *fixture) refresher(t *testing.T, v *vault.Vault, g *gaveUp, cfg vault.RefresherConfig) *vault.Refresher {
	t.Helper()
	if cfg.Buffer == 0 {
		cfg.Buffer = 5 * time.Minute
	}
	cfg.OnGiveUp, cfg.Logger = g.report, quiet
	r, err := vault.NewRefresher(v, vault.ClientRefresh(f.client), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTheRefresherRenewsTokensBeforeTheyExpire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, extauthserver.Config{RotateRefreshTokens: true})
	v := f.vault(t)
	s := f.login(t, v)
	before, err := v.Get(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	g := &gaveUp{}
	var renewals []vault.Record
	r := f.refresher(t, v, g, vault.RefresherConfig{OnRenewed: func(_ context.Context, rec vault.Record) error {
		renewals = append(renewals, rec)
		return nil
	}})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(r)

	// An hour's token is not due five minutes before expiry ...
	if rep, err := r.RunOnce(ctx); err != nil || rep != (vault.Report{}) {
		t.Fatalf("%+v %v", rep, err)
	}
	// ... and is 56 minutes later.
	f.clk.Add(56 * time.Minute)
	rep, err := r.RunOnce(ctx)
	if err != nil || rep != (vault.Report{Renewed: 1}) {
		t.Fatalf("%+v %v", rep, err)
	}
	after, err := v.Get(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if after.Tokens.AccessToken == before.Tokens.AccessToken || after.Tokens.RefreshToken == before.Tokens.RefreshToken ||
		!after.ExpiresAt.After(before.ExpiresAt) || after.Version != 2 || !after.RefreshedAt.Equal(f.clk.Now()) {
		t.Fatalf("before %+v\nafter %+v", before.Record, after.Record)
	}
	if len(renewals) != 1 || renewals[0].AccessFingerprint != external.Fingerprint(after.Tokens.AccessToken) || renewals[0].Version != 2 {
		t.Fatalf("OnRenewed got %+v", renewals)
	}
	// The new access token is a real one of the provider.
	tv, err := external.NewTokenValidator(f.p.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	if c, err := tv.Validate(ctx, after.Tokens.AccessToken); err != nil || c.Subject != ada.ID {
		t.Fatalf("%+v %v", c, err)
	}
	if rep, err := r.RunOnce(ctx); err != nil || rep != (vault.Report{}) {
		t.Fatalf("renewed tokens are due again: %+v %v", rep, err)
	}
	if got := f.p.Hits(extauthserver.Refresh); got != 1 {
		t.Fatalf("provider refresh hits %d", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 || mfs[0].GetMetric()[0].GetLabel()[0].GetValue() != "renewed" ||
		mfs[0].GetMetric()[0].GetCounter().GetValue() != 1 {
		t.Fatalf("metrics %v", mfs)
	}
	if len(g.reports()) != 0 {
		t.Fatalf("gave up: %+v", g.reports())
	}
}

func TestTwoInstancesRefreshEachTokenOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, extauthserver.Config{})
	v1, v2 := f.vault(t), f.vault(t)
	sessions := make([]uuid.UUID, 20)
	for i := range sessions {
		sessions[i] = f.login(t, v1)
	}
	f.clk.Add(56 * time.Minute)
	g := &gaveUp{}
	r1 := f.refresher(t, v1, g, vault.RefresherConfig{Batch: 3})
	r2 := f.refresher(t, v2, g, vault.RefresherConfig{Batch: 3})
	var wg sync.WaitGroup
	renewed := make([]int, 2)
	for i, r := range []*vault.Refresher{r1, r2} {
		wg.Go(func() {
			for {
				rep, err := r.RunOnce(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if rep == (vault.Report{}) {
					return
				}
				renewed[i] += rep.Renewed
			}
		})
	}
	wg.Wait()
	if renewed[0]+renewed[1] != 20 {
		t.Fatalf("renewed %v", renewed)
	}
	if got := f.p.Hits(extauthserver.Refresh); got != 20 {
		t.Fatalf("the provider saw %d refreshes for 20 sessions", got)
	}
	for _, s := range sessions {
		if e, err := v2.Get(ctx, s); err != nil || e.Version != 2 {
			t.Fatalf("%v %v", e, err)
		}
	}
}

func TestARejectedRefreshTokenGivesTheSessionUpAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, extauthserver.Config{})
	v := f.vault(t)
	s := f.login(t, v)
	f.p.RevokeRefreshTokens()
	f.clk.Add(56 * time.Minute)
	g := &gaveUp{}
	r := f.refresher(t, v, g, vault.RefresherConfig{})
	rep, err := r.RunOnce(ctx)
	if err != nil || rep != (vault.Report{GaveUp: 1}) {
		t.Fatalf("%+v %v", rep, err)
	}
	got := g.reports()
	if len(got) != 1 || got[0].SessionID != s || got[0].Reason != vault.GiveUpRejected || !errors.Is(got[0].Err, vault.ErrRefreshRejected) ||
		got[0].Record.AccessFingerprint == "" {
		t.Fatalf("%+v", got)
	}
	if _, err := v.Get(ctx, s); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("tokens of a given-up session kept: %v", err)
	}
	if hits := f.p.Hits(extauthserver.Refresh); hits != 1 {
		t.Fatalf("a rejected refresh was tried %d times", hits)
	}
}

func TestRepeatedFailuresBackOffThenGiveTheSessionUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, extauthserver.Config{})
	v := f.vault(t)
	s := f.login(t, v)
	f.p.SetFault(extauthserver.Fault{Status: http.StatusServiceUnavailable})
	f.clk.Add(56 * time.Minute)
	g := &gaveUp{fail: errors.New("the event store is down")}
	r := f.refresher(t, v, g, vault.RefresherConfig{MaxFailures: 3, RetryBackoff: 30 * time.Second, MaxBackoff: time.Minute})

	for i, wait := range []time.Duration{30 * time.Second, time.Minute} {
		if rep, err := r.RunOnce(ctx); err != nil || rep != (vault.Report{Failed: 1}) {
			t.Fatalf("pass %d: %+v %v", i, rep, err)
		}
		// Not again before the backoff has passed.
		if rep, err := r.RunOnce(ctx); err != nil || rep != (vault.Report{}) {
			t.Fatalf("pass %d again: %+v %v", i, rep, err)
		}
		f.clk.Add(wait)
	}
	// The third failure gives up; OnGiveUp fails, so the tokens stay and
	// the session is reported again later (without another refresh).
	if _, err := r.RunOnce(ctx); err == nil {
		t.Fatal("OnGiveUp's failure was not reported")
	}
	if e, err := v.Get(ctx, s); err != nil || e.Failures != 3 {
		t.Fatalf("%v %v", e, err)
	}
	g.mu.Lock()
	g.fail = nil
	g.mu.Unlock()
	f.clk.Add(time.Minute)
	if rep, err := r.RunOnce(ctx); err != nil || rep != (vault.Report{GaveUp: 1}) {
		t.Fatalf("%+v %v", rep, err)
	}
	got := g.reports()
	if len(got) != 2 || got[1].Reason != vault.GiveUpFailedRepeatedly || got[1].Failures != 3 || got[1].Err == nil {
		t.Fatalf("%+v", got)
	}
	if _, err := v.Get(ctx, s); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("%v", err)
	}
	if hits := f.p.Hits(extauthserver.Refresh); hits != 3 {
		t.Fatalf("provider refresh hits %d, want 3", hits)
	}
}

func TestTokensWithoutARefreshTokenAreGivenUpWhenTheyExpire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, extauthserver.Config{})
	v := f.vault(t)
	s := uuid.New()
	if _, err := v.Put(ctx, s, uuid.New(), external.Tokens{AccessToken: "eyJhbGciOi.x.y", ExpiresAt: f.clk.Now().Add(2 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	g := &gaveUp{}
	r := f.refresher(t, v, g, vault.RefresherConfig{})
	if rep, err := r.RunOnce(ctx); err != nil || rep != (vault.Report{Deferred: 1}) {
		t.Fatalf("%+v %v", rep, err)
	}
	if rep, err := r.RunOnce(ctx); err != nil || rep != (vault.Report{}) {
		t.Fatalf("%+v %v", rep, err)
	}
	f.clk.Add(2 * time.Minute)
	if rep, err := r.RunOnce(ctx); err != nil || rep != (vault.Report{GaveUp: 1}) {
		t.Fatalf("%+v %v", rep, err)
	}
	if got := g.reports(); len(got) != 1 || got[0].Reason != vault.GiveUpNoRefreshToken {
		t.Fatalf("%+v", got)
	}
}

func TestRunRenewsUntilStopped(t *testing.T) {
	t.Parallel()
	f := newFixture(t, extauthserver.Config{})
	v := f.vault(t)
	s := f.login(t, v)
	f.clk.Add(56 * time.Minute)
	r := f.refresher(t, v, &gaveUp{}, vault.RefresherConfig{Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		e, err := v.Get(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if e.Version == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not renew the due tokens")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}

func TestNewRefresherChecksItsConfig(t *testing.T) {
	t.Parallel()
	f := newFixture(t, extauthserver.Config{})
	v := newVault(t, vault.Config{Pool: pool(t, f.url), MasterKey: f.mk, Lease: time.Minute})
	refresh := vault.ClientRefresh(f.client)
	report := (&gaveUp{}).report
	if _, err := vault.NewRefresher(v, refresh, vault.RefresherConfig{OnGiveUp: report}); err == nil {
		t.Fatal("no buffer accepted")
	}
	if _, err := vault.NewRefresher(v, refresh, vault.RefresherConfig{Buffer: time.Minute}); err == nil {
		t.Fatal("no OnGiveUp accepted")
	}
	if _, err := vault.NewRefresher(v, refresh, vault.RefresherConfig{Buffer: time.Minute, OnGiveUp: report, Batch: 10, RefreshTimeout: 10 * time.Second}); err == nil {
		t.Fatal("a batch outlasting the lease was accepted")
	}
	if _, err := vault.NewRefresher(v, refresh, vault.RefresherConfig{Buffer: time.Minute, OnGiveUp: report, Batch: 2, RefreshTimeout: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
}

// While the provider is called, no transaction of the vault is open: one
// would hold back every subscriber of the log (docs/adr/0019).
func TestNoTransactionIsOpenWhileTheProviderIsCalled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, extauthserver.Config{})
	v := f.vault(t)
	for range 3 {
		f.login(t, v)
	}
	f.clk.Add(56 * time.Minute)
	observer := pool(t, f.url)
	calls := 0
	refresh := func(ctx context.Context, rt string) (external.Tokens, error) {
		calls++
		var open int
		if err := observer.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()
			  AND (backend_xid IS NOT NULL OR state LIKE 'idle in transaction%')`).Scan(&open); err != nil {
			return external.Tokens{}, err
		}
		if open != 0 {
			t.Errorf("%d transactions open during a refresh", open)
		}
		return vault.ClientRefresh(f.client)(ctx, rt)
	}
	r, err := vault.NewRefresher(v, refresh, vault.RefresherConfig{Buffer: 5 * time.Minute, OnGiveUp: (&gaveUp{}).report, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := r.RunOnce(ctx); err != nil || rep.Renewed != 3 || calls != 3 {
		t.Fatalf("%+v %v, %d calls", rep, err, calls)
	}
}

// A RefreshFunc whose answer has no refresh token keeps the old one.
func TestARenewalWithoutANewRefreshTokenKeepsTheOldOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, extauthserver.Config{})
	v := f.vault(t)
	s := f.login(t, v)
	before, err := v.Get(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	f.clk.Add(56 * time.Minute)
	refresh := func(context.Context, string) (external.Tokens, error) {
		return external.Tokens{AccessToken: "eyJuZXci.a.b", ExpiresAt: f.clk.Now().Add(time.Hour)}, nil
	}
	r, err := vault.NewRefresher(v, refresh, vault.RefresherConfig{Buffer: 5 * time.Minute, OnGiveUp: (&gaveUp{}).report, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := r.RunOnce(ctx); err != nil || rep.Renewed != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	after, err := v.Get(ctx, s)
	if err != nil || after.Tokens.AccessToken != "eyJuZXci.a.b" || after.Tokens.RefreshToken != before.Tokens.RefreshToken {
		t.Fatalf("%v %v", after, err)
	}
}

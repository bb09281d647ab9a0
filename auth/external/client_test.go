package external_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/authledger/authledger/auth/external"
	"github.com/authledger/authledger/test/extauthserver"
)

var ada = extauthserver.User{ID: "0f6c2a6e-ada", Email: "ada@example.com", Name: "Ada Lovelace", Password: "correct horse"}

var quiet = slog.New(slog.DiscardHandler)

// provider starts a test provider with ada.
func provider(t *testing.T, cfg extauthserver.Config) *extauthserver.Server {
	t.Helper()
	cfg.Users = append(cfg.Users, ada)
	return extauthserver.Start(t, cfg)
}

// fast are resilience settings that keep tests short: backoff of a few
// milliseconds, a breaker that opens after 5 failed attempts and stays
// open for a minute unless a test shortens it.
func fast(c external.Config) external.Config {
	c.Logger = quiet
	c.Timeout = 2 * time.Second
	c.MaxAttempts = 3
	c.RetryBackoff = time.Millisecond
	c.RetryMaxBackoff = 5 * time.Millisecond
	c.BreakerFailures = 5
	c.BreakerDelay = time.Minute
	return c
}

func newClient(t *testing.T, cfg external.Config) *external.Client {
	t.Helper()
	c, err := external.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// wantHits asserts how many requests reached the provider's endpoint.
func wantHits(t *testing.T, p *extauthserver.Server, endpoint string, n int) {
	t.Helper()
	if got := p.Hits(endpoint); got != n {
		t.Fatalf("the provider's %s saw %d requests, want %d", endpoint, got, n)
	}
}

// reason asserts err is an *external.Error of class kind and reason r,
// and returns a copy of it (a value, so that a call that ignores it is
// not an unchecked error).
func reason(t *testing.T, err error, kind error, r external.Reason) external.Error {
	t.Helper()
	var e *external.Error
	if !errors.As(err, &e) || !errors.Is(err, kind) || e.Reason != r {
		t.Fatalf("err = %v, want %v (%s)", err, kind, r)
	}
	return *e
}

func TestLoginReturnsTheMappedTokensAndUser(t *testing.T) {
	t.Parallel()
	p := provider(t, extauthserver.Config{})
	c := newClient(t, fast(p.ClientConfig()))
	before := time.Now()
	res, err := c.Login(context.Background(), "ada@example.com", ada.Password)
	if err != nil {
		t.Fatal(err)
	}
	if res.User != (external.User{ID: ada.ID, Email: ada.Email, Name: ada.Name}) {
		t.Fatalf("user %+v", res.User)
	}
	tk := res.Tokens
	if strings.Count(tk.AccessToken, ".") != 2 || strings.Count(tk.IDToken, ".") != 2 || !strings.HasPrefix(tk.RefreshToken, "rt_") {
		t.Fatalf("tokens %q %q %q", tk.AccessToken, tk.IDToken, tk.RefreshToken)
	}
	if tk.ExpiresIn != time.Hour || tk.ExpiresAt.Before(before.Add(time.Hour)) || tk.ExpiresAt.After(time.Now().Add(time.Hour)) {
		t.Fatalf("expires in %s at %s", tk.ExpiresIn, tk.ExpiresAt)
	}
	if h := p.AllHits(); h[extauthserver.Login] != 1 || h[extauthserver.Me] != 0 {
		t.Fatalf("hits %v", h)
	}

	u, err := c.Me(context.Background(), tk.AccessToken)
	if err != nil || *u != res.User {
		t.Fatalf("me: %+v %v", u, err)
	}
	_, err = c.Me(context.Background(), tk.AccessToken+"x")
	reason(t, err, external.ErrInvalidCredentials, external.ReasonInvalidCredentials)
}

func TestWrongCredentialsAreOne401NeverRetriedNorHeldAgainstTheProvider(t *testing.T) {
	t.Parallel()
	p := provider(t, extauthserver.Config{})
	cfg := fast(p.ClientConfig())
	cfg.BreakerFailures = 2
	c := newClient(t, cfg)
	for i, cred := range [][2]string{{ada.Email, "wrong"}, {"nobody@example.com", ada.Password}, {ada.Email, ""}} {
		_, err := c.Login(context.Background(), cred[0], cred[1])
		e := reason(t, err, external.ErrInvalidCredentials, external.ReasonInvalidCredentials)
		if e.Status != http.StatusUnauthorized || e.Attempts != 1 {
			t.Fatalf("%+v", e)
		}
		if got := p.Hits(extauthserver.Login); got != i+1 {
			t.Fatalf("after %d refusals the provider saw %d logins: a 401 was retried", i+1, got)
		}
		if strings.Contains(err.Error(), ada.Password) {
			t.Fatalf("the error shows the password: %v", err)
		}
	}
	if s := c.BreakerState(); s != external.BreakerClosed {
		t.Fatalf("three 401s with a threshold of 2 left the breaker %s", s)
	}
	if _, err := c.Login(context.Background(), ada.Email, ada.Password); err != nil {
		t.Fatal(err)
	}
}

func TestServerErrorsAreRetriedThenTheBreakerOpensAndFailsFast(t *testing.T) {
	t.Parallel()
	p := provider(t, extauthserver.Config{})
	p.SetFault(extauthserver.Fault{Status: http.StatusServiceUnavailable})
	c := newClient(t, fast(p.ClientConfig()))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)

	_, err := c.Login(context.Background(), ada.Email, ada.Password)
	e := reason(t, err, external.ErrUnavailable, external.ReasonServerError)
	if e.Status != 503 || e.Attempts != 3 || p.Hits(extauthserver.Login) != 3 {
		t.Fatalf("first call: %+v, provider hits %d; want 3 attempts", e, p.Hits(extauthserver.Login))
	}
	// Attempts 4 and 5 fail: the fifth consecutive failure opens the
	// breaker, which refuses the sixth without reaching the provider.
	_, err = c.Login(context.Background(), ada.Email, ada.Password)
	reason(t, err, external.ErrUnavailable, external.ReasonBreakerOpen)
	wantHits(t, p, extauthserver.Login, 5)
	if s := c.BreakerState(); s != external.BreakerOpen {
		t.Fatalf("breaker %s", s)
	}
	p.SetFault(extauthserver.Fault{}) // the provider is back, but the breaker does not know yet
	for range 10 {
		_, err = c.Login(context.Background(), ada.Email, ada.Password)
		e = reason(t, err, external.ErrUnavailable, external.ReasonBreakerOpen)
	}
	wantHits(t, p, extauthserver.Login, 5)
	if e.RetryAfter <= 0 || e.RetryAfter > time.Minute {
		t.Fatalf("retry after %s", e.RetryAfter)
	}
	if ra := external.RetryAfter(err); ra%time.Second != 0 || ra < e.RetryAfter {
		t.Fatalf("RetryAfter(err) = %s for %s", ra, e.RetryAfter)
	}
	_, err = c.Refresh(context.Background(), "rt_anything")
	reason(t, err, external.ErrUnavailable, external.ReasonBreakerOpen) // one breaker for the provider

	m := gather(t, reg)
	for series, want := range map[string]float64{
		`authledger_external_auth_breaker_state{state="open"}`:                                    1,
		`authledger_external_auth_breaker_state{state="closed"}`:                                  0,
		`authledger_external_auth_calls_total{op="login",outcome="server_error"}`:                 1,
		`authledger_external_auth_calls_total{op="login",outcome="breaker_open"}`:                 11,
		`authledger_external_auth_attempts_total{op="login",result="5xx"}`:                        5,
		`authledger_external_auth_breaker_transitions_total{to="open"}`:                           1,
		`authledger_external_auth_call_duration_seconds_count{op="login",outcome="breaker_open"}`: 11,
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}
}

func TestATransientServerErrorIsRetriedToSuccess(t *testing.T) {
	t.Parallel()
	p := provider(t, extauthserver.Config{})
	p.SetFault(extauthserver.Fault{Status: http.StatusBadGateway, Count: 2})
	c := newClient(t, fast(p.ClientConfig()))
	if _, err := c.Login(context.Background(), ada.Email, ada.Password); err != nil {
		t.Fatal(err)
	}
	wantHits(t, p, extauthserver.Login, 3)
}

func TestOtherClientErrorsAreProviderFailuresNeitherRetriedNorCounted(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusFound} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			p := provider(t, extauthserver.Config{})
			p.SetFault(extauthserver.Fault{Status: status})
			cfg := fast(p.ClientConfig())
			cfg.BreakerFailures = 1
			c := newClient(t, cfg)
			for range 3 {
				_, err := c.Login(context.Background(), ada.Email, ada.Password)
				if e := reason(t, err, external.ErrProviderFailure, external.ReasonUnexpectedStatus); e.Status != status {
					t.Fatalf("%+v", e)
				}
			}
			wantHits(t, p, extauthserver.Login, 3)
			if s := c.BreakerState(); s != external.BreakerClosed {
				t.Fatalf("breaker %s after %ds", s, status)
			}
		})
	}
}

func TestTooManyRequestsIsUnavailableWithTheProvidersRetryAfterAndNotRetried(t *testing.T) {
	t.Parallel()
	p := provider(t, extauthserver.Config{})
	p.SetFault(extauthserver.Fault{Status: http.StatusTooManyRequests})
	c := newClient(t, fast(p.ClientConfig()))
	_, err := c.Login(context.Background(), ada.Email, ada.Password)
	reason(t, err, external.ErrUnavailable, external.ReasonRateLimited)
	wantHits(t, p, extauthserver.Login, 1)
	if external.RetryAfter(err) != time.Second {
		t.Fatalf("retry after %s", external.RetryAfter(err))
	}
}

func TestASlowProviderTimesOutEachAttempt(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]extauthserver.Fault{
		"hang":    {Hang: true},
		"latency": {Latency: time.Hour},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := provider(t, extauthserver.Config{})
			p.SetFault(f)
			cfg := fast(p.ClientConfig())
			// Long enough for a TLS handshake on a loaded machine, so
			// that both attempts reach the provider.
			cfg.Timeout = 500 * time.Millisecond
			cfg.MaxAttempts = 2
			c := newClient(t, cfg)
			_, err := c.Login(context.Background(), ada.Email, ada.Password)
			if e := reason(t, err, external.ErrUnavailable, external.ReasonTimeout); e.Attempts != 2 {
				t.Fatalf("%+v", e)
			}
			wantHits(t, p, extauthserver.Login, 2)
		})
	}
}

func TestADroppedConnectionIsRetried(t *testing.T) {
	t.Parallel()
	p := provider(t, extauthserver.Config{})
	c := newClient(t, fast(p.ClientConfig()))

	p.SetFault(extauthserver.Fault{Drop: true, Count: 1})
	if _, err := c.Login(context.Background(), ada.Email, ada.Password); err != nil {
		t.Fatal(err)
	}
	wantHits(t, p, extauthserver.Login, 2)

	p.SetFault(extauthserver.Fault{Drop: true})
	_, err := c.Login(context.Background(), ada.Email, ada.Password)
	if e := reason(t, err, external.ErrUnavailable, external.ReasonTransport); e.Attempts != 3 {
		t.Fatalf("%+v", e)
	}
	wantHits(t, p, extauthserver.Login, 5)
}

func TestTheBreakerLetsATrialThroughAfterItsDelayAndCloses(t *testing.T) {
	t.Parallel()
	p := provider(t, extauthserver.Config{})
	cfg := fast(p.ClientConfig())
	cfg.MaxAttempts = 1
	cfg.BreakerFailures = 2
	cfg.BreakerDelay = 50 * time.Millisecond
	c := newClient(t, cfg)
	p.SetFault(extauthserver.Fault{Status: 500})
	for range 2 {
		_, _ = c.Login(context.Background(), ada.Email, ada.Password)
	}
	if s := c.BreakerState(); s != external.BreakerOpen {
		t.Fatalf("breaker %s", s)
	}
	p.SetFault(extauthserver.Fault{})
	// Wait out the delay (this waits for time to pass; it asserts nothing
	// about how long anything took).
	for {
		_, err := c.Login(context.Background(), ada.Email, ada.Password)
		if err == nil {
			break
		}
		reason(t, err, external.ErrUnavailable, external.ReasonBreakerOpen)
		time.Sleep(10 * time.Millisecond)
	}
	if s := c.BreakerState(); s != external.BreakerClosed {
		t.Fatalf("breaker %s after a successful trial", s)
	}
	wantHits(t, p, extauthserver.Login, 3)
}

func TestACallerHangingUpNeitherOpensTheBreakerNorEndsTheAttempt(t *testing.T) {
	t.Parallel()
	p := provider(t, extauthserver.Config{})
	p.SetFault(extauthserver.Fault{Latency: 300 * time.Millisecond})
	cfg := fast(p.ClientConfig())
	cfg.BreakerFailures = 1
	c := newClient(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, _ = c.Login(ctx, ada.Email, ada.Password)
	if s := c.BreakerState(); s != external.BreakerClosed {
		t.Fatalf("a caller that gave up opened the breaker (%s)", s)
	}
	wantHits(t, p, extauthserver.Login, 1)
}

func TestRefreshKeepsTheRefreshTokenWhenNoneComesBackAndRefusesARevokedOne(t *testing.T) {
	t.Parallel()
	for _, rotate := range []bool{false, true} {
		t.Run(fmt.Sprint("rotate=", rotate), func(t *testing.T) {
			t.Parallel()
			p := provider(t, extauthserver.Config{RotateRefreshTokens: rotate})
			c := newClient(t, fast(p.ClientConfig()))
			res, err := c.Login(context.Background(), ada.Email, ada.Password)
			if err != nil {
				t.Fatal(err)
			}
			tk, err := c.Refresh(context.Background(), res.Tokens.RefreshToken)
			if err != nil {
				t.Fatal(err)
			}
			if tk.AccessToken == "" || tk.AccessToken == res.Tokens.AccessToken {
				t.Fatal("no new access token")
			}
			if rotated := tk.RefreshToken != res.Tokens.RefreshToken; rotated != rotate || tk.RefreshToken == "" {
				t.Fatalf("refresh token %q (was %q), rotate %v", tk.RefreshToken, res.Tokens.RefreshToken, rotate)
			}
			p.RevokeRefreshTokens()
			_, err = c.Refresh(context.Background(), tk.RefreshToken)
			reason(t, err, external.ErrInvalidCredentials, external.ReasonInvalidCredentials)
			wantHits(t, p, extauthserver.Refresh, 2)
		})
	}
}

func TestADifferentlyShapedAPIIsADifferentMapping(t *testing.T) {
	t.Parallel()
	p := provider(t, extauthserver.Config{Alternate: true})
	c := newClient(t, fast(p.ClientConfig())) // ClientConfig carries AlternateMapping
	res, err := c.Login(context.Background(), ada.Email, ada.Password)
	if err != nil {
		t.Fatal(err)
	}
	if res.User != (external.User{ID: ada.ID, Email: ada.Email, Name: ada.Name}) || res.Tokens.ExpiresIn != time.Hour {
		t.Fatalf("%+v %s", res.User, res.Tokens.ExpiresIn)
	}
	// That answer had no user: the client asked me for it.
	if h := p.AllHits(); h[extauthserver.Login] != 1 || h[extauthserver.Me] != 1 {
		t.Fatalf("hits %v", h)
	}
	if res.Tokens.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	if _, err := c.Refresh(context.Background(), res.Tokens.RefreshToken); err != nil {
		t.Fatal(err)
	}

}

func TestAnAnswerMissingTheMappedFieldsIsABadBody(t *testing.T) {
	t.Parallel()
	p := provider(t, extauthserver.Config{})
	cfg := fast(p.ClientConfig())
	cfg.Mapping = external.DefaultMapping
	cfg.Mapping.AccessToken = "tokens.access"
	_, err := newClient(t, cfg).Login(context.Background(), ada.Email, ada.Password)
	e := reason(t, err, external.ErrProviderFailure, external.ReasonBadBody)
	if !strings.Contains(err.Error(), "tokens.access is missing") || e.Attempts != 1 {
		t.Fatalf("%v", err)
	}
}

func TestTokensNeverPrintThemselves(t *testing.T) {
	t.Parallel()
	p := provider(t, extauthserver.Config{})
	res, err := newClient(t, fast(p.ClientConfig())).Login(context.Background(), ada.Email, ada.Password)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("login", "tokens", res.Tokens, "result", res)
	out := fmt.Sprint(res.Tokens) + fmt.Sprintf("%v %+v %#v %s", res, res, res, res.Tokens) + logged.String()
	for _, secret := range []string{res.Tokens.AccessToken, res.Tokens.IDToken, res.Tokens.RefreshToken} {
		if strings.Contains(out, secret) {
			t.Fatalf("a token was printed:\n%s", out)
		}
	}
	if !strings.Contains(out, external.Fingerprint(res.Tokens.AccessToken)) {
		t.Fatalf("no fingerprint in:\n%s", out)
	}
}

func TestConfigValidateReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	ok := external.Config{URL: "https://auth.example.com", Issuer: "https://login.example.com/t/v2.0", Audience: "api://authledger"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	d := ok.WithDefaults()
	if d.LoginPath != "/api/auth/login" || d.RefreshPath != "/api/auth/refresh" || d.MePath != "/api/auth/me" ||
		d.Timeout != 3*time.Second || d.RefreshBuffer != 5*time.Minute || d.Mapping != external.DefaultMapping {
		t.Fatalf("defaults %+v", d)
	}
	err := external.Config{
		URL: "http://auth.example.com", LoginPath: "api/login", MePath: "/me?x=1", Issuer: "ftp://x",
		Timeout: time.Millisecond, RefreshBuffer: time.Hour, Algorithms: []string{"HS256"},
	}.Validate()
	for _, want := range []string{
		"AUTHLEDGER_EXTERNAL_AUTH_URL", "plain http", "AUTHLEDGER_EXTERNAL_AUTH_LOGIN_PATH", "AUTHLEDGER_EXTERNAL_AUTH_ME_PATH",
		"AUTHLEDGER_EXTERNAL_AUTH_ISSUER", "AUTHLEDGER_EXTERNAL_AUTH_AUDIENCE", "AUTHLEDGER_EXTERNAL_AUTH_TIMEOUT",
		"AUTHLEDGER_TOKEN_REFRESH_BUFFER", `"HS256"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "REFRESH_PATH") {
		t.Errorf("the default refresh path was refused:\n%v", err)
	}

	insecure := ok
	insecure.URL, insecure.Issuer, insecure.AllowInsecure = "http://127.0.0.1:9", "http://127.0.0.1:9/t", true
	if err := insecure.Validate(); err != nil {
		t.Fatalf("AllowInsecure: %v", err)
	}
	for _, u := range []string{"", "https://", "https://user:pw@auth.example.com", "https://auth.example.com/?q=1", "auth.example.com"} {
		bad := ok
		bad.URL = u
		if err := bad.Validate(); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
	if _, err := external.NewClient(external.Config{}); err == nil {
		t.Fatal("NewClient accepted an empty config")
	}
}

// gather reads every series of reg as "name{labels}" → value (counters,
// gauges, histogram counts as name_count).
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			var v float64
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				name += "_count"
				v = float64(m.GetHistogram().GetSampleCount())
			default:
				continue
			}
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			out[name+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}

func TestCheckLoginReportsWhichMappedFieldsCameBack(t *testing.T) {
	t.Parallel()
	present := func(rep external.LoginCheck) map[string]bool {
		m := map[string]bool{}
		for _, f := range rep.Fields {
			m[f.Field] = f.Present
		}
		return m
	}
	p := provider(t, extauthserver.Config{})
	rep := newClient(t, fast(p.ClientConfig())).CheckLogin(context.Background(), ada.Email, ada.Password)
	if rep.Err != nil || rep.Status != 200 || rep.Attempts != 1 || rep.Latency <= 0 || rep.Result.User.ID != ada.ID {
		t.Fatalf("%+v", rep)
	}
	for f, ok := range present(rep) {
		if !ok {
			t.Errorf("%s not found", f)
		}
	}
	if len(rep.Fields) != 8 {
		t.Fatalf("fields %+v", rep.Fields)
	}

	cfg := fast(p.ClientConfig())
	cfg.Mapping = external.DefaultMapping
	cfg.Mapping.AccessToken, cfg.Mapping.UserName = "data.access_token", "display_name"
	rep = newClient(t, cfg).CheckLogin(context.Background(), ada.Email, ada.Password)
	got := present(rep)
	if !errors.Is(rep.Err, external.ErrProviderFailure) || rep.Status != 200 || got["AccessToken"] || got["UserName"] || !got["RefreshToken"] {
		t.Fatalf("%+v %v", rep, got)
	}

	rep = newClient(t, fast(p.ClientConfig())).CheckLogin(context.Background(), ada.Email, "wrong")
	if !errors.Is(rep.Err, external.ErrInvalidCredentials) || rep.Status != 401 || rep.Fields != nil || rep.Result != nil {
		t.Fatalf("%+v", rep)
	}
}

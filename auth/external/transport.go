package external

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/failsafe-go/failsafe-go/timeout"
)

// resilience is the policy every call to a third party runs through,
// retry outermost: retry(breaker(timeout(attempt))). The Client and every
// Transport hold one each (one breaker per provider): a provider being
// down opens its own breaker only.
type resilience struct {
	cfg     Config
	breaker circuitbreaker.CircuitBreaker[*answer]
	timeout timeout.Timeout[*answer]
	// onTransition is told each breaker state entered.
	onTransition func(BreakerState)
}

func newResilience(cfg Config, name string, onTransition func(BreakerState)) *resilience {
	r := &resilience{cfg: cfg, timeout: timeout.New[*answer](cfg.Timeout), onTransition: onTransition}
	r.breaker = circuitbreaker.NewBuilder[*answer]().
		HandleIf(failedAttempt).
		WithFailureThreshold(uint(cfg.BreakerFailures)).
		WithSuccessThreshold(uint(cfg.BreakerSuccesses)).
		WithDelay(cfg.BreakerDelay).
		OnStateChanged(func(e circuitbreaker.StateChangedEvent) {
			to := breakerState(e.NewState)
			if r.onTransition != nil {
				r.onTransition(to)
			}
			log := cfg.Logger.Info
			if to == BreakerOpen {
				log = cfg.Logger.Warn
			}
			log(name+": circuit breaker "+string(to), "from", string(breakerState(e.OldState)), "delay", cfg.BreakerDelay)
		}).
		Build()
	return r
}

// run makes the attempts of one call. They run on a context the caller's
// cancellation does not reach (its values do): see Client.call for why.
func (r *resilience) run(ctx context.Context, attempt func(context.Context) (*answer, error)) (*answer, int, error) {
	var n atomic.Int32
	retry := retrypolicy.NewBuilder[*answer]().
		HandleIf(failedAttempt).
		AbortIf(func(*answer, error) bool { return ctx.Err() != nil }).
		WithMaxAttempts(r.cfg.MaxAttempts).
		WithBackoff(r.cfg.RetryBackoff, r.cfg.RetryMaxBackoff).
		WithJitterFactor(r.cfg.RetryJitter).
		ReturnLastFailure().
		Build()
	a, err := failsafe.With[*answer](retry, r.breaker, r.timeout).
		WithContext(context.WithoutCancel(ctx)).
		GetWithExecution(func(exec failsafe.Execution[*answer]) (*answer, error) {
			n.Add(1)
			return attempt(exec.Context())
		})
	return a, int(n.Load()), err
}

// unavailable is the *Error of a call the policies ended without an
// answer (breaker open, timeout, transport).
func (r *resilience) unavailable(op string, err error) *Error {
	e := &Error{Op: op, Kind: ErrUnavailable, Err: err}
	switch {
	case errors.Is(err, circuitbreaker.ErrOpen):
		e.Reason, e.Err, e.RetryAfter = ReasonBreakerOpen, nil, r.breaker.RemainingDelay()
	case isTimeout(err):
		e.Reason = ReasonTimeout
	default:
		e.Reason = ReasonTransport
	}
	return e
}

// TransportConfig configures a Transport: the resilience settings of
// Config (Timeout, MaxAttempts, RetryBackoff, RetryMaxBackoff,
// RetryJitter, BreakerFailures, BreakerDelay, BreakerSuccesses, RootCAs,
// Logger), with the same defaults.
type TransportConfig struct {
	// Name names the provider in logs ("oidc google").
	Name             string
	Timeout          time.Duration
	MaxAttempts      int
	RetryBackoff     time.Duration
	RetryMaxBackoff  time.Duration
	RetryJitter      float64
	BreakerFailures  int
	BreakerDelay     time.Duration
	BreakerSuccesses int
	RootCAs          *x509.CertPool
	Logger           *slog.Logger
	// OnAttempt, when set, sees each attempt's status (0 without an
	// answer) and error, for metrics.
	OnAttempt func(status int, err error)
	// OnBreaker, when set, is told each breaker state entered.
	OnBreaker func(BreakerState)
}

func (c TransportConfig) config() Config {
	return Config{
		Timeout: c.Timeout, MaxAttempts: c.MaxAttempts, RetryBackoff: c.RetryBackoff, RetryMaxBackoff: c.RetryMaxBackoff,
		RetryJitter: c.RetryJitter, BreakerFailures: c.BreakerFailures, BreakerDelay: c.BreakerDelay,
		BreakerSuccesses: c.BreakerSuccesses, RootCAs: c.RootCAs, Logger: c.Logger,
	}.WithDefaults()
}

// Transport is an http.RoundTripper that makes each request through the
// same policies as the Client: a timeout per attempt (the body read
// included), retries on transport errors, timeouts and 5xx only, and a
// circuit breaker of its own. Hand it to libraries that make their own
// requests (golang.org/x/oauth2, coreos/go-oidc) through Client(). A
// request that ends without a usable answer (breaker open, every attempt
// failed, a final 5xx or 429) is an *Error of class ErrUnavailable, so
// errors.Is(err, ErrUnavailable) holds through the library's wrapping.
// Redirects are never followed.
type Transport struct {
	res       *resilience
	base      *http.Client
	onAttempt func(int, error)
}

// NewTransport validates cfg and returns a Transport.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	c := cfg.config()
	var errs []error
	if c.Timeout < 100*time.Millisecond || c.Timeout > time.Minute {
		errs = append(errs, fmt.Errorf("%s: timeout %s is outside 100ms to 60s", cfg.Name, c.Timeout))
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 10 {
		errs = append(errs, fmt.Errorf("%s: MaxAttempts %d is outside 1 to 10", cfg.Name, c.MaxAttempts))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Transport{res: newResilience(c, cfg.Name, cfg.OnBreaker), base: newHTTPClient(c), onAttempt: cfg.OnAttempt}, nil
}

// Client is an http.Client sending through t (no redirects, t's timeout).
func (t *Transport) Client() *http.Client {
	return &http.Client{Transport: t, Timeout: t.res.cfg.Timeout * time.Duration(t.res.cfg.MaxAttempts+1),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// BreakerState is the breaker's state now.
func (t *Transport) BreakerState() BreakerState { return breakerState(t.res.breaker.State()) }

// Refusing is the error every request meets while the breaker is open
// (nil otherwise): a caller about to start something that needs the
// provider later (a browser sent to its login page) fails fast instead.
func (t *Transport) Refusing(op string) error {
	if t.BreakerState() != BreakerOpen {
		return nil
	}
	return &Error{Op: op, Kind: ErrUnavailable, Reason: ReasonBreakerOpen, RetryAfter: t.res.breaker.RemainingDelay()}
}

// Close releases idle connections.
func (t *Transport) Close() { t.base.CloseIdleConnections() }

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(io.LimitReader(req.Body, maxBody+1))
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	op := req.Method + " " + req.URL.Path
	a, _, err := t.res.run(req.Context(), func(ctx context.Context) (*answer, error) {
		r := req.Clone(ctx)
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		resp, err := t.base.Do(r) //nolint:gosec // the request is the library's, to the operator-configured provider
		if err != nil {
			t.attempted(0, err)
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
		if err != nil {
			t.attempted(0, err)
			return nil, err
		}
		t.attempted(resp.StatusCode, nil)
		return &answer{status: resp.StatusCode, header: resp.Header, body: b, received: time.Now()}, nil
	})
	if err != nil {
		return nil, t.res.unavailable(op, err)
	}
	switch {
	case a.status >= 500:
		return nil, &Error{Op: op, Kind: ErrUnavailable, Reason: ReasonServerError, Status: a.status, RetryAfter: retryAfterHeader(a.header, time.Now())}
	case a.status == http.StatusTooManyRequests:
		return nil, &Error{Op: op, Kind: ErrUnavailable, Reason: ReasonRateLimited, Status: a.status, RetryAfter: retryAfterHeader(a.header, time.Now())}
	case len(a.body) > maxBody:
		return nil, &Error{Op: op, Kind: ErrProviderFailure, Reason: ReasonBadBody, Status: a.status, Err: errors.New("answer too large")}
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", a.status, http.StatusText(a.status)), StatusCode: a.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: a.header,
		Body: io.NopCloser(bytes.NewReader(a.body)), ContentLength: int64(len(a.body)), Request: req,
	}, nil
}

func (t *Transport) attempted(status int, err error) {
	if t.onAttempt != nil {
		t.onAttempt(status, err)
	}
}

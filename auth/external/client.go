package external

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/timeout"
)

// maxBody bounds what we read of an answer: token answers are a few KiB.
const maxBody = 1 << 20

// Tokens are the provider's tokens from a login or a refresh. They are
// secrets: String and LogValue print fingerprints only, so a Tokens that
// reaches a log or an error message reveals nothing.
type Tokens struct {
	AccessToken  string
	IDToken      string // "" when the provider sent none
	RefreshToken string // "" when the provider sent none
	// ExpiresIn is the access token's lifetime as the provider stated it;
	// ExpiresAt counts it from when the answer arrived.
	ExpiresIn time.Duration
	ExpiresAt time.Time
}

// String shows the tokens' fingerprints, never the tokens.
func (t Tokens) String() string {
	return fmt.Sprintf("external.Tokens{access:%s id:%s refresh:%s expires_at:%s}",
		Fingerprint(t.AccessToken), Fingerprint(t.IDToken), Fingerprint(t.RefreshToken), t.ExpiresAt.UTC().Format(time.RFC3339))
}

// GoString is String, so that %#v does not print the tokens either.
func (t Tokens) GoString() string { return t.String() }

// MarshalJSON writes the fingerprints too: a log handler or a debugging
// dump that serialises a struct holding Tokens (slog's JSON handler does
// so with LoginResult) must not write the tokens. Code that stores tokens
// copies the fields into its own type.
func (t Tokens) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"access": Fingerprint(t.AccessToken), "id": Fingerprint(t.IDToken), "refresh": Fingerprint(t.RefreshToken),
		"expires_at": t.ExpiresAt,
	})
}

// LogValue logs the tokens' fingerprints, never the tokens.
func (t Tokens) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("access", Fingerprint(t.AccessToken)),
		slog.String("id", Fingerprint(t.IDToken)),
		slog.String("refresh", Fingerprint(t.RefreshToken)),
		slog.Time("expires_at", t.ExpiresAt),
	)
}

// Fingerprint is what the log and the logs may record of a token: its
// SHA-256 ("sha256:" and 64 hex digits), or "" for no token. Provider
// tokens are long random-looking strings (signed JWTs, opaque refresh
// tokens), so the digest does not let anyone recover them.
func Fingerprint(token string) string {
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// User is the provider's user: ID is the external user id that links to
// a local account.
type User struct {
	ID    string
	Email string
	Name  string
}

// LoginResult is a successful login.
type LoginResult struct {
	Tokens Tokens
	User   User
}

// BreakerState is the circuit breaker's state.
type BreakerState string

// The breaker's states. Open turns to half-open lazily: on the first call
// after BreakerDelay, so an idle client reports open until then.
const (
	BreakerClosed   BreakerState = "closed"
	BreakerOpen     BreakerState = "open"
	BreakerHalfOpen BreakerState = "half_open"
)

// The operations, as the metrics and errors name them.
const (
	opLogin   = "login"
	opRefresh = "refresh"
	opMe      = "me"
)

// answer is one HTTP answer, read whole inside the attempt so that its
// timeout covers the body too.
type answer struct {
	status   int
	header   http.Header
	body     []byte
	received time.Time
}

// Client calls the external auth API. It is safe for concurrent use; make
// one per process (the breaker and the connection pool are its state) and
// register it with a prometheus.Registerer for its metrics.
type Client struct {
	cfg     Config
	http    *http.Client
	res     *resilience
	metrics *metrics
}

// NewClient validates cfg and returns a Client.
func NewClient(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	c := &Client{cfg: cfg, http: newHTTPClient(cfg), metrics: newMetrics()}
	c.res = newResilience(cfg, "external auth", func(to BreakerState) {
		c.metrics.transitions.WithLabelValues(string(to)).Inc()
	})
	c.metrics.state = func() BreakerState { return c.BreakerState() }
	return c, nil
}

// newHTTPClient is the client's own http.Client: a timeout on every
// request (the per-attempt timeout, also enforced by the policy), TLS 1.2
// or later, and no redirects, which would carry a password to wherever a
// Location header points.
func newHTTPClient(cfg Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs}
	tr.MaxIdleConnsPerHost = 32
	tr.TLSHandshakeTimeout = cfg.Timeout
	tr.ResponseHeaderTimeout = cfg.Timeout
	return &http.Client{
		Transport:     tr,
		Timeout:       cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// failedAttempt is what the breaker counts as a failure and the retry
// policy retries: an attempt that got no answer (transport error, timeout)
// or a 5xx. A 401 or any other 4xx is the provider working as designed:
// never retried, never held against it.
func failedAttempt(a *answer, err error) bool {
	if err != nil {
		return !errors.Is(err, circuitbreaker.ErrOpen)
	}
	return a != nil && a.status >= 500
}

// BreakerState is the circuit breaker's state now.
func (c *Client) BreakerState() BreakerState { return breakerState(c.res.breaker.State()) }

func breakerState(s circuitbreaker.State) BreakerState {
	switch s {
	case circuitbreaker.OpenState:
		return BreakerOpen
	case circuitbreaker.HalfOpenState:
		return BreakerHalfOpen
	default:
		return BreakerClosed
	}
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Login checks email and password with the provider. Wrong credentials
// are ErrInvalidCredentials. When the answer carries no user (at
// Mapping.LoginUser), the user is asked of the me path with the new
// access token.
func (c *Client) Login(ctx context.Context, email, password string) (*LoginResult, error) {
	res, _, err := c.login(ctx, email, password, nil)
	return res, err
}

// login is Login; observe, when set, sees the 2xx answer before it is
// decoded.
func (c *Client) login(ctx context.Context, email, password string, observe func(*answer, document)) (*LoginResult, int, error) {
	body, err := c.cfg.Mapping.loginBody(email, password)
	if err != nil {
		return nil, 0, fmt.Errorf("external auth: login: %w", err)
	}
	var res LoginResult
	var hasUser bool
	attempts, err := c.call(ctx, opLogin, http.MethodPost, c.cfg.LoginPath, body, "", func(a *answer, doc document) error {
		if observe != nil {
			observe(a, doc)
		}
		var err error
		if res.Tokens, err = c.cfg.Mapping.tokens(doc, a.received); err != nil {
			return err
		}
		res.User, hasUser, err = c.cfg.Mapping.user(doc, c.cfg.Mapping.LoginUser)
		return err
	})
	if err != nil {
		return nil, attempts, err
	}
	if !hasUser {
		u, err := c.Me(ctx, res.Tokens.AccessToken)
		if err != nil {
			return nil, attempts, err
		}
		res.User = *u
	}
	return &res, attempts, nil
}

// FieldCheck says whether a member of the Mapping was found in an answer.
type FieldCheck struct {
	// Field is the Mapping field ("AccessToken"), Path its JSON path.
	Field    string
	Path     string
	Required bool
	Present  bool
}

// LoginCheck reports one login for an operator validating a provider
// (`authledger external-auth check`): what came back and which mapped
// members it held, never a token (Result's Tokens print fingerprints).
type LoginCheck struct {
	// Status is the HTTP status of the login answer (0 when none came).
	Status   int
	Latency  time.Duration
	Attempts int
	// Fields are the login answer's mapped members (empty when the
	// answer was not a 2xx JSON object).
	Fields []FieldCheck
	// Result is the login, when it succeeded; Err why not.
	Result *LoginResult
	Err    error
}

// CheckLogin logs in once (through the same policies as Login) and
// reports it.
func (c *Client) CheckLogin(ctx context.Context, email, password string) LoginCheck {
	var rep LoginCheck
	start := time.Now()
	m := c.cfg.Mapping
	in := func(path string) string {
		if m.LoginUser == "" || path == "" {
			return path
		}
		return m.LoginUser + "." + path
	}
	rep.Result, rep.Attempts, rep.Err = c.login(ctx, email, password, func(a *answer, doc document) {
		rep.Status = a.status
		for _, f := range []FieldCheck{
			{Field: "AccessToken", Path: m.AccessToken, Required: true},
			{Field: "ExpiresIn", Path: m.ExpiresIn, Required: true},
			{Field: "IDToken", Path: m.IDToken},
			{Field: "RefreshToken", Path: m.RefreshToken},
			{Field: "TokenType", Path: m.TokenType},
			{Field: "UserID", Path: in(m.UserID)},
			{Field: "UserEmail", Path: in(m.UserEmail)},
			{Field: "UserName", Path: in(m.UserName)},
		} {
			if f.Path == "" {
				continue
			}
			v, ok := doc.lookup(f.Path)
			f.Present = ok && v != nil && v != ""
			rep.Fields = append(rep.Fields, f)
		}
	})
	rep.Latency = time.Since(start)
	var e *Error
	if errors.As(rep.Err, &e) && e.Op == opLogin {
		rep.Status = e.Status
	}
	return rep
}

// Refresh exchanges a refresh token for new tokens. A token the provider
// no longer accepts is ErrInvalidCredentials. When the answer carries no
// new refresh token, the result keeps the one given.
//
// Retries resend the same refresh token. That is safe with Azure AD, whose
// refresh tokens stay valid until they expire; a provider that revokes a
// refresh token on its first use would, after an answer lost in transit,
// answer the retry with 401.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*Tokens, error) {
	body, err := c.cfg.Mapping.refreshBody(refreshToken)
	if err != nil {
		return nil, fmt.Errorf("external auth: refresh: %w", err)
	}
	var t Tokens
	_, err = c.call(ctx, opRefresh, http.MethodPost, c.cfg.RefreshPath, body, "", func(a *answer, doc document) error {
		var err error
		t, err = c.cfg.Mapping.tokens(doc, a.received)
		if t.RefreshToken == "" {
			t.RefreshToken = refreshToken
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// Me returns the user an access token of the provider belongs to.
func (c *Client) Me(ctx context.Context, accessToken string) (*User, error) {
	var u User
	_, err := c.call(ctx, opMe, http.MethodGet, c.cfg.MePath, nil, accessToken, func(_ *answer, doc document) error {
		var ok bool
		var err error
		u, ok, err = c.cfg.Mapping.user(doc, c.cfg.Mapping.MeUser)
		if err == nil && !ok {
			err = fmt.Errorf("%s is missing", c.cfg.Mapping.UserID)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// call runs one operation through the policies, retry outermost:
// retry(breaker(timeout(attempt))), so each attempt is timed and counted
// by the breaker, and an open breaker ends the call at once (ErrOpen is
// not retried). decode reads a 2xx answer.
//
// The attempts run on a context that the caller's cancellation does not
// reach (its values do): a client hanging up mid-login would otherwise
// end the attempt with an error the breaker must count either as a
// failure (then anyone can open it by hanging up) or as a success (then
// it closes on nothing). The attempt's own timeout still bounds it, and
// no retry starts once the caller has gone.
func (c *Client) call(ctx context.Context, op, method, path string, body []byte, bearer string, decode func(*answer, document) error) (attempts int, _ error) {
	start := time.Now()
	a, attempts, err := c.res.run(ctx, func(ctx context.Context) (*answer, error) {
		return c.attempt(ctx, op, method, c.cfg.URL+path, body, bearer)
	})
	e := c.classify(op, a, err, decode)
	outcome := "ok"
	if e != nil {
		e.Attempts = attempts
		outcome = string(e.Reason)
	}
	c.metrics.calls.WithLabelValues(op, outcome).Inc()
	c.metrics.duration.WithLabelValues(op, outcome).Observe(time.Since(start).Seconds())
	if e != nil {
		return attempts, e
	}
	return attempts, nil
}

// classify turns the policies' result into nil or an *Error.
func (c *Client) classify(op string, a *answer, err error, decode func(*answer, document) error) *Error {
	if err != nil {
		return c.res.unavailable(op, err)
	}
	switch s := a.status; {
	case s >= 200 && s < 300:
		doc, err := parseDocument(a.body)
		if err == nil {
			err = decode(a, doc)
		}
		if err != nil {
			return &Error{Op: op, Kind: ErrProviderFailure, Reason: ReasonBadBody, Status: s, Err: err}
		}
		return nil
	case s == http.StatusUnauthorized:
		return &Error{Op: op, Kind: ErrInvalidCredentials, Reason: ReasonInvalidCredentials, Status: s}
	case s == http.StatusTooManyRequests:
		return &Error{Op: op, Kind: ErrUnavailable, Reason: ReasonRateLimited, Status: s, RetryAfter: retryAfterHeader(a.header, c.cfg.Now())}
	case s >= 500:
		return &Error{Op: op, Kind: ErrUnavailable, Reason: ReasonServerError, Status: s, RetryAfter: retryAfterHeader(a.header, c.cfg.Now())}
	default:
		return &Error{Op: op, Kind: ErrProviderFailure, Reason: ReasonUnexpectedStatus, Status: s}
	}
}

// attempt makes one request and reads the whole answer.
func (c *Client) attempt(ctx context.Context, op, method, url string, body []byte, bearer string) (*answer, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "authledger")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.metrics.attempt(ctx, op, 0, err)
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		c.metrics.attempt(ctx, op, 0, err)
		return nil, err
	}
	c.metrics.attempt(ctx, op, resp.StatusCode, nil)
	if len(b) > maxBody {
		b = nil // decoded as "not a JSON object": a bad body
	}
	return &answer{status: resp.StatusCode, header: resp.Header, body: b, received: c.cfg.Now()}, nil
}

// isTimeout reports an attempt cut by the timeout policy, the client's
// own timeout or a deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, timeout.ErrExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// retryAfterHeader reads Retry-After (seconds or an HTTP date); 0 when
// absent or unreadable.
func retryAfterHeader(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

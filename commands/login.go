package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/authledger/authledger/auth/password"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// ErrInvalidCredentials is the one answer to an unknown email and a wrong
// password, so that neither tells whether an account exists. An attempt
// that comes too soon after failures is a *user.ThrottledError instead,
// for an unknown address exactly as for an account.
var ErrInvalidCredentials = errors.New("commands: invalid credentials")

// ErrEmailNotVerified refuses a correct password login while
// AUTHLEDGER_REQUIRE_VERIFIED_EMAIL is on and the address is unverified.
// It is asked only after the password checked out, so it tells nothing to
// someone without it.
var ErrEmailNotVerified = errors.New("commands: email address not verified")

// Login asks for a session with an email and a password.
type Login struct {
	Email    string
	Password string
	// DeviceToken is the known-device token the client kept from an
	// earlier login (token.DeviceToken), "" when it has none. One that
	// does not check out is ignored, never an error.
	DeviceToken string
	// SecondFactor is a second factor's code, for LoginHandler.SecondFactor
	// (nothing reads it until multi-factor login exists).
	SecondFactor string
	// AcceptTerms, when it names LoginHandler.TermsVersion, accepts that
	// version of the terms at this login (user.terms_accepted.v1).
	AcceptTerms string
	Meta        Meta
}

// LoginResult carries the tokens and who they are for. RefreshToken and
// DeviceToken are the only copies of their secrets: the log holds their
// digests.
type LoginResult struct {
	User         Account
	SessionID    uuid.UUID
	AccessToken  string
	Claims       token.Claims
	RefreshToken string
	// DeviceToken marks the client as a known device at its next logins,
	// until DeviceExpiresAt; "" when LoginHandler.KnownDeviceTTL is 0.
	DeviceToken     string
	DeviceExpiresAt time.Time
	Position        eventstore.Position
}

// Account is who a pair of tokens is for, as the token response shows it.
type Account struct {
	ID          uuid.UUID
	Email       string
	DisplayName string
}

// accountClaims are the user's claims a new session carries.
func accountClaims(u *user.User) *session.Claims {
	return &session.Claims{Email: u.Email(), Name: u.DisplayName(), Roles: u.Roles(), EmailVerified: u.EmailVerified()}
}

// issued is an access token signed beside an append.
type issued struct {
	access string
	claims token.Claims
	err    error
}

// signAsync issues sub's access token on another goroutine, so that the
// signature is made while the append of the session's event waits for its
// commit. The caller hands the token out only once that append succeeded.
func signAsync(iss *token.Issuer, sub token.Subject, now time.Time) <-chan issued {
	c := make(chan issued, 1) // never blocks: a caller that gave up leaves it
	go func() {
		var i issued
		i.access, i.claims, i.err = iss.Issue(sub, now)
		c <- i
	}()
	return c
}

// SecondFactor verifies a second factor presented with a login. There is
// no implementation yet (multi-factor login is a later issue): this is
// where one plugs in. A login whose factor verifies is trusted, like one
// from a known device: it is held only to its own source's failures, not
// slowed for failures from other sources. An implementation must throttle
// guesses at the factor itself.
type SecondFactor interface {
	Verify(ctx context.Context, userID uuid.UUID, code string) (bool, error)
}

// DefaultStrangerCapacity bounds the unknown addresses whose failed logins
// LoginHandler remembers (in memory) when StrangerCapacity is 0.
const DefaultStrangerCapacity = 10_000

// LoginHandler finds the user through the reservation stream (never a read
// model), asks the login throttle whether the attempt may go ahead, checks
// the password, records a failure on the user stream (off the response
// path: loginFailures), and on success
// appends to the new session stream (and, when the source had failures,
// their clearing to the user stream).
//
// An address with no account has no stream to count failures on: the
// handler keeps its failures in memory (bounded, per instance) and folds
// them with the same rule, so that an unknown address is throttled like a
// known one. Nothing about unknown addresses reaches the log.
type LoginHandler struct {
	Reservations *Repository[*user.EmailReservation]
	Users        *Repository[*user.User]
	Sessions     *Repository[*session.Session]
	Hasher       *password.Hasher
	Issuer       *token.Issuer
	Throttle     user.ThrottlePolicy
	// KnownDeviceTTL is how long the device token handed out at a login
	// marks its holder as a known device; 0 hands none out.
	KnownDeviceTTL time.Duration
	// SecondFactor, when set, may trust a login (see SecondFactor); nil
	// trusts only known devices.
	SecondFactor SecondFactor
	// StrangerCapacity bounds the unknown addresses remembered
	// (DefaultStrangerCapacity when 0); past it the least recently tried
	// is forgotten.
	StrangerCapacity int
	SessionPolicy    session.Policy
	ReservationKey   []byte
	Now              func() time.Time
	// RequireVerifiedEmail refuses a password login of an unverified
	// address (ErrEmailNotVerified), after the password checked out.
	RequireVerifiedEmail bool
	// LocalPasswordsOff refuses every local password as a wrong one,
	// after the same work (the clean-up step of the move to external
	// login: nothing is deleted, and turning it off again restores them).
	LocalPasswordsOff bool
	// MFA, when set, stops a correct password of a user with a second
	// factor (or a role that requires one) at an mfa_token
	// (*MFARequiredError); VerifySecondFactor completes it.
	MFA *SecondFactors
	// TermsVersion (AUTHLEDGER_TERMS_VERSION), when set, refuses a
	// password login of a user who has not accepted it
	// (*TermsRequiredError) unless the login accepts it (Login.AcceptTerms).
	TermsVersion string

	// external, when set (IdentityConfig.External), sends every login to
	// the external auth API instead of the local password hashes.
	external *externalLogin

	strangersOnce sync.Once
	strangers     *strangers

	failuresOnce sync.Once
	failures     *loginFailures
}

// decoyStream is a user stream never written (no user has the nil id): an
// address without an account loads it, so that such a login reads a user
// stream as a known address's does.
var decoyStream = user.StreamName(uuid.Nil)

// Drain waits until the refused logins being appended in the background
// are in the log (or ctx is done). Call it at shutdown, before the store
// closes: a failure answered but not appended would be lost.
func (h *LoginHandler) Drain(ctx context.Context) {
	h.failureLog().drain(ctx)
}

func (h *LoginHandler) failureLog() *loginFailures {
	h.failuresOnce.Do(func() {
		var log *slog.Logger
		if h.external != nil {
			log = h.external.log
		}
		h.failures = newLoginFailures(h.Users, log)
	})
	return h.failures
}

// Handle logs in. A refusal is ErrInvalidCredentials after one hash spent,
// whether the address is unknown or the password wrong, or a
// *user.ThrottledError with no hash spent and nothing recorded. With
// external auth on, the external API checks the password instead (see
// externalHandle), and a login it cannot decide is a
// *ProviderUnavailableError.
func (h *LoginHandler) Handle(ctx context.Context, cmd Login) (LoginResult, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	if h.external != nil && h.external.routes(cmd.Email) {
		return h.externalHandle(ctx, cmd, now)
	}
	return h.localHandle(ctx, cmd, now)
}

// localHandle checks the password against the user's local hash. A user
// without one (created by an external login) is refused like a wrong
// password, the dummy hash spent so that the answer takes as long.
func (h *LoginHandler) localHandle(ctx context.Context, cmd Login, now time.Time) (LoginResult, error) {
	attempt := user.LoginAttempt{Source: user.Source(cmd.Meta.ClientIP), Method: session.MethodPassword}
	streams := user.EmailReservationStreams(h.ReservationKey, cmd.Email)
	if len(streams) == 0 {
		// No account can have this address: nothing to throttle.
		_ = h.Hasher.DummyVerify(ctx, cmd.Password)
		return LoginResult{}, ErrInvalidCredentials
	}
	// A stranger's throttle counts under the address's first reservation
	// stream: one key per address, whichever of its spellings is typed.
	resStream := streams[0]
	holder, held, err := emailHolder(ctx, h.Reservations, h.ReservationKey, cmd.Email)
	if err != nil {
		return LoginResult{}, err
	}
	if !held {
		// The same reads as a known address: its user stream, here one
		// that is never written.
		if _, err := h.Users.Load(ctx, decoyStream); err != nil {
			return LoginResult{}, err
		}
		return LoginResult{}, h.stranger(ctx, resStream, attempt, cmd.Password, now)
	}
	u, err := h.Users.Load(ctx, user.StreamName(holder))
	if err != nil {
		return LoginResult{}, err
	}
	if !u.Registered() {
		return LoginResult{}, h.stranger(ctx, resStream, attempt, cmd.Password, now)
	}
	if attempt, err = h.trust(ctx, u.ID(), attempt, cmd, now); err != nil {
		return LoginResult{}, err
	}
	if wait := u.LoginRetryAfterPending(h.failureLog().pending(u.ID(), u.Version()), attempt, now, h.Throttle); wait > 0 {
		return LoginResult{}, &user.ThrottledError{RetryAfter: wait}
	}
	ok := false
	if u.HasPassword() && !h.LocalPasswordsOff {
		if ok, err = h.Hasher.Verify(ctx, cmd.Password, u.PasswordHash()); err != nil {
			return LoginResult{}, fmt.Errorf("commands: verify password: %w", err)
		}
	} else {
		_ = h.Hasher.DummyVerify(ctx, cmd.Password)
	}
	if !ok {
		// Answered at once; the failure is appended off the response
		// path, and counted here until it is (loginFailures).
		h.failureLog().record(ctx, u.ID(), attempt, now, h.Throttle, cmd.Meta)
		return LoginResult{}, ErrInvalidCredentials
	}
	purpose, kinds := "", []string(nil)
	if h.MFA != nil {
		if purpose, kinds, err = h.MFA.required(ctx, u, now); err != nil {
			return LoginResult{}, err
		}
	}
	// Failures are cleared only once every factor checked out: a correct
	// password must not reset the count of wrong second factors.
	h.afterSuccess(ctx, u, attempt, cmd, now, purpose == "")
	if h.RequireVerifiedEmail && !u.EmailVerified() {
		return LoginResult{}, ErrEmailNotVerified
	}
	if err := h.terms(ctx, u, cmd, now); err != nil {
		return LoginResult{}, err
	}
	if purpose != "" {
		// Asked before a challenge is opened, as startSession would.
		if err := u.CanLogIn(); err != nil {
			return LoginResult{}, err
		}
		return LoginResult{}, h.MFA.challenge(ctx, u, cmd.Meta, purpose, kinds, session.MethodPassword, []string{session.AMRPassword})
	}
	return h.startSession(ctx, u, cmd.Meta, now, session.MethodPassword)
}

// trust completes the attempt with what the client proved: a known device
// of this user, or a second factor.
func (h *LoginHandler) trust(ctx context.Context, userID uuid.UUID, a user.LoginAttempt, cmd Login, now time.Time) (user.LoginAttempt, error) {
	device, err := h.knownDevice(ctx, userID, cmd.DeviceToken, now)
	if err != nil {
		return a, err
	}
	a.Device, a.Trusted = device, device != ""
	if !a.Trusted && h.SecondFactor != nil && cmd.SecondFactor != "" {
		if a.Trusted, err = h.SecondFactor.Verify(ctx, userID, cmd.SecondFactor); err != nil {
			return a, fmt.Errorf("commands: second factor: %w", err)
		}
	}
	return a, nil
}

// knownDevice returns the id of the device raw proves (the session whose
// login issued it), or "" when raw is empty, malformed, another user's,
// expired or unknown.
func (h *LoginHandler) knownDevice(ctx context.Context, userID uuid.UUID, raw string, now time.Time) (string, error) {
	if raw == "" || h.KnownDeviceTTL <= 0 {
		return "", nil
	}
	dt, err := token.ParseDeviceToken(raw)
	if err != nil {
		return "", nil
	}
	first, err := h.Sessions.First(ctx, session.StreamName(dt.SessionID()))
	if err != nil {
		return "", err
	}
	st, ok := first.(session.Started)
	if !ok || st.UserID != userID || st.DeviceDigest == nil || !dt.Matches(*st.DeviceDigest) ||
		!now.Before(st.StartedAt.Add(h.KnownDeviceTTL)) {
		return "", nil
	}
	return dt.SessionID().String(), nil
}

// afterSuccess clears the source's failures (when forget) and upgrades an
// outdated hash, in one append. Best effort: neither must fail the login.
func (h *LoginHandler) afterSuccess(ctx context.Context, u *user.User, a user.LoginAttempt, cmd Login, now time.Time, forget bool) {
	rehash := ""
	if h.Hasher.NeedsRehash(u.PasswordHash()) {
		if hash, err := h.Hasher.Hash(ctx, cmd.Password); err == nil {
			rehash = hash
		}
	}
	forget = forget && u.HasLoginFailuresPending(h.failureLog().pending(u.ID(), u.Version()), a)
	if rehash == "" && !forget {
		return
	}
	// The clearing must follow the failures it clears in the stream.
	h.failureLog().wait(ctx, u.ID())
	_, _ = h.Users.Update(ctx, user.StreamName(u.ID()), cmd.Meta, func(u *user.User) error {
		if rehash != "" {
			if err := u.Rehash(rehash, now); err != nil {
				return err
			}
		}
		if !forget {
			return nil
		}
		return u.RecordLoginSuccess(a, now)
	})
}

// startSession appends the new session, with a new device token's digest,
// and signs its access token meanwhile. method is the session's login
// method; both methods take a password (amr pwd).
func (h *LoginHandler) startSession(ctx context.Context, u *user.User, meta Meta, now time.Time, method string) (LoginResult, error) {
	return h.startSessionAMR(ctx, u, meta, now, method, []string{session.AMRPassword})
}

// startSessionAMR is startSession with the session's amr: the one way
// every login, local, external or upstream, starts its session.
func (h *LoginHandler) startSessionAMR(ctx context.Context, u *user.User, meta Meta, now time.Time, method string, amr []string) (LoginResult, error) {
	// Asked only here, after the credentials checked out: a locked or
	// disabled account tells nothing to someone without them.
	if err := u.CanLogIn(); err != nil {
		return LoginResult{}, err
	}
	sid, err := uuid.NewV7()
	if err != nil {
		return LoginResult{}, fmt.Errorf("commands: session id: %w", err)
	}
	rt, err := token.NewRefreshToken(sid)
	if err != nil {
		return LoginResult{}, err
	}
	var device token.DeviceToken
	var deviceDigest session.Digest
	if h.KnownDeviceTTL > 0 {
		if device, err = token.NewDeviceToken(sid); err != nil {
			return LoginResult{}, err
		}
		deviceDigest = session.Digest(device.Digest())
	}
	claims := accountClaims(u)
	s, err := session.Start(session.StartParams{
		SessionID: sid, UserID: u.ID(), Method: method, AMR: amr,
		IP: meta.ClientIP, UserAgent: meta.UserAgent, RefreshDigest: session.Digest(rt.Digest()),
		Claims: claims, DeviceDigest: deviceDigest,
	}, now, h.SessionPolicy)
	if err != nil {
		return LoginResult{}, err
	}
	signed := signAsync(h.Issuer, token.Subject{UserID: u.ID(), SessionID: sid, Name: claims.Name, AMR: amr, Roles: claims.Roles, AuthTime: now, EmailVerified: claims.EmailVerified}, now)
	ar, err := h.Sessions.Append(ctx, session.StreamName(sid), 0, meta, s.Changes())
	if err != nil {
		return LoginResult{}, err
	}
	i := <-signed
	if i.err != nil {
		return LoginResult{}, i.err
	}
	r := LoginResult{User: Account{ID: u.ID(), Email: claims.Email, DisplayName: claims.Name}, SessionID: sid,
		AccessToken: i.access, Claims: i.claims, RefreshToken: rt.Encode(), Position: ar.Position}
	if h.KnownDeviceTTL > 0 {
		r.DeviceToken, r.DeviceExpiresAt = device.Encode(), now.Add(h.KnownDeviceTTL)
	}
	return r, nil
}

// stranger answers a login for an address with no account, throttled by
// the same rule as an account, its failures kept in memory under the
// reservation stream's name (an HMAC: no address is held).
func (h *LoginHandler) stranger(ctx context.Context, key string, a user.LoginAttempt, pw string, now time.Time) error {
	s := h.strangerTable()
	if wait := s.retryAfter(key, a, now, h.Throttle); wait > 0 {
		return &user.ThrottledError{RetryAfter: wait}
	}
	_ = h.Hasher.DummyVerify(ctx, pw)
	s.failed(key, a, now)
	return ErrInvalidCredentials
}

func (h *LoginHandler) strangerTable() *strangers {
	h.strangersOnce.Do(func() {
		n := h.StrangerCapacity
		if n <= 0 {
			n = DefaultStrangerCapacity
		}
		h.strangers = newStrangers(n)
	})
	return h.strangers
}

// strangers are the throttles of addresses without an account, in a
// bounded LRU. Forgetting one gives that address its free attempts back,
// which throttles less, never more.
type strangers struct {
	mu    sync.Mutex
	table *lru.Cache[string, *user.LoginThrottle]
}

func newStrangers(n int) *strangers {
	table, _ := lru.New[string, *user.LoginThrottle](n) // only fails for n <= 0
	return &strangers{table: table}
}

func (s *strangers) retryAfter(key string, a user.LoginAttempt, now time.Time, p user.ThrottlePolicy) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.table.Get(key)
	if !ok {
		return 0
	}
	return t.RetryAfter(a, now, p)
}

// failed counts a failure as the user stream would: the same event, folded
// and never appended.
func (s *strangers) failed(key string, a user.LoginAttempt, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.table.Get(key)
	if !ok {
		t = &user.LoginThrottle{}
		s.table.Add(key, t)
	}
	t.Observe(user.LoginFailed{FailedAt: now.UTC(), Source: a.Source, Device: a.Device})
}

// ErrTermsAcceptanceRequired is what *TermsRequiredError is.
var ErrTermsAcceptanceRequired = errors.New("commands: the current terms of service must be accepted")

// TermsRequiredError refuses a login (after the password checked out, so
// it tells nothing to whoever lacks it) of a user who has not accepted
// the current terms Version.
type TermsRequiredError struct{ Version string }

func (e *TermsRequiredError) Error() string {
	return "commands: terms of service version " + e.Version + " must be accepted"
}

// Is makes the error ErrTermsAcceptanceRequired.
func (e *TermsRequiredError) Is(target error) bool { return target == ErrTermsAcceptanceRequired }

// terms holds a login to the current terms: nil when none are configured
// or the user accepted them, the acceptance appended when the login
// accepts them, else *TermsRequiredError.
func (h *LoginHandler) terms(ctx context.Context, u *user.User, cmd Login, now time.Time) error {
	if h.TermsVersion == "" || u.TermsVersion() == h.TermsVersion {
		return nil
	}
	if cmd.AcceptTerms != h.TermsVersion {
		return &TermsRequiredError{Version: h.TermsVersion}
	}
	_, err := h.Users.Update(ctx, user.StreamName(u.ID()), cmd.Meta, func(u *user.User) error {
		return u.AcceptTerms(h.TermsVersion, now)
	})
	return err
}

package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/external"
	"github.com/authledger/authledger/auth/vault"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// ErrAuthProviderUnavailable is matched by every *ProviderUnavailableError:
// the external auth API gave no usable answer, so the login could not be
// decided. The HTTP layer answers 503 auth-provider-unavailable with
// Retry-After.
var ErrAuthProviderUnavailable = errors.New("commands: the external auth provider is unavailable")

// ProviderUnavailableError is a login the external auth API could not
// decide: unreachable, failing, or answering outside its contract (a
// token that does not verify, a subject that is not the user it named).
type ProviderUnavailableError struct {
	// RetryAfter is when to try again (external.RetryAfter); 0 for a
	// failure with no known end.
	RetryAfter time.Duration
	// Cause is for the log only: it never reaches the client.
	Cause error
}

func (e *ProviderUnavailableError) Error() string {
	return "commands: the external auth provider is unavailable: " + e.Cause.Error()
}

// Is makes errors.Is(err, ErrAuthProviderUnavailable) true.
func (e *ProviderUnavailableError) Is(target error) bool { return target == ErrAuthProviderUnavailable }

// Unwrap returns the cause.
func (e *ProviderUnavailableError) Unwrap() error { return e.Cause }

// ExternalProvider logs in at the external auth API (*external.Client).
type ExternalProvider interface {
	Login(ctx context.Context, email, password string) (*external.LoginResult, error)
}

// ProviderTokenValidator verifies the provider's JWTs
// (*external.TokenValidator).
type ProviderTokenValidator interface {
	Validate(ctx context.Context, raw string) (*external.Claims, error)
}

// TokenVault keeps the provider's tokens of each session (*vault.Vault).
type TokenVault interface {
	Put(ctx context.Context, session, user uuid.UUID, t external.Tokens) (vault.Record, error)
	Delete(ctx context.Context, session uuid.UUID) (bool, error)
}

// ExternalConfig turns on logins through the external auth API
// (docs/external-auth.md, ADR 0023).
type ExternalConfig struct {
	// Provider, Validator and Vault are required.
	Provider  ExternalProvider
	Validator ProviderTokenValidator
	Vault     TokenVault
	// ProviderName names the provider in the links it makes: its issuer
	// (AUTHLEDGER_EXTERNAL_AUTH_ISSUER). Changing it unlinks everyone.
	ProviderName string
	// FallbackLocal checks the local password while the provider is
	// unavailable (external.ErrUnavailable only: never after it refused
	// the credentials, nor when it answers outside its contract).
	FallbackLocal bool
	// Provision creates a user, without a password hash, at the first
	// external login of an address no local account holds.
	Provision bool
	// Logger receives the fallbacks and provider failures (never a token
	// or a password); slog.Default() when nil.
	Logger *slog.Logger
	// Router, when set, decides per login whether it goes to the external
	// API (the staged rollout, auth/rollout.Live); nil sends every login
	// there. It must decide from the typed address alone, before anything
	// tells whether an account has it.
	Router Router
}

// Router chooses the path of a login from the typed address.
type Router interface {
	External(email string) bool
}

func (c *ExternalConfig) validate() error {
	var errs []error
	if c.Provider == nil || c.Validator == nil || c.Vault == nil {
		errs = append(errs, errors.New("commands: external login needs a provider, a token validator and a vault"))
	}
	if c.ProviderName == "" {
		errs = append(errs, errors.New("commands: external login needs the provider's name (its issuer)"))
	}
	return errors.Join(errs...)
}

// externalLogin is the external path of LoginHandler.
type externalLogin struct {
	ExternalConfig
	identities *Repository[*user.ExternalIdentityReservation]
	log        *slog.Logger
}

// routes reports whether the login of email goes to the external API.
func (x *externalLogin) routes(email string) bool { return x.Router == nil || x.Router.External(email) }

func newExternalLogin(cfg ExternalConfig, identities *Repository[*user.ExternalIdentityReservation]) *externalLogin {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &externalLogin{ExternalConfig: cfg, identities: identities, log: log}
}

// externalHandle logs in through the provider: the credentials go to the
// API; on success its token is verified, the provider's user is linked to
// (or provisioned as) a local user, the session starts, and the provider's
// tokens go to the vault. Every refusal is the local path's
// ErrInvalidCredentials, so nothing tells whether an account exists.
func (h *LoginHandler) externalHandle(ctx context.Context, cmd Login, now time.Time) (LoginResult, error) {
	x := h.external
	attempt, refused, err := h.externalThrottle(ctx, cmd, now)
	if err != nil {
		return LoginResult{}, err
	}
	res, err := x.Provider.Login(ctx, strings.TrimSpace(cmd.Email), cmd.Password)
	switch {
	case err == nil:
	case errors.Is(err, external.ErrInvalidCredentials):
		refused()
		return LoginResult{}, fmt.Errorf("%w: refused by the external provider", ErrInvalidCredentials)
	case errors.Is(err, external.ErrUnavailable) && x.FallbackLocal:
		// Users without a local password get the wrong-password answer
		// from the local path, the same as an unknown address: a 503 for
		// them alone would tell that their account exists.
		x.log.WarnContext(ctx, "external auth unavailable: checking the local password", slog.String("error", err.Error()))
		return h.localHandle(ctx, cmd, now)
	default:
		x.log.WarnContext(ctx, "external auth failed", slog.String("error", err.Error()))
		return LoginResult{}, &ProviderUnavailableError{RetryAfter: external.RetryAfter(err), Cause: err}
	}
	ident, email, name, err := x.verify(ctx, res)
	if err != nil {
		x.log.ErrorContext(ctx, "external auth: the provider's answer does not check out", slog.String("error", err.Error()))
		return LoginResult{}, err
	}
	u, err := h.linkedUser(ctx, cmd.Meta, ident, email, name, attempt, now)
	if err != nil {
		return LoginResult{}, err
	}
	r, err := h.startSession(ctx, u, cmd.Meta, now, session.MethodExternal)
	if err != nil {
		return LoginResult{}, err
	}
	pos, err := h.storeProviderTokens(ctx, r.SessionID, u.ID(), res.Tokens, cmd.Meta, now)
	if err != nil {
		return LoginResult{}, err
	}
	r.Position = pos
	return r, nil
}

// externalThrottle applies the login throttle before the provider is
// asked, as the local path does before it hashes: a source past its
// failures on the account (or an address without one, from memory) waits,
// and the provider is not asked. It returns the attempt (a known device
// counts) and refused, which records a refusal by the provider: for an
// account, a user.login_failed.v1 appended off the response path, so that
// the answer does not wait for a durable commit only known accounts make.
func (h *LoginHandler) externalThrottle(ctx context.Context, cmd Login, now time.Time) (user.LoginAttempt, func(), error) {
	attempt := user.LoginAttempt{Source: user.Source(cmd.Meta.ClientIP), Method: session.MethodExternal}
	streams := user.EmailReservationStreams(h.ReservationKey, cmd.Email)
	if len(streams) == 0 {
		return attempt, func() {}, nil // no account can have this address
	}
	holder, held, err := emailHolder(ctx, h.Reservations, h.ReservationKey, cmd.Email)
	if err != nil {
		return attempt, nil, err
	}
	// An address without an account reads the decoy user stream, so both
	// cost the same reads.
	stream := decoyStream
	if held {
		stream = user.StreamName(holder)
	}
	u, err := h.Users.Load(ctx, stream)
	if err != nil {
		return attempt, nil, err
	}
	if !held || !u.Registered() {
		s, key := h.strangerTable(), streams[0]
		if wait := s.retryAfter(key, attempt, now, h.Throttle); wait > 0 {
			return attempt, nil, &user.ThrottledError{RetryAfter: wait}
		}
		return attempt, func() { s.failed(key, attempt, now) }, nil
	}
	if attempt, err = h.trust(ctx, u.ID(), attempt, cmd, now); err != nil {
		return attempt, nil, err
	}
	if wait := u.LoginRetryAfterPending(h.failureLog().pending(holder, u.Version()), attempt, now, h.Throttle); wait > 0 {
		return attempt, nil, &user.ThrottledError{RetryAfter: wait}
	}
	return attempt, func() { h.failureLog().record(ctx, holder, attempt, now, h.Throttle, cmd.Meta) }, nil
}

// verify checks the provider's answer against its signed token: the ID
// token (the access token when there is none) must verify, and its subject
// must be the user the API named, so that the id an account is linked by
// comes from a signature, not only from the API's JSON. It returns the
// identity, the address to link by (the token's, else the API's) and the
// display name (the API's, else the token's).
func (x *externalLogin) verify(ctx context.Context, res *external.LoginResult) (user.ExternalIdentity, string, string, error) {
	raw := res.Tokens.IDToken
	if raw == "" {
		raw = res.Tokens.AccessToken
	}
	claims, err := x.Validator.Validate(ctx, raw)
	if err != nil {
		return user.ExternalIdentity{}, "", "", &ProviderUnavailableError{Cause: fmt.Errorf("the provider's token: %w", err)}
	}
	if claims.Subject == "" || claims.Subject != res.User.ID {
		return user.ExternalIdentity{}, "", "", &ProviderUnavailableError{Cause: errors.New("the token's subject is not the user the API named")}
	}
	email := claims.Email
	if email == "" {
		email = res.User.Email
	}
	if email == "" {
		return user.ExternalIdentity{}, "", "", &ProviderUnavailableError{Cause: errors.New("neither the token nor the API names the user's address")}
	}
	name := res.User.Name
	if name == "" {
		name = claims.Name
	}
	return user.ExternalIdentity{Provider: x.ProviderName, ExternalUserID: claims.Subject, ProviderEmail: email}, email, name, nil
}

// linkedUser finds the local user of the provider's identity, linking or
// provisioning it at its first login. The steps are ordered so that a
// retry completes what a crash left: the identity's reservation stream is
// claimed first (NoStream), the user stream written second, and a
// reservation whose user stream is missing or unlinked is completed under
// the held id.
func (h *LoginHandler) linkedUser(ctx context.Context, meta Meta, ident user.ExternalIdentity, email, name string, a user.LoginAttempt, now time.Time) (*user.User, error) {
	stream := user.ExternalIdentityStream(h.ReservationKey, ident.Provider, ident.ExternalUserID)
	// Two rounds at most: a concurrent first login of the same identity
	// may claim the reservation between our read and our append.
	for range 2 {
		r, err := h.external.identities.Load(ctx, stream)
		if err != nil {
			return nil, err
		}
		if holder, held := r.Holder(); held {
			u, err := h.Users.Load(ctx, user.StreamName(holder))
			if err != nil {
				return nil, err
			}
			if !u.Registered() {
				return h.provision(ctx, meta, holder, ident, email, name, now)
			}
			return h.updateLinked(ctx, meta, holder, ident, name, a, now)
		}
		id, err := h.firstLoginUser(ctx, ident, email)
		if err != nil {
			return nil, err
		}
		_, err = h.external.identities.Update(ctx, stream, meta, func(r *user.ExternalIdentityReservation) error {
			return r.Reserve(id.id, now)
		})
		if errors.Is(err, user.ErrExternalIdentityConflict) {
			continue // claimed meanwhile: the holder is the user
		}
		if err != nil {
			return nil, err
		}
		if id.existing {
			return h.updateLinked(ctx, meta, id.id, ident, name, a, now)
		}
		return h.provision(ctx, meta, id.id, ident, email, name, now)
	}
	return nil, fmt.Errorf("%w: %s", ErrConflict, stream)
}

// firstLogin is who a first login of an identity becomes.
type firstLogin struct {
	id       uuid.UUID
	existing bool // a local account, to link; else a user to provision
}

// firstLoginUser finds the local account holding the provider's address
// (through the email reservation streams, never a read model) or chooses
// the id of a user to provision. Without provisioning, an address with no
// account is refused like a wrong password.
func (h *LoginHandler) firstLoginUser(ctx context.Context, ident user.ExternalIdentity, email string) (firstLogin, error) {
	holder, held, err := emailHolder(ctx, h.Reservations, h.ReservationKey, email)
	if err != nil {
		return firstLogin{}, err
	}
	if held {
		u, err := h.Users.Load(ctx, user.StreamName(holder))
		if err != nil {
			return firstLogin{}, err
		}
		if u.Registered() {
			// Refuse before reserving: a reservation for a user who cannot
			// be linked would hold the identity for nothing.
			if cur, ok := u.ExternalIdentity(ident.Provider); ok && cur.ExternalUserID != ident.ExternalUserID {
				return firstLogin{}, user.ErrExternalIdentityConflict
			}
			return firstLogin{id: holder, existing: true}, nil
		}
	}
	if !h.external.Provision {
		return firstLogin{}, fmt.Errorf("%w: no local account has the provider's address and provisioning is off", ErrInvalidCredentials)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return firstLogin{}, fmt.Errorf("commands: user id: %w", err)
	}
	return firstLogin{id: id}, nil
}

// updateLinked links the user (a no-op once linked), takes the provider's
// display name and forgets the source's failed logins, in one append.
func (h *LoginHandler) updateLinked(ctx context.Context, meta Meta, id uuid.UUID, ident user.ExternalIdentity, name string, a user.LoginAttempt, now time.Time) (*user.User, error) {
	var out *user.User
	_, err := h.Users.Update(ctx, user.StreamName(id), meta, func(u *user.User) error {
		if !u.Registered() {
			return user.ErrNotRegistered
		}
		if err := u.LinkExternalIdentity(ident, now); err != nil {
			return err
		}
		if name != "" {
			// A name the domain refuses (control characters, too long)
			// leaves ours as it is rather than fail the login.
			if err := u.ChangeDisplayName(name, now); err != nil && !errors.Is(err, user.ErrInvalidInput) {
				return err
			}
		}
		if err := u.RecordLoginSuccess(a, now); err != nil {
			return err
		}
		out = u
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// provision creates the user id for the identity: the address reserved
// (NoStream, as registration does), then the user stream with the
// registration and the link. The identity's reservation is already held.
func (h *LoginHandler) provision(ctx context.Context, meta Meta, id uuid.UUID, ident user.ExternalIdentity, email, name string, now time.Time) (*user.User, error) {
	normalised, err := user.NormalizeEmail(email)
	if err != nil {
		return nil, &ProviderUnavailableError{Cause: fmt.Errorf("the provider's address: %w", err)}
	}
	_, err = h.Reservations.Update(ctx, user.EmailReservationStream(h.ReservationKey, normalised), meta, func(r *user.EmailReservation) error {
		if holder, held := r.Holder(); held && holder != id {
			return user.ErrEmailTaken // registered locally meanwhile: an operator links the two
		}
		return r.Reserve(id, now)
	})
	if err != nil {
		return nil, err
	}
	u, err := user.RegisterExternal(id, normalised, provisionedName(name, normalised), ident, now)
	if err != nil {
		return nil, err
	}
	if _, err := h.Users.Append(ctx, user.StreamName(id), 0, meta, u.Changes()); err != nil {
		if errors.Is(err, eventstore.ErrWrongExpectedVersion) {
			// A concurrent login completed the same provisioning.
			return h.updateLinked(ctx, meta, id, ident, name, user.LoginAttempt{}, now)
		}
		return nil, err
	}
	return u, nil
}

// provisionedName is the provider's name, or the address's local part when
// the provider has none the domain accepts.
func provisionedName(name, email string) string {
	if n, err := user.NormalizeDisplayName(name); err == nil {
		return n
	}
	local, _, _ := strings.Cut(email, "@")
	if n, err := user.NormalizeDisplayName(local); err == nil {
		return n
	}
	return "user"
}

// storeProviderTokens puts the provider's tokens in the vault and records
// their fingerprints on the session stream. A session without its tokens
// could never be renewed at the provider, so a failure of either step
// fails the login and ends the session it started.
func (h *LoginHandler) storeProviderTokens(ctx context.Context, sid, uid uuid.UUID, t external.Tokens, meta Meta, now time.Time) (eventstore.Position, error) {
	x := h.external
	rec, err := x.Vault.Put(ctx, sid, uid, t)
	if err != nil {
		h.abandonSession(ctx, sid, meta, now)
		return eventstore.Position{}, fmt.Errorf("commands: store the provider's tokens: %w", err)
	}
	res, err := h.Sessions.Update(ctx, session.StreamName(sid), meta, func(s *session.Session) error {
		return s.RecordExternalTokens(session.ExternalTokens{
			AccessFingerprint: rec.AccessFingerprint, IDFingerprint: rec.IDFingerprint,
			RefreshFingerprint: rec.RefreshFingerprint, ExpiresAt: rec.ExpiresAt,
		}, now)
	})
	if err != nil {
		cleanup := context.WithoutCancel(ctx)
		if _, derr := x.Vault.Delete(cleanup, sid); derr != nil {
			x.log.ErrorContext(ctx, "external auth: tokens of a failed login left in the vault", slog.String("session_id", sid.String()), slog.String("error", derr.Error()))
		}
		h.abandonSession(ctx, sid, meta, now)
		return eventstore.Position{}, fmt.Errorf("commands: record the provider's tokens: %w", err)
	}
	return res.Position, nil
}

// abandonSession revokes a session whose login failed after it started.
// Best effort: its tokens were never handed out.
func (h *LoginHandler) abandonSession(ctx context.Context, sid uuid.UUID, meta Meta, now time.Time) {
	_, err := h.Sessions.Update(context.WithoutCancel(ctx), session.StreamName(sid), meta, func(s *session.Session) error {
		return s.Revoke(session.ReasonExternalTokensNotStored, now)
	})
	if err != nil {
		h.external.log.ErrorContext(ctx, "external auth: could not end the session of a failed login", slog.String("session_id", sid.String()), slog.String("error", err.Error()))
	}
}

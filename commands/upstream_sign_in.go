package commands

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/upstream"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/signin"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

var (
	// ErrUpstreamRefused: the provider's account may not sign in here
	// (no account and no provisioning, an unverified address, a domain,
	// tenant or organisation not admitted). One answer for all, so that
	// it does not tell whether an account has the address.
	ErrUpstreamRefused = errors.New("commands: the upstream sign-in is refused")
	// ErrUpstreamFlowInvalid: the state or the one-time code is unknown,
	// expired, already used, or not this browser's.
	ErrUpstreamFlowInvalid = errors.New("commands: the sign-in flow is invalid, expired or used")
	// ErrUpstreamFailed: the provider's answer did not check out (a
	// refused code or verifier, a token that does not verify), or the
	// provider reported an error or a denied consent.
	ErrUpstreamFailed = errors.New("commands: the upstream provider's answer does not check out")
	// ErrPasswordRequired: the one-time code links an account that has a
	// password; the exchange must present it.
	ErrPasswordRequired = errors.New("commands: the account's password is required to link it")
)

// Lifetimes of the flow (state, nonce, PKCE) and of the one-time code.
const (
	UpstreamFlowTTL = 10 * time.Minute
	UpstreamCodeTTL = time.Minute
)

// UpstreamSignInHandler runs sign-in with upstream providers (issue 19)
// on the login command's parts: the same users, reservation streams,
// external-identity reservation streams (linking as the external login
// does), provisioning, throttle and session start, so a session is
// exactly a password login's but for its method and amr.
type UpstreamSignInHandler struct {
	Login      *LoginHandler
	Identities *Repository[*user.ExternalIdentityReservation]
	Flows      *Repository[*signin.Flow]
	Codes      *Repository[*signin.Code]
	// Provision creates a user at the first sign-in of a verified address
	// no account holds (AUTHLEDGER_OIDC_PROVISION).
	Provision bool
	Now       func() time.Time
}

func (h *UpstreamSignInHandler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// randomToken is 32 random bytes, base64url.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// StartFlow records a new flow to provider and returns its state.
// linkUser is the caller of a link request, nil for a sign-in.
func (h *UpstreamSignInHandler) StartFlow(ctx context.Context, provider, redirectURI string, linkUser *uuid.UUID, meta Meta) (string, error) {
	state, err := randomToken()
	if err != nil {
		return "", err
	}
	f := signin.StartFlow(provider, redirectURI, linkUser, h.now(), UpstreamFlowTTL)
	if _, err := h.Flows.Append(ctx, signin.FlowStream(state), 0, meta, f.Changes()); err != nil {
		return "", err
	}
	return state, nil
}

// CompleteFlow uses the flow of state (once): before the provider is
// asked anything, so a replayed callback never reaches it.
func (h *UpstreamSignInHandler) CompleteFlow(ctx context.Context, provider, state string, meta Meta) (signin.FlowStarted, error) {
	var started signin.FlowStarted
	_, err := h.Flows.Update(ctx, signin.FlowStream(state), meta, func(f *signin.Flow) error {
		var err error
		started, err = f.Complete(provider, "callback", h.now())
		return err
	})
	if errors.Is(err, signin.ErrUsed) || errors.Is(err, signin.ErrExpired) {
		return signin.FlowStarted{}, fmt.Errorf("%w: %w", ErrUpstreamFlowInvalid, err)
	}
	return started, err
}

// Refuse records a refusal of the identity (on its reservation stream)
// and returns ErrUpstreamRefused. target is the account aimed at.
func (h *UpstreamSignInHandler) Refuse(ctx context.Context, id upstream.Identity, target *uuid.UUID, reason string, meta Meta) error {
	stream := user.ExternalIdentityStream(h.Login.ReservationKey, id.Provider, id.Subject)
	if _, err := h.Identities.Update(ctx, stream, meta, func(r *user.ExternalIdentityReservation) error {
		r.Refuse(id.Provider, id.Subject, target, reason, h.now())
		return nil
	}); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s", ErrUpstreamRefused, reason)
}

// UpstreamOutcome is what a callback resolved to: a one-time code for the
// SPA (Kind sign_in, or link when the account's password must be shown
// first), or, for a link flow, the account now linked.
type UpstreamOutcome struct {
	Code     string
	Kind     string
	UserID   uuid.UUID
	Position eventstore.Position
}

// Resolve decides whom the verified identity signs in, linking or
// provisioning at its first sign-in, with anti-takeover: an account is
// linked by its address only when the provider says the address is
// verified, and an account with a password only once the password is
// shown (a link code) or from the account's own session (a link flow).
func (h *UpstreamSignInHandler) Resolve(ctx context.Context, flow signin.FlowStarted, id upstream.Identity, meta Meta) (UpstreamOutcome, error) {
	if flow.LinkUserID != nil {
		return h.linkFromSession(ctx, *flow.LinkUserID, id, meta)
	}
	l := h.Login
	now := h.now()
	ident := user.ExternalIdentity{Provider: id.Provider, ExternalUserID: id.Subject, ProviderEmail: id.Email}
	stream := user.ExternalIdentityStream(l.ReservationKey, id.Provider, id.Subject)
	r, err := h.Identities.Load(ctx, stream)
	if err != nil {
		return UpstreamOutcome{}, err
	}
	if holder, held := r.Holder(); held {
		u, err := l.Users.Load(ctx, user.StreamName(holder))
		if err != nil {
			return UpstreamOutcome{}, err
		}
		if !u.Registered() {
			// A provisioning that crashed: complete it under the held id.
			if _, err := l.provision(ctx, meta, holder, ident, id.Email, id.Name, now); err != nil {
				return UpstreamOutcome{}, err
			}
		}
		return h.signInCode(ctx, holder, ident, meta)
	}
	holder, held, err := emailHolder(ctx, l.Reservations, l.ReservationKey, id.Email)
	if err != nil {
		return UpstreamOutcome{}, err
	}
	var account *user.User
	if held {
		if account, err = l.Users.Load(ctx, user.StreamName(holder)); err != nil {
			return UpstreamOutcome{}, err
		}
		if !account.Registered() {
			account = nil
		}
	}
	if !id.EmailVerified {
		// Never link, nor reserve an address, on the provider's unverified
		// word: that is the takeover this rule stops.
		var target *uuid.UUID
		if account != nil {
			target = &holder
		}
		return UpstreamOutcome{}, h.Refuse(ctx, id, target, user.RefusedEmailUnverified, meta)
	}
	if account == nil {
		if !h.Provision {
			return UpstreamOutcome{}, h.Refuse(ctx, id, nil, user.RefusedNoAccount, meta)
		}
		uid, err := uuid.NewV7()
		if err != nil {
			return UpstreamOutcome{}, err
		}
		if err := h.reserve(ctx, stream, uid, meta); err != nil {
			return UpstreamOutcome{}, err
		}
		if _, err := l.provision(ctx, meta, uid, ident, id.Email, id.Name, now); err != nil {
			return UpstreamOutcome{}, err
		}
		return h.signInCode(ctx, uid, ident, meta)
	}
	if cur, ok := account.ExternalIdentity(id.Provider); ok && cur.ExternalUserID != id.Subject {
		_ = h.Refuse(ctx, id, &holder, user.RefusedIdentityConflict, meta)
		return UpstreamOutcome{}, user.ErrExternalIdentityConflict
	}
	if account.HasPassword() && !l.LocalPasswordsOff {
		return h.issue(ctx, signin.CodeIssued{Kind: signin.KindLink, UserID: holder, Provider: id.Provider,
			ExternalUserID: id.Subject, ProviderEmail: id.Email, DisplayName: id.Name}, meta)
	}
	if err := h.link(ctx, stream, holder, ident, meta); err != nil {
		return UpstreamOutcome{}, err
	}
	return h.signInCode(ctx, holder, ident, meta)
}

// linkFromSession links the identity to the signed-in caller who started
// the flow: both sides are proven (our session, the provider's sign-in),
// so neither the address nor its verification matters.
func (h *UpstreamSignInHandler) linkFromSession(ctx context.Context, uid uuid.UUID, id upstream.Identity, meta Meta) (UpstreamOutcome, error) {
	stream := user.ExternalIdentityStream(h.Login.ReservationKey, id.Provider, id.Subject)
	u, err := h.Login.Users.Load(ctx, user.StreamName(uid))
	if err != nil {
		return UpstreamOutcome{}, err
	}
	if !u.Registered() {
		return UpstreamOutcome{}, ErrUpstreamFlowInvalid
	}
	if cur, ok := u.ExternalIdentity(id.Provider); ok && cur.ExternalUserID != id.Subject {
		_ = h.Refuse(ctx, id, &uid, user.RefusedIdentityConflict, meta)
		return UpstreamOutcome{}, user.ErrExternalIdentityConflict
	}
	ident := user.ExternalIdentity{Provider: id.Provider, ExternalUserID: id.Subject, ProviderEmail: id.Email}
	if err := h.link(ctx, stream, uid, ident, meta); err != nil {
		if errors.Is(err, user.ErrExternalIdentityConflict) {
			_ = h.Refuse(ctx, id, &uid, user.RefusedIdentityConflict, meta)
		}
		return UpstreamOutcome{}, err
	}
	return UpstreamOutcome{Kind: "linked", UserID: uid}, nil
}

// reserve claims the identity for uid (NoStream semantics through the
// aggregate: held by another is ErrExternalIdentityConflict).
func (h *UpstreamSignInHandler) reserve(ctx context.Context, stream string, uid uuid.UUID, meta Meta) error {
	_, err := h.Identities.Update(ctx, stream, meta, func(r *user.ExternalIdentityReservation) error {
		return r.Reserve(uid, h.now())
	})
	return err
}

// link claims the identity, then links it on the user stream: the order
// the external login uses, so a retry completes a crash.
func (h *UpstreamSignInHandler) link(ctx context.Context, stream string, uid uuid.UUID, ident user.ExternalIdentity, meta Meta) error {
	if err := h.reserve(ctx, stream, uid, meta); err != nil {
		return err
	}
	_, err := h.Login.Users.Update(ctx, user.StreamName(uid), meta, func(u *user.User) error {
		return u.LinkExternalIdentity(ident, h.now())
	})
	return err
}

// signInCode records the sign-in on the user stream (linking the held
// identity if a crash left it unlinked) and issues its code.
func (h *UpstreamSignInHandler) signInCode(ctx context.Context, uid uuid.UUID, ident user.ExternalIdentity, meta Meta) (UpstreamOutcome, error) {
	now := h.now()
	var name string
	_, err := h.Login.Users.Update(ctx, user.StreamName(uid), meta, func(u *user.User) error {
		if err := u.LinkExternalIdentity(ident, now); err != nil {
			return err
		}
		name = u.DisplayName()
		return u.RecordExternalSignIn(ident, now)
	})
	if err != nil {
		return UpstreamOutcome{}, err
	}
	return h.issue(ctx, signin.CodeIssued{Kind: signin.KindSignIn, UserID: uid, Provider: ident.Provider,
		ExternalUserID: ident.ExternalUserID, ProviderEmail: ident.ProviderEmail, DisplayName: name}, meta)
}

func (h *UpstreamSignInHandler) issue(ctx context.Context, e signin.CodeIssued, meta Meta) (UpstreamOutcome, error) {
	code, err := randomToken()
	if err != nil {
		return UpstreamOutcome{}, err
	}
	c := signin.IssueCode(e, h.now(), UpstreamCodeTTL)
	res, err := h.Codes.Append(ctx, signin.CodeStream(code), 0, meta, c.Changes())
	if err != nil {
		return UpstreamOutcome{}, err
	}
	return UpstreamOutcome{Code: code, Kind: e.Kind, UserID: e.UserID, Position: res.Position}, nil
}

// Exchange redeems a one-time code for a session (POST
// /v1/auth/oidc/exchange). A link code needs the account's password,
// checked under the login throttle as a password login is; a wrong one
// leaves the code usable until it expires.
func (h *UpstreamSignInHandler) Exchange(ctx context.Context, code, password string, meta Meta) (LoginResult, error) {
	l := h.Login
	now := h.now()
	c, err := h.Codes.Load(ctx, signin.CodeStream(code))
	if err != nil {
		return LoginResult{}, err
	}
	issued, ok := c.Issued()
	if !ok || !now.Before(issued.ExpiresAt) {
		return LoginResult{}, fmt.Errorf("%w: %w", ErrUpstreamFlowInvalid, signin.ErrExpired)
	}
	ident := user.ExternalIdentity{Provider: issued.Provider, ExternalUserID: issued.ExternalUserID, ProviderEmail: issued.ProviderEmail}
	if issued.Kind == signin.KindLink {
		if password == "" {
			return LoginResult{}, ErrPasswordRequired
		}
		if err := h.checkPassword(ctx, issued.UserID, password, meta, now); err != nil {
			return LoginResult{}, err
		}
	}
	if _, err := h.Codes.Update(ctx, signin.CodeStream(code), meta, func(c *signin.Code) error {
		_, err := c.Redeem(now)
		return err
	}); err != nil {
		if errors.Is(err, signin.ErrUsed) || errors.Is(err, signin.ErrExpired) {
			return LoginResult{}, fmt.Errorf("%w: %w", ErrUpstreamFlowInvalid, err)
		}
		return LoginResult{}, err
	}
	if issued.Kind == signin.KindLink {
		stream := user.ExternalIdentityStream(l.ReservationKey, ident.Provider, ident.ExternalUserID)
		if err := h.reserve(ctx, stream, issued.UserID, meta); err != nil {
			return LoginResult{}, err
		}
		if _, err := h.signInCode(ctx, issued.UserID, ident, meta); err != nil {
			return LoginResult{}, err
		}
	}
	u, err := l.Users.Load(ctx, user.StreamName(issued.UserID))
	if err != nil {
		return LoginResult{}, err
	}
	if !u.Registered() {
		return LoginResult{}, ErrUpstreamFlowInvalid
	}
	return l.startSessionAMR(ctx, u, meta, now, session.MethodUpstream, []string{issued.Provider})
}

// checkPassword checks the account's local password as the local login
// does: throttled first, a failure recorded off the response path.
func (h *UpstreamSignInHandler) checkPassword(ctx context.Context, uid uuid.UUID, password string, meta Meta, now time.Time) error {
	l := h.Login
	u, err := l.Users.Load(ctx, user.StreamName(uid))
	if err != nil {
		return err
	}
	attempt := user.LoginAttempt{Source: user.Source(meta.ClientIP), Method: session.MethodPassword}
	if wait := u.LoginRetryAfterPending(l.failureLog().pending(u.ID(), u.Version()), attempt, now, l.Throttle); wait > 0 {
		return &user.ThrottledError{RetryAfter: wait}
	}
	ok, err := l.Hasher.Verify(ctx, password, u.PasswordHash())
	if err != nil {
		return fmt.Errorf("commands: verify password: %w", err)
	}
	if !ok {
		l.failureLog().record(ctx, u.ID(), attempt, now, l.Throttle, meta)
		return ErrInvalidCredentials
	}
	return nil
}

// UnlinkExternalIdentity removes the caller's identity at a provider
// (DELETE /v1/me/identities/{provider}): the identity's reservation is
// released first, then the user stream unlinked, so a retry (the user
// still shows the link) completes a crash between them. Refused with
// user.ErrLastSignInMethod when nothing else would sign the user in.
func (h *UpstreamSignInHandler) UnlinkExternalIdentity(ctx context.Context, uid uuid.UUID, provider string, meta Meta) (eventstore.Position, error) {
	l := h.Login
	now := h.now()
	u, err := l.Users.Load(ctx, user.StreamName(uid))
	if err != nil {
		return eventstore.Position{}, err
	}
	x, err := u.UnlinkExternalIdentity(provider, !l.LocalPasswordsOff, now)
	if err != nil {
		return eventstore.Position{}, err
	}
	stream := user.ExternalIdentityStream(l.ReservationKey, provider, x.ExternalUserID)
	if _, err := h.Identities.Update(ctx, stream, meta, func(r *user.ExternalIdentityReservation) error {
		return r.Release(uid, now)
	}); err != nil {
		return eventstore.Position{}, err
	}
	res, err := l.Users.Update(ctx, user.StreamName(uid), meta, func(u *user.User) error {
		_, err := u.UnlinkExternalIdentity(provider, !l.LocalPasswordsOff, now)
		return err
	})
	return res.Position, err
}

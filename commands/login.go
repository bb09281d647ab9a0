package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/password"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// ErrInvalidCredentials is the one answer to an unknown email, a wrong
// password and a locked account, so that none of them tells whether an
// account exists.
var ErrInvalidCredentials = errors.New("commands: invalid credentials")

// Login asks for a session with an email and a password.
type Login struct {
	Email    string
	Password string
	Meta     Meta
}

// LoginResult carries the tokens and who they are for. RefreshToken is the
// only copy of the secret: the log holds its digest.
type LoginResult struct {
	User         Account
	SessionID    uuid.UUID
	AccessToken  string
	Claims       token.Claims
	RefreshToken string
	Position     eventstore.Position
}

// Account is who a pair of tokens is for, as the token response shows it.
type Account struct {
	ID          uuid.UUID
	Email       string
	DisplayName string
}

// accountClaims are the user's claims a new session carries.
func accountClaims(u *user.User) *session.Claims {
	return &session.Claims{Email: u.Email(), Name: u.DisplayName(), Roles: u.Roles()}
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

// LoginHandler finds the user through the reservation stream (never a read
// model), checks the lockout and the password, records a failure on the
// user stream, and on success appends only to the new session stream.
type LoginHandler struct {
	Reservations   *Repository[*user.EmailReservation]
	Users          *Repository[*user.User]
	Sessions       *Repository[*session.Session]
	Hasher         *password.Hasher
	Issuer         *token.Issuer
	Lockout        user.LockoutPolicy
	SessionPolicy  session.Policy
	ReservationKey []byte
	Now            func() time.Time
}

// Handle logs in. Every refusal is ErrInvalidCredentials and spends one
// hash, whether the address is unknown, the account locked or the password
// wrong.
func (h *LoginHandler) Handle(ctx context.Context, cmd Login) (LoginResult, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	holder, held, err := emailHolder(ctx, h.Reservations, h.ReservationKey, cmd.Email)
	if err != nil {
		return LoginResult{}, err
	}
	if !held {
		_ = h.Hasher.DummyVerify(ctx, cmd.Password)
		return LoginResult{}, ErrInvalidCredentials
	}
	u, err := h.Users.Load(ctx, user.StreamName(holder))
	if err != nil {
		return LoginResult{}, err
	}
	if !u.Registered() {
		_ = h.Hasher.DummyVerify(ctx, cmd.Password)
		return LoginResult{}, ErrInvalidCredentials
	}
	if err := u.CheckCanLogin(now); err != nil {
		_ = h.Hasher.DummyVerify(ctx, cmd.Password)
		return LoginResult{}, ErrInvalidCredentials
	}
	ok, err := h.Hasher.Verify(ctx, cmd.Password, u.PasswordHash())
	if err != nil {
		return LoginResult{}, fmt.Errorf("commands: verify password: %w", err)
	}
	if !ok {
		if _, err := h.Users.Update(ctx, user.StreamName(holder), cmd.Meta, func(u *user.User) error {
			return u.RecordLoginFailure(now, h.Lockout)
		}); err != nil && !errors.Is(err, user.ErrLocked) {
			return LoginResult{}, err
		}
		return LoginResult{}, ErrInvalidCredentials
	}
	if h.Hasher.NeedsRehash(u.PasswordHash()) {
		// Best effort: a failed rehash must not fail the login.
		if hash, err := h.Hasher.Hash(ctx, cmd.Password); err == nil {
			_, _ = h.Users.Update(ctx, user.StreamName(holder), cmd.Meta, func(u *user.User) error {
				return u.Rehash(hash, now)
			})
		}
	}
	sid, err := uuid.NewV7()
	if err != nil {
		return LoginResult{}, fmt.Errorf("commands: session id: %w", err)
	}
	rt, err := token.NewRefreshToken(sid)
	if err != nil {
		return LoginResult{}, err
	}
	amr := []string{"pwd"}
	claims := accountClaims(u)
	s, err := session.Start(session.StartParams{
		SessionID: sid, UserID: u.ID(), Method: session.MethodPassword, AMR: amr,
		IP: cmd.Meta.ClientIP, UserAgent: cmd.Meta.UserAgent, RefreshDigest: session.Digest(rt.Digest()),
		Claims: claims,
	}, now, h.SessionPolicy)
	if err != nil {
		return LoginResult{}, err
	}
	signed := signAsync(h.Issuer, token.Subject{UserID: u.ID(), SessionID: sid, Name: claims.Name, AMR: amr, Roles: claims.Roles}, now)
	ar, err := h.Sessions.Append(ctx, session.StreamName(sid), 0, cmd.Meta, s.Changes())
	if err != nil {
		return LoginResult{}, err
	}
	i := <-signed
	if i.err != nil {
		return LoginResult{}, i.err
	}
	return LoginResult{User: Account{ID: u.ID(), Email: claims.Email, DisplayName: claims.Name}, SessionID: sid,
		AccessToken: i.access, Claims: i.claims, RefreshToken: rt.Encode(), Position: ar.Position}, nil
}

package commands_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
)

// identityHandlers are login, refresh and the claims sync over one store;
// all but registration read through a store that may wrap it.
type identityHandlers struct {
	reg      *commands.RegisterHandler
	login    *commands.LoginHandler
	refresh  *commands.RefreshHandler
	sync     *commands.SyncSessionClaimsHandler
	users    *commands.Repository[*user.User]
	sessions *commands.Repository[*session.Session]
}

func newIdentityHandlers(t *testing.T, wrap func(eventstore.Store) eventstore.Store) identityHandlers {
	t.Helper()
	reg, _ := newRegister(t)
	r := events.NewRegistry()
	if err := errors.Join(user.RegisterEvents(r), session.RegisterEvents(r)); err != nil {
		t.Fatal(err)
	}
	store := reg.Users.Store()
	if wrap != nil {
		store = wrap(store)
	}
	users, err := commands.NewRepository(store, r, user.FromHistory)
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := commands.NewRepository(store, r, session.FromHistory)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	k, err := keys.Generate(keys.DefaultAlgorithm)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keys.NewKeyRing(keys.Entry{Key: k, Lifecycle: keys.Lifecycle{AddedAt: now.Add(-time.Hour), ActivatedAt: now.Add(-time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := token.NewIssuer(token.DefaultConfig("https://id.example.test"), ring)
	if err != nil {
		t.Fatal(err)
	}
	throttle := user.DefaultThrottlePolicy()
	// Waits long enough that no test outruns them, however slow the machine.
	throttle.Delay, throttle.MaxDelay = time.Hour, time.Hour
	return identityHandlers{
		reg: reg,
		login: &commands.LoginHandler{Reservations: reg.Reservations, Users: users, Sessions: sessions, Hasher: reg.Hasher, Issuer: issuer,
			Throttle: throttle, KnownDeviceTTL: time.Hour, SessionPolicy: session.DefaultPolicy(), ReservationKey: reg.ReservationKey},
		refresh:  &commands.RefreshHandler{Sessions: sessions, Users: users, Issuer: issuer, SessionPolicy: session.DefaultPolicy()},
		sync:     &commands.SyncSessionClaimsHandler{Users: users, Sessions: sessions},
		users:    users,
		sessions: sessions,
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	ih := newIdentityHandlers(t, nil)
	ctx := context.Background()
	if _, err := ih.reg.Handle(ctx, commands.Register{Email: "carol@example.com", Password: "correct horse battery", DisplayName: "Carol"}); err != nil {
		t.Fatal(err)
	}
	h, rh, sessions, throttle := ih.login, ih.refresh, ih.sessions, ih.login.Throttle
	r, err := h.Handle(ctx, commands.Login{Email: "CAROL@example.com", Password: "correct horse battery"})
	if err != nil || r.AccessToken == "" || r.RefreshToken == "" || r.Position.IsZero() {
		t.Fatalf("login: %+v %v", r, err)
	}
	r2, err := rh.Handle(ctx, commands.Refresh{RefreshToken: r.RefreshToken})
	if err != nil || r2.RefreshToken == r.RefreshToken {
		t.Fatalf("refresh: %v", err)
	}
	if _, err := rh.Handle(ctx, commands.Refresh{RefreshToken: r.RefreshToken}); !errors.Is(err, commands.ErrInvalidToken) {
		t.Fatalf("reuse: %v", err)
	}
	if _, err := rh.Handle(ctx, commands.Refresh{RefreshToken: r2.RefreshToken}); !errors.Is(err, commands.ErrInvalidToken) {
		t.Fatalf("newer token after reuse: %v", err)
	}
	r3, err := h.Handle(ctx, commands.Login{Email: "carol@example.com", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	revoke := &commands.RevokeSessionHandler{Sessions: sessions}
	if _, err := revoke.Handle(ctx, commands.RevokeSession{SessionID: r3.SessionID, UserID: r.User.ID /* same user */, Reason: session.ReasonLogout}); err != nil {
		t.Fatal(err)
	}
	if _, err := revoke.Handle(ctx, commands.RevokeSession{SessionID: r3.SessionID, UserID: r.SessionID, Reason: session.ReasonDeleted}); !errors.Is(err, commands.ErrSessionNotFound) {
		t.Fatalf("other user's session: %v", err)
	}
	if _, err := rh.Handle(ctx, commands.Refresh{RefreshToken: r3.RefreshToken}); !errors.Is(err, commands.ErrInvalidToken) {
		t.Fatalf("refresh after logout: %v", err)
	}
	if _, err := h.Handle(ctx, commands.Login{Email: "nobody@example.com", Password: "x"}); !errors.Is(err, commands.ErrInvalidCredentials) {
		t.Fatalf("unknown email: %v", err)
	}
	for range throttle.MaxFailures {
		if _, err := h.Handle(ctx, commands.Login{Email: "carol@example.com", Password: "wrong password!"}); !errors.Is(err, commands.ErrInvalidCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	if _, err := h.Handle(ctx, commands.Login{Email: "carol@example.com", Password: "correct horse battery"}); !errors.Is(err, user.ErrThrottled) {
		t.Fatalf("throttled: %v", err)
	}
	// A known device is held to its own count only: it gets in.
	if r, err := h.Handle(ctx, commands.Login{Email: "carol@example.com", Password: "correct horse battery", DeviceToken: r.DeviceToken}); err != nil || r.DeviceToken == "" {
		t.Fatalf("known device: %v", err)
	}
}

// trustAll is a second factor that accepts one code.
type trustAll struct{ code string }

func (f trustAll) Verify(_ context.Context, _ uuid.UUID, code string) (bool, error) {
	return code == f.code, nil
}

// The seam for multi-factor login: a verified second factor trusts the
// attempt like a known device, a wrong one does not.
func TestLoginSecondFactorSeam(t *testing.T) {
	t.Parallel()
	ih := newIdentityHandlers(t, nil)
	ctx := context.Background()
	if _, err := ih.reg.Handle(ctx, commands.Register{Email: "mfa@example.com", Password: "correct horse battery", DisplayName: "M"}); err != nil {
		t.Fatal(err)
	}
	h := ih.login
	h.SecondFactor = trustAll{code: "123456"}
	h.Throttle.AccountMaxFailures = h.Throttle.MaxFailures
	for i := range h.Throttle.MaxFailures {
		// Each from its own address: only the account's count is reached.
		meta := commands.AnonymousMeta("r", fmt.Sprintf("198.51.100.%d", i+1), "")
		if _, err := h.Handle(ctx, commands.Login{Email: "mfa@example.com", Password: "wrong password!", Meta: meta}); !errors.Is(err, commands.ErrInvalidCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	meta := commands.AnonymousMeta("r", "203.0.113.1", "")
	if _, err := h.Handle(ctx, commands.Login{Email: "mfa@example.com", Password: "correct horse battery", SecondFactor: "000000", Meta: meta}); !errors.Is(err, user.ErrThrottled) {
		t.Fatalf("a wrong second factor: %v", err)
	}
	if _, err := h.Handle(ctx, commands.Login{Email: "mfa@example.com", Password: "correct horse battery", SecondFactor: "123456", Meta: meta}); err != nil {
		t.Fatalf("a verified second factor: %v", err)
	}
}

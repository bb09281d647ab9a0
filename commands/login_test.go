package commands_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
)

func TestLogin(t *testing.T) {
	t.Parallel()
	reg, users := newRegister(t)
	ctx := context.Background()
	if _, err := reg.Handle(ctx, commands.Register{Email: "carol@example.com", Password: "correct horse battery", DisplayName: "Carol"}); err != nil {
		t.Fatal(err)
	}
	sreg := events.NewRegistry()
	if err := session.RegisterEvents(sreg); err != nil {
		t.Fatal(err)
	}
	sessions, err := commands.NewRepository(reg.Users.Store(), sreg, session.FromHistory)
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
	lockout := user.DefaultLockoutPolicy()
	h := &commands.LoginHandler{Reservations: reg.Reservations, Users: users, Sessions: sessions, Hasher: reg.Hasher, Issuer: issuer,
		Lockout: lockout, SessionPolicy: session.DefaultPolicy(), ReservationKey: reg.ReservationKey}

	r, err := h.Handle(ctx, commands.Login{Email: "CAROL@example.com", Password: "correct horse battery"})
	if err != nil || r.AccessToken == "" || r.RefreshToken == "" || r.Position.IsZero() {
		t.Fatalf("login: %+v %v", r, err)
	}
	if _, err := h.Handle(ctx, commands.Login{Email: "nobody@example.com", Password: "x"}); !errors.Is(err, commands.ErrInvalidCredentials) {
		t.Fatalf("unknown email: %v", err)
	}
	for range lockout.MaxFailures {
		if _, err := h.Handle(ctx, commands.Login{Email: "carol@example.com", Password: "wrong password!"}); !errors.Is(err, commands.ErrInvalidCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	if _, err := h.Handle(ctx, commands.Login{Email: "carol@example.com", Password: "correct horse battery"}); !errors.Is(err, commands.ErrInvalidCredentials) {
		t.Fatalf("locked: %v", err)
	}
}

package commands_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/password"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
)

func newRegister(t *testing.T) (*commands.RegisterHandler, *commands.Repository[*user.User]) {
	t.Helper()
	users, store := newRepo(t)
	reg := events.NewRegistry()
	if err := user.RegisterEvents(reg); err != nil {
		t.Fatal(err)
	}
	res, err := commands.NewRepository(store, reg, user.ReservationFromHistory)
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := password.NewHasher(password.Config{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32})
	if err != nil {
		t.Fatal(err)
	}
	return &commands.RegisterHandler{Reservations: res, Users: users, Hasher: hasher, Policy: password.DefaultPolicy(), ReservationKey: []byte("0123456789abcdef0123456789abcdef")}, users
}

func TestRegister(t *testing.T) {
	t.Parallel()
	h, users := newRegister(t)
	ctx := context.Background()
	r, err := h.Handle(ctx, commands.Register{Email: "Alice@Example.com", Password: "correct horse battery", DisplayName: "Alice"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Position.IsZero() || r.UserID == uuid.Nil {
		t.Fatalf("result %+v", r)
	}
	if _, err := h.Handle(ctx, commands.Register{Email: "alice@EXAMPLE.com", Password: "correct horse battery", DisplayName: "Alice 2"}); !errors.Is(err, user.ErrEmailTaken) {
		t.Fatalf("duplicate in another case: %v", err)
	}
	_, err = h.Handle(ctx, commands.Register{Email: "not-an-email", Password: "short", DisplayName: ""})
	if !errors.Is(err, user.ErrInvalidInput) || !errors.Is(err, password.ErrPolicy) || len(user.FieldErrors(err)) != 2 {
		t.Fatalf("invalid input: %v", err)
	}

	// A registration that crashed after its reservation is completed by a retry.
	crashed := uuid.New()
	resStream := user.EmailReservationStream(h.ReservationKey, "bob@example.com")
	if _, err := h.Reservations.Update(ctx, resStream, commands.Meta{}, func(r *user.EmailReservation) error { return r.Reserve(crashed, time.Now()) }); err != nil {
		t.Fatal(err)
	}
	r, err = h.Handle(ctx, commands.Register{Email: "bob@example.com", Password: "correct horse battery", DisplayName: "Bob"})
	if err != nil || r.UserID != crashed {
		t.Fatalf("completion: %v %v", r.UserID, err)
	}
	u, err := users.Load(ctx, user.StreamName(crashed))
	if err != nil || !u.Registered() || u.Email() != "bob@example.com" {
		t.Fatalf("user %+v %v", u, err)
	}
}

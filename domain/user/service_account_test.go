package user_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
)

func TestRegisterServiceAccount(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	u, err := user.RegisterServiceAccount(uuid.New(), " OCR worker ", []string{"worker", "admin", "worker"}, now)
	if err != nil {
		t.Fatal(err)
	}
	again, err := user.FromHistory(u.Changes())
	if err != nil {
		t.Fatal(err)
	}
	if !again.ServiceAccount() || again.DisplayName() != "OCR worker" || again.Email() != "" || again.PasswordHash() != "" ||
		len(again.Roles()) != 2 || again.Roles()[0] != "admin" {
		t.Fatalf("service account %+v", again)
	}
	// Grants work on it as on anyone's.
	if err := again.GrantRole("auditor", now); err != nil || !again.HasRole("auditor") {
		t.Fatalf("grant: %v", err)
	}

	_, err = user.RegisterServiceAccount(uuid.New(), "", []string{"Bad Role"}, now)
	if fe := user.FieldErrors(err); len(fe) != 2 || fe[0].Field != "name" || fe[1].Field != "roles" {
		t.Fatalf("no name and a bad role: %v", fe)
	}
	if _, err := user.RegisterServiceAccount(uuid.New(), "x", nil, now); len(user.FieldErrors(err)) != 1 {
		t.Fatalf("no role: %v", err)
	}
	// A person's account is not one.
	p, _ := user.Register(uuid.New(), "a@example.com", "A", "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA", now)
	if p.ServiceAccount() {
		t.Fatal("a person's account is a service account")
	}
}

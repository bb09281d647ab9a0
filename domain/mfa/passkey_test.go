package mfa_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/mfa"
)

func passkeyAdded(id uuid.UUID, cred string, count uint32) mfa.PasskeyAdded {
	return mfa.PasskeyAdded{UserID: userID, MethodID: id, Name: "Laptop", CredentialID: []byte(cred), PublicKey: []byte("pk"),
		SignCount: count, AddedAt: t0}
}

// A passkey is a confirmed factor listed under its kind; the same
// credential is not added twice.
func TestAPasskeyIsAConfirmedFactor(t *testing.T) {
	t.Parallel()
	f := given(t)
	id := uuid.New()
	if err := f.AddPasskey(userID, "Laptop", mfa.Passkey{MethodID: id, CredentialID: []byte("c1"), PublicKey: []byte("pk")}, t0); err != nil {
		t.Fatal(err)
	}
	if !f.Enabled() || len(f.ConfirmedKinds()) != 1 || f.ConfirmedKinds()[0] != mfa.KindWebAuthn || f.Methods()[0].Name != "Laptop" {
		t.Fatalf("kinds %v, methods %+v", f.ConfirmedKinds(), f.Methods())
	}
	if err := f.AddPasskey(userID, "Again", mfa.Passkey{MethodID: uuid.New(), CredentialID: []byte("c1")}, t0); !errors.Is(err, mfa.ErrAlreadyEnrolled) {
		t.Fatalf("same credential twice: %v", err)
	}
}

// The signature counter must move forward (WebAuthn §7.2 step 21), except
// for an authenticator that keeps none (0 forever); the challenge and
// the counter are spent in the one event.
func TestThePasskeyCounterRefusesAClone(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		stored, given uint32
		ok            bool
	}{
		{"forward", 5, 6, true},
		{"same", 5, 5, false},
		{"back", 5, 2, false},
		{"no counter", 0, 0, true},
		{"counter starts", 0, 1, true},
		{"counter drops to none", 5, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			key, ch := uuid.New(), uuid.New()
			f := given(t, passkeyAdded(key, "c", c.stored), challenge(ch, mfa.PurposeLogin))
			open, err := f.OpenChallenge(ch, "d-"+ch.String(), t0)
			if err != nil {
				t.Fatal(err)
			}
			err = f.CompleteWithPasskey(open, key, c.given, t0)
			if c.ok != (err == nil) || (!c.ok && !errors.Is(err, mfa.ErrSignCountRegressed)) {
				t.Fatalf("second factor: %v", err)
			}
			g := given(t, passkeyAdded(key, "c", c.stored))
			if err := g.SignInWithPasskey(key, c.given, t0); c.ok != (err == nil) {
				t.Fatalf("passwordless: %v", err)
			}
			if c.ok {
				if p, _ := f.PasskeyByCredential([]byte("c")); p.SignCount != c.given {
					t.Fatalf("stored counter %d", p.SignCount)
				}
				if _, err := f.OpenChallenge(ch, "d-"+ch.String(), t0); !errors.Is(err, mfa.ErrInvalidChallenge) {
					t.Fatalf("the challenge is still open: %v", err)
				}
			}
		})
	}
}

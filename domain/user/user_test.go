package user_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
)

const hash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"

var (
	t0     = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	userID = uuid.MustParse("0b8f7f0e-7c55-4b5e-9f59-8f6f3f2a9a10")
	policy = user.DefaultThrottlePolicy()
)

// given folds history into a user, as a repository would after a load.
func given(t *testing.T, history ...events.Event) *user.User {
	t.Helper()
	u, err := user.FromHistory(history)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func registered() user.Registered {
	return user.Registered{UserID: userID, Email: "alice@example.com", DisplayName: "Alice", PasswordHash: hash, Roles: []string{"user"}, RegisteredAt: t0}
}

func registeredUser(t *testing.T, more ...events.Event) *user.User {
	t.Helper()
	return given(t, append([]events.Event{registered()}, more...)...)
}

func thenEvents(t *testing.T, u *user.User, want ...events.Event) {
	t.Helper()
	got := u.Changes()
	if len(want) == 0 && len(got) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events:\n got %#v\nwant %#v", got, want)
	}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	u, err := user.Register(userID, "  Alice@Example.COM ", "  Alice  ", hash, t0)
	if err != nil {
		t.Fatal(err)
	}
	thenEvents(t, u, registered())
	if u.Version() != 0 || !u.Registered() || u.Email() != "alice@example.com" || !u.HasRole("user") {
		t.Fatalf("state after Register: %+v", u)
	}
}

func TestRegisterRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, email, display, hash string
		field                      string
	}{
		{"no at", "alice.example.com", "Alice", hash, "email"},
		{"two ats", "a@b@example.com", "Alice", hash, "email"},
		{"no domain dot", "alice@localhost", "Alice", hash, "email"},
		{"space", "al ice@example.com", "Alice", hash, "email"},
		{"empty", "   ", "Alice", hash, "email"},
		{"too long", strings.Repeat("a", 250) + "@example.com", "Alice", hash, "email"},
		{"empty display name", "alice@example.com", "  ", hash, "display_name"},
		{"bidi override", "alice@example.com", "Al\u202eice", hash, "display_name"},
		{"newline", "alice@example.com", "Al\nice", hash, "display_name"},
		{"display name too long", "alice@example.com", strings.Repeat("é", 101), hash, "display_name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := user.Register(userID, tc.email, tc.display, tc.hash, t0)
			var ie *user.InvalidInputError
			if !errors.As(err, &ie) || ie.Field != tc.field || !errors.Is(err, user.ErrInvalidInput) {
				t.Fatalf("Register = %v, want invalid %s", err, tc.field)
			}
		})
	}
	t.Run("both fields reported at once", func(t *testing.T) {
		t.Parallel()
		_, err := user.Register(userID, "nope", "", hash, t0)
		fe := user.FieldErrors(fmt.Errorf("wrapped: %w", err))
		if len(fe) != 2 || fe[0].Field != "email" || fe[1].Field != "display_name" {
			t.Fatalf("Register = %v, field errors %v", err, fe)
		}
	})
	t.Run("raw password instead of hash", func(t *testing.T) {
		t.Parallel()
		if _, err := user.Register(userID, "alice@example.com", "Alice", "hunter2hunter2", t0); err == nil {
			t.Fatal("a raw password was accepted as a hash")
		}
	})
}

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Alice@Example.com":          "alice@example.com",
		"\talice+tag@example.com \n": "alice+tag@example.com",
		"ÉLODIE@exemple.fr":          "élodie@exemple.fr",
		"e\u0301lodie@exemple.fr":    "élodie@exemple.fr", // decomposed → NFC
		"first.last@sub.example.org": "first.last@sub.example.org",
		"USER@XN--BCHER-KVA.EXAMPLE": "user@xn--bcher-kva.example",
	} {
		got, err := user.NormalizeEmail(in)
		if err != nil || got != want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestEmailReservationStream(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	a := user.EmailReservationStream(key, "Alice@Example.com")
	if a != user.EmailReservationStream(key, " alice@example.COM") {
		t.Fatal("letter case or spaces change the reservation stream")
	}
	if !strings.HasPrefix(a, "email-") || len(a) != len("email-")+64 {
		t.Fatalf("stream name %q", a)
	}
	if strings.Contains(a, "alice") {
		t.Fatal("address leaks into the stream name")
	}
	if a == user.EmailReservationStream([]byte("another key, another key, 32 b!"), "alice@example.com") {
		t.Fatal("key does not matter")
	}
	if a == user.EmailReservationStream(key, "bob@example.com") {
		t.Fatal("two addresses share a stream")
	}
}

func TestEmailReservation(t *testing.T) {
	t.Parallel()
	other := uuid.MustParse("a1e0c7b4-3a3e-4a63-8d5e-2a8f0b7e4c11")
	reserved := user.EmailReserved{UserID: userID, ReservedAt: t0}
	for _, tc := range []struct {
		name    string
		history []events.Event
		who     uuid.UUID
		err     error
		want    []events.Event
	}{
		{"free address", nil, userID, nil, []events.Event{reserved}},
		{"retry by the same user completes", []events.Event{reserved}, userID, nil, nil},
		{"taken by another", []events.Event{reserved}, other, user.ErrEmailTaken, nil},
		{"released, claimed again", []events.Event{reserved, user.EmailReleased{UserID: userID, ReleasedAt: t0}}, other, nil,
			[]events.Event{user.EmailReserved{UserID: other, ReservedAt: t0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := user.ReservationFromHistory(tc.history)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Reserve(tc.who, t0); !errors.Is(err, tc.err) {
				t.Fatalf("Reserve = %v, want %v", err, tc.err)
			}
			if got := r.Changes(); (len(got) != 0 || len(tc.want) != 0) && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("events %#v, want %#v", got, tc.want)
			}
			if r.Version() != len(tc.history) {
				t.Fatalf("version %d", r.Version())
			}
		})
	}
	r, _ := user.ReservationFromHistory([]events.Event{reserved})
	if err := r.Release(other, t0); !errors.Is(err, user.ErrNotReservedBy) {
		t.Fatalf("release by another: %v", err)
	}
}

func TestPasswordsRolesNames(t *testing.T) {
	t.Parallel()
	const newHash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdG5ld3NhbHQ$bmV3aGFzaG5ld2hhc2huZXdoYXNobmV3aGFzaG5ldw"
	for _, tc := range []struct {
		name    string
		history []events.Event
		when    func(*user.User) error
		want    []events.Event
	}{
		{"change password", nil, func(u *user.User) error { return u.ChangePassword(newHash, t0) },
			[]events.Event{user.PasswordChanged{UserID: userID, PasswordHash: newHash, ChangedAt: t0}}},
		{"rehash", nil, func(u *user.User) error { return u.Rehash(newHash, t0) },
			[]events.Event{user.PasswordRehashed{UserID: userID, PasswordHash: newHash, RehashedAt: t0}}},
		{"rehash to the same hash", nil, func(u *user.User) error { return u.Rehash(hash, t0) }, nil},
		{"grant role", nil, func(u *user.User) error { return u.GrantRole("admin", t0) },
			[]events.Event{user.RoleGranted{UserID: userID, Role: "admin", GrantedAt: t0}}},
		{"grant a held role", nil, func(u *user.User) error { return u.GrantRole("user", t0) }, nil},
		{"revoke role", nil, func(u *user.User) error { return u.RevokeRole("user", t0) },
			[]events.Event{user.RoleRevoked{UserID: userID, Role: "user", RevokedAt: t0}}},
		{"revoke a role not held", nil, func(u *user.User) error { return u.RevokeRole("admin", t0) }, nil},
		{"rename", nil, func(u *user.User) error { return u.ChangeDisplayName(" Alice B. ", t0) },
			[]events.Event{user.DisplayNameChanged{UserID: userID, DisplayName: "Alice B.", ChangedAt: t0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := registeredUser(t, tc.history...)
			if err := tc.when(u); err != nil {
				t.Fatal(err)
			}
			thenEvents(t, u, tc.want...)
		})
	}
	u := registeredUser(t, user.RoleGranted{UserID: userID, Role: "admin", GrantedAt: t0})
	if got := u.Roles(); !reflect.DeepEqual(got, []string{"admin", "user"}) {
		t.Fatalf("roles %v", got)
	}
	if err := u.GrantRole("Bad Role", t0); !errors.Is(err, user.ErrInvalidInput) {
		t.Fatalf("GrantRole(bad) = %v", err)
	}
	if err := u.ChangePassword("plain text", t0); err == nil {
		t.Fatal("ChangePassword accepted a raw password")
	}
}

func TestCommandsOnAnUnregisteredUser(t *testing.T) {
	t.Parallel()
	u := given(t)
	for name, err := range map[string]error{
		"fail":    u.RecordLoginFailure(user.LoginAttempt{Source: "192.0.2.1"}, t0, policy),
		"success": u.RecordLoginSuccess(user.LoginAttempt{Source: "192.0.2.1"}, t0),
		"unlock":  u.Unlock(t0),
		"role":    u.GrantRole("admin", t0),
		"rename":  u.ChangeDisplayName("x", t0),
	} {
		if !errors.Is(err, user.ErrNotRegistered) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := user.FromHistory([]events.Event{registered(), registered()}); !errors.Is(err, user.ErrAlreadyRegistered) {
		t.Fatalf("double registration folded: %v", err)
	}
}

// A grant may expire: it stops counting at its expiry by the clock alone;
// granting again replaces the expiry; an expiry in the past is refused.
func TestGrantWithExpiry(t *testing.T) {
	t.Parallel()
	u := registeredUser(t)
	until := t0.Add(time.Hour)
	if err := u.GrantRoleUntil("auditor", until, t0); err != nil {
		t.Fatal(err)
	}
	if got := u.ActiveRoles(t0.Add(59 * time.Minute)); !reflect.DeepEqual(got, []string{"auditor", "user"}) {
		t.Errorf("before expiry: %v", got)
	}
	if got := u.ActiveRoles(until); !reflect.DeepEqual(got, []string{"user"}) {
		t.Errorf("at expiry: %v", got)
	}
	if err := u.GrantRoleUntil("auditor", until, t0); err != nil || len(u.Changes()) != 1 {
		t.Errorf("the same grant: %v, %d changes", err, len(u.Changes()))
	}
	if err := u.GrantRole("auditor", t0); err != nil || len(u.Changes()) != 2 || !u.Grants()[0].ExpiresAt.IsZero() {
		t.Errorf("a grant without expiry replaces it: %v %+v", err, u.Grants())
	}
	if err := u.GrantRoleUntil("admin", t0, t0); !errors.Is(err, user.ErrInvalidInput) {
		t.Errorf("expiry now: %v", err)
	}
}

func TestLockDisableEnable(t *testing.T) {
	t.Parallel()
	u := registeredUser(t)
	if u.CanLogIn() != nil {
		t.Fatal("a new account cannot log in")
	}
	if err := u.LockByAdmin("suspicious", t0); err != nil || !errors.Is(u.CanLogIn(), user.ErrAccountLocked) {
		t.Fatalf("lock: %v, %v", err, u.CanLogIn())
	}
	if err := u.Unlock(t0); err != nil || u.CanLogIn() != nil {
		t.Fatalf("unlock: %v, %v", err, u.CanLogIn())
	}
	if err := u.Disable("left", t0); err != nil || !errors.Is(u.CanLogIn(), user.ErrAccountDisabled) {
		t.Fatalf("disable: %v, %v", err, u.CanLogIn())
	}
	if err := u.Disable("again", t0); err != nil || len(u.Changes()) != 3 {
		t.Errorf("disabling twice: %v, %d changes", err, len(u.Changes()))
	}
	if err := u.Enable(t0); err != nil || u.CanLogIn() != nil {
		t.Fatalf("enable: %v, %v", err, u.CanLogIn())
	}
}

package user_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
)

var azure = user.ExternalIdentity{Provider: "https://login.example.com/tenant/v2.0", ExternalUserID: "oid-1", ProviderEmail: "Alice@Example.com"}

func linked() user.ExternalIdentityLinked {
	return user.ExternalIdentityLinked{UserID: userID, Provider: azure.Provider, ExternalUserID: azure.ExternalUserID, ProviderEmail: azure.ProviderEmail, LinkedAt: t0}
}

func TestLinkExternalIdentity(t *testing.T) {
	t.Parallel()
	u := registeredUser(t)
	if err := u.LinkExternalIdentity(azure, t0); err != nil {
		t.Fatal(err)
	}
	thenEvents(t, u, linked())
	if x, ok := u.ExternalIdentity(azure.Provider); !ok || x != azure {
		t.Errorf("identity after linking: %+v %v", x, ok)
	}
}

func TestLinkingTheSameIdentityAgainRecordsNothing(t *testing.T) {
	t.Parallel()
	u := registeredUser(t, linked())
	if err := u.LinkExternalIdentity(azure, t0); err != nil {
		t.Fatal(err)
	}
	thenEvents(t, u)
}

func TestLinkingAnotherIdentityOfTheProviderIsRefused(t *testing.T) {
	t.Parallel()
	u := registeredUser(t, linked())
	other := azure
	other.ExternalUserID = "oid-2"
	if err := u.LinkExternalIdentity(other, t0); !errors.Is(err, user.ErrExternalIdentityConflict) {
		t.Fatalf("got %v", err)
	}
	thenEvents(t, u)
}

func TestLinkRefusesABadIdentity(t *testing.T) {
	t.Parallel()
	for _, x := range []user.ExternalIdentity{
		{Provider: azure.Provider},
		{ExternalUserID: "oid"},
		{Provider: azure.Provider, ExternalUserID: "a\nb"},
		{Provider: azure.Provider, ExternalUserID: strings.Repeat("x", 256)},
	} {
		if err := registeredUser(t).LinkExternalIdentity(x, t0); !errors.Is(err, user.ErrInvalidInput) {
			t.Errorf("%+v: %v", x, err)
		}
	}
}

func TestRegisterExternalHasNoPassword(t *testing.T) {
	t.Parallel()
	u, err := user.RegisterExternal(userID, " Alice@Example.COM", " Alice ", azure, t0)
	if err != nil {
		t.Fatal(err)
	}
	thenEvents(t, u,
		user.Registered{UserID: userID, Email: "alice@example.com", DisplayName: "Alice", Roles: []string{"user"}, RegisteredAt: t0},
		linked())
	if u.HasPassword() || u.PasswordHash() != "" || !u.Registered() {
		t.Errorf("state: %+v", u)
	}
	// Folded back, as the next login loads it.
	again := given(t, u.Changes()...)
	if again.HasPassword() {
		t.Error("a folded external user has a password")
	}
	if _, ok := again.ExternalIdentity(azure.Provider); !ok {
		t.Error("the folded user is not linked")
	}
}

func TestExternalIdentityReservation(t *testing.T) {
	t.Parallel()
	r, _ := user.ExternalReservationFromHistory(nil)
	if err := r.Reserve(userID, t0); err != nil {
		t.Fatal(err)
	}
	held, _ := user.ExternalReservationFromHistory(r.Changes())
	if h, ok := held.Holder(); !ok || h != userID {
		t.Fatalf("holder %v %v", h, ok)
	}
	if err := held.Reserve(userID, t0); err != nil || len(held.Changes()) != 0 {
		t.Errorf("the same user again: %v %v", err, held.Changes())
	}
	if err := held.Reserve(uuid.New(), t0); !errors.Is(err, user.ErrExternalIdentityConflict) {
		t.Errorf("another user: %v", err)
	}
}

func TestExternalIdentityStreamsDifferByProviderAndID(t *testing.T) {
	t.Parallel()
	key := []byte(strings.Repeat("k", 32))
	a := user.ExternalIdentityStream(key, "https://a", "1")
	if !strings.HasPrefix(a, user.ExternalIdentityStreamPrefix) || strings.Contains(a, "https") {
		t.Errorf("stream name %q", a)
	}
	for _, b := range []string{user.ExternalIdentityStream(key, "https://b", "1"), user.ExternalIdentityStream(key, "https://a", "2"),
		user.ExternalIdentityStream([]byte(strings.Repeat("j", 32)), "https://a", "1")} {
		if a == b {
			t.Errorf("%q collides", b)
		}
	}
}

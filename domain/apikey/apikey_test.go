package apikey_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/domain/apikey"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events/eventstest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestEventsRoundTripUnderTheirOwnNames(t *testing.T) {
	t.Parallel()
	eventstest.RoundTrip(t, apikey.RegisterEvents, apikey.AllEvents())
}

func spec(perms ...access.Permission) apikey.Spec {
	return apikey.Spec{KeyID: uuid.New(), OwnerID: uuid.New(), Name: "  ci deploy ", Permissions: perms, ExpiresAt: t0.Add(24 * time.Hour), Digest: "d1"}
}

// created is a key created from s.
func created(t *testing.T, s apikey.Spec) *apikey.Key {
	t.Helper()
	k, _ := apikey.FromHistory(nil)
	if err := k.Create(s, access.NewSet(s.Permissions...), t0); err != nil {
		t.Fatal(err)
	}
	again, err := apikey.FromHistory(k.Changes())
	if err != nil {
		t.Fatal(err)
	}
	return again
}

func TestCreateRecordsTheKeyNormalised(t *testing.T) {
	t.Parallel()
	s := spec(access.TasksRead, access.AccountRead, access.TasksRead)
	k := created(t, s)
	v := k.View()
	if v.Name != "ci deploy" || len(v.Permissions) != 2 || v.Permissions[0] != access.AccountRead || !v.ActiveAt(t0) || v.ActiveAt(s.ExpiresAt) {
		t.Fatalf("view %+v", v)
	}
}

func TestCreateRefusesWhatTheCreatorDoesNotHold(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		s      apikey.Spec
		held   access.Set
		fields []string
	}{
		"a permission not held": {spec(access.AuditRead), access.NewSet(access.AccountRead), []string{"permissions"}},
		"no such permission":    {spec("files:steal"), access.NewSet("files:steal"), []string{"permissions"}},
		"no permission":         {spec(), access.NewSet(access.AccountRead), []string{"permissions"}},
		"expired": {func() apikey.Spec { s := spec(access.AccountRead); s.ExpiresAt = t0; return s }(),
			access.NewSet(access.AccountRead), []string{"expires_at"}},
		"beyond the lifetime": {func() apikey.Spec {
			s := spec(access.AccountRead)
			s.ExpiresAt = t0.Add(apikey.MaxLifetime + time.Hour)
			return s
		}(), access.NewSet(access.AccountRead), []string{"expires_at"}},
		"no expiry and no name": {func() apikey.Spec {
			s := spec(access.AccountRead)
			s.ExpiresAt, s.Name = time.Time{}, "\u202e"
			return s
		}(), access.NewSet(access.AccountRead), []string{"name", "expires_at"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			k, _ := apikey.FromHistory(nil)
			err := k.Create(tc.s, tc.held, t0)
			fe := user.FieldErrors(err)
			if len(fe) != len(tc.fields) {
				t.Fatalf("%v: fields %v, want %v", err, fe, tc.fields)
			}
			for i, f := range tc.fields {
				if fe[i].Field != f {
					t.Errorf("field %d: %s, want %s", i, fe[i].Field, f)
				}
			}
			if len(k.Changes()) != 0 {
				t.Error("a refused key recorded events")
			}
		})
	}
}

func TestRevokeOnlyTheOwnersKeyOnce(t *testing.T) {
	t.Parallel()
	s := spec(access.AccountRead)
	first, _ := apikey.FromHistory(nil)
	if err := first.Create(s, access.NewSet(s.Permissions...), t0); err != nil {
		t.Fatal(err)
	}
	k, _ := apikey.FromHistory(first.Changes())
	if err := k.Revoke(uuid.New(), t0); !errors.Is(err, apikey.ErrNotFound) {
		t.Fatalf("another owner revoking: %v", err)
	}
	if err := k.Revoke(s.OwnerID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	again, _ := apikey.FromHistory(append(first.Changes(), k.Changes()...))
	if err := again.Revoke(s.OwnerID, t0.Add(2*time.Minute)); err != nil || len(again.Changes()) != 0 {
		t.Fatalf("revoking twice: %v %v", err, again.Changes())
	}
	if v := k.View(); v.ActiveAt(t0.Add(time.Hour)) || v.RevokedAt == nil {
		t.Fatalf("revoked view %+v", v)
	}
	missing, _ := apikey.FromHistory(nil)
	if err := missing.Revoke(s.OwnerID, t0); !errors.Is(err, apikey.ErrNotFound) {
		t.Fatalf("revoking a missing key: %v", err)
	}
}

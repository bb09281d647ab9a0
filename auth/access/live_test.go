package access_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	authaccess "github.com/authledger/authledger/auth/access"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/test/testclock"
)

type fixture struct {
	store *pg.Store
	pool  *pgxpool.Pool
	users *commands.Repository[*user.User]
	roles *commands.Repository[*access.Catalog]
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := projtest.New(t)
	store := env.Store
	reg := events.NewRegistry()
	if err := user.RegisterEvents(reg); err != nil {
		t.Fatal(err)
	}
	if err := access.RegisterEvents(reg); err != nil {
		t.Fatal(err)
	}
	users, err := commands.NewRepository(store, reg, user.FromHistory)
	if err != nil {
		t.Fatal(err)
	}
	roles, err := commands.NewRepository(store, reg, access.FromHistory)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{store: store, pool: env.Pool, users: users, roles: roles}
}

func (f *fixture) user(t *testing.T, decide func(u *user.User) error) uuid.UUID {
	t.Helper()
	id := uuid.New()
	_, err := f.users.Update(t.Context(), user.StreamName(id), commands.Meta{}, func(u *user.User) error {
		r, err := user.Register(id, id.String()+"@example.com", "T", "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g", time.Now())
		if err != nil {
			return err
		}
		*u = *r
		return decide(u)
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// The same answers from memory (the follower) and from the log (its
// fallback): inherited permissions count, an expired grant stops counting
// by the clock alone, and a change reaches memory within the follower's
// lag.
func TestPermissionsFromMemoryAndFromTheLog(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	clock := testclock.New()
	if _, err := f.roles.Update(t.Context(), access.StreamName, commands.Meta{}, func(c *access.Catalog) error {
		return c.Create("support", access.Definition{Permissions: []access.Permission{access.UsersWrite}, Parents: []string{access.RoleAuditor}}, time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	temp := f.user(t, func(u *user.User) error { return u.GrantRoleUntil("support", clock.Now().Add(time.Hour), clock.Now()) })
	plain := f.user(t, func(*user.User) error { return nil })
	bare := f.user(t, func(u *user.User) error { return u.RevokeRole(user.DefaultRole, time.Now()) })
	disabled := f.user(t, func(u *user.User) error {
		return errors.Join(u.GrantRole(access.RoleAdmin, time.Now()), u.Disable("left", time.Now()))
	})

	fromLog, err := authaccess.New(authaccess.Config{Store: f.store, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	fromMemory, err := authaccess.New(authaccess.Config{Store: f.store, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := projector.NewRunner(projector.Config{Store: f.store, Pool: f.pool,
		Followers: []projector.Follower{{Name: authaccess.FollowerName, Filter: fromMemory.Filter(), Handle: fromMemory.Apply}}})
	if err != nil {
		t.Fatal(err)
	}
	fromMemory.Watch(func() time.Time { at, _ := runner.VouchedAt(authaccess.FollowerName); return at })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runner: %v", err)
		}
	})

	check := func(when string, id uuid.UUID, want ...access.Permission) {
		t.Helper()
		wantSet := access.NewSet(want...).Sorted()
		for name, l := range map[string]*authaccess.Live{"log": fromLog, "memory": fromMemory} {
			deadline := time.Now().Add(10 * time.Second)
			for {
				got, err := l.Permissions(t.Context(), id)
				if err == nil && equal(got.Sorted(), wantSet) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s, from the %s: %v %v, want %v", when, name, got.Sorted(), err, wantSet)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	userPerms := []access.Permission{access.AccountRead, access.AccountSessionsRevoke, access.AccountIdentities, access.AccountAPIKeys, access.AccountWrite, access.TasksCreate, access.TasksRead, access.TasksWrite}
	supportPerms := append([]access.Permission{access.UsersWrite, access.AuditRead, access.UsersRead, access.RolesRead}, userPerms...)
	check("granted support for an hour", temp, supportPerms...)
	check("plain user", plain, userPerms...)
	check("every role revoked", bare)
	check("a disabled admin", disabled)

	// A change to the role reaches its holders.
	if _, err := f.roles.Update(t.Context(), access.StreamName, commands.Meta{}, func(c *access.Catalog) error {
		return c.Change("support", access.Definition{Permissions: []access.Permission{access.GrantsWrite}}, time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	check("support changed", temp, append([]access.Permission{access.GrantsWrite}, userPerms...)...)

	clock.Add(time.Hour)
	check("an hour later", temp, userPerms...)
}

func equal(a, b []access.Permission) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

package apikey_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/apikey"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/access"
	domain "github.com/authledger/authledger/domain/apikey"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/projections/projtest"
)

var digestKey = []byte(strings.Repeat("d", 32))

type fixture struct {
	env    *projtest.Env
	users  *commands.Repository[*user.User]
	create *commands.CreateAPIKeyHandler
	revoke *commands.RevokeAPIKeyHandler
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := projtest.New(t)
	reg := events.NewRegistry()
	if err := errors.Join(user.RegisterEvents(reg), domain.RegisterEvents(reg), access.RegisterEvents(reg)); err != nil {
		t.Fatal(err)
	}
	keys, err := commands.NewRepository(env.Store, reg, domain.FromHistory)
	if err != nil {
		t.Fatal(err)
	}
	users, err := commands.NewRepository(env.Store, reg, user.FromHistory)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{env: env, users: users,
		create: &commands.CreateAPIKeyHandler{Keys: keys, Users: users, DigestKey: digestKey},
		revoke: &commands.RevokeAPIKeyHandler{Keys: keys}}
}

// account appends a service account and returns its id.
func (f *fixture) account(t *testing.T) uuid.UUID {
	t.Helper()
	u, err := user.RegisterServiceAccount(uuid.New(), "machine", []string{"user"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.users.Append(t.Context(), user.StreamName(u.ID()), 0, commands.Meta{}, u.Changes()); err != nil {
		t.Fatal(err)
	}
	return u.ID()
}

func (f *fixture) key(t *testing.T, owner uuid.UUID, ttl time.Duration) commands.CreateAPIKeyResult {
	t.Helper()
	res, err := f.create.Handle(t.Context(), commands.CreateAPIKey{OwnerID: owner, Name: "k", Permissions: []access.Permission{access.AccountRead},
		ExpiresAt: time.Now().Add(ttl), Held: access.NewSet(access.AccountRead)})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// Until its follower vouches for it, Keys answers from the log: a key
// just appended is found, a revoked, expired, foreign-secret key or one
// of a disabled owner is refused, and a log that cannot be read is an
// error, never a guess.
func TestKeysAnswerFromTheLogUntilVouchedFor(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ks, err := apikey.New(apikey.Config{Store: f.env.Store, DigestKey: digestKey})
	if err != nil {
		t.Fatal(err)
	}
	owner := f.account(t)
	ok := f.key(t, owner, time.Hour)
	c, err := ks.Authenticate(t.Context(), ok.Secret, time.Now())
	if err != nil || c.OwnerID != owner || c.KeyID != ok.Created.KeyID || !c.Scopes.Has(access.AccountRead) || len(c.Scopes) != 1 {
		t.Fatalf("a live key: %+v %v", c, err)
	}
	wrong, _ := apikey.NewSecret()
	forged := ok.Secret[:36] + wrong.Encode()[36:]
	if _, err := ks.Authenticate(t.Context(), forged, time.Now()); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("the right id with another secret: %v", err)
	}
	if _, err := ks.Authenticate(t.Context(), wrong.Encode(), time.Now()); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("an unknown key: %v", err)
	}
	if _, err := ks.Authenticate(t.Context(), ok.Secret, ok.Created.ExpiresAt); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("at its expiry: %v", err)
	}
	revoked := f.key(t, owner, time.Hour)
	if _, err := f.revoke.Handle(t.Context(), commands.RevokeAPIKey{KeyID: revoked.Created.KeyID, OwnerID: owner}); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Authenticate(t.Context(), revoked.Secret, time.Now()); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("a revoked key: %v", err)
	}
	if _, err := f.users.Update(t.Context(), user.StreamName(owner), commands.Meta{}, func(u *user.User) error { return u.Disable("", time.Now()) }); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Authenticate(t.Context(), ok.Secret, time.Now()); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("a disabled owner's key: %v", err)
	}

	// The log unreachable: an error that is not a refusal.
	closed, err := pg.Open(t.Context(), pg.Config{ConnString: f.env.URL})
	if err != nil {
		t.Fatal(err)
	}
	_ = closed.Close()
	down, _ := apikey.New(apikey.Config{Store: closed, DigestKey: digestKey})
	if _, err := down.Authenticate(t.Context(), ok.Secret, time.Now()); err == nil || errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("the log down: %v", err)
	}
}

// Vouched for, Keys answers from memory alone: what it has observed.
func TestKeysAnswerFromMemoryWhenVouchedFor(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ks, _ := apikey.New(apikey.Config{Store: f.env.Store, DigestKey: digestKey})
	ks.Watch(time.Now)
	owner := f.account(t)
	res := f.key(t, owner, time.Hour)
	// Not observed yet: memory is trusted, the key is not known.
	if _, err := ks.Authenticate(t.Context(), res.Secret, time.Now()); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("an unobserved key: %v", err)
	}
	ks.Observe(user.Registered{UserID: owner, DisplayName: "machine", Roles: []string{"user"}, ServiceAccount: true, RegisteredAt: time.Now()})
	ks.Observe(res.Created)
	if _, err := ks.Authenticate(t.Context(), res.Secret, time.Now()); err != nil {
		t.Fatalf("an observed key: %v", err)
	}
	if got := ks.Owned(owner); len(got) != 1 || ks.Active(owner, time.Now()) != 1 {
		t.Fatalf("owned %v", got)
	}
	if accts := ks.ServiceAccounts(); len(accts) != 1 || accts[0].ID != owner {
		t.Fatalf("service accounts %v", accts)
	}
	ks.Observe(user.Disabled{UserID: owner})
	if _, err := ks.Authenticate(t.Context(), res.Secret, time.Now()); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("a disabled owner's key: %v", err)
	}
	ks.Observe(user.Enabled{UserID: owner})
	ks.Observe(domain.Revoked{KeyID: res.Created.KeyID, OwnerID: owner, RevokedAt: time.Now()})
	// The creation seen again (the follower catching up with what a
	// handler observed) does not bring the key back.
	ks.Observe(res.Created)
	if _, err := ks.Authenticate(t.Context(), res.Secret, time.Now()); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("a revoked key: %v", err)
	}
	if ks.Active(owner, time.Now()) != 0 {
		t.Fatal("a revoked key counted active")
	}
}

// Usage writes the newest time of each key in one statement, keeps the
// latest of several writers, and reads back what it has not written.
func TestUsageFlushesTheLatestTimes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	u, err := apikey.NewUsage(f.env.Pool, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Setup(t.Context()); err != nil {
		t.Fatal(err)
	}
	a, b := uuid.New(), uuid.New()
	t1 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	u.Touch(a, t1)
	u.Touch(a, t1.Add(-time.Minute))
	got, err := u.LastUsed(t.Context(), []uuid.UUID{a, b})
	if err != nil || !got[a].Equal(t1) || len(got) != 1 {
		t.Fatalf("before the flush: %v %v", got, err)
	}
	if err := u.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Another instance wrote an older time for a, a newer one for b.
	other, _ := apikey.NewUsage(f.env.Pool, time.Hour, nil)
	other.Touch(a, t1.Add(-time.Hour))
	other.Touch(b, t1.Add(time.Hour))
	if err := other.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := f.env.Admin.QueryRow(t.Context(), `SELECT count(*) FROM `+apikey.UsageTable+` WHERE (key_id = $1 AND last_used_at = $2) OR (key_id = $3 AND last_used_at = $4)`,
		a, t1, b, t1.Add(time.Hour)).Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows: %d %v", n, err)
	}
	got, err = u.LastUsed(t.Context(), []uuid.UUID{a, b})
	if err != nil || !got[a].Equal(t1) || !got[b].Equal(t1.Add(time.Hour)) {
		t.Fatalf("after the flushes: %v %v", got, err)
	}
}

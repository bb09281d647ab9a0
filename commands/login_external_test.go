package commands_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/external"
	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/password"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/auth/vault"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/migrations"
	"github.com/authledger/authledger/test/extauthserver"
	"github.com/authledger/authledger/test/pgtest"
)

var extDana = extauthserver.User{ID: "ext-dana", Email: "dana@example.com", Name: "Dana", Password: "dana at the provider"}

// externalStack is the identity commands with external login on, over a
// real PostgreSQL, against the test provider (over TLS), with a real vault.
type externalStack struct {
	ext, local *commands.IdentityHandlers
	store      *pg.Store
	provider   *extauthserver.Server
	key        []byte
}

func newExternalStack(t *testing.T, provision bool) externalStack {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	if err := migrations.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	store, err := pg.Open(ctx, pg.Config{ConnString: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	reg := events.NewRegistry()
	if err := errors.Join(user.RegisterEvents(reg), session.RegisterEvents(reg)); err != nil {
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
	hasher, err := password.NewHasher(password.Config{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32})
	if err != nil {
		t.Fatal(err)
	}
	p := extauthserver.Start(t, extauthserver.Config{Users: []extauthserver.User{extDana}})
	client, err := external.NewClient(p.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	validator, err := external.NewTokenValidator(p.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	mk, err := keys.NewMasterKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	vlt, err := vault.New(vault.Config{Pool: store.Pool(), MasterKey: mk})
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{5}, 32)
	base := commands.IdentityConfig{Hasher: hasher, Issuer: issuer, ReservationKey: key}
	local, err := commands.NewIdentityHandlers(store, reg, base)
	if err != nil {
		t.Fatal(err)
	}
	withExt := base
	withExt.External = &commands.ExternalConfig{Provider: client, Validator: validator, Vault: vlt, ProviderName: p.Issuer, Provision: provision}
	ext, err := commands.NewIdentityHandlers(store, reg, withExt)
	if err != nil {
		t.Fatal(err)
	}
	return externalStack{ext: ext, local: local, store: store, provider: p, key: key}
}

func (s externalStack) stream(t *testing.T, name string) []string {
	t.Helper()
	recs, err := s.store.ReadStream(context.Background(), name, eventstore.ReadStreamOptions{})
	if err != nil && !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatal(err)
	}
	var types []string
	for _, r := range recs {
		types = append(types, r.Type)
	}
	return types
}

// A provisioning that crashed after claiming the identity (the reservation
// held, no user stream) is completed by the next login, under the held id.
func TestExternalLoginCompletesACrashedProvisioning(t *testing.T) {
	t.Parallel()
	s := newExternalStack(t, true)
	ctx := context.Background()
	held := uuid.New()
	stream := user.ExternalIdentityStream(s.key, s.provider.Issuer, extDana.ID)
	if _, err := s.ext.ExternalIdentities.Update(ctx, stream, commands.Meta{}, func(r *user.ExternalIdentityReservation) error {
		return r.Reserve(held, time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	r, err := s.ext.Login.Handle(ctx, commands.Login{Email: extDana.Email, Password: extDana.Password})
	if err != nil {
		t.Fatal(err)
	}
	if r.User.ID != held {
		t.Fatalf("login made user %s, want the held %s", r.User.ID, held)
	}
	u, err := s.ext.Users.Load(ctx, user.StreamName(held))
	if err != nil {
		t.Fatal(err)
	}
	if x, ok := u.ExternalIdentity(s.provider.Issuer); !ok || x.ExternalUserID != extDana.ID || u.HasPassword() {
		t.Errorf("completed user: linked %v %+v, password %v", ok, x, u.HasPassword())
	}
	if got := s.stream(t, session.StreamName(r.SessionID)); len(got) != 2 || got[0] != session.EventStarted || got[1] != session.EventExternalTokensStored {
		t.Errorf("session stream %v", got)
	}
	// Again: the same user, nothing more on the reservation.
	r2, err := s.ext.Login.Handle(ctx, commands.Login{Email: extDana.Email, Password: extDana.Password})
	if err != nil || r2.User.ID != held {
		t.Fatalf("second login: %v %s", err, r2.User.ID)
	}
	if got := s.stream(t, stream); len(got) != 1 {
		t.Errorf("reservation stream %v", got)
	}

	// The provisioned user has no local password: the local path refuses
	// them as it refuses a wrong password, and counts the failure.
	if _, err := s.local.Login.Handle(ctx, commands.Login{Email: extDana.Email, Password: extDana.Password}); !errors.Is(err, commands.ErrInvalidCredentials) {
		t.Errorf("local login of a user without a password: %v", err)
	}
	// (appended off the response path)
	deadline := time.Now().Add(10 * time.Second)
	for got := s.stream(t, user.StreamName(held)); got[len(got)-1] != user.EventLoginFailed; got = s.stream(t, user.StreamName(held)) {
		if time.Now().After(deadline) {
			t.Fatalf("user stream after the refused local login: %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A local account linked to another identity of the provider is not
// relinked by a login with the same address: 409, and the new identity is
// not claimed.
func TestExternalLoginRefusesAnAccountLinkedElsewhere(t *testing.T) {
	t.Parallel()
	s := newExternalStack(t, true)
	ctx := context.Background()
	reg, err := s.local.Register.Handle(ctx, commands.Register{Email: extDana.Email, Password: "dana's local password", DisplayName: "Dana"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.local.Users.Update(ctx, user.StreamName(reg.UserID), commands.Meta{}, func(u *user.User) error {
		return u.LinkExternalIdentity(user.ExternalIdentity{Provider: s.provider.Issuer, ExternalUserID: "an-older-identity"}, time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ext.Login.Handle(ctx, commands.Login{Email: extDana.Email, Password: extDana.Password}); !errors.Is(err, user.ErrExternalIdentityConflict) {
		t.Fatalf("got %v, want ErrExternalIdentityConflict", err)
	}
	if got := s.stream(t, user.ExternalIdentityStream(s.key, s.provider.Issuer, extDana.ID)); len(got) != 0 {
		t.Errorf("the identity was claimed for an account that cannot be linked: %v", got)
	}
}

// Tokens that cannot be stored fail the login, and the session it started
// is ended: it could never be renewed at the provider.
func TestExternalLoginFailsWhenTheVaultFails(t *testing.T) {
	t.Parallel()
	s := newExternalStack(t, true)
	ctx := context.Background()
	// A real failure of the vault's table, not a stand-in.
	if _, err := s.store.Pool().Exec(ctx, `ALTER TABLE external_tokens RENAME TO external_tokens_away`); err != nil {
		t.Fatal(err)
	}
	_, err := s.ext.Login.Handle(ctx, commands.Login{Email: extDana.Email, Password: extDana.Password})
	if err == nil {
		t.Fatal("the login succeeded without storing the provider's tokens")
	}
	if errors.Is(err, commands.ErrInvalidCredentials) || errors.Is(err, commands.ErrAuthProviderUnavailable) {
		t.Errorf("a storage failure answered as %v", err)
	}
	rows, err := s.store.Pool().Query(ctx, `SELECT stream, type FROM events WHERE stream LIKE 'session-%' ORDER BY tx_id, seq`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var stream, typ string
		if err := rows.Scan(&stream, &typ); err != nil {
			t.Fatal(err)
		}
		got = append(got, typ)
	}
	rows.Close()
	if len(got) != 2 || got[0] != session.EventStarted || got[1] != session.EventRevoked {
		t.Errorf("session events %v, want started then revoked", got)
	}
}

// AUTHLEDGER_LOCAL_PASSWORDS=off: a right local password is refused as a
// wrong one, and turning it on again restores it (nothing was deleted).
func TestLocalPasswordsOff(t *testing.T) {
	t.Parallel()
	s := newExternalStack(t, false)
	ctx := context.Background()
	if _, err := s.local.Register.Handle(ctx, commands.Register{Email: "erin@example.com", Password: "erin's local password", DisplayName: "Erin"}); err != nil {
		t.Fatal(err)
	}
	login := commands.Login{Email: "erin@example.com", Password: "erin's local password"}
	s.local.Login.LocalPasswordsOff = true
	if _, err := s.local.Login.Handle(ctx, login); !errors.Is(err, commands.ErrInvalidCredentials) {
		t.Fatalf("local passwords off: %v", err)
	}
	s.local.Login.LocalPasswordsOff = false
	if _, err := s.local.Login.Handle(ctx, login); err != nil {
		t.Fatalf("local passwords on again: %v", err)
	}
}

// Refusals by the provider count like wrong local passwords: recorded on
// the user stream (off the response path) or, for an address without an
// account, in memory; past the throttle's threshold the next attempt waits
// without the provider being asked.
func TestExternalRefusalsAreThrottled(t *testing.T) {
	t.Parallel()
	s := newExternalStack(t, false)
	ctx := context.Background()
	reg, err := s.local.Register.Handle(ctx, commands.Register{Email: extDana.Email, Password: "dana's local password", DisplayName: "Dana"})
	if err != nil {
		t.Fatal(err)
	}
	failures := func() int {
		n := 0
		for _, typ := range s.stream(t, user.StreamName(reg.UserID)) {
			if typ == user.EventLoginFailed {
				n++
			}
		}
		return n
	}
	for _, email := range []string{extDana.Email, "stranger@example.com"} {
		max := user.DefaultThrottlePolicy().MaxFailures
		for i := range max {
			if _, err := s.ext.Login.Handle(ctx, commands.Login{Email: email, Password: "wrong", Meta: commands.Meta{ClientIP: "192.0.2.7"}}); !errors.Is(err, commands.ErrInvalidCredentials) {
				t.Fatalf("%s attempt %d: %v", email, i, err)
			}
		}
		if email == extDana.Email {
			deadline := time.Now().Add(10 * time.Second)
			for failures() < max {
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d refusals recorded on the user stream", failures(), max)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		hits := s.provider.Hits(extauthserver.Login)
		var throttled *user.ThrottledError
		if _, err := s.ext.Login.Handle(ctx, commands.Login{Email: email, Password: extDana.Password, Meta: commands.Meta{ClientIP: "192.0.2.7"}}); !errors.As(err, &throttled) {
			t.Fatalf("%s past the threshold: %v", email, err)
		}
		if s.provider.Hits(extauthserver.Login) != hits {
			t.Errorf("%s: a throttled login asked the provider", email)
		}
	}
}

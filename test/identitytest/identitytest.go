// Package identitytest assembles the identity write side for tests, the
// way serve does (cmd/authledger/identity.go) but with test-speed argon2id
// parameters and fixed keys: the repositories, a bootstrapped signing-key
// ring, the issuer and verifier, and the command handlers.
package identitytest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	authaccess "github.com/authledger/authledger/auth/access"
	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/keys/pgstore"
	"github.com/authledger/authledger/auth/password"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/signingkey"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi/authn"
	"github.com/authledger/authledger/projections/projector"
)

// Issuer is the iss (and aud) of the tokens a Stack issues.
const Issuer = "http://id.example.test"

// Stack is the identity write side on one event store.
type Stack struct {
	Registry    *events.Registry
	Users       *commands.Repository[*user.User]
	Reservation *commands.Repository[*user.EmailReservation]
	Sessions    *commands.Repository[*session.Session]
	TokenConfig token.Config
	Ring        *keys.RingHolder
	TokenIssuer *token.Issuer
	Verifier    *token.Verifier

	Register *commands.RegisterHandler
	Login    *commands.LoginHandler
	Refresh  *commands.RefreshHandler
	Revoke   *commands.RevokeSessionHandler
	// SyncClaims is the sessionclaims policy's command.
	SyncClaims *commands.SyncSessionClaimsHandler
}

// New builds the stack on store; pool holds the signing_keys table (the
// migrated database of the store).
func New(t testing.TB, ctx context.Context, store eventstore.Store, pool *pgxpool.Pool) *Stack {
	t.Helper()
	reg := events.NewRegistry()
	for _, f := range []func(*events.Registry) error{user.RegisterEvents, session.RegisterEvents, signingkey.RegisterEvents} {
		if err := f(reg); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ringRepo, err := commands.NewRepository(store, reg, signingkey.FromHistory)
	must(err)
	sealed, err := pgstore.New(pool)
	must(err)
	master, err := keys.NewMasterKey(bytes.Repeat([]byte{9}, 32))
	must(err)
	tcfg := token.DefaultConfig(Issuer)
	km := &commands.KeyManager{Ring: ringRepo, Store: sealed, Master: master, Algorithm: keys.DefaultAlgorithm, Retain: tcfg.MaxKeyRetention(), Overlap: time.Hour}
	ring, err := km.Bootstrap(ctx)
	must(err)
	holder := keys.NewRingHolder(ring)
	issuer, err := token.NewIssuer(tcfg, holder)
	must(err)
	verifier, err := token.NewVerifier(tcfg, holder)
	must(err)
	// Cheap parameters: these tests are about the flow, not the hash (the
	// assembled service's tests run the OWASP defaults).
	hasher, err := password.NewHasher(password.Config{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32})
	must(err)
	ih, err := commands.NewIdentityHandlers(store, reg, commands.IdentityConfig{
		Hasher: hasher, Issuer: issuer, ReservationKey: bytes.Repeat([]byte{3}, 32), KnownDeviceTTL: 90 * 24 * time.Hour,
	})
	must(err)
	return &Stack{
		Registry: reg, Users: ih.Users, Reservation: ih.Reservations, Sessions: ih.Sessions,
		TokenConfig: tcfg, Ring: holder, TokenIssuer: issuer, Verifier: verifier,
		Register: ih.Register, Login: ih.Login, Refresh: ih.Refresh, Revoke: ih.Revoke, SyncClaims: ih.SyncClaims,
	}
}

// Revocations returns the token check's revocation set on store, fed as
// serve feeds it: by the revocation follower under a projection runner
// (with no read model), which runs until the test ends.
func (s *Stack) Revocations(t testing.TB, store eventstore.Store, pool *pgxpool.Pool) *authn.Revocations {
	t.Helper()
	rev, err := authn.NewRevocations(authn.RevocationsConfig{TTL: s.TokenConfig.MaxKeyRetention(), Store: store, Registry: s.Registry})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := projector.NewRunner(projector.Config{Store: store, Pool: pool,
		Followers: []projector.Follower{{Name: authn.FeedName, Filter: rev.Filter(), Handle: rev.Apply}}})
	if err != nil {
		t.Fatal(err)
	}
	rev.Watch(func() time.Time { at, _ := runner.VouchedAt(authn.FeedName); return at })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("revocation feed: %v", err)
		}
	})
	return rev
}

// Access is the permission state serve resolves callers with, without its
// follower: every request reads the caller's user stream and the roles
// stream from store (the path serve takes while its follower is behind).
func (s *Stack) Access(t testing.TB, store eventstore.Store) *authaccess.Live {
	t.Helper()
	l, err := authaccess.New(authaccess.Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// RegisterInLog registers id in the log (if it is not yet) with the user
// role and roles, as a registration and grants would, without a password
// anyone knows: for tests whose callers' permissions are read from the
// log.
func RegisterInLog(t testing.TB, store eventstore.Store, id uuid.UUID, roles ...string) {
	t.Helper()
	reg := events.NewRegistry()
	if err := user.RegisterEvents(reg); err != nil {
		t.Fatal(err)
	}
	users, err := commands.NewRepository(store, reg, user.FromHistory)
	if err != nil {
		t.Fatal(err)
	}
	_, err = users.Update(context.Background(), user.StreamName(id), commands.Meta{}, func(u *user.User) error {
		if !u.Registered() {
			r, err := user.Register(id, id.String()+"@example.com", "Test", "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g", time.Now())
			if err != nil {
				return err
			}
			*u = *r
		}
		for _, role := range roles {
			if err := u.GrantRole(role, time.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

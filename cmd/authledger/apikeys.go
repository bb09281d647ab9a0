package main

// apikeys.go assembles API keys and service accounts (the key view fed
// by the log, the last-used collector, the commands) and token
// introspection and revocation for other services.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	authaccess "github.com/authledger/authledger/auth/access"
	"github.com/authledger/authledger/auth/apikey"
	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/access"
	domain "github.com/authledger/authledger/domain/apikey"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi/apikeys"
	"github.com/authledger/authledger/httpapi/authn"
	"github.com/authledger/authledger/httpapi/oauth2"
)

// apiKeyDigestPurpose names the HKDF derivation of the API key digest
// key. Changing it makes every key stop working: never change it.
const apiKeyDigestPurpose = "api key digest v1" //nolint:gosec // an HKDF purpose label, not a credential

// apiKeyCore is what the key routes, the token endpoints and the
// authentication middleware need.
type apiKeyCore struct {
	keys    *apikey.Keys
	usage   *apikey.Usage
	create  *commands.CreateAPIKeyHandler
	revoke  *commands.RevokeAPIKeyHandler
	account *commands.CreateServiceAccountHandler
	refresh *commands.RevokeRefreshTokenHandler
	inspect *commands.InspectRefreshTokenHandler
}

// keyCheck adapts Keys to the middleware's APIKeys.
type keyCheck struct{ keys *apikey.Keys }

func (k keyCheck) AuthenticateKey(ctx context.Context, raw string, now time.Time) (uuid.UUID, uuid.UUID, access.Set, error) {
	c, err := k.keys.Authenticate(ctx, raw, now)
	if errors.Is(err, domain.ErrInvalid) {
		return uuid.Nil, uuid.Nil, nil, fmt.Errorf("%w: %w", authn.ErrInvalidAPIKey, err)
	}
	return c.KeyID, c.OwnerID, c.Scopes, err
}

// option is the middleware's option accepting keys.
func (a *apiKeyCore) option() authn.Option {
	return authn.WithAPIKeys(keyCheck{a.keys}, a.usage.Touch)
}

func newAPIKeyCore(ctx context.Context, store eventstore.Store, db *pgxpool.Pool, reg *events.Registry, master *keys.MasterKey,
	perms *authaccess.Live, log *slog.Logger) (*apiKeyCore, error) {
	digestKey, err := master.DeriveKey(apiKeyDigestPurpose)
	if err != nil {
		return nil, err
	}
	ks, err := apikey.New(apikey.Config{Store: store, DigestKey: digestKey})
	if err != nil {
		return nil, err
	}
	usage, err := apikey.NewUsage(db, 0, log)
	if err != nil {
		return nil, err
	}
	// Before the first list reads it.
	if err := usage.Setup(ctx); err != nil {
		return nil, err
	}
	keyRepo, err := commands.NewRepository(store, reg, domain.FromHistory)
	if err != nil {
		return nil, err
	}
	users, err := commands.NewRepository(store, reg, user.FromHistory)
	if err != nil {
		return nil, err
	}
	sessions, err := commands.NewRepository(store, reg, session.FromHistory)
	if err != nil {
		return nil, err
	}
	return &apiKeyCore{
		keys:    ks,
		usage:   usage,
		create:  &commands.CreateAPIKeyHandler{Keys: keyRepo, Users: users, Catalog: perms.Catalog, DigestKey: digestKey},
		revoke:  &commands.RevokeAPIKeyHandler{Keys: keyRepo},
		account: &commands.CreateServiceAccountHandler{Users: users},
		refresh: &commands.RevokeRefreshTokenHandler{Sessions: sessions},
		inspect: &commands.InspectRefreshTokenHandler{Sessions: sessions},
	}, nil
}

// keyDeps are the key routes' dependencies.
func (ic *identityCore) keyDeps() apikeys.Deps {
	a := ic.apiKeys
	return apikeys.Deps{Create: a.create, Revoke: a.revoke, CreateAccount: a.account, Keys: a.keys, LastUsed: a.usage, Access: ic.access}
}

// oauth2Deps are the token endpoints' dependencies.
func (ic *identityCore) oauth2Deps() oauth2.Deps {
	a := ic.apiKeys
	return oauth2.Deps{
		Authenticated: ic.deps.Authenticated(), Verifier: ic.verifier, Revocations: ic.revocations, Keys: a.keys,
		Permissions: ic.access, RevokeSession: ic.deps.Revoke, RevokeRefresh: a.refresh, RevokeKey: a.revoke,
		InspectRefresh: a.inspect,
	}
}

package main

// external.go assembles login through the external auth API
// (AUTHLEDGER_USE_EXTERNAL_AUTH, docs/external-auth.md): the API client
// and the validator of its tokens, the encrypted vault of the provider's
// tokens, its refresher, and the policy that empties the vault of revoked
// sessions. wireIdentity builds the parts; newApp registers their metrics
// and runs their loops.

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/auth/external"
	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/vault"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/httpapi/authn"
)

// externalAuth are the parts of external login one process holds.
type externalAuth struct {
	client    *external.Client
	validator *external.TokenValidator
	vault     *vault.Vault
}

// newExternalAuth builds the client, the validator (one Config, already
// validated by config.Load) and the vault, whose key is derived from the
// master key as the reservation key is.
func newExternalAuth(cfg config.Config, db *pgxpool.Pool, master *keys.MasterKey) (*externalAuth, error) {
	ec, err := externalClientConfig(cfg)
	if err != nil {
		return nil, err
	}
	client, err := external.NewClient(ec)
	if err != nil {
		return nil, fmt.Errorf("external auth: %w", err)
	}
	validator, err := external.NewTokenValidator(ec)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("external auth: %w", err)
	}
	v, err := vault.New(vault.Config{Pool: db, MasterKey: master})
	if err != nil {
		client.Close()
		return nil, err
	}
	return &externalAuth{client: client, validator: validator, vault: v}, nil
}

// externalClientConfig is the configured external.Config with the CA
// file's authorities added to the system's.
func externalClientConfig(cfg config.Config) (external.Config, error) {
	ec := cfg.External.Client
	if cfg.External.CAFile == "" {
		return ec, nil
	}
	pem, err := os.ReadFile(cfg.External.CAFile)
	if err != nil {
		return ec, fmt.Errorf("AUTHLEDGER_EXTERNAL_AUTH_CA_FILE: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return ec, fmt.Errorf("AUTHLEDGER_EXTERNAL_AUTH_CA_FILE: %s holds no PEM certificate", cfg.External.CAFile)
	}
	ec.RootCAs = pool
	return ec, nil
}

// commandConfig is the login command's view of the parts.
func (x *externalAuth) commandConfig(cfg config.Config, log *slog.Logger) *commands.ExternalConfig {
	return &commands.ExternalConfig{
		Provider: x.client, Validator: x.validator, Vault: x.vault,
		ProviderName:  cfg.External.Client.Issuer,
		FallbackLocal: cfg.External.Fallback == config.FallbackLocal,
		Provision:     cfg.External.Provision,
		Logger:        log,
	}
}

// newRefresher renews the vault's tokens before they expire; a session
// whose tokens cannot be renewed is revoked (and then the refresher
// deletes its tokens).
func (x *externalAuth) newRefresher(cfg config.Config, revoke *commands.RevokeSessionHandler, renewed *commands.RecordExternalRefreshHandler, log *slog.Logger) (*vault.Refresher, error) {
	meta := commands.Meta{Actor: events.Actor{Kind: events.ActorSystem}}
	return vault.NewRefresher(x.vault, vault.ClientRefresh(x.client), vault.RefresherConfig{
		Buffer: cfg.External.Client.RefreshBuffer,
		Logger: log,
		OnGiveUp: func(ctx context.Context, g vault.GiveUp) error {
			log.WarnContext(ctx, "external auth: ending a session whose provider tokens cannot be renewed",
				slog.String("session_id", g.SessionID.String()), slog.String("reason", string(g.Reason)), slog.Int("failures", g.Failures))
			_, err := revoke.Handle(ctx, commands.RevokeSession{SessionID: g.SessionID, UserID: g.UserID,
				Reason: session.ReasonExternalRefreshFailed, Meta: meta})
			return err
		},
		// The log's last_token_refresh: fingerprints and expiry only.
		OnRenewed: func(ctx context.Context, rec vault.Record) error {
			_, err := renewed.Handle(ctx, commands.RecordExternalRefresh{SessionID: rec.SessionID, RefreshedAt: rec.RefreshedAt, Meta: meta,
				Tokens: session.ExternalTokens{AccessFingerprint: rec.AccessFingerprint, IDFingerprint: rec.IDFingerprint,
					RefreshFingerprint: rec.RefreshFingerprint, ExpiresAt: rec.ExpiresAt}})
			return err
		},
	})
}

// providerTokens lets the token check accept the provider's access
// tokens, each for the user its subject is linked to.
func (x *externalAuth) providerTokens(cfg config.Config, ih *commands.IdentityHandlers, reservationKey []byte) authn.ProviderTokens {
	return authn.ProviderTokens{
		Issuer: cfg.External.Client.Issuer, Validator: x.validator,
		Users: linkedUsers{&commands.LinkedUsers{Identities: ih.ExternalIdentities, Users: ih.Users,
			ReservationKey: reservationKey, Provider: cfg.External.Client.Issuer}},
	}
}

// linkedUsers adapts commands.LinkedUsers to authn.LinkedUsers (authn
// must not import commands: the read API imports authn).
type linkedUsers struct{ l *commands.LinkedUsers }

func (u linkedUsers) Linked(ctx context.Context, subject string) (authn.LinkedUser, bool, error) {
	id, roles, ok, err := u.l.Linked(ctx, subject)
	return authn.LinkedUser{UserID: id, Roles: roles}, ok, err
}

// breaker is the readiness line of external auth: the breaker's state. It
// never fails /readyz: with the breaker open, external logins answer 503
// (or fall back), but every other route works.
func (x *externalAuth) breaker(context.Context) (any, error) {
	return map[string]string{"breaker": string(x.client.BreakerState())}, nil
}

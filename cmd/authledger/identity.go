package main

// identity.go assembles the identity core: the master key, the signing-key
// ring, the token issuer and verifier, the password hasher, the command
// handlers and the revocation set. newApp calls wireIdentity before it
// builds the engine and mounts the routes afterwards.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	authaccess "github.com/authledger/authledger/auth/access"
	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/keys/pgstore"
	"github.com/authledger/authledger/auth/mailtoken"
	authmfa "github.com/authledger/authledger/auth/mfa"
	"github.com/authledger/authledger/auth/passkey"
	"github.com/authledger/authledger/auth/password"
	authrollout "github.com/authledger/authledger/auth/rollout"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/domain/access"
	apikeydomain "github.com/authledger/authledger/domain/apikey"
	"github.com/authledger/authledger/domain/auditarchive"
	"github.com/authledger/authledger/domain/mfa"
	"github.com/authledger/authledger/domain/rollout"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/signin"
	"github.com/authledger/authledger/domain/signingkey"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/domain/webhook"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi/authn"
	identityhttp "github.com/authledger/authledger/httpapi/identity"
	"github.com/authledger/authledger/projections/audit"
)

// devMasterKeyFile is where serve keeps a generated master key when none is
// configured, so that `make run` works on a fresh machine.
const devMasterKeyFile = "dev-master.key"

// reservationKeyPurpose names the HKDF derivation of the email-reservation
// key. Changing it orphans every reservation stream: never change it.
const reservationKeyPurpose = "email reservation v1"

// upstreamKeyPurpose names the HKDF derivation of the key that signs the
// upstream sign-in's flow cookies and derives its nonces and PKCE
// verifiers; changing it fails the flows under way, nothing else.
const upstreamKeyPurpose = "upstream sign-in v1"

// mailTokenKeyPurpose names the HKDF derivation of the key of the tokens
// mailed to users (auth/mailtoken); changing it voids every link mailed
// and not yet used, nothing else.
const mailTokenKeyPurpose = "mail tokens v1" //nolint:gosec // a derivation label, not a credential

// consoleKeyPurpose names the HKDF derivation of the key that seals the
// web console's session cookies; changing it signs every console user
// out, nothing else.
const consoleKeyPurpose = "console cookie v1"

// keyRingRefresh is how often each instance reloads the signing-key ring,
// activating a rotated key whose overlap has passed and picking up keys
// another process (`authledger keys rotate`) added.
const keyRingRefresh = 30 * time.Second

// identityCore is what the HTTP layer and the background loops need.
type identityCore struct {
	deps        identityhttp.Deps
	revocations *authn.Revocations
	keyManager  *commands.KeyManager
	ring        *keys.RingHolder
	// claimsSync is the command of the sessionclaims policy.
	claimsSync *commands.SyncSessionClaimsHandler
	// registry decodes the identity events (users, sessions, keys).
	registry *events.Registry
	// auditKey chains the audit trail's rows (derived from the master key).
	auditKey []byte
	// auditExport signs audit retention's archives (a key derived from
	// the master key).
	auditExport *audit.ExportSigner
	// external is login through the external auth API; nil when
	// AUTHLEDGER_USE_EXTERNAL_AUTH=off.
	external *externalAuth
	// externalRefresh records the vault refresher's renewals.
	externalRefresh *commands.RecordExternalRefreshHandler
	// rollout is the staged rollout as this instance applies it, fed by
	// its local follower.
	rollout *authrollout.Live
	// upstream signs in with upstream providers; upstreamKey signs its
	// flow cookies and derives its nonces and PKCE verifiers.
	upstream    *commands.UpstreamSignInHandler
	upstreamKey []byte
	// consoleKey seals the web console's session cookies.
	consoleKey []byte
	// access is what each user may do now (roles and grants), fed by its
	// local follower; the authentication middleware resolves each
	// caller's permissions from it.
	access *authaccess.Live
	// cutoffs are the bulk revocations the token check and refreshes
	// enforce, fed by their local follower.
	cutoffs *authn.Cutoffs
	// admin are the administrators' commands (the admin API).
	admin *commands.AdminHandlers
	// bootstrap applies AUTHLEDGER_BOOTSTRAP_ADMIN.
	bootstrap *commands.BootstrapAdmin
	// apiKeys are the API keys and service accounts; verifier checks
	// access tokens (the token endpoints introspect with it).
	apiKeys  *apiKeyCore
	verifier *token.Verifier
	// minter derives the tokens the outbox mails; users loads the user
	// streams it renders messages from.
	minter *mailtoken.Minter
	users  *commands.Repository[*user.User]
	// webhookKey derives the webhook endpoints' signing secrets.
	webhookKey []byte
	// erase is the erasure command but for its task side and data keys
	// (app completes it); acceptTerms records consent (ADR 0034).
	erase       commands.EraseUserHandler
	acceptTerms *commands.AcceptTermsHandler
}

// loadMasterKey returns the configured master key, or creates (or reuses)
// the development key file under the data directory and says so.
func loadMasterKey(cfg config.Config, log *slog.Logger) (*keys.MasterKey, error) {
	switch {
	case cfg.Identity.MasterKey != "":
		k, err := keys.ParseMasterKey(cfg.Identity.MasterKey)
		if err != nil {
			return nil, fmt.Errorf("AUTHLEDGER_MASTER_KEY: %w", err)
		}
		return k, nil
	case cfg.Identity.MasterKeyFile != "":
		k, err := keys.LoadMasterKeyFile(cfg.Identity.MasterKeyFile)
		if err != nil {
			return nil, fmt.Errorf("AUTHLEDGER_MASTER_KEY_FILE: %w", err)
		}
		return k, nil
	}
	path := filepath.Join(cfg.DataDir, devMasterKeyFile)
	k, created, err := keys.CreateDevMasterKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("development master key (set AUTHLEDGER_MASTER_KEY or AUTHLEDGER_MASTER_KEY_FILE): %w", err)
	}
	msg := "using the development master key file; configure AUTHLEDGER_MASTER_KEY or AUTHLEDGER_MASTER_KEY_FILE in production"
	if created {
		msg = "created a development master key file; configure AUTHLEDGER_MASTER_KEY or AUTHLEDGER_MASTER_KEY_FILE in production"
	}
	log.Warn(msg, slog.String("path", path), slog.String("master_key_id", k.ID()))
	return k, nil
}

// newRegistry knows every event the identity commands load.
func newRegistry() (*events.Registry, error) {
	reg := events.NewRegistry()
	for _, f := range []func(*events.Registry) error{user.RegisterEvents, session.RegisterEvents, signingkey.RegisterEvents, rollout.RegisterEvents, signin.RegisterEvents, access.RegisterEvents, apikeydomain.RegisterEvents, auditarchive.RegisterEvents, mfa.RegisterEvents, webhook.RegisterEvents} {
		if err := f(reg); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// tokenConfig is the access-token configuration of cfg.
func tokenConfig(cfg config.Config) token.Config {
	tc := token.DefaultConfig(cfg.PublicURL)
	tc.AccessTokenTTL = cfg.Identity.AccessTokenTTL
	return tc
}

// newKeyManager builds the signing-key manager on the log (lifecycle) and
// the signing_keys table (sealed private keys).
func newKeyManager(cfg config.Config, store eventstore.Store, db *pgxpool.Pool, reg *events.Registry, master *keys.MasterKey) (*commands.KeyManager, error) {
	alg, err := keys.ParseAlgorithm(cfg.Identity.SigningAlgorithm)
	if err != nil {
		return nil, fmt.Errorf("AUTHLEDGER_SIGNING_ALG: %w", err)
	}
	ringRepo, err := commands.NewRepository(store, reg, signingkey.FromHistory)
	if err != nil {
		return nil, err
	}
	sealed, err := pgstore.New(db)
	if err != nil {
		return nil, err
	}
	return &commands.KeyManager{
		Ring:      ringRepo,
		Store:     sealed,
		Master:    master,
		Algorithm: alg,
		Retain:    tokenConfig(cfg).MaxKeyRetention(),
		Overlap:   cfg.Identity.KeyOverlap,
		Meta:      commands.Meta{Actor: events.Actor{Kind: events.ActorSystem}},
	}, nil
}

// wireIdentity builds the identity core; the returned Deps are complete
// but for nothing: Mount them on the engine.
func wireIdentity(ctx context.Context, cfg config.Config, master *keys.MasterKey, store eventstore.Store, db *pgxpool.Pool, log *slog.Logger, h hooks) (*identityCore, error) {
	reservationKey, err := master.DeriveKey(reservationKeyPurpose)
	if err != nil {
		return nil, err
	}
	upstreamKey, err := master.DeriveKey(upstreamKeyPurpose)
	if err != nil {
		return nil, err
	}
	mailKey, err := master.DeriveKey(mailTokenKeyPurpose)
	if err != nil {
		return nil, err
	}
	consoleKey, err := master.DeriveKey(consoleKeyPurpose)
	if err != nil {
		return nil, err
	}
	minter, err := mailtoken.NewMinter(mailKey)
	if err != nil {
		return nil, err
	}
	webhookKey, err := master.DeriveKey(webhookSecretKeyPurpose)
	if err != nil {
		return nil, err
	}
	auditKeys, err := deriveAuditKeys(master)
	if err != nil {
		return nil, err
	}
	auditExport, err := newExportSigner(master)
	if err != nil {
		return nil, err
	}
	reg, err := newRegistry()
	if err != nil {
		return nil, err
	}
	km, err := newKeyManager(cfg, store, db, reg, master)
	if err != nil {
		return nil, err
	}
	ring, err := km.Bootstrap(ctx)
	if err != nil {
		if errors.Is(err, keys.ErrWrongMasterKey) {
			return nil, fmt.Errorf("signing keys were sealed under another master key than the configured one (id %s): %w", master.ID(), err)
		}
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	holder := keys.NewRingHolder(ring)

	tc := tokenConfig(cfg)
	issuer, err := token.NewIssuer(tc, holder)
	if err != nil {
		return nil, err
	}
	verifier, err := token.NewVerifier(tc, holder)
	if err != nil {
		return nil, err
	}
	pc := password.DefaultConfig()
	pc.MemoryKiB = uint32(cfg.Identity.Argon2MemoryKiB)    //nolint:gosec // bounded by config validation
	pc.Iterations = uint32(cfg.Identity.Argon2Iterations)  //nolint:gosec // bounded by config validation
	pc.Parallelism = uint8(cfg.Identity.Argon2Parallelism) //nolint:gosec // bounded by config validation
	hasher, err := password.NewHasher(pc)
	if err != nil {
		return nil, fmt.Errorf("AUTHLEDGER_ARGON2_*: %w", err)
	}
	throttle := user.ThrottlePolicy{
		MaxFailures:        cfg.Identity.LockoutMaxFailures,
		AccountMaxFailures: cfg.Identity.LockoutAccountMaxFailures,
		Window:             cfg.Identity.LockoutWindow,
		Delay:              cfg.Identity.LockoutDuration,
		MaxDelay:           cfg.Identity.LockoutMaxDuration,
	}
	if err := throttle.Validate(); err != nil {
		return nil, fmt.Errorf("AUTHLEDGER_LOCKOUT_*: %w", err)
	}
	sp := session.Policy{
		IdleTimeout:      cfg.Identity.SessionIdle,
		AbsoluteLifetime: cfg.Identity.SessionLifetime,
		RefreshGrace:     cfg.Identity.RefreshGrace,
		MaxPerUser:       cfg.Identity.MaxSessionsPerUser,
	}
	if err := sp.Validate(); err != nil {
		return nil, fmt.Errorf("AUTHLEDGER_SESSION_*: %w", err)
	}

	// TOTP secrets are sealed in their own table, created here: no
	// projection owns it (the log cannot rebuild it).
	secrets, err := authmfa.NewSecrets(db, master)
	if err != nil {
		return nil, err
	}
	if err := secrets.Setup(ctx); err != nil {
		return nil, err
	}
	// Passkey ceremonies keep their challenges (digests) in a table
	// created here, like the secrets (docs/adr/0037).
	var passkeys commands.PasskeyCeremonies
	if wa := cfg.WebAuthn.Resolved(cfg.PublicURL); wa.Enabled() {
		rp, err := passkey.New(db, passkey.Config{RPID: wa.RPID, DisplayName: cfg.MFA.Issuer, Origins: wa.Origins, Now: h.clock})
		if err != nil {
			return nil, err
		}
		if err := rp.Setup(ctx); err != nil {
			return nil, err
		}
		passkeys = rp
	} else {
		log.Info("passkeys off: AUTHLEDGER_PUBLIC_URL names no domain; set AUTHLEDGER_WEBAUTHN_RP_ID")
	}
	ic := commands.IdentityConfig{
		Hasher: hasher, Issuer: issuer, ReservationKey: reservationKey, PasswordPolicy: passwordPolicy(cfg),
		Minter: minter, RequireVerifiedEmail: cfg.Account.RequireVerifiedEmail, TermsVersion: cfg.Account.TermsVersion, Now: h.clock, Logger: log,
		Throttle: throttle, SessionPolicy: sp, KnownDeviceTTL: cfg.Identity.KnownDeviceTTL,
		LocalPasswordsOff: !cfg.External.LocalPasswords, UpstreamProvision: cfg.OIDC.Provision,
		MFA: &commands.SecondFactors{Secrets: secrets, Issuer: cfg.MFA.Issuer, ChallengeTTL: cfg.MFA.ChallengeTTL,
			RequiredRoles: cfg.MFA.RequiredRoles, StepUpMaxAge: cfg.MFA.StepUpMaxAge, Passkeys: passkeys},
	}
	// The rollout stream decides each login's path once it has an event;
	// AUTHLEDGER_USE_EXTERNAL_AUTH until then, and off whatever it says.
	live, err := authrollout.NewLive(reservationKey, cfg.External.Mode)
	if err != nil {
		return nil, err
	}
	var ext *externalAuth
	if cfg.External.Enabled() {
		if ext, err = newExternalAuth(cfg, db, master); err != nil {
			return nil, err
		}
		ic.External = ext.commandConfig(cfg, log)
		ic.External.Router = live
		log.Info("external auth on: logins go to the external auth API",
			slog.String("issuer", cfg.External.Client.Issuer), slog.String("fallback", cfg.External.Fallback),
			slog.Bool("provision", cfg.External.Provision))
	}
	ih, err := commands.NewIdentityHandlers(store, reg, ic)
	if err != nil {
		if ext != nil {
			ext.client.Close()
		}
		return nil, err
	}
	rev, err := authn.NewRevocations(authn.RevocationsConfig{TTL: tc.MaxKeyRetention(), Store: store, Registry: reg})
	if err != nil {
		return nil, err
	}
	perms, err := authaccess.New(authaccess.Config{Store: store, Now: h.grantClock})
	if err != nil {
		return nil, err
	}
	cutoffs, err := authn.NewCutoffs(store, perms)
	if err != nil {
		return nil, err
	}
	ih.Refresh.Cutoffs = cutoffs
	admin, err := commands.NewAdminHandlers(store, reg, nil)
	if err != nil {
		return nil, err
	}
	bootstrap := &commands.BootstrapAdmin{
		Find:  &commands.UserByEmail{Reservations: ih.Reservations, Users: ih.Users, ReservationKey: reservationKey},
		Grant: admin.GrantRole, Store: store, Now: time.Now,
	}
	keyCore, err := newAPIKeyCore(ctx, store, db, reg, master, perms, log)
	if err != nil {
		return nil, err
	}
	authOpts := []authn.Option{authn.WithPermissions(perms), authn.WithCutoffs(cutoffs), keyCore.option()}
	if ext != nil {
		authOpts = append(authOpts, authn.WithProviderTokens(ext.providerTokens(cfg, ih, reservationKey)))
	}
	accountKey, err := master.DeriveKey(rateLimitAccountKeyPurpose)
	if err != nil {
		return nil, err
	}
	limiter, err := newRateLimiter(cfg, accountKey, log)
	if err != nil {
		return nil, err
	}
	return &identityCore{
		revocations:     rev,
		keyManager:      km,
		ring:            holder,
		claimsSync:      ih.SyncClaims,
		registry:        reg,
		auditKey:        auditKeys.chain,
		auditExport:     auditExport,
		external:        ext,
		externalRefresh: ih.ExternalRefresh,
		rollout:         live,
		upstream:        ih.Upstream,
		upstreamKey:     upstreamKey,
		consoleKey:      consoleKey,
		access:          perms,
		cutoffs:         cutoffs,
		admin:           admin,
		bootstrap:       bootstrap,
		apiKeys:         keyCore,
		verifier:        verifier,
		minter:          minter,
		webhookKey:      webhookKey,
		users:           ih.Users,
		erase: commands.EraseUserHandler{Users: ih.Users, Reservations: ih.Reservations, ReservationKey: reservationKey,
			Hasher: hasher, Revoke: admin.RevokeSessions, Now: h.clock},
		acceptTerms: &commands.AcceptTermsHandler{Users: ih.Users, Current: cfg.Account.TermsVersion, Now: h.clock},
		deps: identityhttp.Deps{
			Register:   ih.Register,
			Login:      ih.Login,
			Refresh:    ih.Refresh,
			Revoke:     ih.Revoke,
			Auth:       authn.Middleware(verifier, rev, authOpts...),
			Ring:       holder,
			PublicURL:  cfg.PublicURL,
			Algorithms: []string{km.Algorithm.String()},
			RateLimit:  limiter,
			Rollout:    ih.ConfigureRollout, RolloutState: live, ExternalAuthMode: cfg.External.Mode,
			Account: &identityhttp.AccountDeps{
				VerifyEmail: ih.VerifyEmail, ResendVerification: ih.ResendVerification, RequestReset: ih.RequestReset,
				ResetPassword: ih.ResetPassword, ChangePassword: ih.ChangePassword, UpdateProfile: ih.UpdateProfile,
				EnumerationSafe: cfg.Account.RequireVerifiedEmail,
			},
			MFA: ih.MFA,
		},
	}, nil
}

// passwordPolicy is the policy of new passwords: AUTHLEDGER_PASSWORD_MIN_LENGTH
// and the embedded list of common passwords.
func passwordPolicy(cfg config.Config) password.Policy {
	p := password.DefaultPolicy()
	p.MinLength = cfg.Account.PasswordMinLength
	return p
}

// refreshKeyRing keeps the ring current until ctx is done: it activates a
// rotated key once its overlap has passed and reloads the ring, so that
// every instance signs with, and publishes, the same keys.
func (ic *identityCore) refreshKeyRing(log *slog.Logger) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTicker(keyRingRefresh)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			if activated, err := ic.keyManager.ActivateDue(ctx); err != nil {
				log.Warn("signing keys: activation check failed", slog.String("error", err.Error()))
			} else if activated {
				log.Info("signing keys: activated a rotated key")
			}
			ring, err := ic.keyManager.LoadRing(ctx)
			if err != nil {
				log.Warn("signing keys: reload failed; keeping the current ring", slog.String("error", err.Error()))
				continue
			}
			ic.ring.Store(ring)
		}
	}
}

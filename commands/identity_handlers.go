package commands

import (
	"errors"
	"log/slog"
	"time"

	"github.com/authledger/authledger/auth/mailtoken"
	"github.com/authledger/authledger/auth/password"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/domain/mfa"
	"github.com/authledger/authledger/domain/rollout"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/signin"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
)

// IdentityConfig configures the identity commands.
type IdentityConfig struct {
	// Hasher hashes and checks passwords; required.
	Hasher *password.Hasher
	// Issuer signs the access and refresh tokens of a login; required.
	Issuer *token.Issuer
	// ReservationKey keys the e-mail reservation streams (32 bytes or more);
	// required, and the same on every instance.
	ReservationKey []byte
	// PasswordPolicy is what a new password must meet (zero means
	// password.DefaultPolicy).
	PasswordPolicy password.Policy
	// Throttle slows repeated failed logins (zero means
	// user.DefaultThrottlePolicy).
	Throttle user.ThrottlePolicy
	// SessionPolicy bounds sessions (zero means session.DefaultPolicy).
	SessionPolicy session.Policy
	// KnownDeviceTTL is how long a login's device token marks a known
	// device; 0 hands none out.
	KnownDeviceTTL time.Duration
	// LocalPasswordsOff refuses every local password like a wrong one
	// (AUTHLEDGER_LOCAL_PASSWORDS=off), the hash still spent.
	LocalPasswordsOff bool
	// External, when set, sends logins to the external auth API and has
	// revocations delete the session's provider tokens; nil keeps every
	// login on the local password hashes.
	External *ExternalConfig
	// Minter derives the tokens mailed to users (verification, reset);
	// nil leaves registration without a verification request and the
	// account-security commands unbuilt.
	Minter *mailtoken.Minter
	// RequireVerifiedEmail refuses password logins of unverified
	// addresses and makes registration enumeration-safe
	// (AUTHLEDGER_REQUIRE_VERIFIED_EMAIL).
	RequireVerifiedEmail bool
	// TermsVersion (AUTHLEDGER_TERMS_VERSION) is the terms version
	// registrations accept and password logins require ("" for none).
	TermsVersion string
	// Now is the clock of the account-security commands (token expiry);
	// nil means time.Now.
	Now func() time.Time
	// Logger receives the link requests whose background append failed
	// (nil: discarded).
	Logger *slog.Logger
	// UpstreamProvision creates a user at the first upstream sign-in of a
	// verified address no account holds (AUTHLEDGER_OIDC_PROVISION).
	UpstreamProvision bool
	// MFA, when set, turns on second factors (docs/adr/0032): its Secrets
	// are required; Factors, Users and Now are filled in here.
	MFA *SecondFactors
}

// IdentityHandlers are the identity commands, wired to one store.
type IdentityHandlers struct {
	Register   *RegisterHandler
	Login      *LoginHandler
	Refresh    *RefreshHandler
	Revoke     *RevokeSessionHandler
	SyncClaims *SyncSessionClaimsHandler
	// ExternalRefresh records the vault refresher's renewals.
	ExternalRefresh *RecordExternalRefreshHandler
	// ConfigureRollout changes the staged rollout of external login.
	ConfigureRollout *ConfigureRolloutHandler
	// LinkExternal links accounts to external identities in bulk
	// (`authledger users link`); nil without external auth.
	LinkExternal *LinkExternalIdentityHandler
	// Upstream signs in with upstream providers (OIDC, GitHub) and
	// unlinks identities; its store needs the signin events registered.
	Upstream *UpstreamSignInHandler
	// The account-security commands (nil without IdentityConfig.Minter):
	// email verification, password reset and change, profile update.
	VerifyEmail        *VerifyEmailHandler
	ResendVerification *RequestEmailVerificationHandler
	RequestReset       *RequestPasswordResetHandler
	ResetPassword      *ResetPasswordHandler
	ChangePassword     *ChangePasswordHandler
	UpdateProfile      *UpdateProfileHandler
	// MFA are the second-factor commands (nil without IdentityConfig.MFA).
	MFA *SecondFactors

	Users        *Repository[*user.User]
	Reservations *Repository[*user.EmailReservation]
	Sessions     *Repository[*session.Session]
	// ExternalIdentities are the external-identity reservation streams.
	ExternalIdentities *Repository[*user.ExternalIdentityReservation]
}

// NewIdentityHandlers builds every identity command on store. registry must
// hold the user, session and rollout events.
func NewIdentityHandlers(store eventstore.Store, registry *events.Registry, cfg IdentityConfig) (*IdentityHandlers, error) {
	var errs []error
	if cfg.Hasher == nil {
		errs = append(errs, errors.New("commands: identity handlers need a password hasher"))
	}
	if cfg.Issuer == nil {
		errs = append(errs, errors.New("commands: identity handlers need a token issuer"))
	}
	if len(cfg.ReservationKey) < 32 {
		errs = append(errs, errors.New("commands: the reservation key must be at least 32 bytes"))
	}
	if cfg.External != nil {
		errs = append(errs, cfg.External.validate())
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.PasswordPolicy == (password.Policy{}) {
		cfg.PasswordPolicy = password.DefaultPolicy()
	}
	if cfg.Throttle == (user.ThrottlePolicy{}) {
		cfg.Throttle = user.DefaultThrottlePolicy()
	}
	if cfg.SessionPolicy == (session.Policy{}) {
		cfg.SessionPolicy = session.DefaultPolicy()
	}
	if err := errors.Join(cfg.PasswordPolicy.Validate(), cfg.Throttle.Validate(), cfg.SessionPolicy.Validate()); err != nil {
		return nil, err
	}
	users, err := NewRepository(store, registry, user.FromHistory)
	if err != nil {
		return nil, err
	}
	reservations, err := NewRepository(store, registry, user.ReservationFromHistory)
	if err != nil {
		return nil, err
	}
	sessions, err := NewRepository(store, registry, session.FromHistory)
	if err != nil {
		return nil, err
	}
	identities, err := NewRepository(store, registry, user.ExternalReservationFromHistory)
	if err != nil {
		return nil, err
	}
	rollouts, err := NewRepository(store, registry, rollout.FromHistory)
	if err != nil {
		return nil, err
	}
	login := &LoginHandler{Reservations: reservations, Users: users, Sessions: sessions, Hasher: cfg.Hasher,
		Issuer: cfg.Issuer, Throttle: cfg.Throttle, KnownDeviceTTL: cfg.KnownDeviceTTL,
		SessionPolicy: cfg.SessionPolicy, ReservationKey: cfg.ReservationKey, LocalPasswordsOff: cfg.LocalPasswordsOff}
	revoke := &RevokeSessionHandler{Sessions: sessions}
	var link *LinkExternalIdentityHandler
	if cfg.External != nil {
		login.external = newExternalLogin(*cfg.External, identities)
		revoke.Vault = cfg.External.Vault
		link = &LinkExternalIdentityHandler{Identities: identities, Users: users, Reservations: reservations,
			ReservationKey: cfg.ReservationKey, Provider: cfg.External.ProviderName}
	}
	flows, err := NewRepository(store, registry, signin.FlowFromHistory)
	if err != nil {
		return nil, err
	}
	codes, err := NewRepository(store, registry, signin.CodeFromHistory)
	if err != nil {
		return nil, err
	}
	login.RequireVerifiedEmail = cfg.RequireVerifiedEmail
	if cfg.MFA != nil {
		if cfg.MFA.Secrets == nil {
			return nil, errors.New("commands: second factors need a secret store")
		}
		factors, err := NewRepository(store, registry, mfa.FromHistory)
		if err != nil {
			return nil, err
		}
		m := *cfg.MFA
		m.Factors, m.Users = factors, users
		if m.Minter == nil {
			m.Minter = cfg.Minter
		}
		if m.Now == nil {
			m.Now = cfg.Now
		}
		login.MFA = &m
	}
	login.TermsVersion = cfg.TermsVersion
	register := &RegisterHandler{Reservations: reservations, Users: users, Hasher: cfg.Hasher,
		Policy: cfg.PasswordPolicy, ReservationKey: cfg.ReservationKey, Minter: cfg.Minter,
		EnumerationSafe: cfg.RequireVerifiedEmail, TermsVersion: cfg.TermsVersion, Now: cfg.Now}
	ih := &IdentityHandlers{
		Upstream:           &UpstreamSignInHandler{Login: login, Identities: identities, Flows: flows, Codes: codes, Provision: cfg.UpstreamProvision},
		Register:           register,
		Login:              login,
		Refresh:            &RefreshHandler{Sessions: sessions, Users: users, Issuer: cfg.Issuer, SessionPolicy: cfg.SessionPolicy},
		Revoke:             revoke,
		SyncClaims:         &SyncSessionClaimsHandler{Users: users, Sessions: sessions},
		ExternalRefresh:    &RecordExternalRefreshHandler{Sessions: sessions},
		ConfigureRollout:   &ConfigureRolloutHandler{Rollouts: rollouts},
		LinkExternal:       link,
		Users:              users,
		Reservations:       reservations,
		Sessions:           sessions,
		ExternalIdentities: identities,
		MFA:                login.MFA,
	}
	if cfg.Minter == nil {
		return ih, nil
	}
	cutoffs, err := NewRepository(store, registry, session.CutoffsFromHistory)
	if err != nil {
		return nil, err
	}
	clock := cfg.Now
	if clock == nil {
		clock = time.Now
	}
	ih.VerifyEmail = &VerifyEmailHandler{Users: users, Reservations: reservations, ReservationKey: cfg.ReservationKey, Now: clock}
	links := &MailedLinks{Users: users, Reservations: reservations, ReservationKey: cfg.ReservationKey, Minter: cfg.Minter, Now: clock, Logger: cfg.Logger}
	ih.ResendVerification = &RequestEmailVerificationHandler{links}
	ih.RequestReset = &RequestPasswordResetHandler{links}
	ih.ResetPassword = &ResetPasswordHandler{Users: users, Hasher: cfg.Hasher, Policy: cfg.PasswordPolicy,
		Revoke: &RevokeSessionsBeforeHandler{Cutoffs: cutoffs, Now: clock}, Now: clock}
	ih.ChangePassword = &ChangePasswordHandler{Users: users, Hasher: cfg.Hasher, Policy: cfg.PasswordPolicy, Now: clock}
	ih.UpdateProfile = &UpdateProfileHandler{Users: users, Minter: cfg.Minter, Now: clock}
	return ih, nil
}

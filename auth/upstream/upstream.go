// Package upstream signs users in with upstream identity providers: any
// OpenID provider through discovery (coreos/go-oidc), Microsoft Entra's
// multi-tenant issuers, and GitHub (OAuth 2.0 and its REST API), each
// through golang.org/x/oauth2 for the authorization code flow with PKCE
// S256. Every request to a provider goes through its own
// external.Transport (timeout, retries on transport errors and 5xx only, a
// breaker per provider), so a provider being down affects nobody else.
//
// The package knows nothing of our users: a Provider turns a callback's
// code into a verified Identity; package commands decides whom it signs
// in (docs/oidc-providers.md, ADR 0027).
package upstream

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/oauth2"

	"github.com/authledger/authledger/auth/external"
)

var (
	// ErrInvalidToken: the provider's ID token did not verify (signature,
	// issuer, audience, expiry, nonce, or Entra's tenant rule).
	ErrInvalidToken = errors.New("upstream: the provider's token does not verify")
	// ErrCodeRejected: the token endpoint refused the code (used, expired,
	// or a PKCE verifier that does not match).
	ErrCodeRejected = errors.New("upstream: the provider refused the authorization code")
	// ErrNotAllowed: the account is not one this deployment admits (an
	// email domain, tenant or organisation outside the configured lists).
	ErrNotAllowed = errors.New("upstream: the provider's account is not admitted")
	// ErrNoEmail: the provider names no address for the account.
	ErrNoEmail = errors.New("upstream: the provider names no email address")
)

// Kinds of provider.
const (
	KindOIDC   = "oidc"
	KindEntra  = "entra"
	KindGitHub = "github"
)

// Identity is a verified account of a provider.
type Identity struct {
	// Provider is the configured provider name.
	Provider string
	// Subject is the provider's stable id of the account (OIDC sub;
	// Entra tid:oid; GitHub's numeric user id).
	Subject string
	Email   string
	// EmailVerified is the provider's word that the address is the
	// account holder's (email_verified; Entra's xms_edov; GitHub's
	// verified flag on the primary address).
	EmailVerified bool
	Name          string
}

// Provider is one configured upstream provider.
type Provider interface {
	Name() string
	DisplayName() string
	// Prepare makes the provider ready to start a flow (an OpenID
	// provider's discovery, cached after the first success); it fails
	// fast, with external.ErrUnavailable, while the breaker is open.
	Prepare(ctx context.Context) error
	// AuthCodeURL is where the browser goes: with state, nonce (OpenID
	// providers) and the S256 challenge of verifier.
	AuthCodeURL(state, nonce, verifier string) string
	// Exchange trades the callback's code (with the PKCE verifier) for
	// the account, verifying the ID token and its nonce.
	Exchange(ctx context.Context, code, verifier, nonce string) (Identity, error)
	BreakerState() external.BreakerState
}

// Config is one provider's settings (AUTHLEDGER_OIDC_<NAME>_*).
type Config struct {
	// Name is the provider's name in URLs, links and amr: lower-case
	// letters, digits and '-', at most 32.
	Name string
	// Kind is KindOIDC, KindEntra or KindGitHub.
	Kind string
	// Issuer is the OpenID issuer (discovery at Issuer +
	// /.well-known/openid-configuration); for Entra the configured
	// authority, which may be /common, /organizations or a tenant; for
	// GitHub its web URL (https://github.com by default).
	Issuer string
	// APIURL is GitHub's API (https://api.github.com by default).
	APIURL       string
	ClientID     string
	ClientSecret string
	Scopes       []string
	DisplayName  string
	// AllowedDomains, when set, admits only addresses in these domains.
	AllowedDomains []string
	// Tenants are the Entra tenant ids admitted; "*" admits any.
	Tenants []string
	// Org, for GitHub, admits only active members of this organisation.
	Org string
	// RedirectURL is our callback for this provider.
	RedirectURL string
	// AllowInsecure accepts http:// issuers (tests only).
	AllowInsecure bool
	// Transport is the resilience of every request to the provider.
	Transport external.TransportConfig
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// reservedNames are RFC 8176 amr values: a provider's name is its amr, so
// it must not pass for another method.
var reservedNames = []string{"pwd", "otp", "mfa", "hwk", "swk", "sms", "pin", "kba", "fpt", "face", "iris", "user", "pop", "rba", "sc", "tel", "vbm", "wia", "mca", "geo", "retina", "password", "external"}

// Validate reports every problem at once, naming the variables.
func (c Config) Validate() error {
	var errs []error
	v := "AUTHLEDGER_OIDC_" + strings.ToUpper(strings.ReplaceAll(c.Name, "-", "_")) + "_"
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if !namePattern.MatchString(c.Name) || slices.Contains(reservedNames, c.Name) {
		bad("AUTHLEDGER_OIDC_PROVIDERS: %q must be lower-case letters, digits and '-' (at most 32) and not an amr value like pwd", c.Name)
	}
	switch c.Kind {
	case KindOIDC, KindEntra, KindGitHub:
	default:
		bad("%sKIND: %q is not oidc, entra or github", v, c.Kind)
	}
	if c.Kind != KindGitHub || c.Issuer != "" {
		if err := checkURL(c.Issuer, c.AllowInsecure); err != nil {
			bad("%sISSUER: %v", v, err)
		}
	}
	if c.APIURL != "" {
		if err := checkURL(c.APIURL, c.AllowInsecure); err != nil {
			bad("%sAPI_URL: %v", v, err)
		}
	}
	if c.ClientID == "" {
		bad("%sCLIENT_ID is required", v)
	}
	if c.ClientSecret == "" {
		bad("%sCLIENT_SECRET (or %sCLIENT_SECRET_FILE) is required", v, v)
	}
	if c.Kind == KindEntra && len(c.Tenants) == 0 {
		bad("%sTENANTS is required for entra: the tenant ids admitted, or * for any (personal accounts are tenant 9188040d-6c67-4c5b-b112-36a304b66dad)", v)
	}
	if c.RedirectURL == "" {
		bad("%s: no callback URL (AUTHLEDGER_PUBLIC_URL)", c.Name)
	}
	return errors.Join(errs...)
}

func checkURL(raw string, insecure bool) error {
	switch {
	case raw == "":
		return errors.New("is required")
	case strings.HasPrefix(raw, "https://"):
		return nil
	case strings.HasPrefix(raw, "http://") && insecure:
		return nil
	}
	return fmt.Errorf("%q must be an https:// URL", raw)
}

// New builds the provider of cfg. Nothing is fetched yet: discovery
// happens at the first sign-in, so a provider down at start-up delays no
// one.
func New(cfg Config, m *Metrics) (Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DisplayName == "" {
		cfg.DisplayName = cfg.Name
	}
	cfg.Transport.Name = "upstream " + cfg.Name
	cfg.Transport.OnAttempt = m.attempt(cfg.Name)
	cfg.Transport.OnBreaker = m.transition(cfg.Name)
	t, err := external.NewTransport(cfg.Transport)
	if err != nil {
		return nil, err
	}
	var p Provider
	if cfg.Kind == KindGitHub {
		p = newGitHub(cfg, t)
	} else {
		p = newOIDC(cfg, t)
	}
	m.watch(p)
	return p, nil
}

// base is what every kind shares.
type base struct {
	cfg       Config
	transport *external.Transport
}

func (b *base) Name() string                        { return b.cfg.Name }
func (b *base) DisplayName() string                 { return b.cfg.DisplayName }
func (b *base) BreakerState() external.BreakerState { return b.transport.BreakerState() }

// ctx carries the provider's resilient client to oauth2 and go-oidc.
func (b *base) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, b.transport.Client())
}

// admitted applies the allowed-domains list.
func (b *base) admitted(id Identity) error {
	if len(b.cfg.AllowedDomains) == 0 {
		return nil
	}
	_, domain, ok := strings.Cut(id.Email, "@")
	if ok && id.EmailVerified && slices.ContainsFunc(b.cfg.AllowedDomains, func(d string) bool { return strings.EqualFold(d, domain) }) {
		return nil
	}
	return fmt.Errorf("%w: the address is not in an allowed domain", ErrNotAllowed)
}

// exchangeError classifies a failed code exchange: unavailable stays
// unavailable (external.ErrUnavailable); the provider refusing the code
// (invalid_grant, a wrong verifier) is ErrCodeRejected.
func exchangeError(err error) error {
	if errors.Is(err, external.ErrUnavailable) {
		return err
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return fmt.Errorf("%w: %s", ErrCodeRejected, re.ErrorCode)
	}
	return fmt.Errorf("%w: %v", ErrCodeRejected, err)
}

package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/authledger/authledger/auth/upstream"
)

// OIDC is the configuration of sign-in with upstream providers
// (docs/oidc-providers.md). The providers' own variables,
// AUTHLEDGER_OIDC_<NAME>_*, are read for each name of
// AUTHLEDGER_OIDC_PROVIDERS; they are not in the variable table because
// their names depend on it.
type OIDC struct {
	// Names are AUTHLEDGER_OIDC_PROVIDERS, in order.
	Names []string
	// AllowedRedirects are the exact redirect_uri values a flow may
	// return to (AUTHLEDGER_ALLOWED_REDIRECTS).
	AllowedRedirects []string
	// Provision creates users at a first sign-in with a verified address
	// no account holds (AUTHLEDGER_OIDC_PROVISION).
	Provision bool
	// Timeout bounds each attempt of a request to a provider.
	Timeout time.Duration
	// Providers are the providers' settings, RedirectURL filled from
	// AUTHLEDGER_PUBLIC_URL.
	Providers []upstream.Config
}

func splitList(v string) []string {
	var out []string
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// providerVar is the name of a provider's variable.
func providerVar(name, suffix string) string {
	return "AUTHLEDGER_OIDC_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_" + suffix
}

// loadProviders reads each provider's variables through lookup.
func (o *OIDC) loadProviders(lookup func(string) (string, bool), publicURL string) error {
	var errs []error
	get := func(name, suffix string) string {
		v, _ := lookup(providerVar(name, suffix))
		return strings.TrimSpace(v)
	}
	for _, name := range o.Names {
		kind := strings.ToLower(get(name, "KIND"))
		if kind == "" {
			kind = upstream.KindOIDC
			if name == "github" {
				kind = upstream.KindGitHub
			}
		}
		secret := get(name, "CLIENT_SECRET")
		if file := get(name, "CLIENT_SECRET_FILE"); file != "" {
			b, err := os.ReadFile(file) //nolint:gosec // an operator's path
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", providerVar(name, "CLIENT_SECRET_FILE"), err))
			}
			secret = strings.TrimSpace(string(b))
		}
		insecure := strings.EqualFold(get(name, "ALLOW_INSECURE"), "true")
		var scopes []string
		if s := get(name, "SCOPES"); s != "" {
			scopes = strings.Fields(strings.ReplaceAll(s, ",", " "))
		}
		o.Providers = append(o.Providers, upstream.Config{
			Name: name, Kind: kind, Issuer: get(name, "ISSUER"), APIURL: get(name, "API_URL"),
			ClientID: get(name, "CLIENT_ID"), ClientSecret: secret, Scopes: scopes,
			DisplayName: get(name, "DISPLAY_NAME"), AllowedDomains: splitList(get(name, "ALLOWED_DOMAINS")),
			Tenants: splitList(get(name, "TENANTS")), Org: get(name, "ORG"), AllowInsecure: insecure,
			RedirectURL: strings.TrimRight(publicURL, "/") + "/v1/auth/oidc/" + name + "/callback",
		})
		o.Providers[len(o.Providers)-1].Transport.Timeout = o.Timeout
	}
	return errors.Join(errs...)
}

func (o OIDC) validate(bad func(name, format string, args ...any), errs *[]error) {
	seen := map[string]bool{}
	for _, n := range o.Names {
		if seen[n] {
			bad("AUTHLEDGER_OIDC_PROVIDERS", "%q is named twice", n)
		}
		seen[n] = true
	}
	for _, p := range o.Providers {
		if err := p.Validate(); err != nil {
			*errs = append(*errs, err)
		}
	}
	for _, r := range o.AllowedRedirects {
		if !strings.HasPrefix(r, "https://") && !strings.HasPrefix(r, "http://") || strings.Contains(r, "#") {
			bad("AUTHLEDGER_ALLOWED_REDIRECTS", "%q must be an absolute http(s) URL without a fragment", r)
		}
	}
	if len(o.Names) > 0 && len(o.AllowedRedirects) == 0 {
		bad("AUTHLEDGER_ALLOWED_REDIRECTS", "required with AUTHLEDGER_OIDC_PROVIDERS: where a sign-in may return")
	}
	if o.Timeout < 100*time.Millisecond || o.Timeout > time.Minute {
		bad("AUTHLEDGER_OIDC_TIMEOUT", "%s is outside 100ms to 60s", o.Timeout)
	}
}

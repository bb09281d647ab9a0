package config

import (
	"net"
	"net/url"
	"slices"
	"strings"
)

// WebAuthn configures passkeys (docs/adr/0037). Empty fields follow
// AUTHLEDGER_PUBLIC_URL: its host is the relying party id, its origin
// the one origin accepted.
type WebAuthn struct {
	// RPID is the relying party id: a registrable domain suffix of every
	// origin. A passkey is bound to it for good: changing it orphans
	// every registered passkey.
	RPID string
	// Origins are the web origins an assertion may come from.
	Origins []string
}

var webauthnVars = []Var{
	{
		Name:        "AUTHLEDGER_WEBAUTHN_RP_ID",
		DefaultDoc:  "(host of AUTHLEDGER_PUBLIC_URL)",
		Description: "WebAuthn relying party id of passkeys (docs/adr/0037): a domain every origin is on. Passkeys are bound to it: changing it orphans every registered passkey.",
		set:         func(c *Config, v string) error { c.WebAuthn.RPID = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_WEBAUTHN_ORIGINS",
		DefaultDoc:  "(origin of AUTHLEDGER_PUBLIC_URL)",
		Description: "Comma-separated web origins (scheme://host[:port]) passkey ceremonies may come from; an assertion from any other origin is refused.",
		set: func(c *Config, v string) error {
			c.WebAuthn.Origins = nil
			for o := range strings.SplitSeq(v, ",") {
				if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" && !slices.Contains(c.WebAuthn.Origins, o) {
					c.WebAuthn.Origins = append(c.WebAuthn.Origins, o)
				}
			}
			return nil
		},
	},
}

// Resolved fills the empty fields from publicURL.
func (w WebAuthn) Resolved(publicURL string) WebAuthn {
	u, err := url.Parse(publicURL)
	if err != nil {
		return w
	}
	if w.RPID == "" {
		w.RPID = u.Hostname()
	}
	if len(w.Origins) == 0 && u.Scheme != "" && u.Host != "" {
		w.Origins = []string{u.Scheme + "://" + u.Host}
	}
	return w
}

// Enabled reports whether passkeys can work: WebAuthn needs a domain as
// the relying party id, never an IP address (a deployment reached by IP
// has passkeys off until AUTHLEDGER_WEBAUTHN_RP_ID names its domain).
func (w WebAuthn) Enabled() bool { return w.RPID != "" && net.ParseIP(w.RPID) == nil }

func (w WebAuthn) validate(publicURL string, bad func(name, format string, args ...any)) {
	r := w.Resolved(publicURL)
	if w.RPID == "" && !r.Enabled() {
		return // passkeys off: AUTHLEDGER_PUBLIC_URL names an IP address
	}
	if !r.Enabled() || strings.ContainsAny(r.RPID, ":/ ") {
		bad("AUTHLEDGER_WEBAUTHN_RP_ID", "must be a host name (no scheme, port or path)")
	}
	for _, o := range r.Origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad("AUTHLEDGER_WEBAUTHN_ORIGINS", "%q is not an origin (scheme://host[:port])", o)
			continue
		}
		if h := u.Hostname(); h != r.RPID && !strings.HasSuffix(h, "."+r.RPID) {
			bad("AUTHLEDGER_WEBAUTHN_ORIGINS", "%q is not on the relying party id %q", o, r.RPID)
		}
	}
}

// init places webauthnVars after the second-factor variables.
func init() {
	at := len(table)
	for i, v := range table {
		if v.Name == "AUTHLEDGER_MFA_TOKEN_TTL" {
			at = i + 1
		}
	}
	table = append(table[:at], append(slices.Clone(webauthnVars), table[at:]...)...)
}

package upstream

import (
	"errors"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/authledger/authledger/auth/external"
)

const consumers = "9188040d-6c67-4c5b-b112-36a304b66dad"

func entraProvider(tenants ...string) *oidcProvider {
	return &oidcProvider{base: base{cfg: Config{Name: "entra", Kind: KindEntra, Tenants: tenants}}}
}

func TestEntraTenantRule(t *testing.T) {
	d := &discovered{issuer: "https://login.microsoftonline.com/{tenantid}/v2.0"}
	iss := func(tid string) *oidc.IDToken {
		return &oidc.IDToken{Issuer: "https://login.microsoftonline.com/" + tid + "/v2.0", Subject: "pairwise"}
	}
	const work, other = "72f988bf-86f1-41af-91ab-2d7cd011db47", "0d7b8f7c-1f6a-4f7e-9d36-3a2b1c0e9f11"
	p := entraProvider(work, consumers)
	for _, tc := range []struct {
		name     string
		p        *oidcProvider
		idt      *oidc.IDToken
		tid, oid string
		edov     bool
		want     error
		subject  string
		verified bool
	}{
		{"work tenant", p, iss(work), work, "oid-1", true, nil, work + ":oid-1", true},
		{"personal account", p, iss(consumers), consumers, "oid-2", false, nil, consumers + ":oid-2", false},
		{"tenant not configured", p, iss(other), other, "oid-3", true, ErrNotAllowed, "", false},
		{"any tenant", entraProvider("*"), iss(other), other, "oid-3", true, nil, other + ":oid-3", true},
		{"iss of another tenant", p, iss(consumers), work, "oid-4", true, ErrInvalidToken, "", false},
		{"no tid", p, iss(work), "", "oid-5", true, ErrInvalidToken, "", false},
		{"no oid keeps sub", p, iss(work), work, "", true, nil, "pairwise", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.p.entra(d, tc.idt, Identity{Subject: tc.idt.Subject, EmailVerified: true}, tc.tid, tc.oid, tc.edov)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if err == nil && (id.Subject != tc.subject || id.EmailVerified != tc.verified) {
				t.Fatalf("identity %+v, want subject %s verified %v", id, tc.subject, tc.verified)
			}
		})
	}
}

func TestAllowedDomains(t *testing.T) {
	b := &base{cfg: Config{AllowedDomains: []string{"example.com", "Corp.Example"}}}
	for _, tc := range []struct {
		email    string
		verified bool
		ok       bool
	}{
		{"ann@example.com", true, true},
		{"ann@corp.example", true, true},
		{"ann@EXAMPLE.COM", true, true},
		{"ann@example.com", false, false}, // an unverified address proves no domain
		{"ann@sub.example.com", true, false},
		{"ann@example.com.evil", true, false},
		{"no-at-sign", true, false},
	} {
		err := b.admitted(Identity{Email: tc.email, EmailVerified: tc.verified})
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrNotAllowed)) {
			t.Errorf("%s verified=%v: %v", tc.email, tc.verified, err)
		}
	}
	if err := (&base{}).admitted(Identity{Email: "x@anything.example"}); err != nil {
		t.Fatalf("no list admits all: %v", err)
	}
}

func TestTruthy(t *testing.T) {
	for v, want := range map[any]bool{true: true, false: false, "true": true, "True": true, "false": false, "1": false, nil: false, 1.0: false} {
		if truthy(v) != want {
			t.Errorf("truthy(%v) != %v", v, want)
		}
	}
}

func TestExchangeError(t *testing.T) {
	unavailable := &external.Error{Op: "POST /token", Kind: external.ErrUnavailable, Reason: external.ReasonTransport}
	if err := exchangeError(unavailable); !errors.Is(err, external.ErrUnavailable) || errors.Is(err, ErrCodeRejected) {
		t.Fatalf("unavailable: %v", err)
	}
	if err := exchangeError(&oauth2.RetrieveError{ErrorCode: "invalid_grant"}); !errors.Is(err, ErrCodeRejected) || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("invalid_grant: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Name: "google", Kind: KindOIDC, Issuer: "https://accounts.google.com", ClientID: "id", ClientSecret: "s", RedirectURL: "https://id.example/cb"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	gh := Config{Name: "github", Kind: KindGitHub, ClientID: "id", ClientSecret: "s", RedirectURL: "https://id.example/cb"}
	if err := gh.Validate(); err != nil {
		t.Fatalf("github needs no issuer: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"amr name", func(c *Config) { c.Name = "pwd" }, "AUTHLEDGER_OIDC_PROVIDERS"},
		{"upper case", func(c *Config) { c.Name = "Google" }, "AUTHLEDGER_OIDC_PROVIDERS"},
		{"kind", func(c *Config) { c.Kind = "saml" }, "AUTHLEDGER_OIDC_GOOGLE_KIND"},
		{"http issuer", func(c *Config) { c.Issuer = "http://accounts.google.com" }, "AUTHLEDGER_OIDC_GOOGLE_ISSUER"},
		{"no secret", func(c *Config) { c.ClientSecret = "" }, "CLIENT_SECRET_FILE"},
		{"entra without tenants", func(c *Config) { c.Kind = KindEntra }, "AUTHLEDGER_OIDC_GOOGLE_TENANTS"},
	} {
		c := ok
		tc.change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want it to name %s", tc.name, err, tc.want)
		}
	}
	insecure := ok
	insecure.Issuer, insecure.AllowInsecure = "http://127.0.0.1:5556", true
	if err := insecure.Validate(); err != nil {
		t.Fatalf("insecure allowed: %v", err)
	}
}

package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/authledger/authledger/config"
)

// With the flag off, nothing of the external API is needed, and a bad
// value of one of its settings does not stop the server.
func TestExternalAuthOffNeedsNoneOfItsSettings(t *testing.T) {
	t.Parallel()
	c, err := config.Load(lookup(map[string]string{"DATABASE_URL": "postgres://db/a", "AUTHLEDGER_EXTERNAL_AUTH_URL": "http://plain.example"}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.External.Enabled() || c.External.Mode != config.ExternalAuthOff || c.External.Fallback != config.FallbackNone || c.External.Provision || !c.External.LocalPasswords {
		t.Errorf("defaults: %+v", c.External)
	}
}

func TestExternalAuthOn(t *testing.T) {
	t.Parallel()
	c, err := config.Load(lookup(map[string]string{
		"DATABASE_URL":                           "postgres://db/a",
		"AUTHLEDGER_USE_EXTERNAL_AUTH":           "ON",
		"AUTHLEDGER_EXTERNAL_AUTH_URL":           "https://auth.example.com",
		"AUTHLEDGER_EXTERNAL_AUTH_ISSUER":        "https://login.example.com/tenant/v2.0",
		"AUTHLEDGER_EXTERNAL_AUTH_AUDIENCE":      "api://authledger",
		"AUTHLEDGER_EXTERNAL_AUTH_FALLBACK":      "local",
		"AUTHLEDGER_EXTERNAL_AUTH_PROVISION":     "true",
		"AUTHLEDGER_EXTERNAL_AUTH_TIMEOUT":       "2s",
		"AUTHLEDGER_TOKEN_REFRESH_BUFFER":        "10m",
		"AUTHLEDGER_EXTERNAL_AUTH_SUBJECT_CLAIM": "oid",
		"AUTHLEDGER_EXTERNAL_AUTH_CA_FILE":       "/etc/corp/ca.pem",
	}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	e := c.External
	if !e.Enabled() || e.Fallback != config.FallbackLocal || !e.Provision || e.Client.URL != "https://auth.example.com" ||
		e.Client.LoginPath != "/api/auth/login" || e.Client.MePath != "/api/auth/me" || e.Client.Timeout != 2*time.Second ||
		e.Client.RefreshBuffer != 10*time.Minute || e.Client.AllowInsecure || e.Client.Mapping.SubjectClaim != "oid" ||
		e.Client.Mapping.AccessToken != "access_token" || e.CAFile != "/etc/corp/ca.pem" {
		t.Errorf("external: %+v", e)
	}
}

// Every problem at once, each naming its variable.
func TestExternalAuthRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"on without the provider", map[string]string{"AUTHLEDGER_USE_EXTERNAL_AUTH": "on"},
			[]string{"AUTHLEDGER_EXTERNAL_AUTH_URL", "AUTHLEDGER_EXTERNAL_AUTH_ISSUER", "AUTHLEDGER_EXTERNAL_AUTH_AUDIENCE"}},
		{"plain http", map[string]string{"AUTHLEDGER_USE_EXTERNAL_AUTH": "on", "AUTHLEDGER_EXTERNAL_AUTH_URL": "http://auth.example.com",
			"AUTHLEDGER_EXTERNAL_AUTH_ISSUER": "https://login.example.com", "AUTHLEDGER_EXTERNAL_AUTH_AUDIENCE": "a"},
			[]string{"AUTHLEDGER_EXTERNAL_AUTH_URL", "plain http"}},
		{"staged without the provider", map[string]string{"AUTHLEDGER_USE_EXTERNAL_AUTH": "staged"}, []string{"AUTHLEDGER_EXTERNAL_AUTH_URL"}},
		{"unknown mode and fallback", map[string]string{"AUTHLEDGER_USE_EXTERNAL_AUTH": "maybe", "AUTHLEDGER_EXTERNAL_AUTH_FALLBACK": "ldap"},
			[]string{"AUTHLEDGER_USE_EXTERNAL_AUTH", "AUTHLEDGER_EXTERNAL_AUTH_FALLBACK"}},
		{"local passwords off without external auth", map[string]string{"AUTHLEDGER_LOCAL_PASSWORDS": "off"}, []string{"AUTHLEDGER_LOCAL_PASSWORDS", "nobody"}},
		{"local passwords off with the local fallback", map[string]string{"AUTHLEDGER_LOCAL_PASSWORDS": "off", "AUTHLEDGER_EXTERNAL_AUTH_FALLBACK": "local"}, []string{"AUTHLEDGER_LOCAL_PASSWORDS", "contradicts"}},
		{"not a boolean", map[string]string{"AUTHLEDGER_EXTERNAL_AUTH_PROVISION": "sometimes"}, []string{"AUTHLEDGER_EXTERNAL_AUTH_PROVISION", "not a boolean"}},
		{"timeout out of range", map[string]string{"AUTHLEDGER_USE_EXTERNAL_AUTH": "on", "AUTHLEDGER_EXTERNAL_AUTH_URL": "https://auth.example.com",
			"AUTHLEDGER_EXTERNAL_AUTH_ISSUER": "https://login.example.com", "AUTHLEDGER_EXTERNAL_AUTH_AUDIENCE": "a", "AUTHLEDGER_EXTERNAL_AUTH_TIMEOUT": "5m"},
			[]string{"AUTHLEDGER_EXTERNAL_AUTH_TIMEOUT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.env["DATABASE_URL"] = "postgres://db/a"
			_, err := config.Load(lookup(tc.env))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

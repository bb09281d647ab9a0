package config_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/authledger/authledger/config"
)

// The relying party follows AUTHLEDGER_PUBLIC_URL unless named; an IP
// address turns passkeys off rather than failing the start; an origin
// off the relying party id, or an IP named as the id, is refused.
func TestWebAuthnRelyingParty(t *testing.T) {
	t.Parallel()
	c, err := config.Load(lookup(map[string]string{"DATABASE_URL": "postgres://db/a", "AUTHLEDGER_PUBLIC_URL": "https://id.example.com:8443/"}))
	if err != nil {
		t.Fatal(err)
	}
	wa := c.WebAuthn.Resolved(c.PublicURL)
	if wa.RPID != "id.example.com" || !slices.Equal(wa.Origins, []string{"https://id.example.com:8443"}) || !wa.Enabled() {
		t.Fatalf("resolved %+v", wa)
	}
	c, err = config.Load(lookup(map[string]string{"DATABASE_URL": "postgres://db/a", "AUTHLEDGER_PUBLIC_URL": "http://127.0.0.1:8080"}))
	if err != nil || c.WebAuthn.Resolved(c.PublicURL).Enabled() {
		t.Fatalf("an IP public URL: %v %+v", err, c.WebAuthn)
	}
	_, err = config.Load(lookup(map[string]string{"DATABASE_URL": "postgres://db/a", "AUTHLEDGER_WEBAUTHN_RP_ID": "example.com",
		"AUTHLEDGER_WEBAUTHN_ORIGINS": "https://app.example.com, https://evil.example.net"}))
	if err == nil || !strings.Contains(err.Error(), "evil.example.net") || strings.Contains(err.Error(), "app.example.com\"") {
		t.Fatalf("an origin off the relying party: %v", err)
	}
	if _, err = config.Load(lookup(map[string]string{"DATABASE_URL": "postgres://db/a", "AUTHLEDGER_WEBAUTHN_RP_ID": "10.0.0.1"})); err == nil {
		t.Fatal("an IP named as the relying party id is accepted")
	}
}

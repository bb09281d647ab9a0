package token_test

import (
	"encoding/json"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/authledger/authledger/auth/keys"
)

// A token we issue verifies with a different JOSE implementation
// (go-jose) against nothing but our JWKS JSON, as a third-party resource
// server would.
func TestGoJoseVerifiesOurTokensAgainstOurJWKS(t *testing.T) {
	t.Parallel()
	for _, alg := range []jwa.SignatureAlgorithm{keys.ES256, keys.RS256, keys.EdDSA} {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, alg)
			s, issued := f.issue(t)
			body, err := f.ring.JWKSJSON(t0)
			if err != nil {
				t.Fatal(err)
			}
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(body, &set); err != nil {
				t.Fatalf("go-jose cannot read our JWKS: %v\n%s", err, body)
			}
			tok, err := josejwt.ParseSigned(s, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA})
			if err != nil {
				t.Fatal(err)
			}
			if len(tok.Headers) != 1 || tok.Headers[0].ExtraHeaders["typ"] != "at+jwt" {
				t.Fatalf("headers %+v", tok.Headers)
			}
			found := set.Key(tok.Headers[0].KeyID)
			if len(found) != 1 || found[0].Algorithm != alg.String() || !found[0].IsPublic() {
				t.Fatalf("kid %q in JWKS: %+v", tok.Headers[0].KeyID, found)
			}
			var std josejwt.Claims
			var ours struct {
				SID   string   `json:"sid"`
				AMR   []string `json:"amr"`
				Roles []string `json:"roles"`
				Name  string   `json:"name"`
			}
			if err := tok.Claims(found[0].Key, &std, &ours); err != nil {
				t.Fatal(err)
			}
			if err := std.ValidateWithLeeway(josejwt.Expected{Issuer: issuer, AnyAudience: []string{issuer}, Time: t0.Add(time.Minute)}, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			if std.Subject != subject.UserID.String() || std.ID != issued.ID || ours.SID != subject.SessionID.String() ||
				ours.Name != "Alice" || len(ours.AMR) != 1 || len(ours.Roles) != 1 {
				t.Fatalf("claims %+v %+v", std, ours)
			}
			if err := std.ValidateWithLeeway(josejwt.Expected{Issuer: issuer, Time: t0.Add(time.Hour)}, 30*time.Second); err == nil {
				t.Fatal("go-jose accepts our token an hour later")
			}
		})
	}
}

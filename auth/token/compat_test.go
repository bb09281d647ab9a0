package token_test

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/keys/keystest"
	"github.com/authledger/authledger/auth/token"
)

// Tokens issued before the move to jwx v3 (testdata/jwx-v2-tokens.json:
// one per algorithm, issued at t0 for subject by the v2 build with the
// keys of package keystest) verify after it under the same rules, and a
// token issued now is the same token but for its jti and signature: an
// upgrade logs nobody out, and resource servers see the same header and
// claims.
func TestTokensIssuedWithJWXv2(t *testing.T) {
	t.Parallel()
	ring := keystest.Ring(t)
	raw, err := os.ReadFile("testdata/jwx-v2-tokens.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden map[string]string
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatal(err)
	}
	if len(golden) != 3 {
		t.Fatalf("%d golden tokens, want one each of ES256, RS256, EdDSA", len(golden))
	}
	cfg := token.DefaultConfig(issuer)
	ver, err := token.NewVerifier(cfg, ring)
	if err != nil {
		t.Fatal(err)
	}
	for alg, tok := range golden {
		got, err := ver.Verify(tok, t0.Add(time.Minute))
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if got.UserID != subject.UserID || got.SessionID != subject.SessionID || got.Name != subject.Name ||
			strings.Join(got.AMR, ",") != "pwd" || strings.Join(got.Roles, ",") != "user" || got.ID == "" ||
			!got.IssuedAt.Equal(t0) || !got.ExpiresAt.Equal(t0.Add(15*time.Minute)) || got.Issuer != issuer ||
			strings.Join(got.Audience, ",") != issuer {
			t.Errorf("%s: claims %+v", alg, got)
		}
		exp := t0.Add(15 * time.Minute)
		if _, err := ver.Verify(tok, exp.Add(cfg.Leeway-time.Nanosecond)); err != nil {
			t.Errorf("%s: a nanosecond inside the leeway: %v", alg, err)
		}
		if _, err := ver.Verify(tok, exp.Add(cfg.Leeway)); !errors.Is(err, token.ErrExpired) {
			t.Errorf("%s: at exp + leeway: %v, want ErrExpired", alg, err)
		}
		if _, err := ver.Verify(tok, t0.Add(-cfg.Leeway-time.Nanosecond)); !errors.Is(err, token.ErrInvalidToken) {
			t.Errorf("%s: before iat - leeway: %v, want ErrInvalidToken", alg, err)
		}
		if _, err := ver.Verify(tok, t0.Add(-cfg.Leeway)); err != nil {
			t.Errorf("%s: at iat - leeway: %v", alg, err)
		}

		// The same subject, key and time now: same header, same claims.
		one, err := keys.NewKeyRing(keys.Entry{Key: keyByID(t, ring, got.KeyID), Lifecycle: keys.Lifecycle{AddedAt: t0, ActivatedAt: t0}})
		if err != nil {
			t.Fatal(err)
		}
		iss, err := token.NewIssuer(cfg, one)
		if err != nil {
			t.Fatal(err)
		}
		now, c, err := iss.Issue(subject, t0)
		if err != nil {
			t.Fatal(err)
		}
		if h, want := strings.Split(now, ".")[0], strings.Split(tok, ".")[0]; h != want {
			t.Errorf("%s: header %s, v2 wrote %s", alg, h, want)
		}
		claims, want := decodeSegment(t, now, 1), decodeSegment(t, tok, 1)
		if claims["jti"] != c.ID {
			t.Errorf("%s: jti %v, issued %s", alg, claims["jti"], c.ID)
		}
		delete(claims, "jti")
		delete(want, "jti")
		if a, b := mustJSON(t, claims), mustJSON(t, want); a != b {
			t.Errorf("%s: claims %s, v2 wrote %s", alg, a, b)
		}
	}
}

func keyByID(t *testing.T, r *keys.KeyRing, kid string) *keys.SigningKey {
	t.Helper()
	for _, e := range r.Entries() {
		if e.Key.ID() == kid {
			return e.Key
		}
	}
	t.Fatalf("kid %s not in the ring", kid)
	return nil
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

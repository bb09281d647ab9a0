package token_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/token"
)

const issuer = "https://id.example.test"

var (
	t0      = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	subject = token.Subject{
		UserID: uuid.MustParse("0b8f7f0e-7c55-4b5e-9f59-8f6f3f2a9a10"), SessionID: uuid.MustParse("5b0c3a4e-2f1d-4a8e-9c7b-6d5e4f3a2b1c"),
		Name: "Alice", AMR: []string{"pwd"}, Roles: []string{"user"},
	}
)

type fixture struct {
	key      *keys.SigningKey
	ring     *keys.KeyRing
	issuer   *token.Issuer
	verifier *token.Verifier
}

func newFixture(t testing.TB, alg jwa.SignatureAlgorithm) fixture {
	t.Helper()
	k, err := keys.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keys.NewKeyRing(keys.Entry{Key: k, Lifecycle: keys.Lifecycle{AddedAt: t0.Add(-time.Hour), ActivatedAt: t0.Add(-time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := token.DefaultConfig(issuer)
	iss, err := token.NewIssuer(cfg, ring)
	if err != nil {
		t.Fatal(err)
	}
	ver, err := token.NewVerifier(cfg, ring)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{key: k, ring: ring, issuer: iss, verifier: ver}
}

func (f fixture) issue(t *testing.T) (string, token.Claims) {
	t.Helper()
	s, c, err := f.issuer.Issue(subject, t0)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestIssueAndVerify(t *testing.T) {
	t.Parallel()
	for _, alg := range []jwa.SignatureAlgorithm{keys.ES256, keys.RS256, keys.EdDSA} {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, alg)
			s, issued := f.issue(t)
			got, err := f.verifier.Verify(s, t0.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if got.UserID != subject.UserID || got.SessionID != subject.SessionID || got.Name != "Alice" ||
				strings.Join(got.AMR, ",") != "pwd" || strings.Join(got.Roles, ",") != "user" || got.KeyID != f.key.ID() ||
				got.ID == "" || got.ID != issued.ID || !got.ExpiresAt.Equal(t0.Add(15*time.Minute)) || got.Issuer != issuer {
				t.Fatalf("claims %+v, issued %+v", got, issued)
			}
			hdr := decodeSegment(t, s, 0)
			if hdr["kid"] != f.key.ID() || hdr["alg"] != alg.String() || hdr["typ"] != "at+jwt" {
				t.Fatalf("header %v", hdr)
			}
		})
	}
}

func TestExpiryAndLeeway(t *testing.T) {
	t.Parallel()
	f := newFixture(t, keys.ES256)
	s, _ := f.issue(t)
	if _, err := f.verifier.Verify(s, t0.Add(15*time.Minute+20*time.Second)); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	_, err := f.verifier.Verify(s, t0.Add(15*time.Minute+31*time.Second))
	if !errors.Is(err, token.ErrExpired) || !errors.Is(err, token.ErrInvalidToken) {
		t.Fatalf("expired: %v", err)
	}
	if _, err := f.verifier.Verify(s, t0.Add(-time.Minute)); !errors.Is(err, token.ErrInvalidToken) {
		t.Fatalf("issued in the future: %v", err)
	}
}

// A token whose exp is 0 (1970) is expired. jwx v2 skipped its expiry
// check for a zero exp, so such a token, had we ever signed one, would
// never have expired; v3 checks every exp present (see the jwx v3 ADR).
func TestZeroExpiryIsExpired(t *testing.T) {
	t.Parallel()
	f := newFixture(t, keys.ES256)
	good, _ := f.issue(t)
	payload := decodeSegment(t, good, 1)
	payload["exp"] = 0
	b, _ := json.Marshal(payload)
	h := jws.NewHeaders()
	if err := errors.Join(h.Set(jws.KeyIDKey, f.key.ID()), h.Set(jws.TypeKey, token.AccessTokenType)); err != nil {
		t.Fatal(err)
	}
	signed, err := jws.Sign(b, jws.WithKey(f.key.Algorithm(), f.key.PrivateKey(), jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.verifier.Verify(string(signed), t0.Add(time.Minute)); !errors.Is(err, token.ErrExpired) {
		t.Fatalf("exp 0: Verify = %v, want ErrExpired", err)
	}
}

func decodeSegment(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func seg(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// hs256 signs header.payload with HMAC-SHA256 under secret, as an attacker
// would by hand.
func hs256(signingInput string, secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signingInput))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestAttacksOnTheVerifier(t *testing.T) {
	t.Parallel()
	f := newFixture(t, keys.RS256)
	good, _ := f.issue(t)
	payload := decodeSegment(t, good, 1)
	payload["roles"] = []string{"admin"}
	now := t0.Add(time.Minute)

	var pub any
	if err := jwk.Export(f.key.PublicKey(), &pub); err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	pubJWK, _ := json.Marshal(f.key.PublicKey())

	attacker, _ := keys.Generate(keys.RS256)
	signWith := func(k *keys.SigningKey, hdr map[string]any) string {
		h := jws.NewHeaders()
		for name, v := range hdr {
			if err := h.Set(name, v); err != nil {
				t.Fatal(err)
			}
		}
		b, _ := json.Marshal(payload)
		// jwx copies the key's own kid into the header; sign with a copy
		// that has only the kid the case asks for.
		priv, err := k.PrivateKey().Clone()
		if err != nil {
			t.Fatal(err)
		}
		_ = priv.Remove(jwk.KeyIDKey)
		if kid, ok := hdr["kid"]; ok {
			_ = priv.Set(jwk.KeyIDKey, kid)
		}
		out, err := jws.Sign(b, jws.WithKey(k.Algorithm(), priv, jws.WithProtectedHeaders(h)))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	edKey, _ := keys.Generate(keys.EdDSA)

	parts := strings.Split(good, ".")
	for name, tok := range map[string]string{
		"alg none":         seg(t, map[string]any{"alg": "none", "kid": f.key.ID(), "typ": "at+jwt"}) + "." + seg(t, payload) + ".",
		"alg none, no kid": seg(t, map[string]any{"alg": "none"}) + "." + seg(t, payload) + ".",
		"HS256 keyed with the public key PEM": func() string {
			in := seg(t, map[string]any{"alg": "HS256", "kid": f.key.ID(), "typ": "at+jwt"}) + "." + seg(t, payload)
			return in + "." + hs256(in, pubPEM)
		}(),
		"HS256 keyed with the public JWK JSON": func() string {
			in := seg(t, map[string]any{"alg": "HS256", "kid": f.key.ID(), "typ": "at+jwt"}) + "." + seg(t, payload)
			return in + "." + hs256(in, pubJWK)
		}(),
		"payload changed after signing":       parts[0] + "." + seg(t, payload) + "." + parts[2],
		"signature stripped":                  parts[0] + "." + parts[1] + ".",
		"signed by another key with our kid":  signWith(attacker, map[string]any{"kid": f.key.ID(), "typ": "at+jwt"}),
		"attacker key embedded in the header": signWith(attacker, map[string]any{"kid": f.key.ID(), "typ": "at+jwt", "jwk": attacker.PublicKey()}),
		"EdDSA token naming our RS256 kid":    signWith(edKey, map[string]any{"kid": f.key.ID(), "typ": "at+jwt"}),
		"no kid":                              signWith(f.key, map[string]any{"typ": "at+jwt"}),
		"unknown kid":                         signWith(f.key, map[string]any{"kid": "nope", "typ": "at+jwt"}),
		"no typ":                              signWith(f.key, map[string]any{"kid": f.key.ID()}),
		"id token typ":                        signWith(f.key, map[string]any{"kid": f.key.ID(), "typ": "JWT"}),
		"crit header":                         signWith(f.key, map[string]any{"kid": f.key.ID(), "typ": "at+jwt", "crit": []string{"exp"}}),
		"JSON serialisation":                  `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`,
		"empty":                               "",
		"garbage":                             "a.b.c",
	} {
		_, err := f.verifier.Verify(tok, now)
		if !errors.Is(err, token.ErrInvalidToken) {
			t.Errorf("%s: Verify = %v, want ErrInvalidToken", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	// The honest token with the tampered claims re-signed properly by us
	// verifies: the checks above fail for their reason, not by accident.
	if _, err := f.verifier.Verify(signWith(f.key, map[string]any{"kid": f.key.ID(), "typ": "at+jwt"}), now); err != nil {
		t.Fatalf("control: %v", err)
	}
}

func TestWrongIssuerOrAudience(t *testing.T) {
	t.Parallel()
	f := newFixture(t, keys.ES256)
	for name, cfg := range map[string]token.Config{
		"issuer":   func() token.Config { c := token.DefaultConfig("https://evil.example"); c.Audience = issuer; return c }(),
		"audience": func() token.Config { c := token.DefaultConfig(issuer); c.Audience = "another-api"; return c }(),
	} {
		other, _ := token.NewIssuer(cfg, f.ring)
		s, _, err := other.Issue(subject, t0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.verifier.Verify(s, t0.Add(time.Minute)); !errors.Is(err, token.ErrInvalidToken) {
			t.Errorf("wrong %s: %v", name, err)
		}
	}
}

func TestRotationKeepsOldTokensValid(t *testing.T) {
	t.Parallel()
	old, _ := keys.Generate(keys.ES256)
	cur, _ := keys.Generate(keys.EdDSA)
	cfg := token.DefaultConfig(issuer)
	before, _ := keys.NewKeyRing(keys.Entry{Key: old, Lifecycle: keys.Lifecycle{AddedAt: t0, ActivatedAt: t0}})
	holder := keys.NewRingHolder(before)
	iss, _ := token.NewIssuer(cfg, holder)
	ver, _ := token.NewVerifier(cfg, holder)
	s1, _, _ := iss.Issue(subject, t0)
	rot := t0.Add(time.Minute)
	after, _ := keys.NewKeyRing(
		keys.Entry{Key: old, Lifecycle: keys.Lifecycle{AddedAt: t0, ActivatedAt: t0, RetiredAt: rot, RetainUntil: rot.Add(cfg.MaxKeyRetention())}},
		keys.Entry{Key: cur, Lifecycle: keys.Lifecycle{AddedAt: t0, ActivatedAt: rot}},
	)
	holder.Store(after)
	s2, c2, _ := iss.Issue(subject, rot)
	if c2.KeyID != cur.ID() {
		t.Fatal("new tokens are not signed by the new key")
	}
	for _, s := range []string{s1, s2} {
		if _, err := ver.Verify(s, rot.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	jwks, _ := after.JWKSJSON(rot.Add(time.Minute))
	if !strings.Contains(string(jwks), old.ID()) {
		t.Fatal("retired key left the JWKS while its tokens live")
	}
}

func TestVerifyAgainstAParsedJWKS(t *testing.T) {
	t.Parallel()
	f := newFixture(t, keys.ES256)
	b, _ := f.ring.JWKSJSON(t0)
	set, err := jwk.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := token.NewVerifier(token.DefaultConfig(issuer), set)
	s, _ := f.issue(t)
	if _, err := v.Verify(s, t0); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := token.DefaultConfig(issuer).Validate(); err != nil {
		t.Fatal(err)
	}
	err := token.Config{}.Validate()
	if err == nil || !strings.Contains(err.Error(), "issuer") || !strings.Contains(err.Error(), "lifetime") {
		t.Fatalf("Validate = %v", err)
	}
}

// auth_time is when the session started, in whole seconds; a token
// without it verifies with a zero AuthTime.
func TestAuthTime(t *testing.T) {
	t.Parallel()
	f := newFixture(t, keys.ES256)
	s := subject
	s.AuthTime = t0.Add(-time.Hour + 300*time.Millisecond)
	raw, issued, err := f.issuer.Issue(s, t0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.verifier.Verify(raw, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !got.AuthTime.Equal(t0.Add(-time.Hour)) || !issued.AuthTime.Equal(got.AuthTime) {
		t.Errorf("auth_time %s (issued %s), want %s", got.AuthTime, issued.AuthTime, t0.Add(-time.Hour))
	}
	if payload := decodeSegment(t, raw, 1); payload["auth_time"] != float64(t0.Add(-time.Hour).Unix()) {
		t.Errorf("payload %v", payload)
	}
	raw, _, err = f.issuer.Issue(subject, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := f.verifier.Verify(raw, t0); err != nil || !got.AuthTime.IsZero() {
		t.Errorf("without auth_time: %+v %v", got, err)
	}
}

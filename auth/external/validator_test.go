package external_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/authledger/authledger/auth/external"
	"github.com/authledger/authledger/test/extauthserver"
	"github.com/authledger/authledger/test/testclock"
)

func newValidator(t *testing.T, p *extauthserver.Server, clk *testclock.Clock) *external.TokenValidator {
	t.Helper()
	cfg := p.ClientConfig()
	cfg.Now = clk.Now
	cfg.Logger = quiet
	v, err := external.NewTokenValidator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAProviderTokenIsAccepted(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]extauthserver.Config{
		"default":              {},
		"keys without alg":     {KeysWithoutAlg: true}, // as Azure AD publishes them
		"oid as subject claim": {Alternate: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := provider(t, cfg)
			v := newValidator(t, p, testclock.New())
			res, err := newClient(t, fast(p.ClientConfig())).Login(context.Background(), ada.Email, ada.Password)
			if err != nil {
				t.Fatal(err)
			}
			for _, raw := range []string{res.Tokens.AccessToken, res.Tokens.IDToken} {
				c, err := v.Validate(context.Background(), raw)
				if err != nil {
					t.Fatal(err)
				}
				if c.Subject != ada.ID || c.Email != ada.Email || c.Name != ada.Name || c.Issuer != p.Issuer ||
					len(c.Audience) != 1 || c.Audience[0] != "authledger-test" || c.KeyID == "" || time.Until(c.Expiry) < 50*time.Minute {
					t.Fatalf("claims %+v", c)
				}
			}
			// Keys were fetched once for both tokens.
			if h := p.AllHits(); h[extauthserver.Discovery] != 1 || h[extauthserver.JWKS] != 1 {
				t.Fatalf("hits %v", h)
			}
		})
	}
}

func TestForgedProviderTokensAreRefused(t *testing.T) {
	t.Parallel()
	p := provider(t, extauthserver.Config{})
	v := newValidator(t, p, testclock.New())
	good := p.Token(ada, extauthserver.TokenOptions{})
	if _, err := v.Validate(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	p.SignWithWrongKey(true)
	wrongSig := p.Token(ada, extauthserver.TokenOptions{})
	p.SignWithWrongKey(false)

	parts := strings.Split(good, ".")
	hs256 := func() string {
		// The classic confusion: HMAC with the public key's bytes as the
		// secret, under the published kid.
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("the public key bytes, or any 32+ byte secret")},
			(&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), keyID(t, good)))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := josejwt.Signed(s).Claims(map[string]any{
			"iss": p.Issuer, "aud": "authledger-test", "sub": ada.ID, "exp": time.Now().Add(time.Hour).Unix(),
		}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	for name, raw := range map[string]string{
		"wrong signature":   wrongSig,
		"wrong audience":    p.Token(ada, extauthserver.TokenOptions{Audience: "someone-else"}),
		"expired":           p.Token(ada, extauthserver.TokenOptions{TTL: -time.Hour}),
		"unknown issuer":    p.Token(ada, extauthserver.TokenOptions{Issuer: "https://login.example.com/other/v2.0"}),
		"no subject":        p.Token(ada, extauthserver.TokenOptions{Claims: map[string]any{"sub": ""}}),
		"not yet valid":     p.Token(ada, extauthserver.TokenOptions{Claims: map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}}),
		"issued in future":  p.Token(ada, extauthserver.TokenOptions{Claims: map[string]any{"iat": time.Now().Add(time.Hour).Unix()}}),
		"no expiry":         p.Token(ada, extauthserver.TokenOptions{Claims: map[string]any{"exp": nil}}),
		"tampered payload":  parts[0] + "." + tampered(t, parts[1]) + "." + parts[2],
		"hs256 confusion":   hs256(),
		"signature dropped": parts[0] + "." + parts[1] + ".",
		"not a jwt":         "opaque-token",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.Validate(context.Background(), raw)
			if !errors.Is(err, external.ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrInvalidToken", err)
			}
			t.Log(err)
		})
	}
}

// Keys published without "alg" (Azure AD's way) leave the choice of
// algorithm to the token: only Config.Algorithms bounds it.
func TestOnlyTheConfiguredAlgorithmsAreAccepted(t *testing.T) {
	t.Parallel()
	p := provider(t, extauthserver.Config{KeysWithoutAlg: true})
	ps256 := p.Token(ada, extauthserver.TokenOptions{Algorithm: jose.PS256})
	if _, err := newValidator(t, p, testclock.New()).Validate(context.Background(), ps256); !errors.Is(err, external.ErrInvalidToken) {
		t.Fatalf("a PS256 token was accepted with Algorithms = [RS256]: %v", err)
	}
	cfg := p.ClientConfig()
	cfg.Algorithms, cfg.Logger = []string{"RS256", "PS256"}, quiet
	v, err := external.NewTokenValidator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(context.Background(), ps256); err != nil {
		t.Fatal(err)
	}
}

// tampered changes the subject of a token's payload, keeping it valid
// JSON: only the signature can tell.
func tampered(t *testing.T, payload string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["sub"], m["oid"] = "someone-else", "someone-else"
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// keyID reads the kid of a token's header.
func keyID(t *testing.T, raw string) string {
	t.Helper()
	tok, err := josejwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Headers[0].KeyID
}

func TestAnUnknownKidRefetchesTheKeysAtMostOnceAMinute(t *testing.T) {
	t.Parallel()
	p := provider(t, extauthserver.Config{})
	clk := testclock.New()
	v := newValidator(t, p, clk)
	if _, err := v.Validate(context.Background(), p.Token(ada, extauthserver.TokenOptions{})); err != nil {
		t.Fatal(err)
	}
	jwks := func() int { return p.Hits(extauthserver.JWKS) }
	if jwks() != 1 {
		t.Fatalf("jwks hits %d", jwks())
	}

	// A minute after the first fetch, a forged kid causes one refetch;
	// a flood of them in the same minute causes none.
	clk.Add(time.Minute)
	for i := range 20 {
		_, err := v.Validate(context.Background(), p.Token(ada, extauthserver.TokenOptions{KeyID: "forged-" + string(rune('a'+i))}))
		if !errors.Is(err, external.ErrInvalidToken) {
			t.Fatalf("err = %v", err)
		}
	}
	if jwks() != 2 {
		t.Fatalf("jwks hits %d, want 2: one refetch for twenty unknown kids", jwks())
	}

	// The provider rotates its key. Within the minute the new kid is not
	// fetched for (that is the price of the bound) ...
	kid := p.RotateKey()
	rotated := p.Token(ada, extauthserver.TokenOptions{})
	if keyID(t, rotated) != kid {
		t.Fatal("the token does not carry the new kid")
	}
	clk.Add(30 * time.Second)
	if _, err := v.Validate(context.Background(), rotated); !errors.Is(err, external.ErrInvalidToken) || jwks() != 2 {
		t.Fatalf("err = %v, jwks hits %d", err, jwks())
	}
	// ... and once it has passed, the first token with the new kid fetches
	// the new keys and is accepted; the next one needs no fetch.
	clk.Add(30 * time.Second)
	for range 2 {
		if _, err := v.Validate(context.Background(), rotated); err != nil {
			t.Fatal(err)
		}
	}
	if jwks() != 3 {
		t.Fatalf("jwks hits %d, want 3", jwks())
	}
}

func TestConcurrentUnknownKidsShareOneFetch(t *testing.T) {
	t.Parallel()
	p := provider(t, extauthserver.Config{})
	v := newValidator(t, p, testclock.New())
	tok := p.Token(ada, extauthserver.TokenOptions{})
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() { _, errs[i] = v.Validate(context.Background(), tok) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := p.Hits(extauthserver.JWKS); got != 1 {
		t.Fatalf("jwks hits %d, want 1", got)
	}
}

func TestKeysThatCannotBeHadAreUnavailableNotInvalid(t *testing.T) {
	t.Parallel()
	p := provider(t, extauthserver.Config{})
	clk := testclock.New()
	v := newValidator(t, p, clk)
	tok := p.Token(ada, extauthserver.TokenOptions{TTL: 4 * time.Hour})

	p.SetOIDCFault(extauthserver.Fault{Status: http.StatusServiceUnavailable})
	if _, err := v.Validate(context.Background(), tok); !errors.Is(err, external.ErrKeysUnavailable) || errors.Is(err, external.ErrInvalidToken) {
		t.Fatalf("err = %v, want ErrKeysUnavailable", err)
	}
	// Within the minute, no new attempt; still unavailable.
	if _, err := v.Validate(context.Background(), tok); !errors.Is(err, external.ErrKeysUnavailable) || p.Hits(extauthserver.Discovery) != 1 {
		t.Fatalf("err = %v, discovery hits %d", err, p.Hits(extauthserver.Discovery))
	}
	p.SetOIDCFault(extauthserver.Fault{})
	clk.Add(time.Minute)
	if _, err := v.Validate(context.Background(), tok); err != nil {
		t.Fatal(err)
	}

	// Once keys are cached, an outage of the issuer past KeyMaxAge keeps
	// them: known kids still verify.
	p.SetOIDCFault(extauthserver.Fault{Status: http.StatusBadGateway})
	clk.Add(2 * time.Hour)
	if _, err := v.Validate(context.Background(), tok); err != nil {
		t.Fatalf("stale keys were dropped: %v", err)
	}
	if got := p.Hits(extauthserver.Discovery); got != 3 {
		t.Fatalf("discovery hits %d, want 3 (the refetch past KeyMaxAge was tried)", got)
	}
}

func TestADiscoveryDocumentForAnotherIssuerIsRefused(t *testing.T) {
	t.Parallel()
	p := provider(t, extauthserver.Config{})
	cfg := p.ClientConfig()
	// The same server, under an issuer with a trailing slash: its
	// discovery document names the issuer without one, and OpenID
	// Discovery requires the two to be identical.
	cfg.Issuer = p.Issuer + "/"
	cfg.Logger = quiet
	v, err := external.NewTokenValidator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Validate(context.Background(), p.Token(ada, extauthserver.TokenOptions{Issuer: cfg.Issuer}))
	if !errors.Is(err, external.ErrKeysUnavailable) || !strings.Contains(err.Error(), "not") {
		t.Fatalf("err = %v", err)
	}
}

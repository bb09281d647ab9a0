package external

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

var (
	// ErrInvalidToken: the token is not a valid token of the provider for
	// us (malformed, bad signature, unknown key, wrong issuer or audience,
	// expired). Answer 401.
	ErrInvalidToken = errors.New("external auth: invalid provider token")
	// ErrKeysUnavailable: the provider's keys could not be had (discovery
	// or JWKS unreachable, and none cached). Answer 503, not 401: the
	// token may well be valid.
	ErrKeysUnavailable = errors.New("external auth: provider keys unavailable")
)

// Claims are what a verified provider token says.
type Claims struct {
	// Subject is the claim Mapping.SubjectClaim names: the external user
	// id a linked account is found by.
	Subject  string
	Issuer   string
	Audience []string
	Expiry   time.Time
	IssuedAt time.Time
	// Email and Name are the email (or preferred_username, as Azure AD
	// puts it) and name claims, "" when absent.
	Email string
	Name  string
	// KeyID is the kid that verified the token.
	KeyID string
	// Token gives access to any other claim.
	Token jwt.Token
}

// TokenValidator verifies the provider's JWTs (access and ID tokens)
// against the keys its OpenID discovery document publishes. Keys are
// fetched on first use and cached; they are fetched again when older than
// KeyMaxAge, and when a token names a kid they lack, at most once per
// KeyRefreshInterval, so a provider's key rotation is picked up at once
// and a flood of forged kids costs the issuer one request a minute. A
// failed fetch keeps the keys it has. Safe for concurrent use.
type TokenValidator struct {
	cfg  Config
	http *http.Client

	// fetch serialises fetches: concurrent validations that need new keys
	// wait for one fetch rather than each making their own.
	fetch sync.Mutex
	mu    sync.Mutex // guards the fields below
	keys  jwk.Set
	// fetchedAt is when keys were last fetched successfully;
	// attemptedAt when a fetch was last tried, whatever came of it.
	fetchedAt   time.Time
	attemptedAt time.Time
}

// NewTokenValidator validates cfg and returns a TokenValidator. It fetches
// nothing yet.
func NewTokenValidator(cfg Config) (*TokenValidator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	cfg.Issuer = strings.TrimSpace(cfg.Issuer)
	return &TokenValidator{cfg: cfg, http: newHTTPClient(cfg)}, nil
}

// Validate verifies raw: signature by a key of the issuer's JWKS (kid
// required, algorithm among Config.Algorithms and matching the key), iss
// equal to Config.Issuer, aud containing Config.Audience, exp in the
// future and nbf and iat not (within ClockSkew), and a subject present.
// A bad token is ErrInvalidToken; keys that cannot be had are
// ErrKeysUnavailable.
func (v *TokenValidator) Validate(ctx context.Context, raw string) (*Claims, error) {
	var keyErr error
	var usedKID string
	provider := jws.KeyProviderFunc(func(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
		h := sig.ProtectedHeaders()
		kid, ok := h.KeyID()
		if !ok || kid == "" {
			return errors.New("no kid in the token's header")
		}
		alg, ok := h.Algorithm()
		if !ok || !slices.Contains(v.cfg.Algorithms, alg.String()) {
			return fmt.Errorf("algorithm %v is not accepted", alg)
		}
		key, err := v.key(ctx, kid)
		if err != nil {
			keyErr = err
			return err
		}
		if ka, ok := key.Algorithm(); ok && ka.String() != alg.String() {
			return fmt.Errorf("key %s is for %s, the token says %s", kid, ka, alg)
		}
		if use, ok := key.KeyUsage(); ok && use != "" && use != jwk.ForSignature.String() {
			return fmt.Errorf("key %s is not a signing key (use %q)", kid, use)
		}
		usedKID = kid
		sink.Key(alg, key)
		return nil
	})
	tok, err := jwt.ParseString(raw,
		jwt.WithKeyProvider(provider),
		jwt.WithContext(ctx),
		jwt.WithValidate(true),
		jwt.WithIssuer(v.cfg.Issuer),
		jwt.WithAudience(v.cfg.Audience),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithAcceptableSkew(v.cfg.ClockSkew),
		jwt.WithClock(jwt.ClockFunc(v.cfg.Now)),
	)
	if err != nil {
		if errors.Is(keyErr, ErrKeysUnavailable) {
			return nil, keyErr
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	return v.claims(tok, usedKID)
}

func (v *TokenValidator) claims(tok jwt.Token, kid string) (*Claims, error) {
	c := &Claims{Token: tok, KeyID: kid}
	c.Issuer, _ = tok.Issuer()
	c.Audience, _ = tok.Audience()
	c.Expiry, _ = tok.Expiration()
	c.IssuedAt, _ = tok.IssuedAt()
	claimString := func(name string) string {
		var s string
		if err := tok.Get(name, &s); err != nil {
			return ""
		}
		return s
	}
	c.Subject = claimString(v.cfg.Mapping.SubjectClaim)
	if c.Subject == "" {
		return nil, fmt.Errorf("%w: no %s claim", ErrInvalidToken, v.cfg.Mapping.SubjectClaim)
	}
	c.Email = claimString("email")
	if c.Email == "" {
		c.Email = claimString("preferred_username")
	}
	c.Name = claimString("name")
	return c, nil
}

// key returns the cached key kid. The keys are fetched (again) when there
// are none, when they are older than KeyMaxAge, or when kid is not among
// them; but never sooner than KeyRefreshInterval after the last attempt.
func (v *TokenValidator) key(ctx context.Context, kid string) (jwk.Key, error) {
	if k, s := v.lookup(kid); s.found && !s.stale {
		return k, nil
	}
	// One fetch at a time; whoever waited looks again first.
	v.fetch.Lock()
	defer v.fetch.Unlock()
	k, s := v.lookup(kid)
	switch {
	case s.found && !s.stale:
		return k, nil
	case !s.mayFetch && s.found:
		return k, nil // stale, but a fetch was tried a moment ago
	case !s.mayFetch && !s.have:
		return nil, fmt.Errorf("%w: the last fetch failed less than %s ago", ErrKeysUnavailable, v.cfg.KeyRefreshInterval)
	case !s.mayFetch:
		return nil, fmt.Errorf("no key %q in the provider's key set (fetched again at most every %s)", kid, v.cfg.KeyRefreshInterval)
	}
	set, err := v.fetchKeys(ctx)
	v.mu.Lock()
	v.attemptedAt = v.cfg.Now()
	if err == nil {
		v.keys, v.fetchedAt = set, v.attemptedAt
	}
	keys := v.keys
	v.mu.Unlock()
	if err != nil {
		v.cfg.Logger.Warn("external auth: fetching the provider's keys failed", "issuer", v.cfg.Issuer, "err", err)
		if keys == nil {
			return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
		}
	} else {
		v.cfg.Logger.Info("external auth: fetched the provider's keys", "issuer", v.cfg.Issuer, "keys", set.Len())
	}
	if k, ok := keys.LookupKeyID(kid); ok {
		return k, nil
	}
	return nil, fmt.Errorf("no key %q in the provider's key set", kid)
}

// cacheState is what lookup found.
type cacheState struct {
	have, found, stale, mayFetch bool
}

func (v *TokenValidator) lookup(kid string) (jwk.Key, cacheState) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.cfg.Now()
	s := cacheState{
		have:     v.keys != nil,
		stale:    v.keys == nil || now.Sub(v.fetchedAt) >= v.cfg.KeyMaxAge,
		mayFetch: v.attemptedAt.IsZero() || now.Sub(v.attemptedAt) >= v.cfg.KeyRefreshInterval,
	}
	var k jwk.Key
	if s.have {
		k, s.found = v.keys.LookupKeyID(kid)
	}
	return k, s
}

// discovery is the part of the OpenID Provider Metadata we read.
type discovery struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// fetchKeys reads the discovery document and then the JWKS it names.
// OpenID Connect Discovery §4.3: the document's issuer must be the one we
// asked about, or someone else's keys would verify tokens as this
// issuer's.
func (v *TokenValidator) fetchKeys(ctx context.Context) (jwk.Set, error) {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	body, err := v.get(ctx, strings.TrimRight(v.cfg.Issuer, "/")+"/.well-known/openid-configuration")
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	var d discovery
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("discovery: not a JSON document: %w", err)
	}
	if d.Issuer != v.cfg.Issuer {
		return nil, fmt.Errorf("discovery: the document is for issuer %q, not %q", d.Issuer, v.cfg.Issuer)
	}
	if err := checkURL(d.JWKSURI, v.cfg.AllowInsecure); err != nil {
		return nil, fmt.Errorf("discovery: jwks_uri %w", err)
	}
	body, err = v.get(ctx, d.JWKSURI)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	if set.Len() == 0 {
		return nil, errors.New("jwks: no keys")
	}
	return set, nil
}

func (v *TokenValidator) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBody {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", url, maxBody)
	}
	return b, nil
}

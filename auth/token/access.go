// Package token issues and verifies access tokens (JWTs, signed with
// lestrrat-go/jwx/v3 and nothing hand-rolled) and makes and parses opaque
// refresh tokens.
//
// Access tokens follow RFC 9068's shape: header typ "at+jwt" and kid;
// claims iss, sub (user id), aud, exp, iat, jti, sid (session id), amr,
// roles, name. The verifier trusts nothing in the header but the kid: the
// algorithm must be exactly the one the key with that kid was made for, and
// that can only be ES256, RS256 or EdDSA, so "none" and HMAC-keyed-with-the-
// public-key forgeries fail before any signature is checked.
package token

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/authledger/authledger/auth/keys"
)

// Config is shared by the Issuer and the Verifier of our own tokens.
type Config struct {
	// Issuer is the iss claim: AUTHLEDGER_PUBLIC_URL, exactly as in the
	// discovery document.
	Issuer string
	// Audience is the aud claim required of every token (default: Issuer).
	Audience string
	// AccessTokenTTL is the access-token lifetime (default 15 minutes). A
	// retired signing key stays in the JWKS at least this long plus Leeway.
	AccessTokenTTL time.Duration
	// Leeway tolerates clock skew on exp and iat (default 30 seconds).
	Leeway time.Duration
}

// DefaultConfig: audience = issuer, 15-minute tokens, 30 s leeway.
func DefaultConfig(issuer string) Config {
	return Config{Issuer: issuer, Audience: issuer, AccessTokenTTL: 15 * time.Minute, Leeway: 30 * time.Second}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Issuer == "" {
		errs = append(errs, errors.New("token: issuer is required"))
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("token: audience is required"))
	}
	if c.AccessTokenTTL < time.Minute || c.AccessTokenTTL > 24*time.Hour {
		errs = append(errs, errors.New("token: access token lifetime must be between 1 minute and 24 hours"))
	}
	if c.Leeway < 0 || c.Leeway > 5*time.Minute {
		errs = append(errs, errors.New("token: leeway must be between 0 and 5 minutes"))
	}
	return errors.Join(errs...)
}

// MaxKeyRetention is how long a retired key must stay in the JWKS: every
// token it signed has expired by then.
func (c Config) MaxKeyRetention() time.Duration { return c.AccessTokenTTL + c.Leeway }

// Header and claim names.
const (
	// AccessTokenType is the typ header of our access tokens (RFC 9068).
	AccessTokenType = "at+jwt"
	ClaimSessionID  = "sid"
	ClaimAMR        = "amr"
	ClaimRoles      = "roles"
	ClaimName       = "name"
	// ClaimEmailVerified is OpenID Connect's email_verified.
	ClaimEmailVerified = "email_verified"
	// ClaimAuthTime is OIDC's auth_time: when the session started.
	ClaimAuthTime = "auth_time"
)

// SignerSource gives the key that signs at a time (*keys.KeyRing,
// *keys.RingHolder).
type SignerSource interface {
	Signer(now time.Time) (*keys.SigningKey, error)
}

// KeyLookup finds a public key by kid (*keys.KeyRing, *keys.RingHolder, or
// a jwk.Set). The key must carry its "alg".
type KeyLookup interface {
	LookupKeyID(kid string) (jwk.Key, bool)
}

// Subject is who and what a token is for.
type Subject struct {
	UserID    uuid.UUID
	SessionID uuid.UUID
	Name      string
	AMR       []string
	Roles     []string
	// AuthTime is when the session started (the login): the auth_time
	// claim, which a bulk revocation ("every session started before T")
	// compares. Zero leaves the claim out.
	AuthTime time.Time
	// EmailVerified is the email_verified claim (OpenID Connect Core
	// 5.1): the user proved control of their current address.
	EmailVerified bool
}

// Claims are a verified (or just issued) token's contents.
type Claims struct {
	Issuer    string
	Audience  []string
	UserID    uuid.UUID
	SessionID uuid.UUID
	ID        string // jti
	IssuedAt  time.Time
	ExpiresAt time.Time
	// AuthTime is the auth_time claim: when the session started; zero in
	// a token issued before the claim was added.
	AuthTime time.Time
	Name     string
	AMR      []string
	Roles    []string
	// EmailVerified is the email_verified claim (false when absent).
	EmailVerified bool
	// KeyID is the kid that signed the token.
	KeyID string
}

// Issuer signs access tokens.
type Issuer struct {
	cfg  Config
	keys SignerSource
}

// NewIssuer validates cfg.
func NewIssuer(cfg Config, signers SignerSource) (*Issuer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if signers == nil {
		return nil, errors.New("token: issuer needs a signer source")
	}
	return &Issuer{cfg: cfg, keys: signers}, nil
}

// Issue signs an access token for s at now with the key active at now. JWT
// times are whole seconds, so now is truncated; the returned Claims are
// exactly what the token says.
func (i *Issuer) Issue(s Subject, now time.Time) (string, Claims, error) {
	if s.UserID == uuid.Nil || s.SessionID == uuid.Nil {
		return "", Claims{}, errors.New("token: subject needs a user id and a session id")
	}
	k, err := i.keys.Signer(now)
	if err != nil {
		return "", Claims{}, fmt.Errorf("token: %w", err)
	}
	now = now.UTC().Truncate(time.Second)
	c := Claims{
		Issuer: i.cfg.Issuer, Audience: []string{i.cfg.Audience}, UserID: s.UserID, SessionID: s.SessionID,
		ID: uuid.NewString(), IssuedAt: now, ExpiresAt: now.Add(i.cfg.AccessTokenTTL), Name: s.Name,
		AMR: nonNil(s.AMR), Roles: nonNil(s.Roles), KeyID: k.ID(), EmailVerified: s.EmailVerified,
	}
	var authTime int64
	if !s.AuthTime.IsZero() {
		c.AuthTime = s.AuthTime.UTC().Truncate(time.Second)
		authTime = c.AuthTime.Unix()
	}
	payload, err := json.Marshal(accessPayload{
		Issuer: c.Issuer, Subject: c.UserID.String(), Audience: c.Audience,
		ExpiresAt: c.ExpiresAt.Unix(), IssuedAt: c.IssuedAt.Unix(), ID: c.ID,
		SessionID: c.SessionID.String(), AMR: c.AMR, Roles: c.Roles, Name: c.Name, AuthTime: authTime,
		EmailVerified: c.EmailVerified,
	})
	if err != nil {
		return "", Claims{}, fmt.Errorf("token: claims: %w", err)
	}
	hdr := jws.NewHeaders()
	if err := errors.Join(hdr.Set(jws.KeyIDKey, k.ID()), hdr.Set(jws.TypeKey, AccessTokenType)); err != nil {
		return "", Claims{}, fmt.Errorf("token: header: %w", err)
	}
	signed, err := jws.Sign(payload, jws.WithKey(k.Algorithm(), k.PrivateKey(), jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", Claims{}, fmt.Errorf("token: sign: %w", err)
	}
	return string(signed), c, nil
}

// accessPayload is the JWT claims set of an access token, marshalled in
// one pass: jwt.Sign's generic claim map spent as long on it as the ES256
// signature. jws.Sign still does all of the JOSE part.
type accessPayload struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  []string `json:"aud"`
	ExpiresAt int64    `json:"exp"`
	IssuedAt  int64    `json:"iat"`
	ID        string   `json:"jti"`
	SessionID string   `json:"sid"`
	AMR       []string `json:"amr"`
	Roles     []string `json:"roles"`
	Name      string   `json:"name"`
	AuthTime  int64    `json:"auth_time,omitempty"`
	// EmailVerified is present when true (absent reads as false), so
	// that a token of a user who never verified is byte for byte what it
	// was before the claim existed.
	EmailVerified bool `json:"email_verified,omitempty"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

var (
	// ErrInvalidToken is matched by every verification failure. Answer 401
	// with a body that does not say which check failed.
	ErrInvalidToken = errors.New("token: invalid access token")
	// ErrExpired: the token is past exp (plus leeway). Also matches
	// ErrInvalidToken.
	ErrExpired = errors.New("token: access token expired")
)

// MaxTokenLength bounds what the verifier parses.
const MaxTokenLength = 8 << 10

// Verifier checks our access tokens against our key set.
type Verifier struct {
	cfg  Config
	keys KeyLookup
}

// NewVerifier validates cfg.
func NewVerifier(cfg Config, lookup KeyLookup) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if lookup == nil {
		return nil, errors.New("token: verifier needs a key lookup")
	}
	return &Verifier{cfg: cfg, keys: lookup}, nil
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidToken}, a...)...)
}

// Verify checks token at now and returns its claims. In order: compact
// serialisation with one signature; a kid naming a key we hold; an alg in
// the header equal to that key's alg (so never "none" or HS256); typ
// at+jwt; no crit header; the signature; then iss, aud, exp and iat with
// the leeway, and the presence of sub, jti and sid. Every failure matches
// ErrInvalidToken (and an expired one also ErrExpired). It does not know
// about revoked sessions: the caller checks sid against the revocation set.
func (v *Verifier) Verify(token string, now time.Time) (Claims, error) {
	if len(token) == 0 || len(token) > MaxTokenLength || strings.Count(token, ".") != 2 {
		return Claims{}, invalid("not a compact JWS")
	}
	msg, err := jws.Parse([]byte(token))
	if err != nil {
		return Claims{}, invalid("parse: %v", err)
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 {
		return Claims{}, invalid("want exactly one signature")
	}
	h := sigs[0].ProtectedHeaders()
	kid, _ := h.KeyID()
	alg, _ := h.Algorithm()
	if kid == "" {
		return Claims{}, invalid("no kid")
	}
	if !keys.Supported(alg) {
		return Claims{}, invalid("algorithm %q is not accepted", alg)
	}
	key, ok := v.keys.LookupKeyID(kid)
	if !ok {
		return Claims{}, invalid("unknown kid %q", kid)
	}
	keyAlg, ok := key.Algorithm()
	if !ok || keyAlg.String() != alg.String() {
		return Claims{}, invalid("kid %q is an %v key, token says %s", kid, keyAlg, alg)
	}
	typ, _ := h.Type()
	if lower := strings.ToLower(typ); lower != AccessTokenType && lower != "application/"+AccessTokenType {
		return Claims{}, invalid("typ %q is not %s", typ, AccessTokenType)
	}
	if crit, _ := h.Critical(); len(crit) > 0 {
		return Claims{}, invalid("crit header not understood")
	}
	tok, err := jwt.Parse([]byte(token),
		jwt.WithKey(alg, key),
		jwt.WithValidate(true),
		jwt.WithIssuer(v.cfg.Issuer),
		jwt.WithAudience(v.cfg.Audience),
		jwt.WithAcceptableSkew(v.cfg.Leeway),
		// v2 compared times truncated to the second; v3 compares them
		// exactly unless told. Our claims are whole seconds, so either
		// gives the same answer for our tokens; this keeps v2's rule for
		// any other.
		jwt.WithTruncation(time.Second),
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.IssuedAtKey),
		jwt.WithRequiredClaim(jwt.SubjectKey),
		jwt.WithRequiredClaim(jwt.JwtIDKey),
		jwt.WithRequiredClaim(ClaimSessionID),
	)
	if err != nil {
		if errors.Is(err, jwt.TokenExpiredError()) {
			return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, ErrExpired)
		}
		return Claims{}, invalid("%v", err)
	}
	return claimsOf(tok, kid)
}

func claimsOf(tok jwt.Token, kid string) (Claims, error) {
	sub, _ := tok.Subject()
	uid, err := uuid.Parse(sub)
	if err != nil {
		return Claims{}, invalid("sub is not a user id")
	}
	var sidStr string
	_ = tok.Get(ClaimSessionID, &sidStr) // a non-string fails to parse below
	sid, err := uuid.Parse(sidStr)
	if err != nil {
		return Claims{}, invalid("sid is not a session id")
	}
	iss, _ := tok.Issuer()
	aud, _ := tok.Audience()
	jti, _ := tok.JwtID()
	iat, _ := tok.IssuedAt()
	exp, _ := tok.Expiration()
	c := Claims{
		Issuer: iss, Audience: aud, UserID: uid, SessionID: sid, ID: jti,
		IssuedAt: iat.UTC(), ExpiresAt: exp.UTC(), KeyID: kid,
	}
	_ = tok.Get(ClaimName, &c.Name)                   // absent, null or not a string: ""
	_ = tok.Get(ClaimEmailVerified, &c.EmailVerified) // absent or not a boolean: false
	var authTime any
	if tok.Get(ClaimAuthTime, &authTime) == nil {
		switch v := authTime.(type) {
		case float64:
			c.AuthTime = time.Unix(int64(v), 0).UTC()
		case json.Number:
			if n, err := v.Int64(); err == nil {
				c.AuthTime = time.Unix(n, 0).UTC()
			}
		}
	}
	c.AMR, err = stringList(tok, ClaimAMR)
	if err != nil {
		return Claims{}, err
	}
	c.Roles, err = stringList(tok, ClaimRoles)
	if err != nil {
		return Claims{}, err
	}
	return c, nil
}

func stringList(tok jwt.Token, name string) ([]string, error) {
	var v any
	if tok.Get(name, &v) != nil || v == nil { // absent or null
		return []string{}, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, invalid("%s is not a list", name)
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, invalid("%s holds a non-string", name)
		}
		out = append(out, s)
	}
	return out, nil
}

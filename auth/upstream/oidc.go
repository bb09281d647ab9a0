package upstream

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"golang.org/x/oauth2"

	"github.com/authledger/authledger/auth/external"
)

// keyRefreshInterval is the least time between two JWKS fetches caused by
// a token no cached key verifies: forged kids must not turn us into a load
// generator against the provider.
const keyRefreshInterval = time.Minute

// discoveryRetry is the least time between two discovery attempts after
// one failed.
const discoveryRetry = 5 * time.Second

// oidcProvider is an OpenID provider found through discovery; with Kind
// entra, the issuer it publishes holds {tenantid}, checked against each
// token's tid.
type oidcProvider struct {
	base
	mu       sync.Mutex
	ready    *discovered
	failedAt time.Time
}

type discovered struct {
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	// issuer is the discovered issuer (for Entra, a template with
	// {tenantid}).
	issuer string
}

func newOIDC(cfg Config, t *external.Transport) *oidcProvider {
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	}
	return &oidcProvider{base: base{cfg: cfg, transport: t}}
}

// discover fetches and caches the discovery document (once, or again
// after a failure, at most every discoveryRetry).
func (p *oidcProvider) discover(ctx context.Context) (*discovered, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ready != nil {
		return p.ready, nil
	}
	if time.Since(p.failedAt) < discoveryRetry {
		return nil, &external.Error{Op: "discovery", Kind: external.ErrUnavailable, Reason: external.ReasonTransport, RetryAfter: discoveryRetry}
	}
	ctx = oidc.ClientContext(ctx, p.transport.Client())
	if p.cfg.Kind == KindEntra {
		// Entra's /common and /organizations publish
		// https://login.microsoftonline.com/{tenantid}/v2.0: the issuer
		// is checked per token (tid) instead.
		ctx = oidc.InsecureIssuerURLContext(ctx, p.cfg.Issuer)
	}
	prov, err := oidc.NewProvider(ctx, p.cfg.Issuer)
	if err != nil {
		p.failedAt = time.Now()
		return nil, fmt.Errorf("upstream %s: discovery: %w", p.cfg.Name, err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURL string `json:"jwks_uri"`
	}
	if err := prov.Claims(&doc); err != nil || doc.JWKSURL == "" {
		p.failedAt = time.Now()
		return nil, fmt.Errorf("upstream %s: discovery names no jwks_uri", p.cfg.Name)
	}
	keys := &keySet{url: doc.JWKSURL, client: p.transport.Client()}
	d := &discovered{
		oauth: oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: prov.Endpoint(),
			RedirectURL: p.cfg.RedirectURL, Scopes: p.cfg.Scopes},
		verifier: oidc.NewVerifier(p.cfg.Issuer, keys, &oidc.Config{ClientID: p.cfg.ClientID, SkipIssuerCheck: p.cfg.Kind == KindEntra}),
		issuer:   doc.Issuer,
	}
	p.ready = d
	return d, nil
}

// AuthCodeURL implements Provider. Before discovery succeeded it is "":
// the start handler asks Prepare first.
func (p *oidcProvider) AuthCodeURL(state, nonce, verifier string) string {
	p.mu.Lock()
	d := p.ready
	p.mu.Unlock()
	if d == nil {
		return ""
	}
	return d.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
}

// Prepare discovers the provider if it has not been yet. With the
// breaker open it refuses at once: the browser is not sent to a provider
// whose code could not be exchanged.
func (p *oidcProvider) Prepare(ctx context.Context) error {
	if err := p.transport.Refusing("start"); err != nil {
		return err
	}
	_, err := p.discover(p.ctx(ctx))
	return err
}

// Exchange implements Provider.
func (p *oidcProvider) Exchange(ctx context.Context, code, verifier, nonce string) (Identity, error) {
	ctx = p.ctx(ctx)
	d, err := p.discover(ctx)
	if err != nil {
		return Identity{}, err
	}
	tok, err := d.oauth.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Identity{}, exchangeError(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, fmt.Errorf("%w: no id_token in the token answer", ErrInvalidToken)
	}
	idt, err := d.verifier.Verify(oidc.ClientContext(ctx, p.transport.Client()), raw)
	if err != nil {
		if errors.Is(err, external.ErrUnavailable) {
			return Identity{}, err
		}
		return Identity{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if idt.Nonce == "" || idt.Nonce != nonce {
		return Identity{}, fmt.Errorf("%w: the nonce is not the one sent", ErrInvalidToken)
	}
	var c struct {
		Email         string `json:"email"`
		EmailVerified any    `json:"email_verified"`
		Name          string `json:"name"`
		PreferredName string `json:"preferred_username"`
		TenantID      string `json:"tid"`
		ObjectID      string `json:"oid"`
		DomainOwner   any    `json:"xms_edov"`
	}
	if err := idt.Claims(&c); err != nil {
		return Identity{}, fmt.Errorf("%w: claims: %v", ErrInvalidToken, err)
	}
	id := Identity{Provider: p.cfg.Name, Subject: idt.Subject, Email: c.Email, EmailVerified: truthy(c.EmailVerified), Name: c.Name}
	if id.Name == "" {
		id.Name = c.PreferredName
	}
	if p.cfg.Kind == KindEntra {
		if id, err = p.entra(d, idt, id, c.TenantID, c.ObjectID, truthy(c.DomainOwner)); err != nil {
			return Identity{}, err
		}
	}
	if id.Subject == "" {
		return Identity{}, fmt.Errorf("%w: no subject", ErrInvalidToken)
	}
	if id.Email == "" {
		return Identity{}, ErrNoEmail
	}
	return id, p.admitted(id)
}

// entra applies Microsoft's multi-tenant rule: iss must be the discovered
// issuer with {tenantid} replaced by the token's tid, and the tid must be
// an admitted tenant. The subject is tid:oid, the pair Microsoft names as
// the stable key of a user; an address counts as verified only when
// xms_edov says its domain's owner verified it (Entra does not send
// email_verified, and an unverified mail attribute is how accounts were
// taken over through it).
func (p *oidcProvider) entra(d *discovered, idt *oidc.IDToken, id Identity, tid, oid string, domainOwnerVerified bool) (Identity, error) {
	if tid == "" {
		return Identity{}, fmt.Errorf("%w: no tid claim", ErrInvalidToken)
	}
	want := strings.ReplaceAll(d.issuer, "{tenantid}", tid)
	if idt.Issuer != want {
		return Identity{}, fmt.Errorf("%w: issuer %q is not %q", ErrInvalidToken, idt.Issuer, want)
	}
	if !slices.Contains(p.cfg.Tenants, "*") && !slices.Contains(p.cfg.Tenants, tid) {
		return Identity{}, fmt.Errorf("%w: tenant %s", ErrNotAllowed, tid)
	}
	if oid != "" {
		id.Subject = tid + ":" + oid
	}
	id.EmailVerified = domainOwnerVerified
	return id, nil
}

func truthy(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return strings.EqualFold(b, "true")
	}
	return false
}

// keySet is the provider's JWKS, cached, refetched when no cached key
// verifies a token, at most once per keyRefreshInterval.
type keySet struct {
	url    string
	client *http.Client

	mu        sync.Mutex
	keys      oidc.StaticKeySet
	fetchedAt time.Time
}

// VerifySignature implements oidc.KeySet.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.keys.PublicKeys) > 0 {
		if payload, err := k.keys.VerifySignature(ctx, jwt); err == nil {
			return payload, nil
		}
		if time.Since(k.fetchedAt) < keyRefreshInterval {
			return nil, errors.New("no cached key verifies the token (keys refreshed less than a minute ago)")
		}
	}
	if err := k.fetch(ctx); err != nil {
		return nil, err
	}
	return k.keys.VerifySignature(ctx, jwt)
}

func (k *keySet) fetch(ctx context.Context) error {
	set, err := jwk.Fetch(ctx, k.url, jwk.WithHTTPClient(k.client))
	if err != nil {
		return fmt.Errorf("fetch keys: %w", err)
	}
	var pubs []crypto.PublicKey
	for i := range set.Len() {
		key, _ := set.Key(i)
		var raw any
		if err := jwk.Export(key, &raw); err != nil {
			continue
		}
		if pk, ok := raw.(crypto.PublicKey); ok {
			pubs = append(pubs, pk)
		}
	}
	k.keys, k.fetchedAt = oidc.StaticKeySet{PublicKeys: pubs}, time.Now()
	return nil
}

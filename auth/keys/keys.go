// Package keys holds the server's JWT signing keys: generating them (jwx
// v3 jwk), sealing private keys under the master key (AES-256-GCM) for the
// encrypted key table, and the KeyRing that picks the current signer and
// publishes the JWKS.
//
// The key table itself is behind the Store port; the lifecycle of each key
// (added, activated, retired) is recorded as events by domain/signingkey
// and handed to NewKeyRing as Lifecycle values.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Supported signature algorithms. The set is closed on purpose: the
// verifier accepts only these, so "none" and the HMAC family can never be
// chosen by a token. (jwx v3's algorithms are values returned by
// functions, not string constants, hence vars; nothing assigns them.)
var (
	ES256 = jwa.ES256()
	RS256 = jwa.RS256()
	// EdDSA is the "EdDSA" algorithm over Ed25519. RFC 9864 deprecates the
	// name in favour of "Ed25519" and jwx v3 marks it deprecated, but it
	// still signs and verifies it, and it is the name every verifier of
	// our tokens and the keys already published know.
	EdDSA = jwa.EdDSA()
)

// DefaultAlgorithm is ES256: small keys and signatures, fast to verify,
// supported by every JOSE library.
var DefaultAlgorithm = ES256

// RSABits is the modulus size of generated RS256 keys.
const RSABits = 2048

// ErrUnsupportedAlgorithm is returned for any algorithm but ES256, RS256
// and EdDSA.
var ErrUnsupportedAlgorithm = errors.New("keys: unsupported signing algorithm (want ES256, RS256 or EdDSA)")

// ParseAlgorithm accepts "ES256", "RS256" or "EdDSA" (as configured).
func ParseAlgorithm(s string) (jwa.SignatureAlgorithm, error) {
	for _, a := range []jwa.SignatureAlgorithm{ES256, RS256, EdDSA} {
		if a.String() == s {
			return a, nil
		}
	}
	return jwa.EmptySignatureAlgorithm(), fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, s)
}

// Supported reports whether alg is one this package generates and the
// token verifier accepts.
func Supported(alg jwa.SignatureAlgorithm) bool {
	_, err := ParseAlgorithm(alg.String())
	return err == nil
}

// SigningKey is one key pair. ID, the JWS "kid", is the RFC 7638 thumbprint
// of the public key (base64url SHA-256), so it is derived, unique and
// checkable after unsealing. The private half never leaves this process
// except sealed.
type SigningKey struct {
	id      string
	alg     jwa.SignatureAlgorithm
	private jwk.Key
	public  jwk.Key
}

// Generate makes a new key pair for alg with crypto/rand.
func Generate(alg jwa.SignatureAlgorithm) (*SigningKey, error) {
	alg, err := ParseAlgorithm(alg.String())
	if err != nil {
		return nil, err
	}
	var raw crypto.Signer
	switch alg {
	case ES256:
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		raw, err = rsa.GenerateKey(rand.Reader, RSABits)
	case EdDSA:
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, alg)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: generate %s: %w", alg, err)
	}
	priv, err := jwk.Import(raw)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	return fromPrivate(priv, alg)
}

// fromPrivate completes a private JWK (kid, alg, use) and derives its
// public half.
func fromPrivate(priv jwk.Key, alg jwa.SignatureAlgorithm) (*SigningKey, error) {
	// Normalised by name, so that the switches below, which compare
	// values, see our own ES256, RS256 or EdDSA.
	alg, err := ParseAlgorithm(alg.String())
	if err != nil {
		return nil, err
	}
	if err := checkKeyType(priv, alg); err != nil {
		return nil, err
	}
	tp, err := priv.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("keys: thumbprint: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(tp)
	for k, v := range map[string]any{jwk.KeyIDKey: id, jwk.AlgorithmKey: alg, jwk.KeyUsageKey: jwk.ForSignature} {
		if err := priv.Set(k, v); err != nil {
			return nil, fmt.Errorf("keys: set %s: %w", k, err)
		}
	}
	pub, err := jwk.PublicKeyOf(priv)
	if err != nil {
		return nil, fmt.Errorf("keys: public key: %w", err)
	}
	return &SigningKey{id: id, alg: alg, private: priv, public: pub}, nil
}

func checkKeyType(k jwk.Key, alg jwa.SignatureAlgorithm) error {
	var want jwa.KeyType
	switch alg {
	case ES256:
		want = jwa.EC()
		if ec, ok := k.(jwk.ECDSAPrivateKey); !ok || !hasCurve(ec.Crv, jwa.P256()) {
			return fmt.Errorf("keys: ES256 needs a P-256 private key")
		}
	case RS256:
		want = jwa.RSA()
		if _, ok := k.(jwk.RSAPrivateKey); !ok {
			return fmt.Errorf("keys: RS256 needs an RSA private key")
		}
	case EdDSA:
		want = jwa.OKP()
		if o, ok := k.(jwk.OKPPrivateKey); !ok || !hasCurve(o.Crv, jwa.Ed25519()) {
			return fmt.Errorf("keys: EdDSA needs an Ed25519 private key")
		}
	}
	if k.KeyType() != want {
		return fmt.Errorf("keys: %s needs key type %s, got %s", alg, want, k.KeyType())
	}
	return nil
}

// hasCurve reports whether a key's crv (jwx v3 accessors say whether the
// field is present) is want.
func hasCurve(crv func() (jwa.EllipticCurveAlgorithm, bool), want jwa.EllipticCurveAlgorithm) bool {
	c, ok := crv()
	return ok && c == want
}

// ID is the key id ("kid").
func (k *SigningKey) ID() string { return k.id }

// Algorithm is the JWS algorithm the key signs with; a token naming any
// other algorithm with this kid is forged.
func (k *SigningKey) Algorithm() jwa.SignatureAlgorithm { return k.alg }

// PrivateKey is the private JWK (with kid, alg and use set), for signing.
// Never log or serialise it outside Seal.
func (k *SigningKey) PrivateKey() jwk.Key { return k.private }

// PublicKey is the public JWK, as published in the JWKS.
func (k *SigningKey) PublicKey() jwk.Key { return k.public }

// PublicJSON is the public JWK as JSON, for the signing_key.added event.
func (k *SigningKey) PublicJSON() (json.RawMessage, error) {
	b, err := json.Marshal(k.public)
	if err != nil {
		return nil, fmt.Errorf("keys: marshal public key: %w", err)
	}
	return b, nil
}

// String names the key without revealing it.
func (k *SigningKey) String() string { return "signing key " + k.id + " (" + k.alg.String() + ")" }

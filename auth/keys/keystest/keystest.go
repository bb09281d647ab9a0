// Package keystest holds what auth/keys wrote when it was built on
// lestrrat-go/jwx/v2 (the library before v3), for tests that check a later build still opens the
// same sealed keys and publishes the same bytes (see the jwx v3 ADR in
// docs/adr). Only tests import it.
//
// testdata/jwx-v2-sealed.json: one ES256, one RS256 and one EdDSA key,
// generated and sealed at 2026-11-23T12:00:00Z under MasterKey.
// testdata/jwx-v2-public.json: their public JWKs by kid, as the
// signing_key.added event carries them. testdata/jwx-v2-jwks.json: the
// JWKS of a ring holding the three.
package keystest

import (
	_ "embed"
	"encoding/json"
	"testing"
	"time"

	"github.com/authledger/authledger/auth/keys"
)

var (
	//go:embed testdata/jwx-v2-sealed.json
	sealedJSON []byte
	//go:embed testdata/jwx-v2-public.json
	publicJSON []byte
	//go:embed testdata/jwx-v2-jwks.json
	jwksJSON []byte
)

// SealedAt is when the golden keys were sealed.
var SealedAt = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// MasterKey is the test-only master key the golden keys are sealed under:
// the bytes 1 to 32.
func MasterKey(t testing.TB) *keys.MasterKey {
	t.Helper()
	b := make([]byte, keys.MasterKeySize)
	for i := range b {
		b[i] = byte(i + 1)
	}
	m, err := keys.NewMasterKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Sealed returns the golden key-table rows, ES256, RS256 and EdDSA.
func Sealed(t testing.TB) []keys.SealedKey {
	t.Helper()
	var s []keys.SealedKey
	if err := json.Unmarshal(sealedJSON, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// PublicJWKs returns the golden public JWKs by kid, as written (indented).
func PublicJWKs(t testing.TB) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(publicJSON, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// JWKS returns the golden JWKS body.
func JWKS() []byte { return append([]byte(nil), jwksJSON...) }

// Ring opens the golden keys under MasterKey into a ring in which all
// three were added and activated at SealedAt.
func Ring(t testing.TB) *keys.KeyRing {
	t.Helper()
	m := MasterKey(t)
	var entries []keys.Entry
	for _, s := range Sealed(t) {
		k, err := m.Open(s)
		if err != nil {
			t.Fatalf("open %s (%s): %v", s.ID, s.Algorithm, err)
		}
		entries = append(entries, keys.Entry{Key: k, Lifecycle: keys.Lifecycle{AddedAt: SealedAt, ActivatedAt: SealedAt}})
	}
	r, err := keys.NewKeyRing(entries...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

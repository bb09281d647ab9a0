package keys_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/authledger/authledger/auth/keys"
)

// The testdata/jwx-v2-* files were written by this package when it was
// built on lestrrat-go/jwx/v2 (see the jwx v3 ADR in docs/adr): three keys
// generated, sealed at t0 under the master key below, their public JWKs
// (the signing_key.added event's payload) and the JWKS of a ring holding
// all three. A server
// upgraded from v2 opens the rows it sealed then and must publish the same
// bytes, or verifiers that cached our JWKS and the events already in the
// log would disagree with it.

// goldenMasterKey is the test-only master key the golden rows are sealed
// under: bytes 1..32.
func goldenMasterKey(t *testing.T) *keys.MasterKey {
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

func readGolden(t *testing.T, name string, v any) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return b
}

func TestKeysSealedUnderJWXv2OpenAndPublishTheSameJWKS(t *testing.T) {
	t.Parallel()
	m := goldenMasterKey(t)
	var sealed []keys.SealedKey
	readGolden(t, "jwx-v2-sealed.json", &sealed)
	var public map[string]json.RawMessage
	readGolden(t, "jwx-v2-public.json", &public)
	wantJWKS := readGolden(t, "jwx-v2-jwks.json", nil)

	var entries []keys.Entry
	for _, s := range sealed {
		k, err := m.Open(s)
		if err != nil {
			t.Fatalf("%s (%s): %v", s.ID, s.Algorithm, err)
		}
		if k.ID() != s.ID || k.Algorithm().String() != s.Algorithm {
			t.Fatalf("row %s (%s) opened to %v", s.ID, s.Algorithm, k)
		}
		got, err := k.PublicJSON()
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		if err := json.Compact(&want, public[s.ID]); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s public JWK:\n got %s\nwant %s", s.Algorithm, got, want.Bytes())
		}
		entries = append(entries, keys.Entry{Key: k, Lifecycle: keys.Lifecycle{AddedAt: t0, ActivatedAt: t0}})
	}
	if len(entries) != 3 {
		t.Fatalf("%d golden keys, want one each of ES256, RS256, EdDSA", len(entries))
	}
	ring, err := keys.NewKeyRing(entries...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ring.JWKSJSON(t0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.TrimSpace(wantJWKS)) {
		t.Errorf("JWKS:\n got %s\nwant %s", got, wantJWKS)
	}
}

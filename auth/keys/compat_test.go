package keys_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/keys/keystest"
)

// A server upgraded from the jwx v2 build opens the rows it sealed then
// and publishes the same bytes: the same public JWK as the
// signing_key.added events already in the log, and the same JWKS that
// verifiers have cached (see package keystest).
func TestKeysSealedUnderJWXv2OpenAndPublishTheSameJWKS(t *testing.T) {
	t.Parallel()
	m := keystest.MasterKey(t)
	public := keystest.PublicJWKs(t)
	sealed := keystest.Sealed(t)
	if len(sealed) != 3 {
		t.Fatalf("%d golden keys, want one each of ES256, RS256, EdDSA", len(sealed))
	}
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
	}
	// A key generated now has the members the v2 build gave one of its
	// algorithm (values differ: it is another key).
	for _, s := range sealed {
		alg, _ := keys.ParseAlgorithm(s.Algorithm)
		fresh, err := keys.Generate(alg)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := fresh.PublicJSON()
		if a, b := members(t, got), members(t, public[s.ID]); a != b {
			t.Errorf("%s: a new key's public JWK has %s, the v2 build's had %s", s.Algorithm, a, b)
		}
	}
	got, err := keystest.Ring(t).JWKSJSON(keystest.SealedAt)
	if err != nil {
		t.Fatal(err)
	}
	if want := bytes.TrimSpace(keystest.JWKS()); !bytes.Equal(got, want) {
		t.Errorf("JWKS:\n got %s\nwant %s", got, want)
	}
}

// members lists a JSON object's member names, sorted.
func members(t *testing.T, b []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return strings.Join(slices.Sorted(maps.Keys(m)), ",")
}
